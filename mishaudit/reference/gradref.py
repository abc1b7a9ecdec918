"""A fast vectorised reference for mish' on binary16, bfloat16 and binary32 inputs, with a proven bound.

mish'(x) = tanh(sp) + x sigmoid(x) (1 - tanh(sp)^2), sp = log1p(e), e = exp(x). With
n = e (e + 2) and w = n + 2 (tanh(sp) = n/w, 1 - tanh^2 = 4 (1 + e)^2 / w^2):
    mish'(x) = A + B,  A = n / w,  B = 4 x e (1 + e) / w^2
             = e g / w^2,  g = e^3 + 4 e^2 + (6 + 4x) e + 4 (1 + x)
             = 1 + t^2 ((4x - 2) + (4x - 4) t - 4 t^2) / (1 + 2t + 2t^2)^2,  t = exp(-x).
Computed in binary64 (u = 2^-53) with fastref.py's exp (relative error eta <= 2^-47.9), by
region of x:

x < -200: the numerator of A + B is at most 4e (1 + x + 2e) < 0 and |mish'| <= 201 e^-200 <
  2^-280: RN is -0 in every format here; d stands as -2^-1000 (|true d| < 2^-130).
|x| < 2^-30: mish' = 3/5 + 0.64x + O(x^2) (see _series).
-200 <= x < -3 and -0.5 < x < 2 (|x| >= 2^-30): r = A + B. Error (first order in eta and u): A carries
  4 eta + 6u, B 6 eta + 11u relative, the sum one more u: |r - mish'| <= (6 eta + 12u)(A + |B|)
  < 2^-45 (A + |B|) = ERR.
-3 <= x <= -0.5 (around the root of mish' at x0 = -1.19243..., where A + B cancels): double-double.
  e = 2^m 2^(j/64) exp(r), K = 64m + j = rint(64x/ln2), r = x - K ln2/64 with ln2/64 split into
  C1 (42 bits, K C1 exact), C2 (44 bits, K C2 exact), C3: x - K C1 is exact (Sterbenz), r is
  kept as a pair to 2^-100; exp(r) - 1 = r + r^2 (1/2 + r/6 + ... + r^5/5040) (|r| <= ln2/128:
  truncation < 2^-75, the tail's rounding < 2^-66); 2^(j/64) is a pair from mpmath (2^-106).
  So |e_dd - e| <= 2^-60 e. g is evaluated by Horner in double-double (each operation within
  2^-100 of its magnitudes, all <= 5); e's error moves g by |dg/de| 2^-60 e <= 12 * 0.61 * 2^-60
  < 2^-57 = DG. Then r = e g / w^2 in binary64 from the leading parts: |r - mish'| <=
  16u |r| + DG e / w^2.
2 <= x <= 350: r = 1 + delta, delta = t^2 (...) / (...)^2 > 0 from the third form: 4x - 2 and
  4x - 4 are exact, every term but -4t^2 (< 0.08 of 6) is positive: delta carries at most
  3.7 eta + 14u < 2^-45.8 relative. RN(r) and d = ((1 - RN) + delta) / ulp(1) (1 - RN exact).
x > 350: delta < 2^-1000: RN is 1 and d a negligible positive (2^-1000).

An input is decided (decide.py, the decision every reference path shares) when both ends of
r +- (its error bound, widened for the binary64 rounding of r) round to the same format value in
the same binade with the same sign, the side of r around RN(r) is certain (|d| above its error),
and d is known to 2^-20 ulp (figures exact to 1e-6 ulp). The rest (near the root, near rounding
boundaries) go to the MPFR reference (specref.py). Only binary16, bfloat16 and binary32 inputs are accepted (the exactness of
x - K C1 and of fastref's argument reduction needs p <= 24).
"""

from __future__ import annotations

import functools

import numpy as np

from mishaudit.formats import Format, pow2, round_to
from mishaudit.reference.decide import TINY_D, decide, float_ends, outward
from mishaudit.reference.fastref import exp_bounded, exp_parts, on_sorted

ERR_MAIN = 2.0**-45
ERR_NEAR1 = 2.0**-45
DG = 2.0**-57
U = 2.0**-53
LOW, BAND_LO, BAND_HI, HIGH, TOP = -200.0, -3.0, -0.5, 2.0, 350.0
SERIES = 2.0**-30


@functools.lru_cache(maxsize=1)
def _tables():
    """C1, C2, C3 (ln2/64 = C1 + C2 + C3, C1 42 bits, C2 44 bits), 2^(j/64) as pairs (hi, lo), 64/ln2."""
    import gmpy2

    with gmpy2.context(precision=400):  # MPFR: every constant correctly rounded at 400 bits
        ln2 = gmpy2.const_log2()
        c = ln2 / 64
        c1 = gmpy2.floor(c * 2**48) / 2**48  # c < 2^-6: 42 significant bits
        c2 = gmpy2.floor((c - c1) * 2**92) / 2**92  # < 2^-48: 44 bits
        c3 = float(c - c1 - c2)
        hi, lo = [], []
        for j in range(64):
            t = gmpy2.exp2(gmpy2.mpfr(j) / 64)
            h = float(t)
            hi.append(h)
            lo.append(float(t - h))
        return float(c1), float(c2), c3, np.array(hi), np.array(lo), float(64 / ln2)


def _two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _split(a):
    c = 134217729.0 * a  # 2^27 + 1 (Dekker)
    hi = c - (c - a)
    return hi, a - hi


def _two_prod(a, b):
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _dd_mul(a, b):
    p, e = _two_prod(a[0], b[0])
    e = e + (a[0] * b[1] + a[1] * b[0])
    return _two_sum(p, e)


def _dd_add(a, b: np.ndarray):
    s, e = _two_sum(a[0], b)
    return _two_sum(s, e + a[1])


def exp_dd(x: np.ndarray):
    """exp(x) as a pair (hi, lo), relative error <= 2^-60, for binary32 values -3 <= x <= -0.5."""
    c1, c2, c3, thi, tlo, inv = _tables()  # no libm call: the same K on every machine
    K = np.rint(x * inv)
    t = x - K * c1  # exact
    r = _two_sum(t, -(K * c2))  # K c2 exact
    rh, rl = r[0], r[1] - K * c3
    poly = 1 / 5040
    for cf in (1 / 720, 1 / 120, 1 / 24, 1 / 6, 0.5):
        poly = poly * rh + cf
    tail = rl + (rh * rh * poly + rh * rl)  # exp(r) = 1 + rh + tail
    Ki = K.astype(np.int64)
    j = Ki % 64
    m = (Ki - j) // 64
    th, tl = thi[j], tlo[j]
    ph, pl = _two_prod(th, rh)
    hi, lo = _two_sum(th, ph)
    lo = lo + (pl + tl + tl * rh + th * tail)
    hi, lo = _two_sum(hi, lo)
    s = pow2(m)
    return hi * s, lo * s


def _band(x: np.ndarray):
    """(r, error bound) for -3 <= x <= -0.5: g in double-double."""
    e = exp_dd(x)
    h = _dd_add(e, 4.0)
    h = _dd_mul(h, e)
    h = _dd_add(h, 6.0 + 4.0 * x)  # exact: x binary32
    h = _dd_mul(h, e)
    g = _dd_add(h, 4.0 + 4.0 * x)
    eh = e[0]
    w = eh * eh + 2 * eh + 2
    r = eh * g[0] / (w * w)
    return r, 16 * U * np.abs(r) + DG * eh / (w * w) * (1 + 2.0**-40)


def _main(x: np.ndarray):
    """(r, error bound) from r = A + B."""
    e = exp_bounded(x)
    n = e * (e + 2)
    w = n + 2
    A = n / w
    B = 4 * x * e * (1 + e) / (w * w)
    return A + B, ERR_MAIN * (A + np.abs(B)) * (1 + 2.0**-40)


def _decide(r, err, fmt: Format):
    """decide.py's decision for r with |r - mish'| <= err: the enclosure r -+ (err + r's own rounding)
    must round alike in one binade with one sign, and d be known to D_RES = 2^-20 ulp, strictly
    inside (-1/2, 1/2), on a certain side."""
    err = err + np.abs(r) * U  # r's own rounding
    lo, hi = outward(r - err, r + err)

    def d_bounds(rn, E):
        s = pow2(fmt.p - 1 - E)
        d = (r - rn) * s  # exact: r and RN(r) within one format ulp (r binary64, RN(r) p <= 24 bits)
        return (*outward(d - err * s, d + err * s), d)

    dec = decide(fmt, *float_ends(lo, hi, fmt), d_bounds)
    return dec.rn, dec.d, dec.E, dec.ok


def _series(x: np.ndarray, fmt: Format):
    """(rn, d, E, r64) for |x| < 2^-30: mish'(x) = 3/5 + 0.64x + c x^2 with |c| < 1 (fastref.py's series
    of mish differentiated). 3/5 lies 0.4 ulp (fp32, bf16) or 0.2 ulp (fp16) from RN(3/5), and
    0.64|x| < 2^-30.6 moves it by under 0.01 ulp: RN(mish') = RN(3/5 + 0.64x), d from the binary64 r
    (error below 2^-29 ulp). Always decided."""
    r = 0.6 + 0.64 * x
    rn = round_to(r, fmt)
    E = np.full(len(x), -1, dtype=np.int64)
    return rn, (r - rn) * 2.0 ** (fmt.p), E, r


TAIL = 800.0


def grad_tails(x: np.ndarray, fmt: Format):
    """(rn, d, E, r64, decided) of mish' for |x| >= TAIL in any format (undecided elsewhere): for
    x <= -800, |mish'(x)| <= 801 e^-800 < 2^-1144, below half the smallest binary64 subnormal, and
    mish' < 0: RN is -0, d a negligible negative; for x >= 800, 0 < mish' - 1 < 2^-2000: RN is 1,
    d a negligible positive. (MPFR's exponent range cannot hold exp(-x) for |x| beyond 2^62.)"""
    x = np.asarray(x, dtype=np.float64)
    neg, pos = x <= -TAIL, x >= TAIL
    rn = np.where(neg, -0.0, 1.0)
    d = np.where(neg, -TINY_D, TINY_D)
    E = np.where(neg, fmt.emin, 0).astype(np.int64)
    return rn, d, E, np.where(neg, -0.0, 1.0), neg | pos


def grad_reference(x: np.ndarray, fmt: Format):
    """(rn, d, E, r64, decided) of mish' for finite x of fmt (p <= 24); undecided entries are garbage."""
    if fmt.p > 24:
        raise ValueError("the fast mish' reference is proven for binary16, bfloat16 and binary32 inputs only")
    return on_sorted(_sorted, x, fmt)


def _sorted(x: np.ndarray, fmt: Format):
    """grad_reference for ascending x: every region is a slice."""
    n = len(x)
    rn, d, r64 = np.zeros(n), np.zeros(n), np.zeros(n)
    E = np.full(n, fmt.emin, dtype=np.int64)
    ok = np.ones(n, dtype=bool)
    cuts = np.searchsorted(x, [LOW, BAND_LO, BAND_HI, -SERIES, SERIES, HIGH, TOP], side="left")
    cuts[2] = np.searchsorted(x, BAND_HI, side="right")
    cuts[3] = np.searchsorted(x, -SERIES, side="right")
    cuts[6] = np.searchsorted(x, TOP, side="right")
    b = [0, *cuts.tolist(), n]
    low, main1, band, main2, series, main3, near, top = (slice(b[i], b[i + 1]) for i in range(8))
    with np.errstate(all="ignore"):
        if low.stop > low.start:  # r64 = (1 + x) e^x (first order; shown only), by our exp, not a libm
            xl = np.maximum(x[low], -1000.0)
            p, k = exp_parts(xl)
            r64[low] = np.where(x[low] < -1000.0, -0.0, np.ldexp((1 + xl) * p, k))
        rn[low], d[low] = -0.0, -TINY_D
        for sl, f in ((main1, _main), (band, _band), (main2, _main), (main3, _main)):
            if sl.stop > sl.start:
                r, err = f(x[sl])
                rn[sl], d[sl], E[sl], ok[sl] = _decide(r, err, fmt)
                r64[sl] = r
        if series.stop > series.start:
            rn[series], d[series], E[series], r64[series] = _series(x[series], fmt)
        if near.stop > near.start:
            xs = x[near]
            t = exp_bounded(-xs)
            den = 1 + 2 * t + 2 * t * t
            delta = t * t * ((4 * xs - 2) + (4 * xs - 4) * t - 4 * t * t) / (den * den)
            q = round_to(1 + delta, fmt)
            s = 2.0 ** (fmt.p - 1)  # r in (1, 2): E = 0
            dd = ((1 - q) + delta) * s
            errd = (ERR_NEAR1 * delta + 2 * U * np.abs(1 - q)) * s
            one = np.ones(len(xs), dtype=np.int64)
            # r = 1 + delta in (1, 2) (sign and binade known): RN(r) = q when d's enclosure is inside (-1/2, 1/2)
            dec = decide(fmt, q, q, one, one, 0 * one, 0 * one, lambda rn, E: (*outward(dd - errd, dd + errd), dd),
                         E_known=0 * one)
            rn[near], d[near], E[near], r64[near], ok[near] = dec.rn, dec.d, dec.E, 1 + delta, dec.ok
        rn[top], d[top], E[top], r64[top] = 1.0, TINY_D, 0, 1.0
    return rn, d, E, r64, ok
