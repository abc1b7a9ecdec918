"""The thresholds file (TOML) of the CI gate: read, validate, write.

    version = 1

    [[limit]]
    formula = "softplus-tanh"      # registry id (or: kernel = "torch:mish", a framework kernel)
    spec = "mish'"                 # written by baseline when not mish: the function measured against;
                                   # check refuses the limit when the formula's :spec has changed
    dtype = "fp16"                 # storage format
    compute_dtype = "fp32"         # optional (default: dtype)
    ftz = "after"                  # optional: "after" or "before" (eval/ftz.py; true, from older
                                   # files, means "after"), false or absent: IEEE gradual underflow
    libm = "cr"                    # optional: "cr" (default) or "numpy"
    numpy_dispatch = "..."         # written by baseline for libm = "numpy": the CPU it was measured on
    c_library = "..."              # written by baseline for libm = "glibc": the C library and CPU features
    framework = "..."              # written by baseline for a kernel: the framework and CPU capability
    domain = [-20.0, 20.0]         # optional input interval [lo, hi]
    set = { threshold = "15" }     # optional: parameters set as with --set (exact numbers, as text)
    samples = 65536                # optional, fp32/fp64 sample size
    exhaustive = true              # optional, fp32 only: every input of the domain (no samples, seed)
    inputs = "data/x.npy"          # optional: audit these values (--inputs: a file, relative to this
                                   # file's folder, or linspace:LO:HI:N / normal:MU:SIGMA:N with seed)
    seed = 0                       # optional
    max_ulp = 8.6                  # measured value must be <= the limit
    mean_ulp = 0.29                # <=
    p99_ulp = 1.9                  # <=
    nonfinite = 0                  # <=
    ulp_overflow = 0               # <= : finite outputs whose ulp error is beyond binary64 (inf)
    cr_frac = 0.79                 # >= (at least)
    dulp_0 = 50000                 # >= (at least)
    dulp_1 = 12000                 # <= ; likewise dulp_2, dulp_3, dulp_gt3

Every error names the file and line.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field

from mishaudit.errors import UserError
from mishaudit.eval.libm import MODELS
from mishaudit.formats import get_format

AT_MOST = ("max_ulp", "mean_ulp", "p99_ulp", "nonfinite", "ulp_overflow", "dulp_1", "dulp_2", "dulp_3", "dulp_gt3")
AT_LEAST = ("cr_frac", "dulp_0")
LIMIT_KEYS = AT_MOST + AT_LEAST
SELECT_KEYS = ("formula", "kernel", "spec", "dtype", "compute_dtype", "ftz", "libm", "numpy_dispatch", "c_library", "framework", "domain",
               "samples", "seed", "set", "exhaustive", "inputs")


@dataclass(frozen=True)
class Limit:
    formula: str
    dtype: str
    compute_dtype: str
    ftz: bool | str  # False, "after" or "before" (eval/ftz.py)
    domain: tuple | None
    samples: int
    seed: int
    limits: tuple  # ((measure, value), ...)
    line: int  # line of the [[limit]] header
    libm: str = "cr"
    numpy_dispatch: str | None = None  # for libm "numpy": the dispatch it was measured with
    c_library: str | None = None  # for libm "glibc": the C library (and CPU features) it was measured with
    framework: str | None = None  # for a kernel: the framework (version, CPU capability) it was measured with
    spec: str = "mish"  # the function the limits were measured against (lang/spec.py's name)
    settings: tuple = ()  # ("name=value", ...): parameters set (--set)
    exhaustive: bool = False  # fp32: every input of the domain (--exhaustive)
    inputs: str | None = None  # --inputs text (a relative file: relative to the thresholds file's folder)

    @property
    def mode(self) -> tuple:
        """What one audit run is keyed by (formulas sharing it run together)."""
        return (self.dtype, self.compute_dtype, self.ftz, self.domain, self.samples, self.seed, self.libm,
                self.settings, self.exhaustive, self.inputs)

    def label(self) -> str:
        s = f"{self.formula} {self.dtype}"
        if self.compute_dtype != self.dtype:
            s += f" (compute {self.compute_dtype})"
        if self.ftz:
            s += f" ftz={self.ftz}"
        if self.libm != "cr":
            s += f" libm {self.libm}"
        if self.domain:
            s += f" x in [{self.domain[0]!r}, {self.domain[1]!r}]"
        if self.settings:
            s += " [" + ", ".join(self.settings) + "]"
        if self.exhaustive:
            s += " exhaustive"
        if self.inputs:
            s += f" inputs {self.inputs}"
        return s


@dataclass
class Thresholds:
    path: str
    entries: list = field(default_factory=list)


def _headers(text: str) -> list[int]:
    return [i + 1 for i, ln in enumerate(text.splitlines()) if ln.strip().startswith("[[limit]]")]


def _key_line(text: str, start: int, key: str) -> int:
    """Line (1-based) of `key = ...` in the table whose header is line `start` (0: top level)."""
    lines = text.splitlines()
    for i in range(start, len(lines)):
        st = lines[i].strip()
        if st.startswith("["):
            break
        if st.split("=")[0].strip() == key:
            return i + 1
    return max(start, 1)


def parse_thresholds(text: str, path: str, known_formulas=None) -> Thresholds:
    """Validate and read a thresholds file; UserError naming file and line on any problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML ({exc}); fix the syntax") from None
    top_unknown = set(data) - {"version", "limit"}
    if top_unknown:
        key = sorted(top_unknown)[0]
        raise UserError(f"{path}:{_key_line(text, 0, key)}: unknown top-level key {key!r}: only version and [[limit]] tables are allowed")
    if data.get("version", 1) != 1:
        raise UserError(f"{path}:{_key_line(text, 0, 'version')}: unsupported version {data.get('version')!r}: use version = 1")
    items = data.get("limit", [])
    if not isinstance(items, list) or not items:
        raise UserError(f"{path}: no [[limit]] tables: add at least one (see `mishaudit baseline`)")
    heads = _headers(text)
    out = Thresholds(path)
    for n, item in enumerate(items):
        line = heads[n] if n < len(heads) else 1

        def bad(key, msg):
            return UserError(f"{path}:{_key_line(text, line, key)}: {msg}")

        for key in item:
            if key not in SELECT_KEYS and key not in LIMIT_KEYS:
                raise bad(key, f"unknown key {key!r}: allowed are {', '.join(SELECT_KEYS + LIMIT_KEYS)}")
        if ("formula" in item) == ("kernel" in item):
            raise bad("[[limit]]", "[[limit]] needs one of formula = \"...\" (an FPCore formulation) or kernel = "
                                   "\"...\" (a framework kernel such as torch:mish)")
        which = "formula" if "formula" in item else "kernel"
        for key in (which, "dtype"):
            if not isinstance(item.get(key), str):
                raise bad(key if key in item else "[[limit]]", f"[[limit]] needs {key} = \"...\"")
        if which == "kernel" and ":" not in item["kernel"]:
            raise bad("kernel", f"kernel {item['kernel']!r}: kernels are named framework:function, e.g. torch:mish")
        if which == "formula" and known_formulas is not None and item["formula"] not in known_formulas:
            raise bad("formula", f"unknown formula {item['formula']!r}: run `mishaudit list` (or pass --formulas DIR)")
        try:
            dtype = get_format(item["dtype"]).name
        except UserError as exc:
            raise bad("dtype", str(exc)) from None
        try:
            compute = get_format(item.get("compute_dtype", dtype)).name
        except UserError as exc:
            raise bad("compute_dtype", str(exc)) from None
        ftz = item.get("ftz", False)
        if ftz is True:
            ftz = "after"  # files written before the modes had names: x86's flush, after rounding
        if not (ftz is False or ftz in ("after", "before")):
            raise bad("ftz", f'ftz {ftz!r}: give ftz = "after" (tininess after rounding, x86) or "before" (before '
                             "rounding), or false")
        model = item.get("libm", "cr")
        if model not in MODELS:
            raise bad("libm", f"libm must be one of {', '.join(MODELS)}, not {model!r}")
        for key in ("numpy_dispatch", "c_library", "framework"):
            if item.get(key) is not None and not isinstance(item[key], str):
                raise bad(key, f"{key} must be a string (as `mishaudit baseline` writes it)")
        dispatch = item.get("numpy_dispatch")
        spec = item.get("spec", "mish")
        if not isinstance(spec, str):
            raise bad("spec", "spec must be a string: mish, mish' or a :spec expression (as `mishaudit baseline` writes it)")
        dom = item.get("domain")
        if dom is not None:
            if (not isinstance(dom, list) or len(dom) != 2 or not all(isinstance(v, (int, float)) for v in dom)
                    or any(math.isnan(v) for v in dom) or dom[0] > dom[1]):
                raise bad("domain", "domain must be [lo, hi] with lo <= hi, numbers, not NaN")
            dom = (float(dom[0]), float(dom[1]))
        samples, seed = item.get("samples", 1 << 16), item.get("seed", 0)
        for key, v in (("samples", samples), ("seed", seed)):
            if not isinstance(v, int) or isinstance(v, bool) or v < (1 if key == "samples" else 0):
                raise bad(key, f"{key} must be a {'positive' if key == 'samples' else 'non-negative'} integer")
        settings = item.get("set", {})
        if not isinstance(settings, dict) or not all(isinstance(v, str) for v in settings.values()):
            raise bad("set", 'set must be a table of parameter values as strings, e.g. set = { threshold = "15" }')
        if settings and which == "kernel":
            raise bad("set", "a kernel has no parameters: remove set")
        settings = tuple(f"{k}={v}" for k, v in sorted(settings.items()))
        from mishaudit.lang.registry import parse_settings

        try:
            parse_settings(settings)
        except UserError as exc:
            raise bad("set", str(exc)) from None
        exhaustive = item.get("exhaustive", False)
        if not isinstance(exhaustive, bool):
            raise bad("exhaustive", "exhaustive must be true or false")
        if exhaustive and dtype != "fp32":
            raise bad("exhaustive", f"exhaustive = true streams every fp32 input; this limit's dtype is {dtype}: "
                                    "remove exhaustive (fp16 and bf16 are always exhaustive)")
        inputs = item.get("inputs")
        if inputs is not None and (not isinstance(inputs, str) or not inputs):
            raise bad("inputs", 'inputs must be a string: a file, "linspace:LO:HI:N" or "normal:MU:SIGMA:N"')
        if exhaustive and inputs is not None:
            raise bad("inputs", "a limit audits either exhaustive = true or the inputs given: remove one")
        for key in ("samples", "seed"):
            if key in item and (exhaustive or (inputs is not None and not (key == "seed" and
                                                                       inputs.startswith("normal:")))):
                raise bad(key, f"{key} sizes or seeds a sample; this limit audits "
                               f"{'every input (exhaustive)' if exhaustive else 'the inputs given'}: remove {key}")
        lims = []
        for key in LIMIT_KEYS:
            if key in item:
                v = item[key]
                if not isinstance(v, (int, float)) or isinstance(v, bool) or math.isnan(v) or v < 0:
                    raise bad(key, f"{key} must be a non-negative number")
                lims.append((key, float(v)))
        if not lims:
            raise bad("[[limit]]", f"this [[limit]] sets no limit: add one of {', '.join(LIMIT_KEYS)}")
        out.entries.append(Limit(item[which], dtype, compute, ftz, dom, samples, seed, tuple(lims), line, model,
                                 dispatch, item.get("c_library"), item.get("framework"), spec, settings, exhaustive,
                                 inputs))
    return out


def read_thresholds(path, known_formulas=None) -> Thresholds:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise UserError(f"cannot read thresholds file {path}: {exc.strerror}; check the path (see `mishaudit baseline`)") from None
    except UnicodeDecodeError:
        raise UserError(f"thresholds file {path} is not UTF-8 text: give a TOML file") from None
    return parse_thresholds(text, str(path), known_formulas)


def _toml_string(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _round_up(v: float, digits: int = 3) -> float:
    """v rounded up to `digits` significant digits (a limit never below the measurement)."""
    if v <= 0:
        return 0.0
    e = math.floor(math.log10(v)) - digits + 1
    q = 10.0**e
    k = math.ceil(v / q - 1e-9)  # (the 1e-9: 1.4 stays 1.4 despite v / q = 140.00000000000003)
    r = float(f"{k * q:.{digits}g}")
    if r < v:  # v is a hair above k * q: the next value of `digits` digits
        r = float(f"{(k + 1) * q:.{digits}g}")
    return r if r >= v else math.nextafter(v, math.inf)


def _round_down(v: float, digits: int = 4) -> float:
    if v <= 0:
        return 0.0
    e = math.floor(math.log10(v)) - digits + 1
    q = 10.0**e
    k = math.floor(v / q + 1e-9)
    r = float(f"{k * q:.{digits}g}")
    if r > v:
        r = float(f"{(k - 1) * q:.{digits}g}")
    return r if r <= v else math.nextafter(v, -math.inf)


def baseline_text(rows: list[dict], margin: float, command: str, samples: int, seed: int, domain,
                  dispatch: str | None = None, exhaustive: bool = False, inputs: str | None = None,
                  c_library: str | None = None) -> str:
    """The thresholds file for `rows` (kernel rows of formats their framework lacks get no limit)."""
    """A thresholds file whose limits are the measured values loosened by `margin` (relative)."""
    lines = ["# mishaudit thresholds: `mishaudit check` fails when a measured value breaks a limit.",
             f"# written by: {command}",
             f"# margin: {margin:g}: limits are measured * (1 + margin); dulp_0 >= measured * (1 - margin);",
             "# cr_frac >= measured - margin * (1 - measured) (the non-CR share may grow by the margin)",
             "version = 1", ""]
    for r in rows:
        if r.get("strategy") == "unsupported":
            continue
        lines.append("[[limit]]")
        kernel = r.get("libm") == "kernel"
        lines.append(f'{"kernel" if kernel else "formula"} = "{r["formula"]}"')
        lines.append(f'dtype = "{r["dtype"]}"')
        if r["compute_dtype"] != r["dtype"]:
            lines.append(f'compute_dtype = "{r["compute_dtype"]}"')
        if r["ftz"]:
            lines.append(f'ftz = "{r["ftz"] if r["ftz"] in ("after", "before") else "after"}"')
        if r.get("spec", "mish") != "mish":
            lines.append(f"spec = {_toml_string(r['spec'])}")
        if kernel:
            lines.append(f"framework = {_toml_string(r['implementation'])}")
        else:
            lines.append(f'libm = "{r.get("libm", "cr")}"')
        if r.get("libm") == "numpy" and dispatch:
            lines.append(f"numpy_dispatch = {_toml_string(dispatch)}")
        if r.get("libm") == "glibc" and c_library:
            lines.append(f"c_library = {_toml_string(c_library)}")
        if r.get("params"):
            pairs = [p.split("=", 1) for p in r["params"].split(", ")]
            lines.append("set = { " + ", ".join(f"{k} = {_toml_string(v)}" for k, v in pairs) + " }")
        if domain is not None and (domain.lo != -math.inf or domain.hi != math.inf):
            lines.append(f"domain = [{domain.lo!r}, {domain.hi!r}]")
        if r["strategy"] == "sampled":
            lines.append(f"samples = {samples}")
            lines.append(f"seed = {seed}")
        if exhaustive and r["dtype"] == "fp32":
            lines.append("exhaustive = true")
        if inputs is not None:
            lines.append(f"inputs = {_toml_string(inputs)}")
            if inputs.startswith("normal:"):
                lines.append(f"seed = {seed}")
        for key in ("max_ulp", "mean_ulp", "p99_ulp"):  # an infinite figure is pinned as inf (TOML's inf)
            if r[key] is not None:
                lines.append(f"{key} = {_round_up(r[key] * (1 + margin))!r}" if math.isfinite(r[key])
                             else f"{key} = inf")
        lines.append(f"nonfinite = {math.ceil(r['nonfinite'] * (1 + margin))}")
        if r.get("ulp_overflow") is not None:
            lines.append(f"ulp_overflow = {math.ceil(r['ulp_overflow'] * (1 + margin))}")
        lines.append(f"cr_frac = {_round_down(r['cr_frac'] - margin * (1 - r['cr_frac']))!r}")
        lines.append(f"dulp_0 = {math.floor(r['dulp_0'] * (1 - margin))}")
        for key in ("dulp_1", "dulp_2", "dulp_3", "dulp_gt3"):
            lines.append(f"{key} = {math.ceil(r[key] * (1 + margin))}")
        lines.append("")
    return "\n".join(lines)
