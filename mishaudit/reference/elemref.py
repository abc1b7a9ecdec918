"""A fast exact reference for the specs that are one elementary operation of x, (exp x), (exp2 x),
(expm1 x), (log x), (log1p x), (tanh x), for binary16, bfloat16 and binary32 inputs.

What it rests on (u = 2^-53, the binary64 unit roundoff; x is a value of the format (p, emin, emax),
p <= 24, q0 = emin - p + 1 so that ulp(0) = 2^q0):

  B. The host's binary64 exp, exp2, expm1, log, log1p and tanh (glibc's double functions by their
    addresses, as eval/libm.py's `host` calls them) satisfy |y - f(a)| <= B |f(a)|, B = 2^-44,
    wherever 2^-1000 <= |f(a)| < 2^1024: the bound the `cr` libm model already rests on (libm.py's
    docstring: 512 binary64 ulps over glibc's documented worst cases of a few ulps; checked at
    start-up by libm.verify_host_libm against MPFR, which refuses a libm off by more than B/8).
    Every host value used below lies in that range (hence the thresholds 340, -680 and the
    floors below). Then |r - y| <= B|y|/(1 - B) < B'|y|, B' = B + 2^-52 (libm's _BW, which
    also covers the rounding of B'|y|): r lies in [y - B'|y|, y + B'|y|]. A value derived
    from one host exp or exp2 through a few binary64 operations (t = 2z/(1 + z) below) keeps a
    relative error under B + 4u < 2^-43.
  The own exp: fastref.py's exp_parts (proven there), exp(a) = P 2^k (1 + eta), |eta| <= 2^-47.9,
    for binary32 values |a| < 1024, P and k kept apart (no underflow).
  Series near 0 (`_series`, for |v| <= 2^-7), each c evaluated by Horner in binary64 with a
    relative rounding error of at most 6u (5u for tanh: x^3 and 1/3 - ...; 2u to 3.4u for the
    others, whose inner terms are below 2^-11 of the leading one), and the remainder bounded
    relative to c by K |v|^m:
      tanh x = x - c, c = x^3/3 - 2x^5/15 + 17x^7/315 +- R: the coefficients of tanh are
        2 (2^2n - 1) zeta(2n) / pi^2n < 3.29 (4/pi^2)^n, so R <= 0.036 |x|^9: K = 0.11, m = 6;
      expm1 x = x + c, c = sum_{n=2..6} x^n/n!, remainder <= 1.02 |x|^7/7!: K = 2^-11, m = 5;
      log1p x = x - c, c = sum_{n=2..7} -(-x)^n/n, remainder <= x^8/(8(1 - |x|)): K = 0.3, m = 6
        (log: the same in u = x - 1, exact by Sterbenz, to the u^6 term: K = 0.3, m = 5);
      exp w = 1 + c, c = sum_{n=1..6} w^n/n!, remainder <= 1.01 |w|^7/7!: K = 2^-12, m = 6;
        exp2 x = exp(w), w = x RN64(ln 2) (relative error 1.31u, folded into the 6u).
    So r = base + t within te = |t| (2^-50 + K |v|^m), base = x, 1 or u.

Resolution. From B, d = (r - rn)/ulp(r) is enclosed with radius B'|y| 2^(p-1-E) < B' 2^p, that is
2^-20 (1 + 2^-8) ulp for binary32: the enclosure can be 2^-19 (1 + 2^-8) wide, over decide.py's
2 D_RES = 2^-19, so every decision here uses d_res = RES = 1e-6 ulp (the resolution every figure
is claimed to; the reported d, the enclosure's centre, is within 1e-6 ulp of the true d). The
series resolve d to 2^-35 ulp and better.

Regions (`_classify`). Closed forms: RN(r), the binade and the side of d are facts, d is the tail.
  every op: x = 0, log(1), exp2 of an integer in [q0, emax]: r is a format value, d = 0.
  tanh, 0 < |x| < 2^-(p//2 + 3): 0 < |x| - |tanh x| <= |x|^3/3 (the series alternates with
    decreasing terms) and x^2 < 2^-(p+5), while g, the gap from x to the next value toward 0, is
    at least |x| 2^-p: r lies within g/96 of x, toward 0. RN(r) = x, ulp(r) = g, E = binade(x),
    less one where |x| = 2^k (r lies just below it, in binade k - 1).
  expm1, log1p, 0 < |x| < 2^-(p+2): |r - x| = c < 0.51 x^2 < g/7 (expm1: x^2/2 e^xi; log1p:
    x^2/(2(1 - |x|))), r above x for expm1 and below it for log1p, g the gap on that side:
    RN(r) = x, E = binade(x) less one where |x| = 2^k and r is toward 0.
  exp, exp2, 0 < |x| < 2^-(p+3): |r - 1| < 1.001 |x| < 2^-(p+3) 1.001, inside the midpoints
    1 - 2^-(p+1) and 1 + 2^-p: RN(r) = 1, E = 0 for x > 0, -1 for x < 0.
  tanh, |x| >= 0.35 (p + 2): 1 - |tanh x| = t = 2z/(1 + z) < 2z, z = e^-2|x| < 2^(-1.0099 (p+2)),
    so t < 2^-(p+1): RN(r) = sign(x), E = -1, d = -sign(x) t 2^p, |d| < 0.47. z is the host's
    exp(-2|x|) for |x| < 340 (z > 2^-1000); beyond, t < 2e^-680 < 2^-980 and d is the negligible
    -sign(x) TINY_D (decide.py: reads as 0, only the side counts).
  expm1, x < -(p+2) ln2: r = -1 + e^x, e^x < 2^-(p+2): RN(r) = -1, E = -1, d = e^x 2^p < 1/4
    (the host's exp for x >= -680; below, e^x < 2^-980: TINY_D).
  exp, x < (emin - p - 1) ln2: r < 2^(q0-2): RN(r) = +0, E = emin, d = e^x 2^-q0 < 1/4, from
    the own exp as P 2^(k - q0) for x >= -1020 (below, r < 2^-1471: TINY_D).
  exp2, x < q0 - 1: r = 2^x < 2^(q0-1): RN(r) = +0, E = emin, d = 2^(x - q0) < 1/2, for an
    integer exactly, else exp2(f) 2^(n - q0), n = floor(x), f = x - n (exact) by the host
    (n >= -1100; below, TINY_D). The tie x = q0 - 1 (d = 1/2 exactly: decide accepts
    |d| < 1/2 only) and the x whose 2^x overflows are left undecided.
Enclosures (decided by decide.py's criteria (1)-(5), d_res = RES):
  series: the same series where the closed forms end, up to |x| < 2^-12 (|x - 1| < 2^-12 for
    log). base - RN(r) is exact (format values within a factor of 2), so
    d = ((base - rn) + t) 2^(p-1-E) carries no cancellation: these decide the inputs near a format
    value or a midpoint that the host's bound cannot (in binary32, log(1 + 2^-23) lies 2^-23.6 ulp
    from a format value, log1p(2^-24) 2^-25.6 ulp from a midpoint, exp(2^-23 - 2^-47) 2^-47.6 ulp
    from a format value).
  the host region, everything else: y = the host's value, d = (y - rn) 2^(p-1-E) (the
    subtraction is exact: y and rn within half an ulp of the format), radius B'|y| 2^(p-1-E).
Each enclosure of r is widened by 2^-52 of its centre and one binary64 step each way (decide.py's
`outward`), each enclosure of d by 2^-52 |d|, 2^-50 of its radius and one step (`_bounds`).

How an input is decided. A compiled pass (numba) classifies the inputs and calls the host
functions they need (a loop of its own: the calls then overlap), then forms each enclosure: a
closed form writes its facts (its d's bounds checked inside (-1/2, 1/2) and resolved, as decide
requires), an enclosure is decided by decide.py's criteria (1)-(5) without facts, transcribed
element by element (RN in the format as formats.round_to, binades as float_ends, d's bounds as
`_d_bounds`): decide's numpy arrays cost some 60 ns an input, this whole pass 15 to 25 ns. What
the pass leaves undecided, and every input with `check=True`, goes through decide.py's `decide`
itself with its region's facts (sign: r > 0 at exp's underflow; E_known: the closed forms' binade
where |x| = 2^k or r is near 1; side_known: the saturations and underflows; exact); the tests
check over every fp16 and bf16 input and fp32 samples that both give the same bits. ok is False
where decide leaves an input undecided (r within the bound of a rounding boundary or a format
value: about 2e-6 to 4.5e-6 of the host region's inputs, so some 900 (exp), 1400 (exp2), 1100
(expm1), 4700 (log), 3400 (log1p) and 1100 (tanh) inputs of an exhaustive binary32 sweep; none of
fp16 or bf16 but exp2's tie) and outside the domain: table.py sends those to MPFR (specref.py).
numba is imported with this module (table.py imports it on first use).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from mishaudit.eval.clib_loops import _c1d
from mishaudit.formats import FP32, Format
from mishaudit.reference import fastref
from mishaudit.reference.decide import NO_E, TINY_D, decide, float_ends, outward

OPS = ("exp", "exp2", "expm1", "log", "log1p", "tanh")
EXP, EXP2, EXPM1, LOG, LOG1P, TANH = range(6)
RES = 1e-6  # decide's d_res: d known to 1e-6 ulp (module docstring)
SERIES = 2.0**-12  # below (|x - 1| for log): the series regions
SAT_HOST = 340.0  # tanh: host exp(-2|x|) >= e^-680 > 2^-1000 (inside B's range) below, negligible above
M1_HOST = -680.0  # expm1: host exp(x) below -1 likewise
OWN_EXP = -1020.0  # exp: the own exp from here up (|a| < 1024)
EXP2_FLOOR = -1100  # exp2: 2^n below 2^-1100 is negligible (2^(n - q0) < 2^-950)
CHUNK = 1 << 15
_LN2 = 0.6931471805599453  # RN64(ln 2), relative error < 2^-53.5
_COEFFS = np.array(fastref.COEFFS)
_L1, _L2, _INV_LN2 = fastref.L1, fastref.L2, fastref.INV_LN2
_CLOSED, _ENCLOSED, _INVALID = 0, 1, 2  # how an input is decided: by facts, by its enclosure, not at all
(R_INVALID, R_EXACT, R_TINY, R_SERIES, R_HOST, R_SAT, R_SAT_FAR, R_M1, R_M1_FAR, R_UNDER, R_UNDER_FAR, R_POW2_UNDER,
 R_EXP2_UNDER) = range(13)  # the regions of the module docstring
_NOE = NO_E
_ROUND_ERR = 2.0**-50  # relative rounding error of a series' binary64 evaluation (at most 6u: docstring)
_HOST_T_ERR = 2.0**-43  # relative error of t from one host exp/exp2 (B + 4u < 2^-43.9)
_OWN_ERR = 2.0**-47  # the same from the own exp (2^-47.9 / (1 - 2^-47.9) < 2^-47.8)
_SAT_T = 2.0**-980  # tanh beyond SAT_HOST: 1 - |tanh x| < 2e^-680 < 2^-980; expm1 below M1_HOST: e^x < 2^-980
_FAR = 2.0**-1000  # exp and exp2 far below the subnormals: r < 2^-1100 < _FAR (a normal binary64 number)
_WIDEN = 1.0 + 2.0**-50  # a radius' own roundings
_U2 = 2.0**-52  # a rounding of the centre (two binary64 half-ulps)


@numba.njit(cache=True, nogil=True, inline="always")
def _scale(v, k):
    """v 2^k rounded once, as ldexp (and np.ldexp) computes it: an exact multiplication by 2^k built from
    its bits where 2^k is a normal binary64 number (ldexp is a slow library call)."""
    if -1022 <= k <= 1023:
        return v * np.int64((k + 1023) << 52).view(np.float64)
    return math.ldexp(v, k)


@numba.njit(cache=True, nogil=True, inline="always")
def _up(v):
    """np.nextafter(v, inf) from the bits, without a branch on v's sign (a random one, mispredicted)."""
    b = np.float64(v).view(np.int64)
    r = np.int64(b + 1 - 2 * ((b >> 63) & 1)).view(np.float64)  # one step away from 0 for v > 0, toward it below
    r = 5e-324 if v == 0.0 else r
    return r if v < np.inf else v  # inf and NaN stay


@numba.njit(cache=True, nogil=True, inline="always")
def _down(v):
    """np.nextafter(v, -inf) from the bits."""
    return -_up(-v)


@numba.njit(cache=True, nogil=True)
def _exp_parts(a):
    """fastref.exp_parts for one binary32 value |a| < 1024: exp(a) = P 2^k (1 + eta), |eta| <= 2^-47.9."""
    k = np.rint(a * _INV_LN2)
    r = (a - k * _L1) - k * _L2
    p = _COEFFS[0]
    for j in range(1, len(_COEFFS)):
        p = p * r
        p = p + _COEFFS[j]
    return p, np.int64(k)


@numba.njit(cache=True, nogil=True, inline="always")
def _round(v, p, emin, fmax, f32):
    """formats.round_to for one binary64 value: RN in the format, ties to even, overflow to inf."""
    if f32:
        return np.float64(np.float32(v))
    if v == 0.0 or not (abs(v) < np.inf):
        return v
    e = math.frexp(v)[1]
    q = max(e - 1, emin) - p + 1
    r = math.ldexp(np.rint(math.ldexp(v, -q)), q)
    if abs(r) > fmax:
        r = math.copysign(np.inf, r)
    return r


@numba.njit(cache=True, nogil=True, inline="always")
def _sign(v):
    return np.int64(v > 0) - np.int64(v < 0)


@numba.njit(cache=True, nogil=True, inline="always")
def _binade(v, s, emin):
    """max(floor(log2|v|), emin), emin for a zero (s = 0): float_ends' and decide's (3)."""
    if s == 0:
        return emin
    e = ((np.float64(v).view(np.int64) >> 52) & 0x7FF) - 1023  # the exponent field (frexp is a library call)
    if e == -1023:  # a binary64 subnormal
        e = math.frexp(v)[1] - 1
    return max(e, emin)


@numba.njit(cache=True, nogil=True, inline="always")
def _bounds(b0, t0, ta, te, rn, E, p):
    """(dc, dlo, dhi) of d for r = b0 + t0 2^ta within te 2^ta, as `_d_bounds` computes them."""
    k = p - 1 - E
    dd = _scale(b0 - rn, k) + _scale(t0, ta + k)
    err = _scale(te, ta + k) * _WIDEN + abs(dd) * _U2
    return dd, _down(dd - err), _up(dd + err)


@numba.njit(cache=True, nogil=True, inline="always")
def _sided(dd, side):
    """decide's d: the estimate where it has the certain side, else that side with magnitude >= TINY_D."""
    if _sign(dd) == side:
        return dd
    return math.copysign(max(abs(dd), TINY_D), side)


@numba.njit(cache=True, nogil=True, inline="always")
def _power_of_two(ax):
    """(|x| is a power of two, floor(log2|x|)) for a normal binary64 ax > 0, from the bits."""
    b = np.float64(ax).view(np.int64)
    return (b & 0xFFFFFFFFFFFFF) == 0, ((b >> 52) & 0x7FF) - 1023


@numba.njit(cache=True, nogil=True, inline="always")
def _tiny(op, p):
    """The closed-form threshold of |x| near 0 (module docstring): tanh 2^-(p//2 + 3); expm1 and log1p
    2^-(p+2); exp and exp2 2^-(p+3) (computed once per call: a power is a library call)."""
    if op == TANH:
        return 2.0 ** -(p // 2 + 3)
    if op == EXPM1 or op == LOG1P:
        return 2.0 ** -(p + 2)
    return 2.0 ** -(p + 3)


@numba.njit(cache=True, nogil=True, inline="always")
def _near_zero(v, ax, tiny):
    """The regions around x = 0 shared by tanh, expm1, exp and log1p: R_EXACT at 0, R_TINY below
    `tiny`, R_SERIES below SERIES; -1 beyond."""
    if v == 0.0:
        return R_EXACT
    if ax < tiny:
        return R_TINY
    if ax < SERIES:
        return R_SERIES
    return -1


@numba.njit(cache=True, nogil=True, inline="always")
def _classify(op, v, p, emin, emax, tiny):
    """The region of input v (module docstring), one of the R_ codes."""
    ax = abs(v)
    q0 = emin - p + 1
    if not (ax < np.inf):
        return R_INVALID
    if op == TANH:
        r = _near_zero(v, ax, tiny)
        if r >= 0:
            return r
        if ax < 0.35 * (p + 2):
            return R_HOST
        return R_SAT if ax < SAT_HOST else R_SAT_FAR
    if op == EXPM1:
        r = _near_zero(v, ax, tiny)
        if r >= 0:
            return r
        if v < -(p + 2) * _LN2:
            return R_M1 if v >= M1_HOST else R_M1_FAR
        return R_HOST
    if op == EXP:
        r = _near_zero(v, ax, tiny)
        if r >= 0:
            return r
        if v < (emin - p - 1) * _LN2:
            return R_UNDER if v >= OWN_EXP else R_UNDER_FAR
        return R_HOST
    if op == EXP2:
        if v == np.rint(v):
            if v > emax or v == q0 - 1:  # overflow; the exact tie 2^(q0-1) = half of ulp(0)
                return R_INVALID
            if v >= q0:
                return R_EXACT
            return R_POW2_UNDER if v >= EXP2_FLOOR else R_UNDER_FAR
        if ax < tiny:
            return R_TINY
        if ax < SERIES:
            return R_SERIES
        if v < q0 - 1:
            return R_EXP2_UNDER if np.floor(v) >= EXP2_FLOOR else R_UNDER_FAR
        return R_HOST
    if op == LOG:
        if not (v > 0):
            return R_INVALID
        if v == 1.0:
            return R_EXACT
        if abs(v - 1.0) < SERIES:
            return R_SERIES
        return R_HOST
    if op == LOG1P:
        if not (v > -1.0):
            return R_INVALID
        r = _near_zero(v, ax, tiny)
        if r >= 0:
            return r
        return R_HOST
    return R_INVALID


@numba.njit(cache=True, nogil=True, inline="always")
def _host_value(reg, v, a_f, a_exp, a_exp2):
    """The one host libm value region `reg` needs (0 where it needs none)."""
    if reg == R_HOST:
        return _c1d(a_f, v)
    if reg == R_SAT:
        return _c1d(a_exp, -2.0 * abs(v))  # -2|v| exact
    if reg == R_M1:
        return _c1d(a_exp, v)
    if reg == R_EXP2_UNDER:
        return _c1d(a_exp2, v - np.floor(v))  # in (0, 1), exact
    return 0.0


@numba.njit(cache=True, nogil=True, inline="always")
def _series(op, v):
    """(b0, t, te) of the series regions near 0 (and near 1 for log): r = b0 + t within te (module
    docstring: te = |t| (2^-50 + K |v|^m), the rounding of the evaluation and the remainder)."""
    ax = abs(v)
    if op == TANH:  # x - x^3/3 + 2x^5/15 - 17x^7/315
        x2 = ax * ax
        c = ax * x2 * (1.0 / 3.0 - x2 * (2.0 / 15.0 - x2 * (17.0 / 315.0)))
        return v, -c if v > 0 else c, c * (_ROUND_ERR + 0.11 * x2 * x2 * x2)
    if op == EXPM1:  # x + sum_{n=2..6} x^n/n!
        c = v * v * (0.5 + v * (1.0 / 6.0 + v * (1.0 / 24.0 + v * (1.0 / 120.0 + v / 720.0))))
        return v, c, c * (_ROUND_ERR + 2.0**-11 * ax * ax * ax * ax * ax)
    if op == LOG1P or op == LOG:  # u - sum_{n=2..7} (-u)^n/n, u = x (log: x - 1, exact by Sterbenz)
        u = v if op == LOG1P else v - 1.0
        c = u * u * (0.5 - u * (1.0 / 3.0 - u * (0.25 - u * (0.2 - u * (1.0 / 6.0 - u / 7.0)))))
        au = abs(u)
        return u, -c, c * (_ROUND_ERR + 0.3 * au * au * au * au * au * au)
    # exp, exp2: 1 + sum_{n=1..6} w^n/n!, w = x resp. x ln2
    w = v if op == EXP else v * _LN2
    c = w * (1.0 + w * (0.5 + w * (1.0 / 6.0 + w * (1.0 / 24.0 + w * (1.0 / 120.0 + w / 720.0)))))
    aw = abs(w)
    w2 = aw * aw
    return 1.0, c, abs(c) * (_ROUND_ERR + 2.0**-12 * w2 * w2 * w2)


@numba.njit(cache=True, nogil=True, inline="always")
def _region(op, v, reg, hv, p, emin, bprime):
    """Input v's enclosure and facts in its region `reg` (hv: its host value): (kind, b0, t0, ta, te,
    sign, E_known, side, exact, rn, E), r = b0 + t0 2^ta within te 2^ta; rn and E are facts where the
    kind is _CLOSED."""
    kind = _CLOSED
    b0 = 0.0
    t0 = 0.0
    ta = np.int64(0)
    te = 0.0
    sg = 0
    Ek = np.int64(_NOE)
    sd = 0
    ex = False
    rnf = 0.0
    Ef = np.int64(emin)
    ax = abs(v)
    s = 1.0 if v > 0 else -1.0
    if reg == R_INVALID:
        kind = _INVALID
    elif reg == R_HOST:
        kind, b0, te = _ENCLOSED, hv, bprime * abs(hv)
        if not (abs(hv) < np.inf):
            kind = _INVALID
    elif reg == R_EXACT:
        ex = True
        if op == EXP:
            b0, Ef = 1.0, np.int64(0)
        elif op == EXP2:
            n = np.int64(v)
            b0, Ef = math.ldexp(1.0, n), np.int64(max(n, emin))
        elif op == LOG:
            b0 = 0.0
        else:  # tanh, expm1, log1p at +-0
            b0 = v
        rnf = b0
    elif reg == R_TINY or reg == R_SERIES:
        b0, t0, te = _series(op, v)
        if reg == R_SERIES:
            kind = _ENCLOSED
        elif op == EXP or op == EXP2:  # RN(r) = 1
            Ef = np.int64(0) if v > 0 else np.int64(-1)
            rnf, Ek = 1.0, Ef
        else:  # RN(r) = x; |r| below |x| for tanh, expm1 of x < 0 and log1p of x > 0
            rnf = v
            down = op == TANH or (op == EXPM1 and v < 0) or (op == LOG1P and v > 0)
            pw, k = _power_of_two(ax)
            Ef = max(k - 1 if (pw and down) else k, emin)
            if pw:
                Ek = Ef
    elif reg == R_SAT or reg == R_SAT_FAR:  # tanh -> +-1
        b0, rnf, Ef, Ek, sd = s, s, np.int64(-1), np.int64(-1), -int(s)
        if reg == R_SAT:
            tt = 2.0 * hv / (1.0 + hv)
            t0, te = -s * tt, tt * _HOST_T_ERR
        else:
            te = _SAT_T
    elif reg == R_M1 or reg == R_M1_FAR:  # expm1 -> -1
        b0, rnf, Ef, Ek, sd = -1.0, -1.0, np.int64(-1), np.int64(-1), 1
        if reg == R_M1:
            t0, te = hv, hv * _HOST_T_ERR
        else:
            te = _SAT_T
    else:  # exp, exp2 -> +0: R_UNDER, R_POW2_UNDER, R_EXP2_UNDER, R_UNDER_FAR
        sg, sd = 1, 1
        if reg == R_UNDER:
            P, k = _exp_parts(v)
            t0, ta, te = P, k, P * _OWN_ERR
        elif reg == R_POW2_UNDER:
            t0, ta = 1.0, np.int64(v)
        elif reg == R_EXP2_UNDER:
            t0, ta, te = hv, np.int64(np.floor(v)), hv * _HOST_T_ERR
        else:  # r < 2^-1100, far below the normal binary64 _FAR (subnormal arithmetic is slow)
            te = _FAR
    return kind, b0, t0, ta, te, sg, Ek, sd, ex, rnf, Ef


@numba.njit(cache=True, nogil=True)
def _kernel(op, x, p, emin, emax, fmax, f32, a_f, a_exp, a_exp2, bprime, dres, check,
            rn, d, E, r64, ok, idx, lo, hi, base, t, tau, terr, fsign, fE, fside, fexact, reg, hv):
    """Two passes over x: the regions and the host values they need (the calls alone, which then
    overlap), then each input's enclosure and decision: the closed forms and the enclosures decided
    here write rn, d, E, ok; the rest (all of them when `check`) are listed in idx[:m] with their
    enclosures and facts for decide.py. Returns m."""
    tiny = _tiny(op, p)
    for i in range(len(x)):
        reg[i] = _classify(op, x[i], p, emin, emax, tiny)
        hv[i] = _host_value(reg[i], x[i], a_f, a_exp, a_exp2)
    m = 0
    for i in range(len(x)):
        kind, b0, t0, ta, te, sg, Ek, sd, ex, rnf, Ef = _region(op, x[i], reg[i], hv[i], p, emin, bprime)
        vv = b0 + _scale(t0, ta) if t0 != 0.0 else b0  # (b0 + 0 would turn -0 into +0)
        r64[i] = vv
        if kind == _INVALID:
            lo_i, hi_i = np.nan, np.nan
        elif ex:
            lo_i, hi_i = vv, vv
        else:
            rad = _scale(te, ta) * _WIDEN + abs(vv) * _U2
            lo_i, hi_i = _down(vv - rad), _up(vv + rad)
        good = False
        if not check and kind == _CLOSED:
            dd, dlo, dhi = _bounds(b0, t0, ta, te, rnf, Ef, p)
            bs = np.int64(dlo > 0) - np.int64(dhi < 0)
            side = bs if bs != 0 else sd
            if dlo > -0.5 and dhi < 0.5 and dlo <= dhi and dhi - dlo <= 2 * dres and (side != 0 or ex):
                good = True
                rn[i], E[i] = rnf, Ef
                d[i] = 0.0 if ex else _sided(dd, side)
        elif not check and kind == _ENCLOSED:  # decide.py's (1)-(5), no facts
            a = _round(lo_i, p, emin, fmax, f32)
            b = _round(hi_i, p, emin, fmax, f32)
            sl, sh = _sign(lo_i), _sign(hi_i)
            sgn = sl if (sl == sh and sl != 0) else 0
            if sgn != 0 and a == b and abs(a) < np.inf:
                el, eh = _binade(lo_i, sl, emin), _binade(hi_i, sh, emin)
                if el == eh:
                    rnv = a if a != 0 else math.copysign(0.0, sgn)
                    dd, dlo, dhi = _bounds(b0, t0, ta, te, rnv, el, p)
                    bs = np.int64(dlo > 0) - np.int64(dhi < 0)
                    if dlo > -0.5 and dhi < 0.5 and dlo <= dhi and dhi - dlo <= 2 * dres and bs != 0:
                        good = True
                        rn[i], E[i], d[i] = rnv, el, _sided(dd, bs)
        ok[i] = good
        if not good:
            idx[m], lo[m], hi[m], base[m], t[m], tau[m], terr[m] = i, lo_i, hi_i, b0, t0, ta, te
            fsign[m], fE[m], fside[m], fexact[m] = sg, Ek, sd, ex
            m += 1
    return m


def _d_bounds(fmt: Format, base, t, tau, terr):
    """decide's d_bounds for r = base + t 2^tau within terr 2^tau (base - rn exact)."""

    def bounds(rn, E):
        k = fmt.p - 1 - np.asarray(E, dtype=np.int64)
        dd = np.ldexp(base - rn, k) + np.ldexp(t, tau + k)
        err = np.ldexp(terr, tau + k) * (1.0 + 2.0**-50) + np.abs(dd) * 2.0**-52
        return (*outward(dd - err, dd + err), dd)

    return bounds


def _addresses(op: str) -> tuple[int, int, int]:
    """The host's binary64 op, exp and exp2 (after libm's start-up check of B)."""
    from mishaudit.eval import clib, libm

    libm.verify_host_libm()
    name = libm.IMPLEMENTATIONS["cr"]
    return clib.function(name[op]), clib.function(name["exp"]), clib.function(name["exp2"])


def elementary_reference(op: str, xs: np.ndarray, fmt: Format, check: bool = False):
    """(rn, d, E, r64, ok) of RN(op(x)) for values `xs` of fmt (p <= 24); ok False where undecided
    (those go to MPFR) and outside op's domain. `check`: every input through decide.py's decide
    (the same bits, slower; for the tests)."""
    if fmt.p > 24:
        raise ValueError("the elementary reference is proven for binary16, bfloat16 and binary32 only")
    if op not in OPS:
        raise ValueError(f"no elementary reference for {op!r}")
    x = np.ascontiguousarray(xs, dtype=np.float64).ravel()
    n = len(x)
    rn, d, r64 = np.empty(n), np.empty(n), np.empty(n)  # every entry is written (by the kernel or decide)
    E = np.empty(n, dtype=np.int64)
    ok = np.empty(n, dtype=bool)
    if not n:
        return rn, d, E, r64, ok
    from mishaudit.eval.libm import B

    addr = _addresses(op)
    bprime = B + 2.0**-52  # B' (module docstring; libm's _BW)
    c = min(n, CHUNK)
    idx, tau, fE = (np.empty(c, dtype=np.int64) for _ in range(3))
    lo, hi, base, t, terr = (np.empty(c) for _ in range(5))
    fsign, fside = np.empty(c, dtype=np.int64), np.empty(c, dtype=np.int64)
    fexact = np.empty(c, dtype=np.bool_)
    reg, hv = np.empty(c, dtype=np.int8), np.empty(c)
    for s in range(0, n, CHUNK):
        e = min(s + CHUNK, n)
        m = _kernel(OPS.index(op), x[s:e], fmt.p, fmt.emin, fmt.emax, fmt.max, fmt is FP32, *addr, bprime, RES,
                    check, rn[s:e], d[s:e], E[s:e], r64[s:e], ok[s:e], idx, lo, hi, base, t, tau, terr, fsign, fE,
                    fside, fexact, reg, hv)
        if m:
            with np.errstate(all="ignore"):
                dec = decide(fmt, *float_ends(lo[:m], hi[:m], fmt), _d_bounds(fmt, base[:m], t[:m], tau[:m],
                                                                              terr[:m]),
                             sign=fsign[:m], E_known=fE[:m], side_known=fside[:m], exact=fexact[:m], d_res=RES)
            j = idx[:m] + s
            rn[j], d[j], E[j], ok[j] = dec.rn, dec.d, dec.E, dec.ok
    return rn, d, E, r64, ok
