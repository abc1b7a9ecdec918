"""The compiled inner loop of the exhaustive sweep: one pass over a block of binary32 outputs.

For each finite output y with reference RN(r), d = (r - RN(r))/ulp(r) and E (ulp(r) = 2^(E-23)),
the measures are metrics.py's, as in metrics.errors:
  k = ord(y) - ord(RN(r))          ord: the magnitude of the binary32 encoding, negated for
                                   a set sign bit (+0 and -0 are both 0)
  dULP = |k|, bits = log2(1 + |k|), CR: k = 0, signed-zero mismatch: k = 0 with other bits,
  faithful: k = 0, or k = +-1 towards r (the sign of d)
  ulp error u = |(y - RN(r)) 2^(23-E) - d|  (y - RN(r) is exact in binary64), read as 0 below
                                   ULP_RES = 2^-60 ulp (metrics.ULP_RES: the resolution of every figure)
  abs = u 2^(E-23), rel = |y - r| / |r| = u / (|RN(r) 2^(23-E) + d|), formed as in
  metrics.relative (the 2^-100 applied to the block maximum) from u before its reading as 0
  (metrics.errors: a result below the resolution has rel 0 too, unless RN(r) = 0); r = 0
  (x = +-0): rel 0 when y = 0, else inf
  histogram key of u: 0 for u = 0 (below the resolution), 1 for 0 < u < 2^-30, else its binary64
  bits >> 41, less the key of 2^-30, plus 1 (so key 2 starts at 2^-30).
Products are arranged to stay above binary64's subnormal range (slow in hardware): the
absolute error is kept scaled by 2^200, the relative error by 2^100.
Numba compiles the loop once per machine (cached beside this file).
"""

from __future__ import annotations

import math
import struct

import numba
import numpy as np
from numba.cpython.unsafe.numbers import trailing_zeros

from mishaudit.measure.metrics import (
    ULP_RES,  # metrics imports no numba (compare's cached path needs none)
)

HIST_SUB = 2048  # histogram bins per binade of the ulp error (the top 11 significand bits)
HIST_FLOOR = -30  # ulp errors in (0, 2^-30) share bin 1; bin 0 holds the errors read as 0
KEY_BASE = ((1023 + HIST_FLOOR) << 11) - 2  # key = (binary64 bits >> 41) - KEY_BASE, at least 1 for u > 0
_OFF = 600
_POW2 = np.ldexp(1.0, np.arange(-_OFF, _OFF + 1))  # 2^j at _POW2[j + _OFF]
_LOG2 = np.log2(1.0 + np.arange(64))

# out[] slots
SUM_ULP, SUM_BITS, MAX_ULP, WORST, MAX_ABS200, MAX_REL, MAX_DULP = range(7)


CHUNK = 1016  # outputs per pass of fold (its scratch, 32 KiB, in L1): below 2^_F, _measure's packed counts
_F = 10  # bits per count packed in an int64 (_measure)
_MASK = (1 << _F) - 1
_REL_SAFE = 2.0**22  # |r|/ulp(r) of a normal r is above it: the bound that makes the rel guard moot
_RSB = int(np.float64(_REL_SAFE).view(np.int64))
_TINY = 2.0**-1074  # the smallest positive binary64 number


@numba.njit(inline="always")
def _bits(v):  # pragma: no cover - compiled
    return np.float64(v).view(np.int64)


@numba.njit(inline="always")
def _f64(b):  # pragma: no cover - compiled
    return np.int64(b).view(np.float64)


@numba.njit(cache=True, nogil=True, error_model="numpy", boundscheck=False)
def fold(y, rn, d, E, counts, hist, out, keys):  # pragma: no cover - compiled
    """Fold block outputs y (float32) against rn (float64), d, E (int64) into counts (int64[10]:
    inputs, nonfinite, CR, faithful, signed zero, dULP 0, 1, 2, 3, > 3) and hist (int64, by key),
    or, when `keys` (int64) is as long as y, write each output's histogram key there instead;
    block sums and maxima go to out (float64[7], slots above; WORST is the first index of the
    largest ulp error, -1 when no output is finite).

    Per CHUNK of outputs, two passes. _measure has no dependence between outputs (the compiler
    vectorises it): each output's u, dULP and key into scratch, the counts (packed _F bits each)
    and the maxima, these on the binary64 bits (nonnegative numbers order as their bits), so in
    any order; and the relative error of every output, one vectorised division each, where the
    loop this replaced (tests/test_fold_speed.py's _fold_reference, equal to the bit) divided
    behind a guard. Then the part whose order matters: the binary64 sums of u and of the bits of
    error, element by element as that loop added them (_ordered, _sums; the log2 of a dULP beyond
    _LOG2 taken before, _terms), and the histogram. A chunk whose outputs all have one u and one
    dULP below 4 (the saturated regions) adds each sum as one product where no partial sum
    rounds (_repeated). The guard (u 2^78 > the maximum so far) skipped only outputs that cannot
    raise the maximum where |r|/ulp(r) >= 2^22 (E > emin, a normal r): a chunk where some output
    has E > emin and |r|/ulp(r) below that (data no reference gives) takes its maximum in that
    loop's order, with the guard (_rel_in_order)."""
    n = len(y)
    to_keys = len(keys) == n
    us = np.empty(CHUNK)  # u, +0 for a nonfinite output (adds nothing)
    dls = np.empty(CHUNK, dtype=np.int64)  # dULP, 0 for a nonfinite output
    ks = np.empty(CHUNK, dtype=np.int64)  # key, 0 for a nonfinite output
    lg = np.empty(64 + CHUNK)  # _LOG2, then the terms of a chunk's dULP >= 64 (_terms)
    lg[:64] = _LOG2
    direct = False
    s_ulp = 0.0
    s_bits = 0.0
    mub = -1  # bits of the largest u so far, -1 before any finite output
    wi = -1
    mab = 0  # bits of the largest u 2^(E-23+200)
    mr = 0.0
    mk = 0
    nonfin = cr = fa = sz = k1 = k2 = k3 = 0
    for c0 in range(0, n, CHUNK):
        m = min(CHUNK, n - c0)
        hi = c0 + m
        pd, pf, cmk, cmub, cmab, crb, bad = _measure(y[c0:hi], rn[c0:hi], d[c0:hi], E[c0:hi], us, dls, ks)
        nf = (pd >> 5 * _F) & _MASK
        nonfin += nf
        cr += pd & _MASK
        k1 += (pd >> _F) & _MASK
        k2 += (pd >> 2 * _F) & _MASK
        k3 += (pd >> 3 * _F) & _MASK
        sz += pf & _MASK
        fa += (pf >> _F) & _MASK
        mk = max(mk, cmk)
        mab = max(mab, cmab)
        if bad:
            mr = _rel_in_order(y, rn, d, E, c0, hi, mr)
        else:
            mr = max(mr, _f64(crb))
        if cmub > mub and nf < m:  # the first finite output of the chunk with the largest u
            yb = y[c0:hi]
            for j in range(m):
                if _bits(us[j]) == cmub and (np.float32(yb[j]).view(np.int32) & 0x7F800000) != 0x7F800000:
                    mub = cmub
                    wi = c0 + j
                    break
        if cmk < 4 and (nf == 0 or cmk == 0) and ((pd >> _F * cmk) & _MASK) == m - nf and _same(us, m, cmub):
            # every output's dULP (below 4) and u the same: the sums by one product each, if exact
            ok_u, s_u = _repeated(s_ulp, _f64(cmub), m)
            ok_b, s_b = _repeated(s_bits, lg[cmk], m)
            if ok_u and ok_b:
                s_ulp, s_bits = s_u, s_b
                if to_keys:
                    _fill_keys(y[c0:hi], ks[0], keys[c0:hi])
                else:
                    hist[np.uint64(ks[0])] += m - nf  # a nonfinite output's u reads as 0: then all are 0
                continue
        if cmk >= 64:
            _terms(dls, lg, m)
        if to_keys:
            s_ulp, s_bits = _sums(us, dls, lg, m, s_ulp, s_bits, y[c0:hi], ks, keys[c0:hi])
        else:
            s_ulp, s_bits, nchg = _ordered(us, dls, lg, ks, m, s_ulp, s_bits, hist, direct)
            # one increment each where keys changed at nearly every output (measured by runs, again
            # every eighth chunk)
            direct = (nchg * 8 > m * 7) and (c0 // CHUNK) % 8 != 7
            hist[0] -= nf  # nonfinite outputs have key 0 in ks, and no key
    add_counts(counts, n, nonfin, cr, fa, sz, k1, k2, k3)
    out[SUM_ULP] = s_ulp
    out[SUM_BITS] = s_bits
    out[MAX_ULP] = _f64(mub) if mub >= 0 else -1.0
    out[WORST] = wi
    out[MAX_ABS200] = _f64(mab)
    out[MAX_REL] = mr * 2.0**-100
    out[MAX_DULP] = mk


@numba.njit(nogil=True, inline="always")
def add_counts(counts, n, nonfin, cr, fa, sz, k1, k2, k3):  # pragma: no cover - compiled
    """fold's counts (int64[10], its docstring's order) from a pass's tallies: outputs, nonfinite, CR,
    faithful but not CR, signed-zero mismatches, dULP 1, 2, 3."""
    counts[0] += n
    counts[1] += nonfin
    counts[2] += cr
    counts[3] += cr + fa
    counts[4] += sz
    counts[5] += cr
    counts[6] += k1
    counts[7] += k2
    counts[8] += k3
    counts[9] += n - nonfin - cr - k1 - k2 - k3


@numba.njit(nogil=True, error_model="numpy", boundscheck=False, inline="always")
def _measure(y, rn, d, E, us, dls, ks):  # pragma: no cover - compiled
    """fold's first pass over one chunk of outputs (no dependence between them): u, dULP, key
    into us, dls, ks (+0, 0, 0 for a nonfinite output); returns the counts packed _F bits each
    (pd: CR, dULP 1, 2, 3, > 3, nonfinite; pf: signed zero, faithful-but-not-CR), the largest dULP,
    the bits of the largest u (nonfinite outputs read as u = +0), of u 2^(E-23+200), of the
    relative error 2^100 |y - r|/|r|, and whether some |r|/ulp(r) is below _REL_SAFE with E > emin
    (the chunk needs _rel_in_order)."""
    pd = pf = 0
    mk = 0
    cmub = 0
    mab = 0
    crb = 0
    rsb = _RSB
    for j in range(len(y)):
        yv = y[j]
        rv = rn[j]
        dv = d[j]
        ex = E[j]
        a = np.int64(np.float32(yv).view(np.int32))
        b = np.int64(np.float32(rv).view(np.int32))
        fin = (a & 0x7F800000) != 0x7F800000
        oa = a & 0x7FFFFFFF
        ob = b & 0x7FFFFFFF
        # dULP: |ord(y) - ord(RN(r))|, the magnitudes' sum across signs (ord(+-0) = 0)
        dl = (abs(oa - ob) if (a ^ b) >= 0 else oa + ob) if fin else 0
        pd += np.int64(1) << (_F * (min(dl, 4) if fin else 5))
        yf = np.float64(yv)
        t = yf - rv
        pf += 1 if (yv == np.float32(rv)) & (a != b) else 0  # +-0 against -+0
        # faithful, not CR: one step from RN(r) towards r (y - RN(r) of d's sign)
        pf += (1 << _F) if (dl == 1) & ((_bits(t) ^ _bits(dv)) >= 0) & (abs(dv) > 0) else 0
        mk = max(mk, dl)
        dls[j] = dl
        # 2^(23-E) and 2^(E-23+200) (_POW2's entries), built from their bits
        s = _f64((1023 + 23 - ex) << 52)
        s200 = _f64((1023 - 23 + 200 + ex) << 52)
        u_raw = abs(t * s - dv) if fin else 0.0
        u = 0.0 if u_raw < ULP_RES else u_raw
        ub = _bits(u)
        us[j] = u
        ks[j] = max((ub >> 41) - KEY_BASE, min(ub, 1))  # 0 for u = 0, at least 1 above
        cmub = max(cmub, ub)
        mab = max(mab, _bits(u * s200))
        # rel, as in metrics.errors: of u, or of u_raw where RN(r) = 0 (0 for a nonfinite output);
        # r = 0 (rin = 0, E = emin: |y| 2^149 >= 1 for y != 0): inf, or 0 for y = 0
        rin = abs(rv * s + dv)
        num = (u_raw if rv == 0 else u) * 2.0**100
        crb = max(crb, _bits(num / (rin if rin > _TINY else _TINY)))
        rsb = min(rsb, _bits(rin) if ex != -126 else _RSB)
    return pd, pf, mk, cmub, mab, crb, rsb < _RSB


@numba.njit(nogil=True, error_model="numpy", boundscheck=False, inline="always")
def _repeated(s, v, m):  # pragma: no cover - compiled
    """(True, s + v + ... + v, m terms added in order, one rounding each) where no partial sum
    rounds: where s and v are multiples of a power of 2, q, with s + m v < 2^53 q; then it is
    s + m v. Else (False, s). (s >= 0 and v >= 0 are finite.)"""
    if v == 0.0:
        return True, s
    q = _lsb(v)
    if s != 0.0:
        q = min(q, _lsb(s))
    if s / q + m * (v / q) >= 2.0**53:
        return False, s
    return True, s + m * v


@numba.njit(inline="always")
def _same(us, m, ub):  # pragma: no cover - compiled
    """Whether every us[:m] has the bits ub (three looked at first: most often one differs)."""
    if _bits(us[0]) != ub or _bits(us[m // 2]) != ub or _bits(us[m - 1]) != ub:
        return False
    c = 0
    for j in range(m):  # vectorised
        c += _bits(us[j]) != ub
    return c == 0


@numba.njit(inline="always")
def _lsb(v):  # pragma: no cover - compiled
    """The largest power of 2 dividing a positive binary64 number v (the weight of its lowest
    significand bit)."""
    b = _bits(v)
    e = (b >> 52) & 0x7FF
    sig = (b & ((1 << 52) - 1)) | ((1 << 52) if e > 0 else 0)
    return math.ldexp(1.0, max(e, 1) - 1075 + np.int64(trailing_zeros(np.uint64(sig))))


@numba.njit(nogil=True, error_model="numpy", boundscheck=False, inline="always")
def _fill_keys(y, key, keys):  # pragma: no cover - compiled
    """`key` into `keys` for the finite outputs y (the others' left as they are)."""
    for j in range(len(y)):
        if (np.float32(y[j]).view(np.int32) & 0x7F800000) != 0x7F800000:
            keys[j] = key


@numba.njit(nogil=True, error_model="numpy", boundscheck=False, inline="always")
def _terms(dls, lg, m):  # pragma: no cover - compiled
    """log2(1 + dULP) of a chunk's outputs with dULP >= 64 (beyond _LOG2) into lg[64 + j], found
    64 at a time as the bits of a word (no branch on each output)."""
    for g in range(0, m, 64):
        dv = dls[g:min(g + 64, m)]
        w = 0
        for j in range(len(dv)):
            w |= (dv[j] >= 64) << j
        while w != 0:
            t = w & -w
            j = g + np.int64(trailing_zeros(np.uint64(t)))
            lg[64 + j] = math.log2(1.0 + dls[j])
            w ^= t


@numba.njit(nogil=True, error_model="numpy", boundscheck=False, inline="always")
def _sums(us, dls, lg, m, s_ulp, s_bits, y, ks, keys):  # pragma: no cover - compiled
    """fold's binary64 sums of u and of the bits of error log2(1 + dULP) (lg: _LOG2, then the
    chunk's terms beyond it, _terms), continued over one chunk, in order; and the keys of the
    finite outputs into `keys` (the others' left as they are)."""
    for j in range(m):
        s_ulp += us[j]
        dl = dls[j]
        s_bits += lg[np.uint64(dl if dl < 64 else 64 + j)]
        kj = keys[j]
        keys[j] = ks[j] if (np.float32(y[j]).view(np.int32) & 0x7F800000) != 0x7F800000 else kj
    return s_ulp, s_bits


@numba.njit(nogil=True, error_model="numpy", boundscheck=False, inline="always")
def _ordered(us, dls, lg, ks, m, s_ulp, s_bits, hist, direct):  # pragma: no cover - compiled
    """_sums (without keys), and the chunk's keys into hist: one increment each (`direct`, the
    faster where keys change at nearly every output), or one per run of equal keys (where keys
    repeat, irregularly above all, increments of one bin waiting on each other are slow); returns
    the number of key changes (m when `direct`), which chooses the way for the next chunk."""
    nchg = m
    if direct:
        for j in range(m):
            s_ulp += us[j]
            dl = dls[j]
            s_bits += lg[np.uint64(dl if dl < 64 else 64 + j)]
            hist[np.uint64(ks[j])] += 1
    else:
        nchg = 0
        prev = ks[0]
        run = 0
        for j in range(m):
            s_ulp += us[j]
            dl = dls[j]
            s_bits += lg[np.uint64(dl if dl < 64 else 64 + j)]
            k = ks[j]
            if k != prev:
                hist[np.uint64(prev)] += run
                prev = k
                run = 0
                nchg += 1
            run += 1
        hist[np.uint64(prev)] += run
    return s_ulp, s_bits, nchg


@numba.njit(cache=True, nogil=True, error_model="numpy", boundscheck=False)
def _rel_in_order(y, rn, d, E, lo, hi, mr):  # pragma: no cover - compiled
    """The largest relative error (scaled by 2^100) of outputs lo..hi-1 and mr, taken in order
    under the guard of the loop fold replaced: for a chunk with data the order-free maximum does
    not cover."""
    for i in range(lo, hi):
        yv = y[i]
        a = np.int64(np.float32(yv).view(np.int32))
        if (a & 0x7F800000) == 0x7F800000:
            continue
        rv = rn[i]
        dv = d[i]
        s = _POW2[_OFF - (E[i] - 23)]
        u_raw = abs((np.float64(yv) - rv) * s - dv)
        u = u_raw
        if u < ULP_RES:
            u = 0.0
        if (E[i] == -126 or u_raw * 2.0**78 > mr) and (u > 0 or rv == 0):
            rin = abs(rv * s + dv)
            if rin > 0:
                rel = u_raw * 2.0**100 / rin
            elif yv == 0:
                rel = 0.0
            else:
                rel = np.inf
            mr = max(mr, rel)
    return mr


def key_of(u: float) -> int:
    """The histogram key of an ulp error u >= 0 (fold's docstring): 0 for u = 0, else at least 1."""
    b = struct.unpack("<q", struct.pack("<d", u))[0]  # its binary64 bits
    return max((b >> 41) - KEY_BASE, min(b, 1))


@numba.njit(cache=True, nogil=True)
def take_present(hist, top):  # pragma: no cover - compiled
    """(keys, counts) of the nonzero bins of hist[:top + 1], ascending, which are then set to 0: the
    histogram a fold left in a scratch array whose other bins are 0 (top: the largest key folded).
    64 bins at a time, looked into only where their OR is nonzero (most are 0)."""
    n = top + 1
    keys = np.empty(n, dtype=np.int64)
    counts = np.empty(n, dtype=np.int64)
    m = 0
    for b0 in range(0, n, 64):
        b1 = min(b0 + 64, n)
        any_ = np.int64(0)
        for k in range(b0, b1):  # vectorised
            any_ |= hist[k]
        if any_ != 0:
            for k in range(b0, b1):
                if hist[k] != 0:
                    keys[m] = k
                    counts[m] = hist[k]
                    hist[k] = 0
                    m += 1
    return keys[:m].copy(), counts[:m].copy()


@numba.njit(cache=True, nogil=True)
def same(a, b):  # pragma: no cover - compiled
    """Whether two uint32 arrays of one length hold the same words (the OR of their XORs, 512 words
    at a time, each run a loop the compiler vectorises, stopping at the first run that differs)."""
    n = len(a)
    full = n - n % 512
    for c0 in range(0, full, 512):
        x = a[c0:c0 + 512]
        y = b[c0:c0 + 512]
        diff = np.uint32(0)
        for j in range(512):  # a fixed count from index 0: vectorised
            diff |= x[j] ^ y[j]
        if diff != 0:
            return False
    for i in range(full, n):
        if a[i] != b[i]:
            return False
    return True
