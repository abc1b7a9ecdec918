"""numpy and PyTorch source for a lowered formulation (lower.py): one statement per operation on arrays
(tensors) of the format, each rounded once, as mishaudit's evaluator computes it.

numpy (`--lang numpy`): `def mishaudit_<id>(x)` on arrays of np.float16, ml_dtypes.bfloat16,
np.float32 or np.float64, equal bit for bit to the evaluator under `--libm numpy` (eval/libm.py
numpy_kernel): an elementary function is numpy's float32 ufunc (float64 for binary64) and, for the
16-bit formats, on the value converted to float32 and rounded once; + - * / and sqrt of a 16-bit
format are computed in float32 and rounded once (the correctly rounded result: 24 >= 2p + 2).

PyTorch (`--lang torch`): `def mishaudit_<id>(x: torch.Tensor) -> torch.Tensor` on tensors of
torch.float16, bfloat16, float32 or float64, equal to the evaluator under `--libm torch` (eval/libm.py
torch_kernel: torch's own function on a tensor of the working format): each operation is one torch
operation on tensors of its format (torch's CPU + - * / and sqrt are correctly rounded in every format).

Both: a constant is a full array of the input's shape (numpy and torch compute a scalar operand by
another code path than an array's, whose bits can differ); `if` computes both branches and selects
with where (a select, so a NaN or inf of the branch not taken never reaches the result); fma is exact:
for formats up to binary32 formed in float64 as the evaluator forms it (the product exact, TwoSum,
rounded to odd), then rounded to odd into float32 and once to the format; binary64 element by element
with exact rationals (fractions.Fraction, correctly rounded by Python's int division). A conversion
from float64 into a 16-bit format goes the same way (float64 -> float32 to odd -> the format), so no
library's float64 -> bfloat16 conversion can round twice. fmax/fmin return the first operand when the
operands compare equal (c.py's docstring says why). The bits of the elementary functions are the
library's: numpy's depend on its build and SIMD dispatch, torch's on its build and CPU capability (and
its scalar path for the last elements of a tensor), exactly as the evaluator's do on the same machine
for arrays of the same length.
"""

from __future__ import annotations

from mishaudit.emit import lower as L
from mishaudit.emit.text import comment_text, identifier, py_float
from mishaudit.eval.libm import IMPLEMENTATIONS
from mishaudit.formats import BF16, FP16, FP32, FP64, Format

# Every name the emitted Python may contain besides t<N>, x and mishaudit_<id> (tests check it).
NAMES = frozenset({
    "import", "from", "as", "def", "return", "raise", "with", "if", "not", "for", "in", "and", "or",
    "TypeError", "float", "fromhex", "nan", "inf", "numpy", "np", "ml_dtypes", "torch", "math", "fractions",
    "Fraction", "isfinite", "isinf", "isnan", "ndarray", "Tensor", "asarray", "dtype", "errstate", "all",
    "ignore", "no_grad", "full", "full_like", "shape", "astype", "to", "view", "where", "abs", "copysign",
    "frompyfunc", "from_numpy", "numpy", "cpu", "device", "int32", "int64", "bool", "takes", "array", "tensor",
    "of", "float16", "bfloat16", "float32", "float64", "sqrt", "power", "pow", "True", "False",
    *(f for f in IMPLEMENTATIONS["numpy"]), *(f.__name__ for f in IMPLEMENTATIONS["numpy"].values()),
    *IMPLEMENTATIONS["torch"].values(),
    "_mishaudit_ro32", "_mishaudit_fma_ro", "_mishaudit_fma64", "_mishaudit_fma64_one",
    "a", "b", "c", "d", "e", "f", "p", "s", "bb", "t", "back", "bits", "bump", "step", "exact", "q",
    "OverflowError", "try", "except", "else", "is", "None",
})

_NP_DTYPE = {FP16: "np.float16", BF16: "ml_dtypes.bfloat16", FP32: "np.float32", FP64: "np.float64"}
_TORCH_DTYPE = {FP16: "torch.float16", BF16: "torch.bfloat16", FP32: "torch.float32", FP64: "torch.float64"}
_CMP = ("<", ">", "<=", ">=", "==", "!=")

# The round-to-odd helpers, one text for both array libraries ({M}: np or torch; {to}: astype or to)
_RO_TEMPLATE = {
    "ro32": '''
def _mishaudit_ro32(d):
    """float64 values rounded to float32 to odd: an inexact one takes the odd of its two neighbours."""
    f = d.{to}({M}.float32)
    back = f.{to}({M}.float64)
    bits = f.view({M}.int32)
    bump = (back != d) & ~{M}.isnan(d) & ((bits & 1) == 0)
    step = (1 - 2 * ({M}.abs(back) > {M}.abs(d)).{to}({M}.int32)) * bump.{to}({M}.int32)
    return (bits + step).{to}({M}.int32).view({M}.float32)
''',
    "fma_ro": '''
def _mishaudit_fma_ro(a, b, c):
    """a*b + c rounded to odd in float64, for operands of at most 24 bits (the product is exact)."""
    p = a * b
    s = p + c
    bb = s - p
    t = (p - (s - bb)) + (c - bb)
    bits = s.view({M}.int64)
    bump = {M}.isfinite(s) & (t != 0) & ((bits & 1) == 0)
    step = (2 * ((t > 0) == (s > 0)).{to}({M}.int64) - 1) * bump.{to}({M}.int64)
    return (bits + step).view({M}.float64)
''',
}


def _ro(lib: str) -> dict:
    return {k: v.replace("{M}", lib).replace("{to}", "astype" if lib == "np" else "to") for k, v in _RO_TEMPLATE.items()}


_NP_HELPERS = {
    **_ro("np"),
    "fma64": '''
def _mishaudit_fma64_one(a, b, c):
    """a*b + c rounded once to float64 (exact rationals; IEEE's answer for the special cases)."""
    a, b, c = float(a), float(b), float(c)
    if math.isfinite(a) and math.isfinite(b) and math.isfinite(c):
        exact = Fraction(a) * Fraction(b) + Fraction(c)
        if exact == 0:
            return a * b + c
        try:
            return float(exact)
        except OverflowError:
            return float.fromhex('inf') if exact > 0 else float.fromhex('-inf')
    if math.isfinite(a) and math.isfinite(b):
        return c
    return a * b + c


def _mishaudit_fma64(a, b, c):
    with np.errstate(all='ignore'):  # inf - inf in Python floats raises the invalid flag numpy reports
        return np.frompyfunc(_mishaudit_fma64_one, 3, 1)(a, b, c).astype(np.float64)
''',
}

_TORCH_HELPERS = {
    **_ro("torch"),
    "fma64": _NP_HELPERS["fma64"].split("\n\n\ndef _mishaudit_fma64(")[0] + '''


def _mishaudit_fma64(a, b, c):
    f = np.frompyfunc(_mishaudit_fma64_one, 3, 1)
    with np.errstate(all='ignore'):  # inf - inf in Python floats raises the invalid flag numpy reports
        e = f(a.cpu().numpy(), b.cpu().numpy(), c.cpu().numpy()).astype(np.float64)
    return torch.from_numpy(e).to(a.device)
''',
}


class _Py:
    def __init__(self, torch: bool):
        self.torch = torch
        self.helpers: set = set()
        self.m = "torch" if torch else "np"

    def dtype(self, fmt: Format) -> str:
        return (_TORCH_DTYPE if self.torch else _NP_DTYPE)[fmt]

    def cast(self, expr: str, fmt: Format) -> str:
        return f"({expr}).to({self.dtype(fmt)})" if self.torch else f"({expr}).astype({self.dtype(fmt)})"

    def wide(self, v: L.Val) -> str:
        """numpy: a 16-bit value as float32 (exact), where the evaluator's numpy model computes."""
        if not self.torch and v.fmt in (FP16, BF16):
            return f"{v.name}.astype(np.float32)"
        return v.name

    def narrow(self, expr: str, fmt: Format) -> str:
        return self.cast(expr, fmt) if not self.torch and fmt in (FP16, BF16) else expr

    def literal(self, v: float, fmt: Format) -> str:
        if self.torch:
            return f"torch.full_like(x, {py_float(v)}, dtype={self.dtype(fmt)})"
        return f"np.full(x.shape, {py_float(v)}, dtype={self.dtype(fmt)})"

    def convert(self, src: L.Val, dst: Format) -> str:
        """src's value rounded into dst (exact where dst is wider)."""
        if dst in (FP32, FP64) or src.fmt is FP32:
            return self.cast(src.name, dst)  # exact, or one correct rounding (float64 -> float32 -> 16-bit)
        if src.fmt is FP64:
            self.helpers.add("ro32")
            return self.cast(f"_mishaudit_ro32({src.name})", dst)
        return self.cast(self.cast(src.name, FP32), dst)  # 16-bit -> float32 (exact) -> the other 16-bit

    def op(self, op: str, args: list, fmt: Format) -> str:
        m = self.m
        w = [self.wide(a) for a in args]
        if op in ("+", "-", "*", "/"):
            return self.narrow(f"{w[0]} {op} {w[1]}", fmt)
        if op == "sqrt":
            return self.narrow(f"{m}.sqrt({w[0]})", fmt)
        if op == "neg":
            return f"-{args[0].name}"
        if op == "fabs":
            return f"{m}.abs({args[0].name})"
        if op == "copysign":
            return f"{m}.copysign({args[0].name}, {args[1].name})"
        if op in ("fmax", "fmin"):
            a, b = args[0].name, args[1].name
            rel = ">=" if op == "fmax" else "<="
            return f"{m}.where(({a} {rel} {b}) | {m}.isnan({b}), {a}, {b})"
        if op == "fma":
            if fmt is FP64:
                self.helpers.add("fma64")
                return f"_mishaudit_fma64({', '.join(a.name for a in args)})"
            self.helpers.add("fma_ro")
            ro = f"_mishaudit_fma_ro({', '.join(self.cast(a.name, FP64) for a in args)})"
            if fmt is FP32:
                return self.cast(ro, FP32)
            self.helpers.add("ro32")
            return self.cast(f"_mishaudit_ro32({ro})", fmt)
        if op in L.LIBM:
            if self.torch:
                return f"torch.{IMPLEMENTATIONS['torch'][op]}({', '.join(a.name for a in args)})"
            return self.narrow(f"np.{IMPLEMENTATIONS['numpy'][op].__name__}({', '.join(w)})", fmt)
        raise AssertionError(op)

    def truth(self, v: bool) -> str:
        return f"torch.full_like(x, {v}, dtype=torch.bool)" if self.torch else f"np.full(x.shape, {v})"

    def compare(self, op: str, pairs: list) -> str:
        return " & ".join(f"({a.name} {op} {b.name})" for a, b in pairs)

    def logic(self, op: str, args: list) -> str:
        if op == "not":
            return f"~{args[0].name}"
        return f" {'&' if op == 'and' else '|'} ".join(a.name for a in args)

    def statements(self, body: list, pad: str) -> list:
        out = []
        for s in body:
            kind, dst = s[0], s[1]
            if kind == "if":
                _, _, cond, then, tv, other, ov = s
                out += self.statements(then, pad)
                out += self.statements(other, pad)
                expr = f"{self.m}.where({cond.name}, {tv.name}, {ov.name})"
            else:
                expr = L.expression(self, s)
            out.append(f"{pad}{dst.name} = {expr}")
        return out


def render(formula, fmt: Format, low: L.Lowered, torch: bool = False) -> str:
    """The Python source (a module: imports, helpers, the function) of the lowered formula."""
    d = _Py(torch)
    pad = " " * 8
    body = d.statements(low.body, pad)
    name = identifier(formula.id)
    dt = d.dtype(fmt)
    fns = ", ".join(dict.fromkeys(
        (f"torch.{IMPLEMENTATIONS['torch'][op]}" if torch else f"np.{IMPLEMENTATIONS['numpy'][op].__name__}")
        for op, _ in sorted(low.ops, key=lambda o: (o[0], o[1].p)) if op in L.LIBM)) or "none"
    head = [f"mishaudit emit: formula {comment_text(formula.id)}, {fmt.fpcore} ({dt}), "
            f"{'PyTorch' if torch else 'numpy'}",
            f":name {comment_text(formula.name)}"]
    if torch:
        head += ["Model: mishaudit's evaluator under --libm torch, bit for bit (on CPU tensors): every operation",
                 "one torch operation on tensors of its format, rounded once; fma exactly rounded (float64,",
                 "round to odd). Elementary functions used: " + fns + ": torch's own kernels,",
                 "whose bits hold for this torch build and CPU (and a tensor of the same length)."]
    else:
        head += ["Model: mishaudit's evaluator under --libm numpy, bit for bit: every operation rounded once to",
                 "its format; a 16-bit operation computed in float32 (numpy's float32 ufunc for an elementary",
                 "function) and rounded once; fma exactly rounded (float64, round to odd).",
                 "Elementary functions used: " + fns + ": numpy's kernels, whose bits hold for this",
                 "numpy build and SIMD dispatch."]
    imports = ["import numpy as np"] if not torch or "fma64" in d.helpers else []
    if not torch and BF16 in low.formats:
        imports.append("import ml_dtypes")
    if torch:
        imports.append("import torch")
    if "fma64" in d.helpers:
        imports = ["import math", "from fractions import Fraction", ""] + imports
    lines = ["# " + comment_text(line, 1000) for line in head] + [""] + imports
    helpers = _TORCH_HELPERS if torch else _NP_HELPERS
    for key in ("ro32", "fma_ro", "fma64"):
        if key in d.helpers:
            lines += ["", "", helpers[key].strip("\n")]
    lines += ["", ""]
    if torch:
        lines += [f"def {name}(x: torch.Tensor) -> torch.Tensor:",
                  f"    if x.dtype != {dt}:",
                  f"        raise TypeError('{name} takes a tensor of {dt}')",
                  "    with torch.no_grad():"]
    else:
        lines += [f"def {name}(x: np.ndarray) -> np.ndarray:",
                  "    x = np.asarray(x)",
                  f"    if x.dtype != {dt}:",
                  f"        raise TypeError('{name} takes an array of {dt}')",
                  "    with np.errstate(all='ignore'):"]
    lines += body
    lines.append(f"{pad}return {low.result.name}")
    return "\n".join(lines) + "\n"
