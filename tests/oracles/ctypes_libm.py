"""An evaluator of the `glibc` libm model independent of mishaudit (ctypes, element by element, no numba).

An elementary operation in format F is the C library's function called through ctypes:
  binary32: the float function (expf, ...) on the value; binary64: the double one (exp, ...);
  binary16, bfloat16: the float function on the value (exact in binary32), its result rounded once to F
  (round to nearest even): numpy's float32 -> float16 and ml_dtypes' float32 -> bfloat16 conversions,
  each one correct rounding (the tests check both on ties, subnormals and overflow).
+ - * / in binary16 / bfloat16 are correctly rounded in F: formed in binary64, then rounded once to F
  (binary64 holds p' = 53 >= 2p + 2 bits, so RN_F(RN_64(a op b)) = RN_F(a op b)); `rn16` and `rnbf16`
  round a binary64 value once (ml_dtypes' float64 -> bfloat16 rounds twice, through binary32: `rnbf16`
  repairs the ties that makes). In binary32 they are numpy.float32 scalar operations.
Values are Python floats holding values of F; results come back as float64 arrays.
"""

from __future__ import annotations

import ctypes

import ml_dtypes
import numpy as np

_LIBM = ctypes.CDLL("libm.so.6")
OPS = ("exp", "exp2", "expm1", "log", "log1p", "tanh", "pow")


def _bind(name: str, ctype, nargs: int):
    f = getattr(_LIBM, name)
    f.argtypes = [ctype] * nargs
    f.restype = ctype
    return f


C32 = {op: _bind(op + "f", ctypes.c_float, 2 if op == "pow" else 1) for op in OPS}
C64 = {op: _bind(op, ctypes.c_double, 2 if op == "pow" else 1) for op in OPS}


def rn16(v) -> np.ndarray:
    """RN_binary16 of binary64 values (numpy rounds float64 -> float16 once), as float64."""
    return np.asarray(v, dtype=np.float64).astype(np.float16).astype(np.float64)


def rnbf16(v) -> np.ndarray:
    """RN_bfloat16 of binary64 values, once. Through binary32 (one rounding, then ml_dtypes' exact
    float32 -> bfloat16 RN), except where that first rounding lands on a bfloat16 midpoint (low 16 bits
    0x8000) from a value that was not one: then one binary32 step towards the value breaks the tie."""
    v = np.asarray(v, dtype=np.float64)
    with np.errstate(over="ignore"):
        f = v.astype(np.float32)
    tie = ((f.view(np.uint32) & 0xFFFF) == 0x8000) & (f.astype(np.float64) != v) & np.isfinite(v)
    towards = np.where(v[tie] > f[tie], np.float32(np.inf), np.float32(-np.inf))
    f[tie] = np.nextafter(f[tie], towards)  # v is off the midpoint: f moves off it to v's side
    return f.astype(ml_dtypes.bfloat16).astype(np.float64)


def from32(v, fmt: str) -> np.ndarray:
    """binary32 values (a result of a float function) rounded once to fmt, as float64."""
    f = np.asarray(v, dtype=np.float32)
    if fmt == "fp16":
        with np.errstate(over="ignore"):  # overflow to inf is the rounding's answer
            return f.astype(np.float16).astype(np.float64)
    if fmt == "bf16":
        return f.astype(ml_dtypes.bfloat16).astype(np.float64)
    return f.astype(np.float64)


def call(op: str, args, fmt: str) -> np.ndarray:
    """op(*args) elementwise in fmt (fp16, bf16, fp32, fp64) under the glibc model, by ctypes."""
    cols = [np.asarray(a, dtype=np.float64).ravel().tolist() for a in np.broadcast_arrays(*args)]
    fn = C64[op] if fmt == "fp64" else C32[op]
    out = [fn(*vals) for vals in zip(*cols)]
    return np.array(out, dtype=np.float64) if fmt == "fp64" else from32(out, fmt)


# ---------------------------------------------------------------- hand transcriptions of three formulations
# Read from formulas/softplus-tanh.fpcore, log-exp-plus-one.fpcore and exp-rational.fpcore; every operation
# rounds to the working format, the constants 1 and 2 are exact.

def _arith(fmt: str):
    """(lib, add, mul, div) for scalars of fmt: lib(op, a) the libm model, the others correctly rounded."""
    if fmt == "fp32":
        f32 = np.float32
        lib = lambda op, a: f32(C32[op](float(a)))  # noqa: E731
        return lib, lambda a, b: f32(a) + f32(b), lambda a, b: f32(a) * f32(b), lambda a, b: f32(a) / f32(b)
    rn = {"fp16": rn16, "bf16": rnbf16}[fmt]
    one = lambda v: float(rn([v])[0])  # noqa: E731
    lib = lambda op, a: float(from32([C32[op](float(a))], fmt)[0])  # noqa: E731

    def div(a, b):
        with np.errstate(all="ignore"):
            return one(float(np.float64(a) / np.float64(b)))  # IEEE binary64 division (inf, nan), then RN_F

    return lib, lambda a, b: one(float(a) + float(b)), lambda a, b: one(float(a) * float(b)), div


def softplus_tanh(x: float, fmt: str) -> float:
    """(* x (tanh (log1p (exp x))))"""
    lib, add, mul, div = _arith(fmt)
    return float(mul(x, lib("tanh", lib("log1p", lib("exp", x)))))


def log_exp_plus_one(x: float, fmt: str) -> float:
    """(* x (tanh (log (+ (exp x) 1))))"""
    lib, add, mul, div = _arith(fmt)
    return float(mul(x, lib("tanh", lib("log", add(lib("exp", x), 1.0)))))


def exp_rational(x: float, fmt: str) -> float:
    """(let ([e (exp x)]) (/ x (+ 1 (/ 2 (* e (+ e 2))))))"""
    lib, add, mul, div = _arith(fmt)
    e = lib("exp", x)
    return float(div(x, add(1.0, div(2.0, mul(e, add(e, 2.0))))))


TRANSCRIPTIONS = {"softplus-tanh": softplus_tanh, "log-exp-plus-one": log_exp_plus_one, "exp-rational": exp_rational}


def transcribe(name: str, xs, fmt: str) -> np.ndarray:
    f = TRANSCRIPTIONS[name]
    with np.errstate(all="ignore"):
        return np.array([f(float(x), fmt) for x in np.asarray(xs, dtype=np.float64)], dtype=np.float64)

