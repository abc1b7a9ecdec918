"""gradref.py's fast mish' reference compiled (numba): the same binary64 operations, in the same order.

`jit_grad_reference(x, fmt)` has grad_reference's contract, (rn, d, E, r64, decided) for finite
binary16, bfloat16 and binary32 inputs, and gives the same bits: the same decided mask, and rn, d,
E, r64 identical on every decided entry (tests/test_gradref_jit.py checks it over every finite fp16
and bf16 input and fp32 blocks at every region boundary). gradref.py stays the documented proof
and the oracle: this module performs its operations step for step, each region's formula written
out per element with the same binary64 operations in the same order (fastref's exp_parts Horner
steps, exp_dd's double-double steps from gradref's _tables passed in as arrays, _main, _band, the
near-1 and series forms, the low region's r64 (1 + x) P 2^k), and decide.py's criteria (1)-(5)
as gradref applies them (no facts in the exp regions; sign and binade known in the near-1 region),
transcribed element by element. numba compiles without fastmath (no FMA contraction, no
reassociation), so every rounding is gradref's: the proof carries over unchanged. It differs in
control flow only:

  - each input is classified by its value (x < LOW, LOW <= x < BAND_LO, BAND_LO <= x <= BAND_HI,
    BAND_HI < x <= -SERIES, |x| < SERIES, SERIES <= x < HIGH, HIGH <= x <= TOP, x > TOP: exactly
    gradref's slices of the sorted input; x < -1000 apart within x < LOW, for r64), so no sorting,
    and any order of x;
  - by blocks of BLOCK inputs: a block in one exp region (main, band, near 1) is computed in place;
    otherwise the constant regions and the series are written for every input (branch-free), and the
    inputs of the exp regions listed by region (a branch-free compaction), gathered, computed and
    scattered over them;
  - each exp region's formula runs in loops without branches (selects for decide's conditions), so
    that the compiler vectorises them; exp_dd's table look-up, a gather that would keep it from doing
    so, has a loop of its own;
  - the library calls are replaced by exact bit-level equivalents: nextafter (decide.outward) from
    the bits; formats.round_to by a binary64 addition of 2^(q+52) (q the quantum: one rounding to a
    multiple of 2^q, ties to even, as np.rint of the exactly scaled value), the sign restored and
    overflow to inf as round_to; frexp's binade from the exponent field (a binary64 subnormal lies
    below every emin here, and max(., emin) gives emin as for a zero end); pow2 as formats.pow2;
    np.ldexp(v, k) of the low region as (v 2^(k+600)) 2^-600: an exact scaling, then one rounding,
    the correctly rounded ldexp.
Undecided entries are garbage, as in gradref (table.py sends them to MPFR). On one core (AMD EPYC,
AVX-512) it takes some 1.5 to 2 ns an input in the constant regions and the series (3 to 4 from
-1000 to -200, r64's exp), 5 to 6 in the main regions and near 1, 10 in the band, 2.5 averaged
over every binary32 input, where grad_reference takes 30 to 60 (130 to 270 in the exp regions):
benchmarks/gradref_jit_bench.py. numba is imported with
this module (table.py imports it on first use).
"""

from __future__ import annotations

import numba
import numpy as np

from mishaudit.formats import FP32, Format
from mishaudit.reference import gradref
from mishaudit.reference.decide import D_RES, TINY_D
from mishaudit.reference.fastref_jit import _down, _pow2, _round, _up
from mishaudit.reference.fastref_jit import _exp_parts as _exp_parts_f
from mishaudit.reference.fastref_jit import _sgn as _sign

_LOW, _BAND_LO, _BAND_HI = gradref.LOW, gradref.BAND_LO, gradref.BAND_HI
_HIGH, _TOP, _SERIES = gradref.HIGH, gradref.TOP, gradref.SERIES
_ERR_MAIN, _ERR_NEAR1, _DG, _U = gradref.ERR_MAIN, gradref.ERR_NEAR1, gradref.DG, gradref.U
_WIDE = 1 + 2.0**-40  # gradref's (1 + 2.0**-40)
_U16 = 16 * gradref.U  # gradref's 16 * U (evaluated first, left to right)
_U2 = 2 * gradref.U  # gradref's 2 * U
_DRES2 = 2 * D_RES  # decide's 2 * d_res
_P7, _P6, _P5, _P4, _P3, _P2 = 1 / 5040, 1 / 720, 1 / 120, 1 / 24, 1 / 6, 0.5  # exp_dd's poly
_SPLIT = 134217729.0  # 2^27 + 1 (Dekker)
_TWOM600 = 2.0**-600
_INF = np.inf
BLOCK = 1 << 11  # inputs per classifying pass: the gathered blocks stay in cache

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")
_inl = numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")


@_inl
def _exp_parts(a):
    """fastref.exp_parts for one binary32 value |a| < 1024: (P, k), k as int64 (fastref_jit's steps)."""
    P, k = _exp_parts_f(a)
    return P, np.int64(k)


@_inl
def _field(v):
    """The biased exponent field of binary64 v."""
    return (np.float64(v).view(np.int64) >> 52) & 0x7FF


@_inl
def _two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@_inl
def _split(a):
    c = _SPLIT * a
    hi = c - (c - a)
    return hi, a - hi


@_inl
def _two_prod(a, b):
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


@_inl
def _dd_mul(a0, a1, b0, b1):
    p, e = _two_prod(a0, b0)
    e = e + (a0 * b1 + a1 * b0)
    return _two_sum(p, e)


@_inl
def _dd_add(a0, a1, b):
    s, e = _two_sum(a0, b)
    return _two_sum(s, e + a1)


@_inl
def _exp_dd_reduce(x, c1, c2, c3, inv):
    """gradref.exp_dd up to its table look-up: (rh, tail, K as int64)."""
    K = np.rint(x * inv)
    t = x - K * c1
    r0, r1 = _two_sum(t, -(K * c2))
    rh, rl = r0, r1 - K * c3
    poly = _P7
    poly = poly * rh + _P6
    poly = poly * rh + _P5
    poly = poly * rh + _P4
    poly = poly * rh + _P3
    poly = poly * rh + _P2
    tail = rl + (rh * rh * poly + rh * rl)
    return rh, tail, np.int64(K)


@_inl
def _exp_dd_finish(rh, tail, Ki, th, tl):
    """The rest of gradref.exp_dd, th, tl = thi[j], tlo[j] for j = K % 64: (hi, lo)."""
    m = Ki >> 6  # (Ki - j) // 64
    ph, pl = _two_prod(th, rh)
    hi, lo = _two_sum(th, ph)
    lo = lo + (pl + tl + tl * rh + th * tail)
    hi, lo = _two_sum(hi, lo)
    s = _pow2(m)
    return hi * s, lo * s


@_inl
def _main(x):
    """gradref._main for one value: (r, err)."""
    P, k = _exp_parts(x)
    e = P * _pow2(k)
    n = e * (e + 2)
    w = n + 2
    A = n / w
    B = 4 * x * e * (1 + e) / (w * w)
    return A + B, _ERR_MAIN * (A + np.abs(B)) * _WIDE


@_inl
def _band(x, e0, e1):
    """gradref._band for one value, e = exp_dd(x) = (e0, e1): (r, err)."""
    h0, h1 = _dd_add(e0, e1, 4.0)
    h0, h1 = _dd_mul(h0, h1, e0, e1)
    h0, h1 = _dd_add(h0, h1, 6.0 + 4.0 * x)
    h0, h1 = _dd_mul(h0, h1, e0, e1)
    g0, g1 = _dd_add(h0, h1, 4.0 + 4.0 * x)
    eh = e0
    w = eh * eh + 2 * eh + 2
    r = eh * g0 / (w * w)
    return r, _U16 * np.abs(r) + _DG * eh / (w * w) * _WIDE


@_inl
def _sided(dm, bs):
    """decide's d on its certain side bs: the estimate where it has that side, else that side with
    magnitude max(|d|, TINY_D)."""
    return dm if _sign(dm) == bs else np.copysign(max(np.abs(dm), TINY_D), np.float64(bs))


@_inl
def _decide(r, err, p, emin, fmax, f32):
    """gradref._decide for one value (decide.py's (1)-(5), no facts): (rn, d, E, ok), branch-free."""
    err = err + np.abs(r) * _U
    lo = _down(r - err)
    hi = _up(r + err)
    a = _round(lo, p, emin, fmax, f32)
    b = _round(hi, p, emin, fmax, f32)
    sl = _sign(lo)
    sh = _sign(hi)
    same = (a == b) & (np.abs(a) < _INF) & (sl == sh) & (sl != 0)
    el = max(_field(lo) - 1023, emin)  # max(floor(log2|lo|), emin); a zero end: emin
    eh = max(_field(hi) - 1023, emin)
    rn = a if a != 0 else np.copysign(0.0, np.float64(sl))
    s = _pow2(p - 1 - el)
    dm = (r - rn) * s
    dlo = _down(dm - err * s)
    dhi = _up(dm + err * s)
    bs = np.int64(1) if dlo > 0 else np.int64(-1)
    ok = same & (el == eh) & (dlo > -0.5) & (dhi < 0.5) & (dlo <= dhi) & (dhi - dlo <= _DRES2) & \
        ((dlo > 0) | (dhi < 0))
    return rn, _sided(dm, bs), el, ok


@_inl
def _near1(x, p, emin, fmax, f32):
    """gradref's near-1 region (2 <= x <= 350) for one value: (rn, d, E, r64, ok)."""
    P, k = _exp_parts(-x)
    t = P * _pow2(k)
    den = 1 + 2 * t + 2 * t * t
    delta = t * t * ((4 * x - 2) + (4 * x - 4) * t - 4 * t * t) / (den * den)
    q = _round(1 + delta, p, emin, fmax, f32)
    s = _pow2(p - 1)
    dd = ((1 - q) + delta) * s
    errd = (_ERR_NEAR1 * delta + _U2 * np.abs(1 - q)) * s
    dlo = _down(dd - errd)
    dhi = _up(dd + errd)
    bs = np.int64(1) if dlo > 0 else np.int64(-1)
    ok = (np.abs(q) < _INF) & (dlo > -0.5) & (dhi < 0.5) & (dlo <= dhi) & (dhi - dlo <= _DRES2) & \
        ((dlo > 0) | (dhi < 0))
    return q, _sided(dd, bs), 0, 1 + delta, ok


# the region codes of _classify: gradref's slices of the sorted input, in ascending order of x
R_FAR, R_LOW, R_MAIN1, R_BAND, R_MAIN2, R_SERIES, R_MAIN3, R_NEAR, R_TOP = range(9)


@_inl
def _classify(v):
    """The region code of v, branch-free (NaN: R_TOP, where gradref's sort puts it)."""
    return (8 - np.int64(v < -1000.0) - np.int64(v < _LOW) - np.int64(v < _BAND_LO) - np.int64(v <= _BAND_HI)
            - np.int64(v <= -_SERIES) - np.int64(v < _SERIES) - np.int64(v < _HIGH) - np.int64(v <= _TOP))


@_jit
def _main_run(xs, rn, d, E, r64, ok, t_err, p, emin, fmax, f32):
    """The main regions (r = A + B, gradref._main and _decide) over contiguous inputs xs."""
    for j in range(len(xs)):
        r64[j], t_err[j] = _main(xs[j])
    for j in range(len(xs)):
        rn[j], d[j], E[j], ok[j] = _decide(r64[j], t_err[j], p, emin, fmax, f32)


@_jit
def _band_run(xs, rn, d, E, r64, ok, t_a, t_b, t_k, c1, c2, c3, thi, tlo, inv, p, emin, fmax, f32):
    """The band (gradref._band and _decide) over contiguous inputs xs: exp_dd's table looked up in a
    loop of its own (a gather keeps the compiler from vectorising the rest)."""
    for j in range(len(xs)):
        t_a[j], t_b[j], t_k[j] = _exp_dd_reduce(xs[j], c1, c2, c3, inv)
    for j in range(len(xs)):
        k = t_k[j] & 63  # K % 64
        rn[j] = thi[k]
        d[j] = tlo[k]
    for j in range(len(xs)):
        e0, e1 = _exp_dd_finish(t_a[j], t_b[j], t_k[j], rn[j], d[j])
        r64[j], t_a[j] = _band(xs[j], e0, e1)
    for j in range(len(xs)):
        rn[j], d[j], E[j], ok[j] = _decide(r64[j], t_a[j], p, emin, fmax, f32)


@_jit
def _near_run(xs, rn, d, E, r64, ok, p, emin, fmax, f32):
    """The region near 1 (2 <= x <= 350) over contiguous inputs xs."""
    for j in range(len(xs)):
        rn[j], d[j], E[j], r64[j], ok[j] = _near1(xs[j], p, emin, fmax, f32)


@_jit
def _low_run(xs, r64):
    """r64 of the low region from -1000 up: np.ldexp((1 + x) P, k) over contiguous inputs xs."""
    for j in range(len(xs)):
        v = xs[j]
        P, k = _exp_parts(v)
        r64[j] = ((1 + v) * P * _pow2(k + 600)) * _TWOM600


# the region codes of _classify: gradref's slices of the sorted input, in ascending order of x
R_FAR, R_LOW, R_MAIN1, R_BAND, R_MAIN2, R_SERIES, R_MAIN3, R_NEAR, R_TOP = range(9)
_LIST = np.array([-1, 3, 0, 1, 0, -1, 0, 2, -1], dtype=np.int64)  # the list of each region (-1: none)


@_inl
def _classify(v):
    """The region code of v, branch-free (NaN: R_TOP, where gradref's sort puts it)."""
    return (8 - np.int64(v < -1000.0) - np.int64(v < _LOW) - np.int64(v < _BAND_LO) - np.int64(v <= _BAND_HI)
            - np.int64(v <= -_SERIES) - np.int64(v < _SERIES) - np.int64(v < _HIGH) - np.int64(v <= _TOP))


@_jit
def _run(g, xs, rn, d, E, r64, ok, t_a, t_b, t_k, c1, c2, c3, thi, tlo, inv, p, emin, fmax, f32):
    """List g's region over contiguous inputs xs (0 main, 1 band, 2 near 1, 3 low)."""
    if g == 0:
        _main_run(xs, rn, d, E, r64, ok, t_a, p, emin, fmax, f32)
    elif g == 1:
        _band_run(xs, rn, d, E, r64, ok, t_a, t_b, t_k, c1, c2, c3, thi, tlo, inv, p, emin, fmax, f32)
    elif g == 2:
        _near_run(xs, rn, d, E, r64, ok, p, emin, fmax, f32)
    else:
        _low_run(xs, r64)


@_jit
def _kernel(x, p, emin, fmax, f32, c1, c2, c3, thi, tlo, inv, rn, d, E, r64, ok):
    """gradref._sorted for x in any order, by blocks: (1) every input's region code; a block in one exp
    region (main, band or near 1) is computed in place; else (2) the values of the constant regions and
    the series are written for every input (branch-free), and (3) the inputs of the exp regions listed
    by region (branch-free compaction), each list gathered, computed branch-free and scattered over
    (2)'s values."""
    n = len(x)
    sp = _pow2(p)  # gradref._series' 2.0 ** p
    reg = np.empty(BLOCK, dtype=np.int64)
    ie = np.empty(BLOCK, dtype=np.int64)
    lists = np.empty((4, BLOCK), dtype=np.int64)  # main, band, near 1, low (x >= -1000)
    xs = np.empty(BLOCK)
    t_rn = np.empty(BLOCK)
    t_d = np.empty(BLOCK)
    t_E = np.empty(BLOCK, dtype=np.int64)
    t_r = np.empty(BLOCK)
    t_ok = np.empty(BLOCK, dtype=np.bool_)
    t_a = np.empty(BLOCK)
    t_b = np.empty(BLOCK)
    t_k = np.empty(BLOCK, dtype=np.int64)
    counts = np.zeros(4, dtype=np.int64)
    for s0 in range(0, n, BLOCK):
        s1 = min(s0 + BLOCK, n)
        m = s1 - s0
        xb = x[s0:s1]
        rnb, db, Eb, rb, okb = rn[s0:s1], d[s0:s1], E[s0:s1], r64[s0:s1], ok[s0:s1]
        # (1) the region codes
        cmin = R_TOP
        cmax = R_FAR
        for i in range(m):
            c = _classify(xb[i])
            reg[i] = c
            cmin = min(cmin, c)
            cmax = max(cmax, c)
        if cmin == cmax and _LIST[cmin] >= 0 and _LIST[cmin] != 3:  # one exp region: in place
            _run(_LIST[cmin], xb, rnb, db, Eb, rb, okb, t_a, t_b, t_k, c1, c2, c3, thi, tlo, inv, p, emin, fmax,
                 f32)
            continue
        # (2) x < LOW: RN -0, d -TINY_D, E emin, r64 -0 (below -1000; from -1000 up r64 in (3)); the series
        # (gradref._series); x > TOP: RN 1, d TINY_D, E 0, r64 1; the exp regions are overwritten in (3)
        for i in range(m):
            v = xb[i]
            c = reg[i]
            r = 0.6 + 0.64 * v
            q = _round(r, p, emin, fmax, f32)
            low = c <= R_LOW
            ser = c == R_SERIES
            rnb[i] = -0.0 if low else (q if ser else 1.0)
            db[i] = -TINY_D if low else ((r - q) * sp if ser else TINY_D)
            Eb[i] = emin if low else (-1 if ser else 0)
            rb[i] = -0.0 if low else (r if ser else 1.0)
            okb[i] = True
        if cmin == cmax:  # one region
            if cmin == R_LOW:
                _low_run(xb, rb)
            continue
        # (3) the exp regions' inputs, then each region's list
        ne = 0
        for i in range(m):
            c = reg[i]
            ie[ne] = i
            ne += (c != R_FAR) & (c != R_SERIES) & (c != R_TOP)
        counts[:] = 0
        for j in range(ne):
            i = ie[j]
            g = _LIST[reg[i]]
            lists[g, counts[g]] = i
            counts[g] += 1
        for g in range(4):
            k = counts[g]
            if k == 0:
                continue
            li = lists[g, :k]
            for j in range(k):
                xs[j] = xb[li[j]]
            _run(g, xs[:k], t_rn[:k], t_d[:k], t_E[:k], t_r[:k], t_ok[:k], t_a, t_b, t_k, c1, c2, c3, thi, tlo,
                 inv, p, emin, fmax, f32)
            if g == 3:
                for j in range(k):
                    rb[li[j]] = t_r[j]
            else:
                for j in range(k):
                    i = li[j]
                    rnb[i], db[i], Eb[i], rb[i], okb[i] = t_rn[j], t_d[j], t_E[j], t_r[j], t_ok[j]


def jit_grad_reference(x: np.ndarray, fmt: Format, out=None):
    """gradref.grad_reference compiled: (rn, d, E, r64, decided) of mish' for finite x of fmt (p <= 24),
    any order; undecided entries are garbage. The same bits as grad_reference (module docstring).
    `out`: optional arrays (rn, d, E, r64, decided) of len(x) (float64, float64, int64, float64, bool)
    to write into (a caller going over many blocks saves the fresh arrays' page faults)."""
    if fmt.p > 24:
        raise ValueError("the fast mish' reference is proven for binary16, bfloat16 and binary32 inputs only")
    x = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
    n = len(x)
    if out is None:
        out = (np.empty(n), np.empty(n), np.empty(n, dtype=np.int64), np.empty(n), np.empty(n, dtype=bool))
    elif [(a.dtype, a.shape) for a in out] != [(np.dtype(t), (n,)) for t in ("f8", "f8", "i8", "f8", "?")] or \
            not all(a.flags.c_contiguous and a.flags.writeable for a in out):
        raise ValueError("out must be writable contiguous arrays (rn, d, E, r64, decided) of float64, float64, "
                         "int64, float64, bool and the length of x")
    if n:
        c1, c2, c3, thi, tlo, inv = gradref._tables()
        _kernel(x, fmt.p, fmt.emin, fmt.max, fmt is FP32, c1, c2, c3, thi, tlo, inv, *out)
    return tuple(out)
