"""Runtime primitives (lang/operators.py kind "primitive": MIL's softplus, ONNX's Mish kept whole):
one correctly rounded operation, RN_w(f(a)), in the working format w under every libm model.

A runtime that has such an operation computes it with its own kernel (Core ML's softplus on the
Neural Engine cannot be run off Apple hardware); mishaudit takes the best any kernel can do, one
rounding of the exact value, so an imported graph's error is that of its decomposition and of the
other operations. f is the primitive's `meaning`, an FPCore expression of the operand.

How RN_w(f(a)) is found, for w with p <= 24 (binary16, bfloat16, binary32):
  y = f(a) in binary64 from the host libm functions that eval/libm.py bounds by B = 2^-44
  (verify_host_libm): softplus as log1p(exp(a)) for a <= 0 and a + log1p(exp(-a)) for a > 0; mish
  as a * tanh(softplus). Error, for results above 2^-1000: exp's relative error d passes to
  log1p(e) damped by e / ((1 + e) log1p(e)) <= 1, so softplus errs by at most 2B + 2^-53; tanh's
  relative condition number 2s / sinh(2s) is at most 1, so mish errs by at most 4B + 2^-52. With
  R = 8B + 2^-51 the exact value lies in [y - R|y|, y + R|y|]; RN_w is monotone, so where both ends
  round to the same w value that value is RN_w(f(a)). For a <= -690, |f(a)| <= 691 e^a < 2^-985,
  far below half the smallest subnormal of any such w: a zero of f's sign (+0 softplus, -0 mish).
  The undecided rest (and every binary64 result) goes to interval MPFR: f's meaning with
  directed rounding at 80 bits, doubled until both ends round to the same w value. This ends:
  f(a) is never a rounding boundary (a midpoint or a value of w) for a != 0, since by
  Lindemann-Weierstrass e^a is transcendental for algebraic a != 0 while softplus(a) = q and
  mish(a) = q with q rational would make it algebraic; f(0) is ln 2 or 0 (exact).
Binary16 and bfloat16 use a table of all 2^16 inputs, made once per process."""

from __future__ import annotations

import functools
import math

import numpy as np

from mishaudit.formats import Format, get_format, round_to
from mishaudit.lang import fpcore as fc
from mishaudit.lang.operators import OPERATORS

B = 2.0**-44  # eval/libm.py's bound on the host binary64 libm
R = 8 * B + 2.0**-51  # the binary64 value's relative error bound (module docstring)
_DEEP = -690.0  # at or below: |f(a)| < 2^-985


def correctly_rounded(op: str, args: list, fmt: Format) -> np.ndarray:
    """RN_fmt(op(a)) for an array a of fmt values (float64), op a primitive of the operator table."""
    a = np.asarray(args[0], dtype=np.float64)
    if fmt.uint.itemsize == 2:
        table = _table(op, fmt.name)
        return table[np.ascontiguousarray(a.astype(fmt.dtype)).view(np.uint16)]
    return _rounded(op, a.ravel(), fmt).reshape(a.shape)


@functools.lru_cache(maxsize=None)
def _table(op: str, fmt_name: str) -> np.ndarray:
    fmt = get_format(fmt_name)
    with np.errstate(invalid="ignore"):  # the NaN patterns too
        values = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(fmt.dtype).astype(np.float64)
    return _rounded(op, values, fmt)


def _rounded(op: str, a: np.ndarray, fmt: Format) -> np.ndarray:
    out = np.full(a.shape, np.nan)
    special = ~np.isfinite(a)
    for v in (np.inf, -np.inf):
        out[a == v] = OPERATORS[op].special(v)
    todo = ~special
    if fmt.p <= 24:
        y = host_value(op, a)
        with np.errstate(all="ignore"):
            lo = round_to(y - R * np.abs(y), fmt)
            hi = round_to(y + R * np.abs(y), fmt)
        sure = todo & (lo == hi) & (np.signbit(lo) == np.signbit(hi))
        deep = todo & (a <= _DEEP)
        out[sure] = lo[sure]
        out[deep] = -0.0 if op == "mish" else 0.0
        todo &= ~(sure | deep)
    for i in np.flatnonzero(todo):
        out[i] = ziv(op, float(a[i]), fmt)
    return out


def host_value(op: str, a: np.ndarray) -> np.ndarray:
    """f(a) in binary64 from the host libm (module docstring); inputs <= -690 give garbage that
    the caller does not use."""
    from mishaudit.eval import libm

    with np.errstate(all="ignore"):
        pos = a > 0
        e = libm.host("exp", np.where(pos, -a, a))
        sp = libm.host("log1p", e) + np.where(pos, a, 0.0)
        if op == "softplus":
            return sp
        return a * libm.host("tanh", sp)


@functools.lru_cache(maxsize=None)
def _contexts(prec: int):
    import gmpy2

    kw = dict(precision=prec, emax=gmpy2.get_emax_max(), emin=gmpy2.get_emin_min())
    return gmpy2.context(round=gmpy2.RoundDown, **kw), gmpy2.context(round=gmpy2.RoundUp, **kw)


def enclose(op: str, a: float, prec: int) -> tuple:
    """(lo, hi) MPFR bounds of op's meaning at the binary64 value a, by directed rounding at prec bits."""
    import gmpy2

    down, up = _contexts(prec)
    arg, body = fc.meaning(op)

    def ev(e):
        if isinstance(e, fc.Var):
            v = gmpy2.mpfr(a, 53)
            return v, v
        if isinstance(e, fc.Num):
            return down.div(e.value.numerator, e.value.denominator), up.div(e.value.numerator, e.value.denominator)
        ops = [ev(s) for s in e.args]
        if e.op == "*":
            (p, q), (r, s) = ops
            return (min(down.mul(u, v) for u in (p, q) for v in (r, s)),
                    max(up.mul(u, v) for u in (p, q) for v in (r, s)))
        if e.op == "+":
            (p, q), (r, s) = ops
            return down.add(p, r), up.add(q, s)
        name = OPERATORS[e.op].mpfr  # an increasing elementary function
        (p, q), = ops
        return getattr(down, name)(p), getattr(up, name)(q)

    return ev(body)


def ziv(op: str, a: float, fmt: Format) -> float:
    """RN_fmt(op(a)) by interval MPFR at 80, 160, ... bits until both ends round alike."""
    from mishaudit.eval.libm import format_context

    if a == 0 and op == "mish":
        return a  # mish(+-0) = +-0 exactly
    ctx = format_context(fmt)
    prec = 80
    while True:
        lo, hi = enclose(op, a, prec)
        rl, rh = float(ctx.plus(lo)), float(ctx.plus(hi))
        if rl == rh and math.copysign(1, rl) == math.copysign(1, rh):
            return rl
        prec *= 2
        if prec > 1 << 16:  # not reached (module docstring); an internal error if it were
            raise RuntimeError(f"RN({op}({a!r})) undecided at {prec // 2} bits")

