"""A fast vectorised reference for binary16, bfloat16 and binary32 inputs, with a proven bound.

mish(x) is evaluated in binary64 (u = 2^-53) with our own exp, so that the bound does
not rest on a libm:

exp(a), |a| <= 745 (larger |a| is handled below):
  k = rint(a / ln2); r = (a - k*L1) - k*L2, with L1 = ln2 rounded to 42 bits (so k*L1 is
  exact for |k| <= 2^11) and L2 = RN(ln2 - L1). For a a binary32 value, a - k*L1 is exact
  (its bits span 2^10 .. 2^-42, under 53 bits, or k = 0), so r = (r* + e1)(1 + e2) with
  |e1| <= |k| (u |L2| + |ln2 - L1 - L2|) < 2^-84 and |e2| <= u: |r| <= 0.3466 and
  r is within 2^-52.9 |r| + 2^-84 of a - k ln2.
  p = sum_{j<=13} r^j / j! by Horner: truncation <= 0.3466^14 / 14! < 2^-57; each of
  the 13 Horner steps adds at most 2 roundings on a value within [0.70, 1.42], and the
  coefficients 1/j! are rounded (relative u): |p - e^r| <= 30 u e^r < 2^-48 e^r.
  The error of r moves e^r by a factor within 2^-52 (|de^r / e^r| = |dr|).
  e = p * 2^k is exact while e is a normal binary64 number.
  So e = exp(a) (1 + eta), |eta| <= 2^-47.9.
x >= 0: mish(x) = x (1 - delta), delta = 2t^2 / (1 + 2t + 2t^2), t = exp(-x) <= 1;
  r = x - x*delta with d = ((x - RN(r)) - x*delta) / ulp(r): x - RN(r) is exact (Sterbenz
  for r in [x/2, x]) and x*delta (delta <= 0.2) carries relative error <= 3 eta + 6u, so
  d is exact to 2^-44 |x delta| / ulp(r).
x < 0: mish(x) = x n / (n + 2), n = e (e + 2), e = exp(x) <= 1: every term is positive;
  d ln n / d ln e <= 2 and d ln(n/(n+2)) / d ln n <= 1, so
  |r/mish - 1| <= 2 eta + 6u < 2^-46.8.
In both cases the relative error of r is below EPS = 2^-46. The result is decided when
|d| < 1/2 - EPS 2^p (no rounding boundary within reach), the side of r around RN(r) is
certain (|d| above its error bound, or RN(r) is x or 0, whose side is known), and, for
normal r, r is not within EPS of a power of two.
x < -746: |mish(x)| < 2^-1074, RN is -0 and d a negligible negative.
|x| < 2^-30 with 3x/5 a format value: mish(x) = 0.6x + 0.32x^2 + O(x^3), RN is 3x/5 and r
lies above it (a near-tie whose side is certain).
x > 700: delta < 2 e^-1400, RN is x and d a negligible negative. The rest (exp arguments in
[-746, -700], near-ties) goes to the mpmath reference (Ziv's fallback). Only binary16,
bfloat16 and binary32 inputs are accepted (the exactness of a - k*L1 needs p <= 24).
"""

from __future__ import annotations

import math

import numpy as np

from .formats import Format, round_to

EPS = 2.0**-46

def _split_ln2():
    import mpmath

    with mpmath.workprec(300):
        ln2 = mpmath.log(2)
        l1 = mpmath.floor(ln2 * 2**42) / 2**42  # ln 2 rounded down to 42 bits: exact as a float
        return float(l1), float(ln2 - l1)


L1, L2 = _split_ln2()
INV_LN2 = 1.4426950408889634
COEFFS = [1.0 / math.factorial(j) for j in range(13, -1, -1)]  # Horner order: 1/13! ... 1/0!
EXP_LIMIT = 700.0
SERIES_LIMIT = 2.0**-30  # below, the series 0.6x + 0.32x^2 replaces exp


def exp_bounded(a: np.ndarray) -> np.ndarray:
    """exp(a) for binary32 values |a| <= 700, relative error <= 2^-47.9 (module docstring)."""
    k = np.rint(a * INV_LN2)
    r = (a - k * L1) - k * L2
    p = np.full_like(r, COEFFS[0])
    for c in COEFFS[1:]:
        p = p * r + c
    return np.ldexp(p, k.astype(np.int64))


def fast_reference(x: np.ndarray, fmt: Format):
    """(rn, d, E, r64, decided) for finite `x` of fmt (p <= 24); undecided entries are garbage."""
    if fmt.p > 24:
        raise ValueError("the fast reference is proven for binary16, bfloat16 and binary32 inputs only")
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    rn, d, E, r64 = np.zeros(n), np.zeros(n), np.full(n, fmt.emin, dtype=np.int64), np.zeros(n)
    decided = np.zeros(n, dtype=bool)
    zero = x == 0
    rn[zero], r64[zero], decided[zero] = x[zero], x[zero], True
    with np.errstate(all="ignore"):
        # 0 < |x| < 2^-30: mish(x) = 0.6x + 0.32x^2 - 0.016x^3 + ...; the cubic term is below
        # 2^-64 of the result, 3x is exact and /5 rounds once: relative error <= 2u + 2^-64 < EPS
        small = (x != 0) & (np.abs(x) < SERIES_LIMIT)
        xs = x[small]
        r_small = 3.0 * xs / 5.0 + 0.32 * xs * xs
        # x > 0: r = x - x*delta
        pos = (x > 0) & (x <= EXP_LIMIT) & ~small
        xp = x[pos]
        t = exp_bounded(-xp)
        xdelta = xp * (2 * t * t / (1 + 2 * t + 2 * t * t))
        r_pos = xp - xdelta
        # x > EXP_LIMIT: delta < 2 e^-1400, below any resolution: r = x(1 - tiny), RN = x
        big = x > EXP_LIMIT
        # x < 0
        neg = (x < 0) & (x >= -EXP_LIMIT) & ~small
        xn = x[neg]
        e = exp_bounded(xn)
        nn = e * (e + 2)
        r_neg = xn * nn / (nn + 2)
    # round and measure
    for mask, r in ((small, r_small), (pos, r_pos), (neg, r_neg)):
        rnd, dd, EE, ok = _decide(r, fmt)
        if mask is pos:
            # d from the exact difference x - RN(r), then minus x*delta: see the docstring
            q = EE - fmt.p + 1
            dd = np.ldexp((xp - rnd) - xdelta, -q)
            err = np.ldexp(xdelta, -q) * 2.0**-44  # bound on the error of dd
            ok &= np.abs(dd) < 0.5 - EPS * 2.0**fmt.p
            # the side of r is needed for the faithful verdict: decided when |dd| exceeds its
            # error, or when RN(r) = x (then r < x: mish(x) < x for x > 0)
            at_x = rnd == xp
            dd = np.where(at_x, -np.maximum(np.abs(dd), 2.0**-1000), dd)
            ok &= (np.abs(dd) > err) | at_x
        else:
            # the side of r: decided when |dd| exceeds EPS 2^p, or RN(r) = 0 (r has the sign of x)
            ok &= (np.abs(dd) > EPS * 2.0**fmt.p) | (rnd == 0)
        rn[mask], d[mask], E[mask], r64[mask], decided[mask] = rnd, dd, EE, r, ok
    # x < -746: |mish(x)| < 746 e^-746 < 2^-1074, far below half the smallest subnormal of
    # these formats: RN = -0, r in binary64 is -0 too, and d = r/ulp(0) is a negligible negative
    under = x < -746.0
    rn[under], r64[under], d[under], E[under], decided[under] = -0.0, -0.0, -(2.0**-1000), fmt.emin, True
    # |x| < 2^-30 left undecided by a near-tie: mish(x) = 0.6x + 0.32x^2 + O(x^3). When 3x/5 is a
    # format value, RN(r) is 3x/5 and r lies above it by 0.32x^2 (side certain, size negligible);
    # a power of two with x < 0 would change the binade of r, so it stays with mpmath
    tiny = ~decided & (np.abs(x) < 2.0**-30) & (x != 0)
    xt = x[tiny]
    v = 3.0 * xt / 5.0
    vm, ve = np.frexp(np.abs(v))
    exact = (v * 5.0 == 3.0 * xt) & (round_to(v, fmt) == v) & (v != 0) & ~((vm == 0.5) & (xt < 0))
    idx = np.flatnonzero(tiny)[exact]
    vt, xe = v[exact], xt[exact]
    Et = np.maximum(ve[exact] - 1, fmt.emin)
    rn[idx], E[idx], r64[idx], decided[idx] = vt, Et, vt + 0.32 * xe * xe, True
    d[idx] = np.maximum(np.ldexp(0.32 * xe * xe, -(Et - fmt.p + 1)), 2.0**-1000)
    xb = x[big]
    rn[big], r64[big], decided[big] = xb, xb, True
    _, eb = np.frexp(xb)
    # |mish(x)| < |x| = RN: when x = 2^k the binade of r is k - 1
    pow2 = np.frexp(xb)[0] == 0.5
    E[big] = np.maximum(np.where(pow2, eb - 2, eb - 1), fmt.emin)
    d[big] = -(2.0**-1000)  # r lies just below x, by far less than any resolution
    return rn, d, E, r64, decided


def _decide(r: np.ndarray, fmt: Format):
    """RN(r) in fmt, d = (r - RN(r))/ulp(r), E, and whether EPS cannot change RN or the binade."""
    a = np.abs(r)
    m, e = np.frexp(a)  # a = m 2^e, m in [0.5, 1)
    E = np.maximum(e - 1, fmt.emin)
    rnd = round_to(r, fmt)
    q = E - fmt.p + 1
    dd = np.ldexp(r - rnd, -q)  # r - RN(r) is exact in binary64 (p <= 24, same binade)
    slack = EPS * 2.0**fmt.p  # |r| EPS in ulps is below this
    ok = (np.abs(dd) < 0.5 - slack) & np.isfinite(r)
    normal = (e - 1) >= fmt.emin
    ok &= ~normal | ((m > 0.5 * (1 + 2 * EPS)) & (m < 1 - 2 * EPS))
    rnd = np.where(rnd == 0, np.copysign(0.0, r), rnd)
    return rnd, dd, E, ok
