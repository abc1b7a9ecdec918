"""The registry: one FPCore file per formulation.

The shipped files live in the package `mishaudit.formulas` (the top-level
`formulas/` folder of the repository); `--formulas DIR` adds a user's own.
A formula's id is its FPCore identifier, else its file name without
`.fpcore`. Per-format constants come from `:mishaudit-constants`:

    :mishaudit-constants ((B (binary16 4.75) (binary32 9.9) (default 9.9)))

binds the name B to 4.75 when the *storage* format is binary16, and so on;
`default` serves formats the source gives no value for.
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
    constants: tuple  # ((name, ((fpcore-format-name | "default", Fraction), ...)), ...)
    spec: Spec = MISH  # what it approximates (lang/spec.py): its :spec, mish when it has none

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
    def used_by(self) -> str:
        return str(self.core.prop(":mishaudit-used-by", ""))

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]

    def constant(self, name: str, storage: Format) -> Fraction:
        """The exact value of per-format constant `name` for storage format `storage`."""
        for n, table in self.constants:
            if n == name:
                values = dict(table)
                for key in (storage.fpcore, "default"):
                    if key in values:
                        return values[key]
                raise UserError(
                    f"formula {self.id} ({self.path}) gives constant {name} no value for {storage.name}: "
                    f"add ({storage.fpcore} VALUE) or (default VALUE) to its :mishaudit-constants"
                )
        raise KeyError(name)

    def constant_values(self, storage: Format) -> dict[str, Fraction]:
        return {n: self.constant(n, storage) for n, _ in self.constants}


def _read_constants(core: fpcore.FPCore, src: str) -> tuple:
    raw = core.prop(":mishaudit-constants", ())
    bad = UserError(
        f"{src}: :mishaudit-constants must look like ((NAME (binary16 VALUE) (binary32 VALUE) ...) ...): fix the property"
    )
    if not isinstance(raw, tuple):
        raise bad
    out = []
    for entry in raw:
        if not isinstance(entry, tuple) or len(entry) < 2 or not isinstance(entry[0], fpcore.Symbol):
            raise bad
        table = []
        for pair in entry[1:]:
            if (not isinstance(pair, tuple) or len(pair) != 2 or not isinstance(pair[0], fpcore.Symbol)
                    or not isinstance(pair[1], Fraction)):
                raise bad
            if pair[0].name not in ("binary16", "bfloat16", "binary32", "binary64", "default"):
                raise UserError(f"{src}: unknown format {pair[0].name!r} in :mishaudit-constants: use binary16, bfloat16, binary32, binary64 or default")
            table.append((pair[0].name, pair[1]))
        out.append((entry[0].name, tuple(table)))
    return tuple(out)


def load_text(text: str, src: str, stem: str) -> Formula:
    """Parse and validate one formula file's text."""
    core = fpcore.parse(text, src)
    if len(core.args) != 1:
        raise UserError(f"{src}: a Mish formulation takes exactly one argument, e.g. (FPCore my-mish (x) ...)")
    ident = core.ident or stem
    constants = _read_constants(core, src)
    known = set(core.args) | {n for n, _ in constants}
    unknown = fpcore.free_names(core.body) - known
    if unknown:
        name = sorted(unknown)[0]
        line, col = _first_use(core.body, name)
        raise UserError(f"{src}:{line}:{col}: unknown variable {name!r}: bind it with let or declare it in :mishaudit-constants")
    if _type(core.body, {n: "real" for n in known}, src) != "real":
        line, col = core.body.pos
        raise UserError(f"{src}:{line}:{col}: the body must be a number, not a truth value: wrap it in (if ... a b)")
    return Formula(ident, core, src, text, constants, _read_spec(core, src))


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
        raise UserError(f"{src}:{line}:{col}: the :spec uses {name!r}: a spec is a function of the argument "
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


def _read_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read formula file {path}: {exc.strerror if isinstance(exc, OSError) else exc}; check the path and its permissions") from None


def builtin_files() -> list[tuple[str, str, str]]:
    """(text, path, stem) of every shipped formula file."""
    out = []
    try:
        folder = resources.files("mishaudit.formulas")
    except ModuleNotFoundError:  # running from a source checkout: formulas/ beside the package
        folder = Path(__file__).resolve().parents[2] / "formulas"
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".fpcore"):
            out.append((entry.read_text(encoding="utf-8"), f"formulas/{entry.name}", entry.name[: -len(".fpcore")]))
    return out


def load_registry(extra_dirs: tuple = (), builtin: bool = True) -> dict[str, Formula]:
    """All formulas by id: the shipped ones, then each of `extra_dirs`; an id clash is an error."""
    files = builtin_files() if builtin else []
    for d in extra_dirs:
        p = Path(d)
        if p.is_file() and p.suffix == ".fpcore":
            paths = [p]
        elif p.is_dir():
            paths = sorted(p.glob("*.fpcore"))
            if not paths:
                raise UserError(f"--formulas {d}: no .fpcore files in that folder: point it at a folder of FPCore files")
        else:
            raise UserError(f"--formulas {d}: no such folder or .fpcore file: check the path")
        files += [(_read_file(q), str(q), q.stem) for q in paths]
    reg: dict[str, Formula] = {}
    for text, src, stem in files:
        f = load_text(text, src, stem)
        if f.id in reg:
            raise UserError(f"formula id {f.id!r} is defined twice ({reg[f.id].path} and {src}): rename one (the FPCore identifier)")
        reg[f.id] = f
    return reg
