"""The registry: one FPCore file per formulation.

The shipped files live in the package `mishaudit.formulas` (the top-level
`formulas/` folder of the repository); `--formulas DIR` adds a user's own.
A formula's id is its FPCore identifier, else its file name without
`.fpcore`. Named constants are free names of the body, bound by two properties:

    :mishaudit-params ([threshold 20])
    :mishaudit-params ([B (binary16 4.75) (binary32 9.9) (default 9.9)])
    :mishaudit-constants ((eps (binary16 0x1p-10) (bfloat16 0x1p-7) ...))

A parameter is a constant someone chose (a threshold, a clamp): `--set NAME=VALUE` overrides it
in any command and `mishaudit tune` sweeps it. A constant is a fact of the format (its epsilon)
and is not tuned. Either is one value for every format, or a value per *storage* format
(binary16, bfloat16, binary32, binary64), `default` serving the formats not named. Values are
exact numbers (decimal, p/q, hexadecimal); the evaluator rounds them to the working format as it
does every literal. Nothing in a property is executed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from fractions import Fraction
from importlib import resources
from pathlib import Path

from mishaudit.errors import UserError
from mishaudit.formats import Format
from mishaudit.lang import fpcore
from mishaudit.lang.spec import MISH, Spec, spec_of


@dataclass(frozen=True)
class Formula:
    kernel = False  # an FPCore formulation (eval/kernels.py's Kernel has kernel = True)
    id: str
    core: fpcore.FPCore
    path: str  # where it was read from
    text: str  # the file's text (hashed into cache keys and checkpoints)
    constants: tuple  # ((name, ((fpcore-format-name | "default", Fraction), ...)), ...), parameters too
    spec: Spec = MISH  # what it approximates (lang/spec.py): its :spec, mish when it has none
    params: tuple = ()  # names of the constants that are parameters (:mishaudit-params), in file order
    overrides: tuple = ()  # ((name, Fraction), ...): parameters set away from the file's values

    def with_values(self, values: dict, id: str | None = None) -> "Formula":
        """This formula with parameters set (name -> Fraction, one value for every format); `id`
        renames it (tune's variants run side by side). UserError for a name that is not a parameter."""
        from dataclasses import replace

        for name in values:
            if name not in self.params:
                have = ", ".join(self.params) or "none"
                raise UserError(f"formula {self.id} has no parameter {_q(name)} (its parameters: {have}): "
                                "check the name, or declare it in the file's :mishaudit-params")
        table = tuple((n, (("default", values[n]),) if n in values else t) for n, t in self.constants)
        over = dict(self.overrides)
        over.update(values)
        return replace(self, id=id or self.id, constants=table, overrides=tuple(sorted(over.items())))

    def param_defaults(self) -> str | None:
        """The parameters and their values as 'name=value' or 'name=v16/vbf16/v32/v64' (per-format), None
        when it has none."""
        if not self.params:
            return None
        out = []
        for n, table in self.constants:
            if n in self.params:
                vals = dict(table)
                if len(vals) == 1 and "default" in vals:
                    out.append(f"{n}={fpcore.format_number(vals['default'])}")
                else:
                    out.append(f"{n}=" + ", ".join(f"{fpcore.format_number(v)} ({k})" for k, v in table))
        return "; ".join(out)

    def param_text(self) -> str | None:
        """The overridden parameters as 'name=value, ...' (exact values), None when none are."""
        if not self.overrides:
            return None
        return ", ".join(f"{n}={fpcore.format_number(v)}" for n, v in self.overrides)

    @property
    def body(self) -> fpcore.Expr:
        return self.core.body

    @property
    def arg(self) -> str:
        return self.core.args[0]

    @property
    def name(self) -> str:
        return str(self.core.prop(":name", self.id))

    @property
    def description(self) -> str:
        return str(self.core.prop(":description", ""))

    @property
    def source(self) -> str:
        return str(self.core.prop(":mishaudit-source", ""))

    @property
    def made_for(self) -> tuple:
        """The formats named by :mishaudit-dtype (a formulation made for them, as synthesize writes: its
        regimes and constants are those formats'), () when it has none (any format)."""
        v = self.core.prop(":mishaudit-dtype", None)
        if v is None:
            return ()
        items = v if isinstance(v, tuple) else (v,)
        return tuple(getattr(i, "name", str(i)) for i in items)

    def supports(self, fmt: Format) -> bool:
        """Whether an audit in `fmt` runs it (every format unless :mishaudit-dtype names others)."""
        return not self.made_for or fmt.name in self.made_for

    @property
    def why_not(self) -> dict:
        """format name -> why it is not audited there (the formats it is not made for)."""
        from mishaudit.formats import FORMATS

        return {f.name: f"made for {', '.join(self.made_for)} only (:mishaudit-dtype): its regimes and constants "
                        "are that format's" for f in FORMATS if not self.supports(f)}

    @property
    def used_by(self) -> str:
        return str(self.core.prop(":mishaudit-used-by", ""))

    @property
    def digest(self) -> str:
        over = "".join(f"\n;set {n}={fpcore.fraction_text(v)}" for n, v in self.overrides)
        return hashlib.sha256((self.text + over).encode()).hexdigest()[:16]

    def constant(self, name: str, storage: Format) -> Fraction:
        """The exact value of per-format constant `name` for storage format `storage`."""
        for n, table in self.constants:
            if n == name:
                return self._value(n, table, storage)
        raise KeyError(name)

    def _value(self, name: str, table: tuple, storage: Format) -> Fraction:
        values = dict(table)
        for key in (storage.fpcore, "default"):
            if key in values:
                return values[key]
        raise UserError(
            f"formula {self.id} ({self.path}) gives constant {name} no value for {storage.name}: "
            f"add ({storage.fpcore} VALUE) or (default VALUE) to its :mishaudit-constants"
        )

    def constant_values(self, storage: Format) -> dict[str, Fraction]:
        return {n: self._value(n, table, storage) for n, table in self.constants}


def _read_constants(core: fpcore.FPCore, src: str, key: str = ":mishaudit-constants") -> tuple:
    """The named values of property `key`: ((name, ((format | "default", Fraction), ...)), ...)."""
    raw = core.prop(key, ())
    bad = UserError(
        f"{src}: {key} must look like ([NAME VALUE] ...) or ([NAME (binary16 VALUE) (binary32 VALUE) "
        "(default VALUE)] ...), values numbers: fix the property"
    )
    if not isinstance(raw, tuple):
        raise bad
    out = []
    for entry in raw:
        if not isinstance(entry, tuple) or len(entry) < 2 or not isinstance(entry[0], fpcore.Symbol):
            raise bad
        if len(entry) == 2 and isinstance(entry[1], Fraction):  # [NAME VALUE]: one value for every format
            out.append((entry[0].name, (("default", entry[1]),)))
            continue
        table = []
        for pair in entry[1:]:
            if (not isinstance(pair, tuple) or len(pair) != 2 or not isinstance(pair[0], fpcore.Symbol)
                    or not isinstance(pair[1], Fraction)):
                raise bad
            if pair[0].name not in ("binary16", "bfloat16", "binary32", "binary64", "default"):
                raise UserError(f"{src}: unknown format {_q(pair[0].name)} in {key}: use binary16, bfloat16, binary32, binary64 or default")
            table.append((pair[0].name, pair[1]))
        out.append((entry[0].name, tuple(table)))
    return tuple(out)


def load_text(text: str, src: str, stem: str) -> Formula:
    """Parse and validate one formula file's text."""
    core = fpcore.parse(text, src)
    if len(core.args) != 1:
        raise UserError(f"{src}: a Mish formulation takes exactly one argument, e.g. (FPCore my-mish (x) ...)")
    ident = core.ident or stem
    params = _read_constants(core, src, ":mishaudit-params")
    constants = _read_constants(core, src) + params
    names = [n for n, _ in constants]
    seen: set = set()
    twice = {n for n in names if n in seen or seen.add(n)}  # linear: a file may declare thousands
    clash = sorted(twice | (set(names) & set(core.args)))
    if clash:
        raise UserError(f"{src}: {_q(clash[0])} is named twice (argument, :mishaudit-constants or :mishaudit-params): "
                        "give each name one definition")
    known = set(core.args) | set(names)
    used = fpcore.free_names(core.body)
    unknown = used - known
    if unknown:
        name = sorted(unknown)[0]
        line, col = _first_use(core.body, name)
        raise UserError(f"{src}:{line}:{col}: unknown variable {_q(name)}: bind it with let or declare it in "
                        ":mishaudit-params")
    unused = [n for n in names if n not in used]
    if unused:
        raise UserError(f"{src}: {_q(unused[0])} is declared but the body never uses it: use it or remove it")
    if _type(core.body, {n: "real" for n in known}, src) != "real":
        line, col = core.body.pos
        raise UserError(f"{src}:{line}:{col}: the body must be a number, not a truth value: wrap it in (if ... a b)")
    f = Formula(ident, core, src, text, constants, _read_spec(core, src), tuple(n for n, _ in params))
    from mishaudit.formats import FORMATS

    known = {fm.name for fm in FORMATS}
    for name in f.made_for:
        if name not in known:
            raise UserError(f"{src}: :mishaudit-dtype {_q(name)} is not a format: give one or more of "
                            f"{', '.join(sorted(known))}")
    return f


def _read_spec(core: fpcore.FPCore, src: str) -> Spec:
    """The :spec property, checked: an expression in the argument alone, a number (not a truth value)."""
    raw = core.prop(":spec")
    if raw is None:
        return MISH
    if not isinstance(raw, (fpcore.Num, fpcore.Const, fpcore.Var, fpcore.Op, fpcore.If, fpcore.Let, fpcore.Annot)):
        raise UserError(f"{src}: :spec must be an expression in {core.args[0]}, e.g. :spec (log1p (exp {core.args[0]}))")
    extra = fpcore.free_names(raw) - {core.args[0]}
    if extra:
        name = sorted(extra)[0]
        line, col = _first_use(raw, name)
        raise UserError(f"{src}:{line}:{col}: the :spec uses {_q(name)}: a spec is a function of the argument "
                        f"{core.args[0]} alone (constants are written as numbers)")
    if _type(raw, {core.args[0]: "real"}, src) != "real":
        line, col = raw.pos
        raise UserError(f"{src}:{line}:{col}: the :spec must be a number, not a truth value")
    return spec_of(core.args[0], raw)


def _type(e, env: dict, src: str) -> str:
    """'real' or 'bool' for expression e; UserError (file:line:col) where an operand has the wrong type."""

    def want(sub, kind: str) -> None:
        got = _type(sub, env, src)
        if got != kind:
            line, col = getattr(sub, "pos", (0, 0))
            a, b = ("a truth value", "a number") if got == "bool" else ("a number", "a truth value")
            raise UserError(f"{src}:{line}:{col}: {a} where {b} is needed: "
                            + ("compare it, e.g. (< x 0)" if kind == "bool" else "use (if condition a b)"))

    if isinstance(e, fpcore.Num):
        return "real"
    if isinstance(e, fpcore.Const):
        return "bool" if e.name in ("TRUE", "FALSE") else "real"
    if isinstance(e, fpcore.Var):
        return env.get(e.name, "real")
    if isinstance(e, fpcore.Let):
        inner = dict(env)
        for name, sub in e.bindings:
            inner[name] = _type(sub, inner if e.sequential else env, src)
        return _type(e.body, inner, src)
    if isinstance(e, fpcore.Annot):
        return _type(e.body, env, src)
    if isinstance(e, fpcore.If):
        want(e.cond, "bool")
        kind = _type(e.then, env, src)
        want(e.other, kind)
        return kind
    operand = "bool" if e.op in ("and", "or", "not") else "real"
    for a in e.args:
        want(a, operand)
    return "bool" if e.op in fpcore.BOOLEAN_OPS else "real"


def _first_use(e, name):
    if isinstance(e, fpcore.Var) and e.name == name:
        return e.pos
    for c in fpcore.children(e):
        p = _first_use(c, name)
        if p:
            return p
    return None


MAX_BYTES = 4 * fpcore.MAX_CHARS  # bytes read of one formula file: any text within MAX_CHARS fits


def _read_file(path: Path) -> str:
    """The text of a formula file: UTF-8 (a leading byte order mark dropped), universal newlines, read
    no further than MAX_BYTES; UserError for a file that is not one, too large or not UTF-8."""
    shown = _shown(path)
    if not path.is_file():
        raise UserError(f"formula file {shown} is not a regular file: give a folder of .fpcore text files")
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise UserError(f"cannot read formula file {shown}: {exc.strerror}; check the path and its permissions") from None
    if len(data) > MAX_BYTES:
        raise UserError(f"formula file {shown} is larger than {MAX_BYTES} bytes (an FPCore text holds at most "
                        f"{fpcore.MAX_CHARS} characters): check the path; a formula file is about 1 KB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"formula file {shown} is not UTF-8 text (byte {exc.start} is 0x{data[exc.start]:02x}): "
                        "save it as UTF-8") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _q(s) -> str:
    """A name as messages quote it: repr(), abbreviated when long."""
    return fpcore.abbreviate(repr(s))


def _shown(path) -> str:
    """A path as messages print it: as is, or escaped (ascii()) when it holds unprintable characters."""
    s = str(path)
    return s if s.isprintable() else ascii(s)


def builtin_files() -> list[tuple[str, str, str]]:
    """(text, path, stem) of every shipped formula file."""
    out = []
    try:
        folder = resources.files("mishaudit.formulas")
    except ModuleNotFoundError:  # running from a source checkout: formulas/ beside the package
        folder = Path(__file__).resolve().parents[2] / "formulas"
    for sub in ("", "libm"):  # libm/: the elementary functions themselves, each its own spec
        here = folder.joinpath(sub) if sub else folder
        for entry in sorted(here.iterdir(), key=lambda p: p.name):
            if entry.name.endswith(".fpcore"):
                rel = f"{sub}/{entry.name}" if sub else entry.name
                out.append((entry.read_text(encoding="utf-8"), f"formulas/{rel}", entry.name[: -len(".fpcore")]))
    return out


def load_registry(extra_dirs: tuple = (), builtin: bool = True) -> dict[str, Formula]:
    """All formulas by id: the shipped ones, then each of `extra_dirs`; an id clash is an error."""
    files = builtin_files() if builtin else []
    for d in extra_dirs:
        p = Path(d)
        d = _shown(d)
        if p.is_file() and p.suffix == ".fpcore":
            paths = [p]
        elif p.is_dir():
            paths = sorted(p.glob("*.fpcore"))
            if not paths:
                raise UserError(f"--formulas {d}: no .fpcore files in that folder: point it at a folder of FPCore files")
        else:
            raise UserError(f"--formulas {d}: no such folder or .fpcore file: check the path")
        files += [(_read_file(q), _shown(q), q.stem) for q in paths]
    reg: dict[str, Formula] = {}
    for text, src, stem in files:
        f = load_text(text, src, stem)
        if f.id in reg:
            raise UserError(f"formula id {_q(f.id)} is defined twice ({reg[f.id].path} and {src}): rename one (the FPCore identifier)")
        reg[f.id] = f
    return reg


def parse_settings(texts) -> dict[str, Fraction]:
    """`--set NAME=VALUE` texts -> {name: exact value}; UserError for a malformed one, a NAME that is not
    an FPCore symbol, or a VALUE beyond the reader's number limits (lang/fpcore.py: MAX_DIGITS significant
    digits, magnitudes within 1e+-MAX_EXP10 or 0x1p+-MAX_EXP2)."""
    out: dict[str, Fraction] = {}
    for t in texts:
        if not isinstance(t, str):
            raise UserError(f"--set {_q(t)}: give a text NAME=VALUE, e.g. --set threshold=15")
        name, sep, value = t.partition("=")
        name, value = name.strip(), value.strip()
        shown = fpcore.abbreviate(repr(t))
        try:
            num = fpcore.parse_number(value) if sep else None
        except fpcore.NumberTooLarge as exc:
            fix = ("give a value in that range (or 0)" if exc.within else
                   f"round it to at most {fpcore.MAX_DIGITS} significant digits")
            raise UserError(f"--set {shown}: the value is beyond the reader's limits ({exc.limit}): {fix}") from None
        if not name or num is None:
            raise UserError(f"--set {shown}: write NAME=VALUE with a number, e.g. --set threshold=15 (decimal, p/q "
                            "or hexadecimal)")
        if not fpcore.is_symbol(name):
            raise UserError(f"--set {shown}: {_q(name)} is not a parameter name (an FPCore symbol): "
                            "write NAME=VALUE, e.g. --set threshold=15")
        if name in out and out[name] != num:
            raise UserError(f"--set {fpcore.abbreviate(name)} is given twice with different values: give it once")
        out[name] = num
    return out


def apply_settings(impls: list, values: dict) -> list:
    """The formulations with `values` set where they declare the parameter; UserError for a name that
    no selected formulation has (kernels have no parameters)."""
    if not values:
        return impls
    forms = [f for f in impls if not f.kernel]
    for name in values:
        if not any(name in f.params for f in forms):
            have = sorted({p for f in forms for p in f.params})
            raise UserError(f"--set {fpcore.abbreviate(name)}: no selected formulation has a parameter {_q(name)} (theirs: "
                            f"{', '.join(have) or 'none'}): check the name or select the formulation with --formula")
    return [f.with_values({n: v for n, v in values.items() if n in f.params}) if not f.kernel and
            any(n in f.params for n in values) else f for f in impls]
