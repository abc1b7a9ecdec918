"""The compiled pass of the correctly rounded libm model (eval/libm.py, `cr`): RN_w(f(a)) from a
binary64 value of f where it decides, a flag where MPFR must. The binary64 value is elem64's (exp,
expm1, log, log1p, tanh, with proven bounds far below libm.B) where its domain holds, else the host's
C function. numba is imported with this module, on first use."""

from __future__ import annotations

import math

import numba
import numpy as np

from mishaudit.eval import elem64
from mishaudit.eval.clib_loops import _c1d, _c2d
from mishaudit.eval.elem64 import EXP, EXPM1, LOG, LOG1P, TANH  # noqa: F401 - the operation codes

# exact shortcuts by operation (libm.SHORTCUTS names the codes: elem64's); -1: none
_LN2 = 0.6931471805599453  # ln 2 to binary64 (the shortcuts below keep a margin of 1e-6)


@numba.njit(cache=True, nogil=True)
def _raw(addr, nargs, v, w):
    """The host's binary64 C function at `addr` on v (and w)."""
    if nargs == 1:
        return _c1d(addr, v)
    return _c2d(addr, v, w)


@numba.njit(cache=True, nogil=True)
def kernel(op, addr, nargs, a, b, p, emin, emax, margin, rel, out, flag):
    """out[i] = RN(f(a[i][, b[i]])) in the format (p, emin, emax), p <= 24, f the host binary64
    function at `addr`; flag[i] = 1 where this pass cannot decide it (then out[i] is garbage and
    MPFR must). `op` selects the exact shortcuts (the codes above; -1 none); `margin` (binary64 ulps)
    and `rel` (relative, at least B') are the decision margins of libm.py's bound B.

    Shortcuts, each an exact fact for any such format (u = 2^-p, half an ulp of 1 from above):
      |a| <= 2^-(p+2), a != 0: exp -> 1 (e^a within 2^-(p+1) of 1, the midpoints around 1 are
        1 - 2^-(p+1) and 1 + 2^-p); expm1, log1p, tanh -> a (their relative distance from a,
        below |a|/2 resp. a^2/3, is under 2^-(p+1), less than half an ulp relative to a);
      exp, expm1: a > (emax + 1) ln2 -> inf (e^a > 2^(emax+1), above max + half an ulp);
      exp: a < (emin - p) ln2 -> +0 (e^a below half the smallest subnormal);
      expm1: a < -(p + 1) ln2 -> -1 (e^a < 2^-(p+1), half an ulp of the values just above -1);
      tanh: |a| > 0.35 (p + 2) -> +-1 (1 - |tanh a| < 2 e^(-2|a|) < 2^-(p+1));
      a repeating the previous argument: the previous answer.
    Otherwise y = f's binary64 value: elem64's where it covers the argument, within its proven
    bound (elem64.MAX_BOUND, the margins `_OWN_MARGIN`, `_OWN_REL`), else the host's, within B
    (libm.py, the margins `margin`, `rel`); the answer is
    decided when no rounding boundary of the format lies within B'|y|:
      y non-finite: IEEE's answer; |y| < 2^-1000: a zero of y's sign;
      normal range [2^emin, max + ulp(max)/2): the 53 - p low significand bits of y are not
        within `margin` of the midpoint pattern 2^(52 - p); RN rounds those bits half up (no tie);
      subnormal range: s = |y| / 2^(emin - p + 1) is not within rel s + 2^-60 of a half-integer;
        RN is rint(s) 2^(emin - p + 1);
      beyond max + ulp(max)/2 by more than rel: inf."""
    c = constants(p, emin, emax, margin, rel)
    last_a = np.nan
    last_b = np.nan
    last_out = 0.0
    last_flag = 1
    for i in range(len(a)):
        v = a[i]
        w = b[i]
        if v == last_a and w == last_b and math.copysign(1.0, v) == math.copysign(1.0, last_a):
            out[i] = last_out
            flag[i] = last_flag
            continue
        res, fl = one(op, addr, nargs, v, w, c)
        out[i] = res
        flag[i] = fl
        last_a = v
        last_b = w
        last_out = res
        last_flag = fl


_OWN_BW = elem64.MAX_BOUND + 2.0**-52  # elem64's bound plus the rounding of |y|(1 +- bound), as libm._BW
_OWN_MARGIN = int(_OWN_BW * 2.0**53) + 2  # in binary64 ulps, as libm._M
_OWN_REL = 2 * elem64.MAX_BOUND  # relative, above _OWN_BW, as libm._REL


@numba.njit(cache=True, nogil=True)
def constants(p, emin, emax, margin, rel):
    """The format's decision constants `one` takes (computed once per format, not per call); the
    margins (margin, rel) for the host's values, and the narrower ones of elem64's proven bound."""
    L = 53 - p
    q0 = emin - p + 1
    return ((np.int64(1) << L) - 1, np.int64(1) << (L - 1), 2.0 ** (-q0), 2.0**q0, 2.0**emin,
            (2.0 - 2.0 ** (-p)) * 2.0**emax,  # max + half an ulp of max
            2.0 ** (-(p + 2)),
            (emax + 1) * _LN2 + 1e-6, (emin - p) * _LN2 - 1e-6,  # margins far above these products' rounding
            -(p + 1) * _LN2 - 1e-6, 0.35 * (p + 2), np.int64(margin), rel, np.int64(_OWN_MARGIN), _OWN_REL)


@numba.njit(cache=True, nogil=True, inline="always")
def shortcut(op, v, c):
    """(True, the exact answer) where one of `kernel`'s exact shortcuts applies to op(v), else (False, 0)."""
    tiny_arg, exp_over, exp_under, m1_under, tanh_sat = c[6], c[7], c[8], c[9], c[10]
    av = abs(v)
    if (op == EXP or op == EXPM1 or op == LOG1P or op == TANH) and av <= tiny_arg and v != 0.0:
        return True, (1.0 if op == EXP else v)
    if (op == EXP or op == EXPM1) and v > exp_over:
        return True, np.inf
    if op == EXP and v < exp_under:
        return True, 0.0
    if op == EXPM1 and v < m1_under:
        return True, -1.0
    if op == TANH and av > tanh_sat:
        return True, math.copysign(1.0, v)
    return False, 0.0


@numba.njit(cache=True, nogil=True, inline="always")
def undecided(y, own, c):
    """1 where no answer can be read from the binary64 value y (`kernel`'s decision: a rounding
    boundary of the format within the margin of y), else 0. `own`: y is elem64's, within its
    proven bound (the narrower margins), else the host's, within B."""
    lowmask, half, sub_scale, minnorm, boundary = c[0], c[1], c[2], c[4], c[5]
    margin, rel = (c[13], c[14]) if own else (c[11], c[12])
    ay = abs(y)
    if not (ay < np.inf) or ay < 2.0**-1000:  # inf or NaN; a zero of y's sign
        return 0
    if ay < minnorm:
        s = ay * sub_scale
        return 0 if abs(s - math.floor(s) - 0.5) > s * rel + 2.0**-60 else 1
    if ay < boundary:
        return 0 if abs((np.float64(ay).view(np.int64) & lowmask) - half) > margin else 1
    return 0 if ay * (1.0 - rel) > boundary else 1


@numba.njit(cache=True, nogil=True)
def rounded(y, c):
    """RN(y) in the format, y in binary64 (RN rounds the normal and subnormal ranges' halfway
    cases up, which `undecided` never leaves to it): the answer where `undecided` is 0."""
    lowmask, half, sub_scale, quantum, minnorm, boundary = c[0], c[1], c[2], c[3], c[4], c[5]
    ay = abs(y)
    if not (ay < np.inf):
        return y
    if ay < 2.0**-1000:
        return math.copysign(0.0, y)
    if ay < minnorm:
        return math.copysign(math.floor(ay * sub_scale + 0.5) * quantum, y)
    if ay < boundary:
        return math.copysign(np.int64((np.float64(ay).view(np.int64) + half) & ~lowmask).view(np.float64), y)
    return math.copysign(np.inf, y)


@numba.njit(cache=True, nogil=True)
def one(op, addr, nargs, v, w, c):
    """(RN(f(v[, w])), 0), or (garbage, 1) where MPFR must decide: `kernel`'s decision for one
    argument (its docstring) with the format's `constants`."""
    hit, res = shortcut(op, v, c)
    if hit:
        return res, 0
    own = elem64.covered(op, v)
    y = elem64.value(op, addr, nargs, v, w)
    return rounded(y, c), undecided(y, own, c)


@numba.njit(cache=True, nogil=True)
def bounds(addr, lo, hi, slack, out_lo, out_hi):
    """Enclosure of an increasing unary function over [lo, hi]: the host's values at both ends,
    widened by `slack` relative and 2^-1060 absolute; infinite ends stay."""
    for i in range(len(lo)):
        a = _c1d(addr, lo[i])
        b = _c1d(addr, hi[i])
        if a == -np.inf or a != a:
            out_lo[i] = a
        elif a == np.inf:
            out_lo[i] = 1.7976931348623157e308
        else:
            out_lo[i] = a - abs(a) * slack - 2.0**-1060
        if b == np.inf or b != b:
            out_hi[i] = b
        elif b == -np.inf:
            out_hi[i] = -1.7976931348623157e308
        else:
            out_hi[i] = b + abs(b) * slack + 2.0**-1060
