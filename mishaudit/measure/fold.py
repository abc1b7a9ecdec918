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

import numba
import numpy as np

from mishaudit.measure.metrics import ULP_RES  # metrics imports no numba (compare's cached path needs none)

HIST_SUB = 2048  # histogram bins per binade of the ulp error (the top 11 significand bits)
HIST_FLOOR = -30  # ulp errors in (0, 2^-30) share bin 1; bin 0 holds the errors read as 0
KEY_BASE = ((1023 + HIST_FLOOR) << 11) - 2  # key = (binary64 bits >> 41) - KEY_BASE, at least 1 for u > 0
_OFF = 600
_POW2 = np.ldexp(1.0, np.arange(-_OFF, _OFF + 1))  # 2^j at _POW2[j + _OFF]
_LOG2 = np.log2(1.0 + np.arange(64))

# out[] slots
SUM_ULP, SUM_BITS, MAX_ULP, WORST, MAX_ABS200, MAX_REL, MAX_DULP = range(7)


@numba.njit(cache=True, nogil=True, error_model="numpy", boundscheck=False)
def fold(y, rn, d, E, counts, hist, out, keys):  # pragma: no cover - compiled
    """Fold block outputs y (float32) against rn (float64), d, E (int64) into counts (int64[10]:
    inputs, nonfinite, CR, faithful, signed zero, dULP 0, 1, 2, 3, > 3) and hist (int64, by key),
    or, when `keys` (int64) is as long as y, write each output's histogram key there instead;
    block sums and maxima go to out (float64[7], slots above; WORST is the first index of the
    largest ulp error, -1 when no output is finite)."""
    n = len(y)
    s_ulp = 0.0
    s_bits = 0.0
    mu = -1.0
    wi = -1
    ma = 0.0
    mr = 0.0
    mk = 0
    nonfin = cr = fa = sz = k1 = k2 = k3 = 0
    to_keys = len(keys) == n
    for i in range(n):
        yv = y[i]
        a = np.int64(np.float32(yv).view(np.int32))
        if (a & 0x7F800000) == 0x7F800000:
            nonfin += 1
            continue
        rv = rn[i]
        b = np.int64(np.float32(rv).view(np.int32))
        oa = a & 0x7FFFFFFF
        if a < 0:
            oa = -oa
        ob = b & 0x7FFFFFFF
        if b < 0:
            ob = -ob
        k = oa - ob
        dv = d[i]
        if k == 0:
            cr += 1
            if a != b:
                sz += 1
        elif (k == 1 and dv > 0) or (k == -1 and dv < 0):
            fa += 1
        dl = abs(k)
        if dl == 1:
            k1 += 1
        elif dl == 2:
            k2 += 1
        elif dl == 3:
            k3 += 1
        if dl < 64:  # nearly always: a predictable branch
            s_bits += _LOG2[dl]
        else:
            s_bits += math.log2(1.0 + dl)
        mk = max(mk, dl)
        q = E[i] - 23
        s = _POW2[_OFF - q]
        u_raw = abs((np.float64(yv) - rv) * s - dv)
        u = u_raw
        if u < ULP_RES:
            u = 0.0
        s_ulp += u
        if u > mu:
            mu = u
            wi = i
        ma = max(ma, u * _POW2[_OFF + q + 200])
        # rel (scaled by 2^100 until the block's maximum is taken); for normal r, |r|/ulp(r) > 2^22.9
        # bounds it by u 2^77.1, which mostly shows it cannot raise the maximum: no division
        # the relative error of a result below the resolution is 0 too, unless RN(r) = 0 (y = 0 against
        # a tiny r is wrong by 100 %: u and |r| in ulps are both tiny there)
        if (E[i] == -126 or u_raw * 2.0**78 > mr) and (u > 0 or rv == 0):
            rin = abs(rv * s + dv)
            if rin > 0:
                rel = u_raw * 2.0**100 / rin
            elif yv == 0:
                rel = 0.0
            else:
                rel = np.inf
            mr = max(mr, rel)
        key = (np.float64(u).view(np.int64) >> 41) - KEY_BASE
        if u == 0.0:
            key = 0
        elif key < 1:
            key = 1
        if to_keys:
            keys[i] = key
        else:
            hist[key] += 1
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
    out[SUM_ULP] = s_ulp
    out[SUM_BITS] = s_bits
    out[MAX_ULP] = mu
    out[WORST] = wi
    out[MAX_ABS200] = ma
    out[MAX_REL] = mr * 2.0**-100
    out[MAX_DULP] = mk


@numba.njit(cache=True, nogil=True)
def digest(bits):  # pragma: no cover - compiled
    """A 64-bit digest of a uint32 array, sum of word * (2i + 1) mod 2^64 (a loop the compiler
    vectorises): equal arrays have equal digests; unequal ones are told apart by a comparison."""
    h = np.uint64(0)
    for i in range(len(bits)):
        h += np.uint64(bits[i]) * np.uint64(2 * i + 1)
    return h
