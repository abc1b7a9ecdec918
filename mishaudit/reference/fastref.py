"""A fast vectorised reference for binary16, bfloat16 and binary32 inputs, with a proven bound.

mish(x) is evaluated in binary64 (u = 2^-53) with our own exp, so that the bound does
not rest on a libm:

exp(a), |a| < 1024 a binary32 value:
  k = rint(a / ln2); r = (a - k*L1) - k*L2, with L1 = ln2 rounded to 42 bits (so k*L1 is
  exact for |k| < 2^11) and L2 = RN(ln2 - L1). For a a binary32 value, a - k*L1 is exact
  (its bits span 2^10 .. 2^-42, under 53 bits, or k = 0), so r = (r* + e1)(1 + e2) with
  |e1| <= |k| (u |L2| + |ln2 - L1 - L2|) < 2^-84 and |e2| <= u: |r| <= 0.3466 and
  r is within 2^-52.9 |r| + 2^-84 of a - k ln2.
  P = sum_{j<=13} r^j / j! by Horner: truncation <= 0.3466^14 / 14! < 2^-57; each of
  the 13 Horner steps adds at most 2 roundings on a value within [0.70, 1.42], and the
  coefficients 1/j! are rounded (relative u): |P - e^r| <= 30 u e^r < 2^-48 e^r.
  The error of r moves e^r by a factor within 2^-52 (|de^r / e^r| = |dr|).
  exp(a) = P 2^k (1 + eta), |eta| <= 2^-47.9; P 2^k is formed (exactly) only while it is a
  normal binary64 number, else kept as the pair (P, k).

The inputs are cut by value into regions (slices when x is sorted):
x < -1020: |mish(x)| / ulp(0) < 2^-1300: RN is -0, d a negligible negative (-2^-1000).
-1020 <= x < -200: e = exp(x) < 2^-288 and mish(x) = x e (e+2)/(e^2+2e+2) = x e (1 - theta),
  0 < theta < e: |mish| < 2^-280, so RN is -0 in every format here (half the smallest
  subnormal is 2^-150 at the least) and d = x P 2^(k - q0), q0 = emin - p + 1, with
  relative error <= 2^-47 (-2^-1000 where |d| is smaller still).
-200 <= x <= -2^-30: mish(x) = x n / (n + 2), n = e (e + 2), e = exp(x) <= 1: every term
  is positive; d ln n / d ln e <= 2 and d ln(n/(n+2)) / d ln n <= 1, so
  |r/mish - 1| <= 2 eta + 6u < 2^-46.8.
0 < |x| < 2^-30: mish(x) = 0.6x + 0.32x^2 + c3 x^3 + ..., |c3 x^3| < 2^-60 |0.6x|.
  v = RN64(3x/5); r = v + 0.32x^2. With x = m 2^e (m < 2^p an integer), 3x/5 is either a
  format value (5 | m; never a power of two) or at least 0.2 ulp from every format value,
  hence at least 0.1 ulp from every midpoint: RN(mish) = RN(r) and the binade are certain,
  d = ((v - RN) + 0.32x^2) / ulp (v - RN is exact) is within 2^-26 ulp of the true d, and its
  side is certain (|d| >= 0.2 - 2^-26, or RN = 3x/5 exactly and d = 0.32x^2/ulp > 0).
2^-30 <= x <= 350: mish(x) = x (1 - delta), delta = 2t^2 / (1 + 2t + 2t^2), t = exp(-x);
  r = x - x*delta with d = ((x - RN(r)) - x*delta) / ulp(r): x - RN(r) is exact (Sterbenz
  for r in [x/2, x]: delta <= 2/5, its value at t = 1) and x*delta carries relative error
  <= 3 eta + 6u (d ln delta / d ln t lies in [0.8, 2] for t <= 1), so d is exact to
  2^-44 |x delta| / ulp(r), plus the final subtraction's rounding (2^-52 |d|).
x > 350: delta < 2 e^-700 < 2^-1009, so |d| < 2^-983: RN is x and d a negligible negative
  (-2^-1000). (Stopping at 350 keeps t^2 out of binary64's subnormal range, which is slow.)

In the two exp regions the relative error of r is below EPS = 2^-46: r is enclosed in
[r - EPS|r|, r + EPS|r|] (widened one binary64 step each way), d in an interval of radius
EPS 2^p ulps (x < 0: |r| EPS < EPS 2^p ulp(r)) or of the radius above (x > 0), and decide.py
makes the decision (both ends round alike, same binade, d strictly inside (-1/2, 1/2), its side
certain, or RN(r) is x or 0, whose side is known). The rest (near-ties and near powers of two)
goes to the MPFR reference (mpfrref.py, Ziv's loop in interval arithmetic); test_fastref.py
counts them. Only binary16, bfloat16 and binary32 inputs are accepted (the exactness of
a - k*L1 needs p <= 24).
"""

from __future__ import annotations

import math

import numpy as np

from mishaudit.formats import Format, pow2, round_to
from mishaudit.reference.decide import TINY_D, decide, float_ends, outward

EPS = 2.0**-46


def _split_ln2():
    import gmpy2

    with gmpy2.context(precision=300):  # MPFR: ln 2 correctly rounded at 300 bits
        ln2 = gmpy2.const_log2()
        l1 = gmpy2.floor(ln2 * 2**42) / 2**42  # ln 2 rounded down to 42 bits: exact as a float
        return float(l1), float(ln2 - l1)


L1, L2 = _split_ln2()
INV_LN2 = 1.4426950408889634
COEFFS = [1.0 / math.factorial(j) for j in range(13, -1, -1)]  # Horner order: 1/13! ... 1/0!
EXP_LIMIT = 350.0
UNDER_LIMIT = -1020.0  # below: |mish(x)| / ulp(0) < 2^-1300 in every format with p <= 24
SCALED_LIMIT = -200.0  # below: RN(mish(x)) is -0 in every format with p <= 24
SERIES_LIMIT = 2.0**-30  # below, the series 0.6x + 0.32x^2 replaces exp


def exp_parts(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P, k) with exp(a) = P 2^k (1 + eta), |eta| <= 2^-47.9, for binary32 values |a| < 1024."""
    k = np.rint(a * INV_LN2)
    r = (a - k * L1) - k * L2
    p = np.full_like(r, COEFFS[0])
    for c in COEFFS[1:]:
        p *= r
        p += c
    return p, k.astype(np.int64)


def exp_bounded(a: np.ndarray) -> np.ndarray:
    """exp(a) for binary32 values |a| <= 700, relative error <= 2^-47.9 (module docstring)."""
    p, k = exp_parts(a)
    return p * pow2(k)


def fast_reference(x: np.ndarray, fmt: Format):
    """(rn, d, E, r64, decided) for finite `x` of fmt (p <= 24); undecided entries are garbage."""
    if fmt.p > 24:
        raise ValueError("the fast reference is proven for binary16, bfloat16 and binary32 inputs only")
    return on_sorted(_sorted_reference, x, fmt)


def on_sorted(f, x: np.ndarray, fmt: Format):
    """f(x, fmt) for an ascending x (every region a slice), applied to any x: sorted first, and each
    output array put back in x's order."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) > 1 and not np.all(x[1:] >= x[:-1]):
        order = np.argsort(x, kind="stable")
        parts = f(x[order], fmt)
        out = tuple(np.empty_like(a) for a in parts)
        for o, a in zip(out, parts):
            o[order] = a
        return out
    return f(x, fmt)


def _sorted_reference(x: np.ndarray, fmt: Format):
    """fast_reference for ascending x: every region is a slice."""
    n = len(x)
    rn, d, E, r64 = np.empty(n), np.empty(n), np.full(n, fmt.emin, dtype=np.int64), np.empty(n)
    decided = np.ones(n, dtype=bool)
    b = np.searchsorted(x, [UNDER_LIMIT, SCALED_LIMIT, -SERIES_LIMIT, 0.0, 0.0, SERIES_LIMIT, EXP_LIMIT],
                        side="left")
    b[2] = np.searchsorted(x, -SERIES_LIMIT, side="right")
    b[4] = np.searchsorted(x, 0.0, side="right")
    b[6] = np.searchsorted(x, EXP_LIMIT, side="right")
    under, scaled, neg = slice(0, b[0]), slice(b[0], b[1]), slice(b[1], b[2])
    small_n, zero, small_p = slice(b[2], b[3]), slice(b[3], b[4]), slice(b[4], b[5])
    pos, big = slice(b[5], b[6]), slice(b[6], n)
    q0 = fmt.emin - fmt.p + 1
    with np.errstate(all="ignore"):
        rn[under], r64[under], d[under] = -0.0, -0.0, -TINY_D
        if b[1] > b[0]:
            xs = x[scaled]
            p, k = exp_parts(xs)
            m = xs * p * pow2(k + 600)  # exact scaling: x e 2^600 is a normal binary64 number
            # a |d| below 2^-1000 stays the negligible negative -2^-1000
            rn[scaled], r64[scaled], d[scaled] = -0.0, m * 2.0**-600, np.minimum(m * pow2(-600 - q0), -TINY_D)
        if b[2] > b[1]:
            xn = x[neg]
            e = exp_bounded(xn)
            nn = e * (e + 2)
            r = xn * nn / (nn + 2)
            dec = _decide(r, fmt, sign=-1)
            rn[neg], d[neg], E[neg], decided[neg], r64[neg] = dec.rn, dec.d, dec.E, dec.ok, r
        for sl in (small_n, small_p):
            if sl.stop > sl.start:
                rn[sl], d[sl], E[sl], r64[sl] = _series(x[sl], fmt)
        rn[zero], r64[zero], d[zero] = x[zero], x[zero], 0.0
        if b[6] > b[5]:
            rn[pos], d[pos], E[pos], r64[pos], decided[pos] = _positive(x[pos], fmt)
        xb = x[big]
        rn[big], r64[big], d[big] = xb, xb, -TINY_D
        if len(xb):
            mb, eb = np.frexp(xb)
            # |mish(x)| < |x| = RN: when x = 2^k the binade of r is k - 1
            E[big] = np.maximum(np.where(mb == 0.5, eb - 2, eb - 1), fmt.emin)
    return rn, d, E, r64, decided


def _series(x: np.ndarray, fmt: Format):
    """(rn, d, E, r64) for 0 < |x| < 2^-30 from mish(x) = 0.6x + 0.32x^2 (always decided)."""
    v = 3.0 * x / 5.0
    x2 = 0.32 * x * x
    r = v + x2
    rnd = round_to(r, fmt)
    _, e = np.frexp(r)
    E = np.maximum(e - 1, fmt.emin)
    d = ((v - rnd) + x2) * pow2(fmt.p - 1 - E)
    return rnd, d, E, r


def _positive(x: np.ndarray, fmt: Format):
    """(rn, d, E, r64, decided) for 2^-30 <= x <= 350 from r = x - x*delta."""
    t = exp_bounded(-x)
    xdelta = x * (2 * t * t / (1 + 2 * t + 2 * t * t))
    r = x - xdelta

    def d_bounds(rn, E):
        # d from the exact difference x - RN(r), then minus x*delta (module docstring): x*delta carries
        # relative error 2^-44, the subtraction one rounding
        s = pow2(fmt.p - 1 - E)
        dd = ((x - rn) - xdelta) * s
        err = xdelta * s * 2.0**-44 + np.abs(dd) * 2.0**-52
        return (*outward(dd - err, dd + err), dd)

    lo, hi = _ends(r)
    # mish(x) < x: capping hi below x keeps RN(hi) (binary64 numbers in [pred(x), x) round as x does,
    # p <= 24) and puts it in r's binade when x = 2^k (r < 2^k)
    hi = np.minimum(hi, np.nextafter(x, 0))
    a = float_ends(lo, hi, fmt)
    # RN(r) = x: r lies below x (mish(x) < x for x > 0), the side is known
    dec = decide(fmt, *a, d_bounds, sign=1, side_known=np.where(a[0] == x, -1, 0))
    return dec.rn, dec.d, dec.E, r, dec.ok


def _ends(r: np.ndarray):
    """An enclosure [lo, hi] of the exact value from r with relative error <= EPS."""
    return outward(r - np.abs(r) * EPS, r + np.abs(r) * EPS)


def _decide(r: np.ndarray, fmt: Format, sign: int):
    """decide.py's decision for r carrying relative error <= EPS, of sign `sign`; RN(r) = 0 fixes the
    side of r (its sign)."""
    lo, hi = _ends(r)
    a = float_ends(lo, hi, fmt)
    slack = EPS * 2.0**fmt.p  # |r| EPS in ulps is below this

    def d_bounds(rn, E):
        dd = (r - rn) * pow2(fmt.p - 1 - E)  # r - RN(r) is exact in binary64 (p <= 24, same binade)
        return (*outward(dd - slack, dd + slack), dd)

    return decide(fmt, *a, d_bounds, sign=np.full(len(r), sign), side_known=np.where(a[0] == 0, sign, 0))
