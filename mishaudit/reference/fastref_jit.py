"""fastref.py's fast reference compiled (numba): the same result, bit for bit, a few ns per input.

`jit_reference(x, fmt)` has fast_reference's contract: (rn, d, E, r64, decided) for finite values x of
fmt (p <= 24; binary16, bfloat16, binary32), in any order; undecided entries are garbage (table.py
sends them to MPFR). The proof is fastref.py's docstring, unchanged: this module performs fastref.py's
binary64 operations step for step, the same operations on the same operands in the same order
(compiled without fastmath: no FMA contraction, no reassociation; error_model="numpy"), and decides
with decide.py's criteria (1)-(5) exactly as fastref's calls of decide.decide instantiate them (the
known sign, side_known where RN(r) is 0 or x, no E_known, exact or unsettled). The tests check the
decided mask and the bits of rn, d, E and r64 on every decided entry against fast_reference.

Where it differs, in control flow and in exact constructions only:
  - no sorting: each element is classified by its value into fastref's regions, with the same bounds
    on the same sides (x < UNDER_LIMIT; UNDER_LIMIT <= x < SCALED_LIMIT; SCALED_LIMIT <= x <=
    -SERIES_LIMIT; -SERIES_LIMIT < x < 0; x = +-0; 0 < x < SERIES_LIMIT; SERIES_LIMIT <= x <=
    EXP_LIMIT; x > EXP_LIMIT). Block by block (BLOCK inputs), one pass counts the regions; a block
    wholly in one of x < UNDER_LIMIT, x > EXP_LIMIT or an exp region is done by that region's loop on
    the block itself; any other block gets one branch-free pass of the closed forms (series, x = 0,
    x < UNDER_LIMIT, x > EXP_LIMIT) on every element, then the elements of each exp region (scaled,
    negative, positive) are gathered into a list, done by that region's loop, and scattered back over
    the first pass's values. Each region's loop is branch-free (exp_parts' polynomial, then the
    decision, as selects), so LLVM vectorises it;
  - decide's where() chains are selects per element; d_bounds is evaluated for each element once,
    with decide's E (the binade of lo where it equals hi's, which the decision needs);
  - exact constructions replace library calls and generic code: pow2(k) of a float integer k from
    its bits (k + 1.5 2^52 holds k in its low bits: exact for |k| < 2^51, 2^k normal); frexp's
    exponent from the exponent field (it reads -1023 for a zero or a binary64 subnormal, which the
    max with emin, in every use, maps to emin, as it does frexp's); nextafter from the bits
    (elemref.py's _up/_down; where the value is nonzero with a known sign, as r's enclosure is, one
    step of its bits away from or toward 0); round_to as q = max(E, emin) - p + 1, rint(v 2^-q) 2^q
    with the scalings by 2^-q and 2^q as multiplications (exact here, as ldexp is: no underflow, no
    overflow), binary32's RN the float32 conversion, as in round_to.
Non-finite x are outside the contract (as for fast_reference).
"""

from __future__ import annotations

import numba
import numpy as np

from mishaudit.formats import FP32, Format
from mishaudit.reference import fastref
from mishaudit.reference.decide import D_RES, TINY_D

BLOCK = 1024  # inputs per block (a block's lists stay in L1)
_UNDER, _SCALED, _SERIES, _EXP = fastref.UNDER_LIMIT, fastref.SCALED_LIMIT, fastref.SERIES_LIMIT, fastref.EXP_LIMIT
_EPS = fastref.EPS
_L1, _L2, _INV_LN2 = fastref.L1, fastref.L2, fastref.INV_LN2
(_C0, _C1, _C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12, _C13) = fastref.COEFFS  # 1/13! ... 1/0!
_MAGIC = 6755399441055744.0  # 1.5 2^52: k + _MAGIC holds the integer k in its low bits
_RES2 = 2 * D_RES  # decide's (4): dhi - dlo <= 2 d_res
_TWO_M600 = 2.0**-600
_TWO_M44 = 2.0**-44
_TWO_M52 = 2.0**-52
_JIT = dict(cache=True, nogil=True, error_model="numpy")


@numba.njit(inline="always", **_JIT)
def _pow2f(k):
    """2^k for a float64 integer k with 2^k a normal binary64 number (pow2(k.astype(int64)), exactly)."""
    return np.int64((np.float64(k + _MAGIC).view(np.int64) + 1023) << 52).view(np.float64)


@numba.njit(inline="always", **_JIT)
def _pow2(k):
    """formats.pow2 for one int64 k."""
    return np.int64((k + 1023) << 52).view(np.float64)


@numba.njit(inline="always", **_JIT)
def _expo(v):
    """floor(log2|v|) for a normal binary64 v from the exponent field (-1023 for 0 and subnormals)."""
    return ((np.float64(v).view(np.int64) >> 52) & 0x7FF) - 1023


@numba.njit(inline="always", **_JIT)
def _up(v):
    """np.nextafter(v, inf) from the bits (elemref.py's)."""
    b = np.float64(v).view(np.int64)
    r = np.int64(b + 1 - 2 * ((b >> 63) & 1)).view(np.float64)
    r = 5e-324 if v == 0.0 else r
    return r if v < np.inf else v


@numba.njit(inline="always", **_JIT)
def _down(v):
    """np.nextafter(v, -inf) from the bits."""
    return -_up(-v)


@numba.njit(inline="always", **_JIT)
def _away(v):
    """np.nextafter(v, copysign(inf, v)) for a finite v != 0: the next binary64 number away from 0."""
    return np.int64(np.float64(v).view(np.int64) + 1).view(np.float64)


@numba.njit(inline="always", **_JIT)
def _toward(v):
    """np.nextafter(v, 0) for a finite v != 0: the next binary64 number toward 0."""
    return np.int64(np.float64(v).view(np.int64) - 1).view(np.float64)


@numba.njit(inline="always", **_JIT)
def _round(v, p, emin, fmax, f32):
    """formats.round_to for one binary64 value (module docstring)."""
    if f32:
        return np.float64(np.float32(v))
    q = max(_expo(v), emin) - p + 1
    r = np.rint(v * _pow2(-q)) * _pow2(q)
    return np.copysign(np.inf, r) if abs(r) > fmax else r


@numba.njit(inline="always", **_JIT)
def _exp_parts(a):
    """fastref.exp_parts for one value: (P, k) with k a float64 integer."""
    k = np.rint(a * _INV_LN2)
    r = (a - k * _L1) - k * _L2
    p = _C0
    p = p * r
    p = p + _C1
    p = p * r
    p = p + _C2
    p = p * r
    p = p + _C3
    p = p * r
    p = p + _C4
    p = p * r
    p = p + _C5
    p = p * r
    p = p + _C6
    p = p * r
    p = p + _C7
    p = p * r
    p = p + _C8
    p = p * r
    p = p + _C9
    p = p * r
    p = p + _C10
    p = p * r
    p = p + _C11
    p = p * r
    p = p + _C12
    p = p * r
    p = p + _C13
    return p, k


@numba.njit(inline="always", **_JIT)
def _sgn(v):
    return np.int64(v > 0) - np.int64(v < 0)


@numba.njit(inline="always", **_JIT)
def _d_out(dd, dlo, dhi, side_fact):
    """decide's side and d for the estimate dd within [dlo, dhi]: (side certain, d)."""
    bs = np.int64(1) if dlo > 0 else (np.int64(-1) if dhi < 0 else np.int64(0))
    d_side = bs if bs != 0 else side_fact
    keep = (_sgn(dd) == d_side) | (d_side == 0)
    dv = dd if keep else np.copysign(max(abs(dd), TINY_D), np.float64(d_side))
    return d_side != 0, dv


@numba.njit(inline="always", **_JIT)
def _ends_E(lo, hi, emin):
    """decide's (3) from float_ends: (binade certain, E) for binary64 ends lo <= hi."""
    lo_E = emin if lo == 0 else max(_expo(lo), emin)
    hi_E = emin if hi == 0 else max(_expo(hi), emin)
    return lo_E == hi_E, min(lo_E, hi_E)


@numba.njit(**_JIT)
def _closed(x, p, emin, fmax, f32, rn, d, E, r64, ok):
    """The closed-form regions (series, x = 0, x < UNDER_LIMIT, x > EXP_LIMIT) for every element of a
    mixed block, branch-free (the exp regions' entries are overwritten after, E = emin kept for the
    scaled region)."""
    for i in range(len(x)):
        v = np.float64(x[i])  # x binary64 or binary32
        rnd, r, ds, Er = _series_at(v, p, emin, fmax, f32)
        bv = np.float64(v).view(np.int64)
        Eb = max(_expo(v) - np.int64((bv & 0xFFFFFFFFFFFFF) == 0), emin)
        series = (abs(v) < _SERIES) & (v != 0.0)
        under = v < _UNDER
        big = not (v <= _EXP)
        rn[i] = rnd if series else (-0.0 if under else v)
        r64[i] = r if series else (-0.0 if under else v)
        d[i] = ds if series else (0.0 if v == 0.0 else -TINY_D)
        E[i] = Er if series else (Eb if big else emin)
        ok[i] = True


@numba.njit(inline="always", **_JIT)
def _series_at(v, p, emin, fmax, f32):
    """The series region's (RN(r), r, d, E) at v: r = 3v/5 + 0.32 v^2 (fastref.py)."""
    sv = 3.0 * v / 5.0
    x2 = 0.32 * v * v
    r = sv + x2
    rnd = _round(r, p, emin, fmax, f32)
    Er = max(_expo(r), emin)
    return rnd, r, ((sv - rnd) + x2) * _pow2(p - 1 - Er), Er


@numba.njit(**_JIT)
def _series(x, p, emin, fmax, f32, rn, d, E, r64, ok):
    """0 < |x| < SERIES_LIMIT (a whole block): _closed's series entries alone."""
    for i in range(len(x)):
        rnd, r, ds, Er = _series_at(np.float64(x[i]), p, emin, fmax, f32)
        rn[i] = rnd
        r64[i] = r
        d[i] = ds
        E[i] = Er
        ok[i] = True


@numba.njit(**_JIT)
def _scaled(x, q0, rn, d, r64):
    """UNDER_LIMIT <= x < SCALED_LIMIT (a block or a gathered list): RN = -0, d = x P 2^(k - q0), E = emin (kept)."""
    sc_d = _pow2(-600 - q0)
    for j in range(len(x)):
        v = np.float64(x[j])  # x binary64 or binary32
        P, k = _exp_parts(v)
        m = v * P * _pow2f(k + 600.0)  # exact scaling: x e 2^600 is a normal binary64 number
        rn[j] = -0.0
        r64[j] = m * _TWO_M600
        dm = m * sc_d
        d[j] = dm if dm < -TINY_D else -TINY_D  # np.minimum(dm, -TINY_D)


@numba.njit(**_JIT)
def _negative(x, p, emin, fmax, f32, rn, d, E, r64, ok):
    """SCALED_LIMIT <= x <= -SERIES_LIMIT (a block or a gathered list): r = x n / (n + 2), fastref._decide with
    sign -1 (RN(r) = 0 fixes the side: r < 0)."""
    slack = _EPS * _pow2(p)
    for j in range(len(x)):
        v = np.float64(x[j])  # x binary64 or binary32
        P, k = _exp_parts(v)
        ee = P * _pow2f(k)
        nn = ee * (ee + 2)
        r = v * nn / (nn + 2)
        lo = _away(r - abs(r) * _EPS)  # outward: r < 0, normal, and so are both ends
        hi = _toward(r + abs(r) * _EPS)
        a = _round(lo, p, emin, fmax, f32)
        b = _round(hi, p, emin, fmax, f32)
        binade, Ee = _ends_E(lo, hi, emin)
        same = (a == b) & (abs(a) < np.inf)
        rv = -0.0 if a == 0 else a
        dd = (r - rv) * _pow2(p - 1 - Ee)  # r - RN(r) is exact
        dlo = _down(dd - slack)
        dhi = _up(dd + slack)
        sided, dv = _d_out(dd, dlo, dhi, np.int64(-1) if a == 0 else np.int64(0))
        inside = (dlo > -0.5) & (dhi < 0.5) & (dlo <= dhi)
        ok[j] = same & binade & inside & ((dhi - dlo) <= _RES2) & sided
        rn[j] = rv
        d[j] = dv
        E[j] = Ee
        r64[j] = r


@numba.njit(**_JIT)
def _positive(x, p, emin, fmax, f32, rn, d, E, r64, ok):
    """SERIES_LIMIT <= x <= EXP_LIMIT (a block or a gathered list): r = x - x delta, fastref._positive (RN(r) = x:
    r lies below it)."""
    for j in range(len(x)):
        v = np.float64(x[j])  # x binary64 or binary32
        P, k = _exp_parts(-v)
        t = P * _pow2f(k)
        xdelta = v * (2 * t * t / (1 + 2 * t + 2 * t * t))
        r = v - xdelta
        lo = _toward(r - abs(r) * _EPS)  # outward: r > 0, normal, and so are both ends
        hi = _away(r + abs(r) * _EPS)
        below = _toward(v)  # np.nextafter(x, 0)
        hi = hi if hi < below else below  # np.minimum(hi, below)
        a = _round(lo, p, emin, fmax, f32)
        b = _round(hi, p, emin, fmax, f32)
        binade, Ee = _ends_E(lo, hi, emin)
        same = (a == b) & (abs(a) < np.inf)
        rv = 0.0 if a == 0 else a
        sc = _pow2(p - 1 - Ee)
        dd = ((v - rv) - xdelta) * sc
        err = xdelta * sc * _TWO_M44 + abs(dd) * _TWO_M52
        dlo = _down(dd - err)
        dhi = _up(dd + err)
        sided, dv = _d_out(dd, dlo, dhi, np.int64(-1) if a == v else np.int64(0))
        inside = (dlo > -0.5) & (dhi < 0.5) & (dlo <= dhi)
        ok[j] = same & binade & inside & ((dhi - dlo) <= _RES2) & sided
        rn[j] = rv
        d[j] = dv
        E[j] = Ee
        r64[j] = r


@numba.njit(**_JIT)
def _count(x):
    """The numbers of elements below UNDER_LIMIT, in the scaled, negative and positive exp regions,
    beyond EXP_LIMIT, and in the series region (0 < |x| < SERIES_LIMIT)."""
    c_un = 0
    c_sc = 0
    c_ng = 0
    c_ps = 0
    c_bg = 0
    c_sr = 0
    for i in range(len(x)):
        v = np.float64(x[i])  # x binary64 or binary32
        c_sr += np.int64((abs(v) < _SERIES) & (v != 0.0))
        c_un += np.int64(v < _UNDER)
        c_sc += np.int64((v >= _UNDER) & (v < _SCALED))
        c_ng += np.int64((v >= _SCALED) & (v <= -_SERIES))
        c_ps += np.int64((v >= _SERIES) & (v <= _EXP))
        c_bg += np.int64(v > _EXP)
    return c_un, c_sc, c_ng, c_ps, c_bg, c_sr


@numba.njit(**_JIT)
def _under(rn, d, E, r64, ok, emin):
    """x < UNDER_LIMIT: RN = -0, r64 = -0, d = -TINY_D, E = emin."""
    for i in range(len(rn)):
        rn[i] = -0.0
        r64[i] = -0.0
        d[i] = -TINY_D
        E[i] = emin
        ok[i] = True


@numba.njit(**_JIT)
def _big(x, rn, d, E, r64, ok, emin):
    """x > EXP_LIMIT: RN = x, d = -TINY_D, E the binade below x's where x = 2^k (as in _closed)."""
    for i in range(len(x)):
        v = np.float64(x[i])  # x binary64 or binary32
        bv = np.float64(v).view(np.int64)
        rn[i] = v
        r64[i] = v
        d[i] = -TINY_D
        E[i] = max(_expo(v) - np.int64((bv & 0xFFFFFFFFFFFFF) == 0), emin)
        ok[i] = True


@numba.njit(**_JIT)
def _kernel(x, p, emin, fmax, f32, rn, d, E, r64, ok):
    """Block by block (module docstring): a block wholly below UNDER_LIMIT, above EXP_LIMIT, in the
    negative or positive exp region or in the series region by that region's loop; any other by the
    closed forms for all, then the lists of its exp regions. Returns the number of undecided inputs."""
    n = len(x)
    q0 = emin - p + 1
    c = 0  # the lists' scratch, made for the first block that needs it
    isc, ing, ips, Et = np.empty(c, np.int64), np.empty(c, np.int64), np.empty(c, np.int64), np.empty(c, np.int64)
    xg, rt, dt, r64t = np.empty(c), np.empty(c), np.empty(c), np.empty(c)
    okt = np.empty(c, np.bool_)
    for s in range(0, n, BLOCK):
        e = min(s + BLOCK, n)
        # slices: indices from 0 (no negative-index wraparound, so the loops vectorise)
        xb, rnb, db, Eb, r64b, okb = x[s:e], rn[s:e], d[s:e], E[s:e], r64[s:e], ok[s:e]
        m = e - s
        c_un, c_sc, c_ng, c_ps, c_bg, c_sr = _count(xb)
        if c_un == m:
            _under(rnb, db, Eb, r64b, okb, emin)
            continue
        if c_bg == m:
            _big(xb, rnb, db, Eb, r64b, okb, emin)
            continue
        if c_ng == m:
            _negative(xb, p, emin, fmax, f32, rnb, db, Eb, r64b, okb)
            continue
        if c_ps == m:
            _positive(xb, p, emin, fmax, f32, rnb, db, Eb, r64b, okb)
            continue
        if c_sr == m:
            _series(xb, p, emin, fmax, f32, rnb, db, Eb, r64b, okb)
            continue
        _closed(xb, p, emin, fmax, f32, rnb, db, Eb, r64b, okb)
        if c_sc == m:
            _scaled(xb, q0, rnb, db, r64b)
            continue
        if c_sc + c_ng + c_ps == 0:
            continue
        if c == 0:
            c = min(n, BLOCK)
            isc, ing, ips, Et = np.empty(c, np.int64), np.empty(c, np.int64), np.empty(c, np.int64), np.empty(c, np.int64)
            xg, rt, dt, r64t = np.empty(c), np.empty(c), np.empty(c), np.empty(c)
            okt = np.empty(c, np.bool_)
        a = 0
        b = 0
        c = 0
        for i in range(m):  # the three lists
            v = np.float64(xb[i])
            isc[a] = i
            a += np.int64((v >= _UNDER) & (v < _SCALED))
            ing[b] = i
            b += np.int64((v >= _SCALED) & (v <= -_SERIES))
            ips[c] = i
            c += np.int64((v >= _SERIES) & (v <= _EXP))
        if a:
            for j in range(a):
                xg[j] = xb[isc[j]]
            _scaled(xg[:a], q0, rt[:a], dt[:a], r64t[:a])
            for j in range(a):
                i = isc[j]
                rnb[i], db[i], r64b[i] = rt[j], dt[j], r64t[j]
        for reg in range(2):
            k = b if reg == 0 else c
            idx = ing if reg == 0 else ips
            if k == 0:
                continue
            for j in range(k):
                xg[j] = xb[idx[j]]
            if reg == 0:
                _negative(xg[:k], p, emin, fmax, f32, rt[:k], dt[:k], Et[:k], r64t[:k], okt[:k])
            else:
                _positive(xg[:k], p, emin, fmax, f32, rt[:k], dt[:k], Et[:k], r64t[:k], okt[:k])
            for j in range(k):
                i = idx[j]
                rnb[i], db[i], Eb[i], r64b[i], okb[i] = rt[j], dt[j], Et[j], r64t[j], okt[j]
    undecided = 0
    for i in range(n):  # vectorised
        undecided += np.int64(not ok[i])
    return undecided


def jit_reference(x: np.ndarray, fmt: Format):
    """fastref.fast_reference compiled: (rn, d, E, r64, decided) for finite `x` of fmt (p <= 24), any
    order; the same bits wherever decided (undecided entries are garbage)."""
    return jit_reference_counted(x, fmt)[:5]


def jit_reference_counted(x: np.ndarray, fmt: Format):
    """jit_reference's five arrays and the number of undecided inputs (counted in the kernel)."""
    if fmt.p > 24:
        raise ValueError("the fast reference is proven for binary16, bfloat16 and binary32 inputs only")
    x = np.asarray(x)  # binary32 values are read as they are, others as binary64
    x = np.ascontiguousarray(x, dtype=np.float32 if x.dtype == np.float32 else np.float64).reshape(-1)
    n = len(x)
    rn, d, r64, E, ok = np.empty(n), np.empty(n), np.empty(n), np.empty(n, dtype=np.int64), np.empty(n, dtype=np.bool_)
    undecided = _kernel(x, np.int64(fmt.p), np.int64(fmt.emin), float(fmt.max), fmt is FP32, rn, d, E, r64, ok) if n else 0
    return rn, d, E, r64, ok, undecided
