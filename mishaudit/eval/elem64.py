"""mishaudit's own binary64 exp, expm1, log, log1p and tanh for the cr model's fast pass
(crkernel.one), each within a proven relative error bound far below libm.B = 2^-44, the bound the
pass's decisions rest on; plain scalar code (no call, no table but 64 values), several times faster
than the C library's functions here. Outside the domain stated for each, `value` calls the host's
function as before (its error then the assumed B, which verify_host_libm checks).

u = 2^-53. Every + - * / below is one binary64 IEEE operation rounded to nearest (numba without
fastmath: no contraction into fma, no reassociation), so fl(a op b) = (a op b)(1 + d), |d| <= u,
for normal results. Where an intermediate underflows (tiny or subnormal arguments: r^2, a^4, a^8,
a * 64/ln2), its error is absolute, at most 2^-1075, in a sum of terms near 1 (and for subnormal a,
expm1 and tanh return a exactly, as RN does): far inside every bound below. The
polynomials p(t) = sum c_i t^i of degree n are evaluated by Estrin's scheme (a tree of + and *, with
t^2, t^4, t^8 formed by squaring): the computed value is exactly sum c_i t^i (1 + theta_i), theta_i
the product of the (1 + d) factors of the roundings on term i's path (those inside its power of t
counted), and no path holds more than 2n (as in Horner's rule; Higham, Accuracy and Stability of
Numerical Algorithms, 2nd ed., Lemma 3.1 and eq. 5.3), so it errs by at most gamma_2n sum |c_i| |t|^i,
gamma_k = k u / (1 - k u). Below, "Horner" names this scheme and its bound.

exp(a), |a| <= 700 (EXP_BOUND = 1.6e-15 relative):
  kd = RN(RN(a * 64/ln2) + 1.5 2^52) - 1.5 2^52, the integer nearest RN(a * 64/ln2), so the exact
  r* = a - kd ln2/64 has |r*| <= (1/2 + 2^-35) ln2/64 < 0.00542; |kd| < 2^17.
  ln2/64 = C1 + C2 + c, C1 with 32 significant bits (kd C1 exact), C2 = RN(ln2/64 - C1), |C2| <
  2^-38, |c| <= 2^-91. r = RN(RN(a - kd C1) - RN(kd C2)) is within u (0.00543 + 4.8e-7 + 0.00544)
  + 2^17 2^-91 < 1.22e-18 of r*, so e^r is within 1.23e-18 relative of e^r*.
  p = Horner of the degree-5 Taylor polynomial of e^r (coefficients 1, 1, 1/2 exact, RN(1/6),
  RN(1/24), RN(1/120)): Horner's error <= gamma_10 e^0.00544 < 1.12e-15, the coefficients'
  rounding < u 0.00543^3/6 < 3e-24, the truncation <= 0.00544^6/720 e^0.00544 < 3.7e-17; over
  e^r >= 0.9945: p within 1.17e-15 relative of e^r.
  T_j = 2^(j/64) (j = kd mod 64) to binary64 from 100-bit values: within 1.2e-16 relative.
  y = RN(T_j p) 2^m, m = (kd - j)/64 in [-1011, 1010] (the product by 2^m is exact: normal).
  Together (1 + 1.2e-16)(1 + 1.17e-15)(1 + 1.23e-18)(1 + u) - 1 < 1.6e-15.
expm1(a), |a| <= 700 (EXPM1_BOUND = 5.7e-15):
  |a| >= 0.35: y = RN(exp(a) - 1); the error e^a EXP_BOUND of exp(a) is at most 3.39 EXP_BOUND
    relative to e^a - 1 (e^a/|e^a - 1| is largest at a = 0.35, 1.4191/0.4191), with the
    subtraction's u: < 5.55e-15.
  |a| < 0.35: y = RN(a q), q the Horner value of sum_{i<=12} c_i a^i, c_i = RN(1/(i+1)!); the
    exact q* = (e^a - 1)/a >= 0.8437 and sum |c_i||a|^i <= (e^0.35 - 1)/0.35 < 1.2: Horner <=
    gamma_24 1.2 < 3.2e-15, coefficients < u 1.2, truncation <= 0.35^13/14! 1.03 < 1.4e-17, all
    over 0.8437 and the product's u: < 4.1e-15.
tanh(a), |a| <= 20 (TANH_BOUND = 6e-15): b = |a|, E = expm1(2b) (2b exact), y = +-RN(E / RN(E + 2)).
  tanh b = T/(T + 2), T = e^(2b) - 1 >= 0; a relative error e of T changes T/(T + 2) by a factor
  (1 + e)/(1 + e T/(T + 2)), within |e|/(1 - |e|) of 1; with the two roundings: < 6e-15. tanh(+-0)
  = +-0 exactly (E = 0).
log(a), a normal positive finite (LOG_BOUND = 2.7e-15), and log1p(a), -1 < a <= 2^1000, |a| >= 2^-30
(LOG1P_BOUND = 2.9e-15):
  log1p: s + c = 1 + a exactly (TwoSum: s = RN(1 + a), c its error, |c| <= u s); log: s = a, c = 0.
  s = 2^e m with m in [RN(sqrt 2)/2, RN(sqrt 2)] (from its bits, exact); f = m - 1 exact (Sterbenz);
  z = RN(f / RN(2 + f)), |z| <= 0.17158, within 2u/(1 - u) relative of f/(2 + f);
  log m = 2 atanh z = 2 z Q(z^2), Q(w) = sum w^i/(2i + 1); q = Horner of its terms i <= 9 in
  w = RN(z^2) (c_i = RN(1/(2i + 1))), w <= 0.02944: Horner <= gamma_18 Q(w) < 2.03e-15 (Q < 1.0101),
  truncation <= w^10/21 / (1 - w) < 2.4e-17, the coefficients' rounding < u (Q - 1) < 1.2e-18, w's
  rounding moves Q by < u w Q'(w) < 0.011 u;
  lm = 2 RN(z q): within (2u/(1 - u))/(1 - z^2) (atanh's condition) + 2.06e-15 + u < 2.4e-15 of log m.
  L = RN(e LN2H + RN(e LN2L + lm)), ln2 = LN2H + LN2L + l, LN2H 42 bits (e LN2H exact, |e| <=
  1075), |l| <= 2^-96. e = 0: L = lm exactly. e != 0: |log s| >= ln2 - log RN(sqrt 2) > 0.34657, so the
  absolute errors (2.4e-15 0.3466 of lm, u 0.347 of the inner sum, u 1075 2^-42 of e LN2L,
  1075 2^-96) are < 2.52e-15 |log s|, and the outer rounding adds u: L within 2.7e-15 of log s.
  log1p adds RN(c / s) (within 1.01 u of log(1 + c/s), and u of it: < 1.5 u^2 absolute) with a
  final rounding; since |log1p a| >= 2^-31 and |log s - log1p a| <= 1.01 u, the total is within
  2.7e-15 (1 + 2^-21) + 1.5 u^2 2^31 + u < 2.82e-15 relative.
tests/test_elem64.py checks every bound against MPFR on fp32 arguments (every region) and random
binary64 ones, and the bounds against libm.B.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from mishaudit.eval.clib_loops import _c1d, _c2d

EXP, EXPM1, LOG, LOG1P, TANH = 0, 1, 2, 3, 4  # crkernel's operation codes
OPS = {"exp": EXP, "expm1": EXPM1, "log": LOG, "log1p": LOG1P, "tanh": TANH}
EXP_BOUND = 1.6e-15
EXPM1_BOUND = 5.7e-15
TANH_BOUND = 6e-15
LOG_BOUND = 2.7e-15
LOG1P_BOUND = 2.9e-15
BOUNDS = {"exp": EXP_BOUND, "expm1": EXPM1_BOUND, "log": LOG_BOUND, "log1p": LOG1P_BOUND, "tanh": TANH_BOUND}
MAX_BOUND = max(BOUNDS.values())  # the bound crkernel's narrower decision margins rest on


def _truncated(v: float, low: int) -> float:
    """v with the `low` lowest bits of its binary64 significand cleared."""
    return float(np.int64(np.float64(v).view(np.int64) & ~np.int64((1 << low) - 1)).view(np.float64))


def _tables():
    """2^(j/64) for j < 64 and the split constants (the docstring's), from 100-bit mpmath values."""
    import mpmath

    with mpmath.workprec(100):
        t = np.array([float(mpmath.mpf(2) ** (mpmath.mpf(j) / 64)) for j in range(64)])
        ln2 = mpmath.log(2)
        c1 = _truncated(float(ln2 / 64), 21)  # 32 significant bits
        h = _truncated(float(ln2), 11)  # 42 significant bits
        return t, c1, float(ln2 / 64 - c1), h, float(ln2 - h), float(64 / ln2)


_T, _C1, _C2, _LN2H, _LN2L, _INV = _tables()
_SHIFT = 1.5 * 2.0**52
_SQRT2 = 1.4142135623730951  # RN(sqrt 2): the split point of m (any value near sqrt 2 keeps |z| < 0.1716)
_EC = (1.0 / 6, 1.0 / 24, 1.0 / 120)
_M1 = tuple(1.0 / math.factorial(i + 1) for i in range(13))  # c_i = RN(1/(i+1)!), i <= 12
_AT = tuple(1.0 / (2 * i + 1) for i in range(10))  # RN(1/(2i + 1)), i <= 9


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def exp64(a):  # pragma: no cover - compiled
    """e^a for |a| <= 700 (EXP_BOUND relative; the docstring's steps)."""
    kd = (a * _INV + _SHIFT) - _SHIFT
    k = np.int64(kd)
    r = (a - kd * _C1) - kd * _C2
    r2 = r * r
    p = (1.0 + r) + r2 * ((0.5 + r * _EC[0]) + r2 * (_EC[1] + r * _EC[2]))
    j = k & 63
    m = (k - j) >> 6
    return (_T[j] * p) * np.int64((m + 1023) << 52).view(np.float64)


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def expm1_64(a):  # pragma: no cover - compiled
    """e^a - 1 for |a| <= 700 (EXPM1_BOUND relative)."""
    if abs(a) >= 0.35:
        return exp64(a) - 1.0
    c = _M1
    a2 = a * a
    a4 = a2 * a2
    q = (((c[0] + a * c[1]) + a2 * (c[2] + a * c[3])) + a4 * ((c[4] + a * c[5]) + a2 * (c[6] + a * c[7]))
         + (a4 * a4) * (((c[8] + a * c[9]) + a2 * (c[10] + a * c[11])) + a4 * c[12]))
    return a * q


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def tanh64(a):  # pragma: no cover - compiled
    """tanh a for |a| <= 20 (TANH_BOUND relative; +-0 exact)."""
    e = expm1_64(2.0 * abs(a))
    return math.copysign(e / (e + 2.0), a)


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _log_sc(s, c):  # pragma: no cover - compiled
    """log(s) + RN(c / s) rounded once more, s positive normal (log: c = 0; log1p: s + c = 1 + a)."""
    bits = np.float64(s).view(np.int64)
    e = ((bits >> 52) & 0x7FF) - 1023
    m = np.int64((bits & ((np.int64(1) << 52) - 1)) | (np.int64(1023) << 52)).view(np.float64)  # in [1, 2)
    if m > _SQRT2:
        m = m * 0.5
        e += 1
    f = m - 1.0
    z = f / (2.0 + f)
    w = z * z
    c9 = _AT
    w2 = w * w
    w4 = w2 * w2
    q = (((c9[0] + w * c9[1]) + w2 * (c9[2] + w * c9[3])) + w4 * ((c9[4] + w * c9[5]) + w2 * (c9[6] + w * c9[7]))
         + (w4 * w4) * (c9[8] + w * c9[9]))
    lm = 2.0 * (z * q)
    ed = np.float64(e)
    return (ed * _LN2H + (ed * _LN2L + lm)) + c / s


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def log64(a):  # pragma: no cover - compiled
    """log a for a positive normal finite binary64 a (LOG_BOUND relative)."""
    return _log_sc(a, 0.0)


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def log1p64(a):  # pragma: no cover - compiled
    """log(1 + a) for -1 < a <= 2^1000, |a| >= 2^-30 (LOG1P_BOUND relative)."""
    s = 1.0 + a
    bv = s - 1.0
    av = s - bv
    c = (1.0 - av) + (a - bv)
    return _log_sc(s, c)


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def covered(op, v):  # pragma: no cover - compiled
    """Whether op(v) lies in the domain of its function here (the docstring's)."""
    if op == EXP or op == EXPM1:
        return abs(v) <= 700.0
    if op == TANH:
        return abs(v) <= 20.0
    if op == LOG:
        return 2.2250738585072014e-308 <= v < np.inf
    if op == LOG1P:
        return -1.0 < v <= 2.0**1000 and abs(v) >= 2.0**-30
    return False


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def ours(op, v):  # pragma: no cover - compiled
    """op(v) by the functions above (v `covered`)."""
    if op == EXP:
        return exp64(v)
    if op == EXPM1:
        return expm1_64(v)
    if op == TANH:
        return tanh64(v)
    if op == LOG:
        return log64(v)
    return log1p64(v)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def value(op, addr, nargs, v, w):  # pragma: no cover - compiled
    """f(v[, w]) in binary64: ours where `covered`, else the host's C function at `addr`."""
    if covered(op, v):
        return ours(op, v)
    if nargs == 1:
        return _c1d(addr, v)
    return _c2d(addr, v, w)
