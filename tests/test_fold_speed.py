"""fold.py's fold (the sweep's inner loop, rewritten for speed) equals, bit for bit, the loop it
replaced (kept here as `_fold_reference`): counts, histogram or keys, and the 7 out slots (as int64
bits) on blocks from every region of binary32 and on random, nonfinite and signed-zero outputs."""

import math

import numba
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mishaudit.analysis.sweep import values
from mishaudit.formats import FP32
from mishaudit.measure.fold import (
    _LOG2,
    _OFF,
    _POW2,
    KEY_BASE,
    MAX_ABS200,
    MAX_DULP,
    MAX_REL,
    MAX_ULP,
    SUM_BITS,
    SUM_ULP,
    WORST,
    add_counts,
    fold,
)
from mishaudit.measure.metrics import ULP_RES
from mishaudit.reference.table import reference_arrays

MAXORD = 2**31 - 2**23 - 1  # ordinal of the largest finite binary32 value


@numba.njit(nogil=True, error_model="numpy", boundscheck=False)
def _fold_reference(y, rn, d, E, counts, hist, out, keys):  # pragma: no cover - compiled
    """fold as it was before its rewrite (one pass, a division for nearly every output)."""
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
        if dl < 64:
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
    add_counts(counts, n, nonfin, cr, fa, sz, k1, k2, k3)  # the counts' layout only
    out[SUM_ULP] = s_ulp
    out[SUM_BITS] = s_bits
    out[MAX_ULP] = mu
    out[WORST] = wi
    out[MAX_ABS200] = ma
    out[MAX_REL] = mr * 2.0**-100
    out[MAX_DULP] = mk


# first ordinal of a block in each region of binary32 (mish's reference differs in each)
def _ord(v: float) -> int:
    b = int(np.float32(v).view(np.int32)) & 0x7FFFFFFF
    return -b if v < 0 else b


REGIONS = {
    "huge-neg": -MAXORD,  # x = -FLT_MAX...: RN(mish) = -0
    "neg-100..-20": _ord(-90.0),  # RN(mish) subnormal or -0
    "neg-30": _ord(-30.0),
    "-1..1": _ord(-0.7),
    "near-0": _ord(0.3),
    "subnormal": -16384,  # subnormal x of both signs, -0 and +0
    "pos-20..100": _ord(50.0),
    "huge-pos": MAXORD - 32767,
}


def block(lo: int, n: int = 32768):
    """x (float64), rn, d, E of binary32 ordinals lo .. lo + n - 1 (capped at the largest finite)."""
    x = values(lo, min(lo + n - 1, MAXORD)).astype(np.float64)
    ref = reference_arrays(x, FP32)
    return x, ref["rn"], ref["d"], ref["E"]


def outputs(rn: np.ndarray, kind: str, rng) -> np.ndarray:
    """Binary32 outputs against reference rn: "cr" (rn itself), "ulp1" (one ordinal above rn),
    "mix" (rn, with 10 % off by random ordinal steps up to 2^20 and a few inf, NaN, flipped zeros)."""
    y = rn.astype(np.float32)
    if kind == "cr":
        return y
    o = np.where(y < 0, -(y.view(np.int32) & 0x7FFFFFFF), y.view(np.int32) & 0x7FFFFFFF).astype(np.int64)
    if kind == "ulp1":
        o = o + 1
    else:
        pick = rng.random(len(o)) < 0.10
        o = np.where(pick, o + rng.integers(-(2**20), 2**20, len(o)), o)
    o = np.clip(o, -(MAXORD + 1), MAXORD + 1)  # one beyond: +-inf
    y = np.where(o < 0, (-o) | 0x80000000, o).astype(np.uint32).view(np.float32).copy()
    if kind == "mix":
        m = len(y)
        y[rng.integers(0, m, max(m // 1000, 1))] = np.nan
        y[rng.integers(0, m, max(m // 1000, 1))] = np.inf
        y[rng.integers(0, m, max(m // 1000, 1))] = -np.inf
        z = rng.random(m) < 0.5
        y[(y == 0) & z] = -y[(y == 0) & z]
    return y


def _both(y, rn, d, E, keys_mode: bool):
    """(counts, hist or keys, out) of fold and of _fold_reference on the same data."""
    from mishaudit.measure.summary import NBINS

    res = []
    for f in (fold, _fold_reference):
        counts = np.zeros(10, dtype=np.int64)
        counts[:] = 7  # fold adds to what is there
        out = np.full(7, np.nan)
        if keys_mode:
            hist, keys = np.empty(0, dtype=np.int64), np.full(len(y), -5, dtype=np.int64)
        else:
            hist, keys = np.zeros(NBINS, dtype=np.int64), np.empty(0, dtype=np.int64)
            hist[[0, 1, 5000]] = 3
        f(y, rn, d, E, counts, hist, out, keys)
        res.append((counts, keys if keys_mode else hist, out))
    return res


def assert_identical(y, rn, d, E):
    y = np.ascontiguousarray(y, dtype=np.float32)
    for keys_mode in (False, True):
        (c1, h1, o1), (c2, h2, o2) = _both(y, rn, d, E, keys_mode)
        assert np.array_equal(c1, c2), (keys_mode, c1, c2)
        assert np.array_equal(h1, h2), (keys_mode, np.flatnonzero(h1 != h2)[:10])
        assert np.array_equal(o1.view(np.int64), o2.view(np.int64)), (keys_mode, o1, o2)


RNG = np.random.default_rng(20240611)
_BLOCKS = {}


def _region(name, n=32768):
    if (name, n) not in _BLOCKS:
        _BLOCKS[name, n] = block(REGIONS[name], n)
    return _BLOCKS[name, n]


def garbage(n, rng):
    """Random binary32 bit patterns (every class: NaN, inf, subnormal, both zeros)."""
    y = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32).copy()
    y[rng.random(n) < 0.05] = 0.0
    y[rng.random(n) < 0.05] = -0.0
    return y


def test_every_region_and_kind_of_output():
    for name in REGIONS:
        _, rn, d, E = _region(name)
        for kind in ("cr", "ulp1", "mix"):
            assert_identical(outputs(rn, kind, RNG), rn, d, E)
        assert_identical(garbage(len(rn), RNG), rn, d, E)
        # signed zeros against every reference, and outputs equal to RN(r) with the other sign
        y = rn.astype(np.float32)
        assert_identical(np.where(RNG.random(len(y)) < 0.5, -y, y), rn, d, E)
        assert_identical(np.full(len(y), -0.0, dtype=np.float32), rn, d, E)
        assert_identical(np.full(len(y), 0.0, dtype=np.float32), rn, d, E)


def test_block_sizes_and_chunk_edges():
    from mishaudit.measure.fold import CHUNK

    _, rn, d, E = _region("-1..1")
    ym = outputs(rn, "mix", RNG)
    for n in (0, 1, 2, 7, 8, 9, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 3, 5000):
        assert_identical(ym[:n], rn[:n], d[:n], E[:n])
    for lo in (0, CHUNK - 3, 3 * CHUNK - 1):  # the largest error at a chunk's first or last output
        y = rn.astype(np.float32)
        y[lo] = np.float32(y[lo] * 1.5)
        assert_identical(y, rn, d, E)
    y = rn.astype(np.float32)
    y[:] = np.nan  # nothing finite
    assert_identical(y, rn, d, E)
    y[CHUNK + 5] = rn[CHUNK + 5]  # one finite output, CR, in the second chunk
    assert_identical(y, rn, d, E)
    y[: 2 * CHUNK] = np.inf  # a whole chunk nonfinite, then finite ones
    assert_identical(y, rn, d, E)


def test_ties_of_the_largest_error_take_the_first():
    n = 3000
    rn = np.full(n, 1.5)
    d = np.zeros(n)
    E = np.zeros(n, dtype=np.int64)
    y = np.full(n, np.float32(1.5))
    for pos in ((5, 2000), (2000, 2500), (1100, 1101, 2900)):
        yy = y.copy()
        yy[list(pos)] = np.float32(1.5 + 2.0**-20)
        assert_identical(yy, rn, d, E)
    assert_identical(y, rn, d, E)  # every u = 0: the first output


def test_huge_dulp_and_log2_terms():
    _, rn, d, E = _region("near-0")
    o = np.where(rn < 0, -(rn.astype(np.float32).view(np.int32) & 0x7FFFFFFF),
                 rn.astype(np.float32).view(np.int32) & 0x7FFFFFFF).astype(np.int64)
    for step in (63, 64, 65, 2**20, 2**30):
        oo = np.clip(o + step * RNG.choice([-1, 1], len(o)), -MAXORD, MAXORD)
        y = np.where(oo < 0, (-oo) | 0x80000000, oo).astype(np.uint32).view(np.float32)
        assert_identical(y, rn, d, E)
    y = np.where(RNG.random(len(rn)) < 0.5, np.float32(-3e38), np.float32(3e38))  # dULP near 2^32
    assert_identical(y, rn, d, E)


@st.composite
def references(draw):
    """A reference block: a slice of a region's (valid, as the reference gives), or synthetic
    binary32 rn with E its binade (or emin) and d in [-1/2, 1/2], or data breaking those rules
    (E of another binade, |d| up to 4, rn = 0 with d = 0): the folds must agree on every one."""
    kind = draw(st.sampled_from(["region", "synthetic", "broken"]))
    n = draw(st.integers(1, 2600))
    if kind == "region":
        _, rn, d, E = _region(draw(st.sampled_from(sorted(REGIONS))), 4096)
        lo = draw(st.integers(0, max(len(rn) - n, 0)))
        return rn[lo:lo + n], d[lo:lo + n], E[lo:lo + n]
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 0x7F800000, n, dtype=np.int64)
    if draw(st.booleans()):  # a narrow range of values
        bits = (bits % draw(st.integers(1, 2**24))) + draw(st.integers(0, 0x7F000000))
    rn32 = (bits | (rng.integers(0, 2, n) << 31)).astype(np.uint32).view(np.float32)
    rn = rn32.astype(np.float64)
    with np.errstate(divide="ignore"):
        E = np.maximum(np.floor(np.log2(np.abs(rn))), -126).astype(np.int64)
    d = rng.uniform(-0.5, 0.5, n)
    d[rng.random(n) < 0.1] = 0.0
    d[rng.random(n) < 0.05] = -9.33263619e-302
    if kind == "broken":
        E = np.clip(E + rng.integers(-3, 4, n) * (rng.random(n) < 0.3), -126, 127)
        d = np.where(rng.random(n) < 0.2, rng.uniform(-4, 4, n), d)
        z = rng.random(n) < 0.05
        rn[z], d[z], E[z] = 0.0, 0.0, rng.choice([-126, 0])
    return rn, d, E


@st.composite
def blocks(draw):
    rn, d, E = draw(references())
    n = len(rn)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    o = np.where(rn < 0, -(rn.astype(np.float32).view(np.int32) & 0x7FFFFFFF),
                 rn.astype(np.float32).view(np.int32) & 0x7FFFFFFF).astype(np.int64)
    how = draw(st.sampled_from(["steps", "garbage", "mixed"]))
    if how == "garbage":
        y = garbage(n, rng)
    else:
        p = draw(st.floats(0, 1))
        big = draw(st.sampled_from([1, 3, 64, 2**20, 2**31]))
        step = np.where(rng.random(n) < p, rng.integers(-big, big + 1, n), 0)
        oo = np.clip(o + step, -(MAXORD + 1), MAXORD + 1)
        y = np.where(oo < 0, (-oo) | 0x80000000, oo).astype(np.uint32).view(np.float32).copy()
        if how == "mixed":
            g = rng.random(n) < 0.1
            y[g] = garbage(int(g.sum()), rng)
            zero = y == 0
            flip = zero & (rng.random(n) < 0.5)
            y[flip] = -y[flip]
    return y, rn, d, E


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(blocks())
def test_fold_equals_the_reference_loop(b):
    assert_identical(*b)


def test_blocks_of_one_error():
    """Chunks whose outputs all have the same u and dULP (the saturated regions: fold sums them by
    one product where no partial sum rounds): dyadic and other u, a few nonfinite outputs."""
    n = 5000
    for rv, e in ((1.5, 0), (-0.0, -126), (3.0e38, 127), (2.0**-140, -126)):
        for dv in (0.0, -9.33263619e-302, 0.3, 0.25, -0.5, 2.0**-61, 0.5 - 2.0**-53, 1.0, -1.0):  # |d| = 1: broken
            rn, d, E = np.full(n, rv), np.full(n, dv), np.full(n, e, dtype=np.int64)
            o = _ord(np.float32(rv))
            for k in (0, 1, -1, 2, 3, 5):
                oo = o + k
                if abs(oo) > MAXORD:
                    continue
                b = (-oo) | 0x80000000 if oo < 0 else oo
                y = np.full(n, np.uint32(b)).view(np.float32)
                assert_identical(y, rn, d, E)
                y2 = y.copy()
                y2[[3, 1500]] = np.nan
                assert_identical(y2, rn, d, E)
                y3 = y.copy()
                y3[2500] = -y3[2500]
                assert_identical(y3, rn, d, E)
                d4 = d.copy()  # sums that are no multiple of u when the one-error chunks begin
                d4[:700] = RNG.uniform(-0.5, 0.5, 700)
                assert_identical(y, rn, d4, E)


def test_one_error_chunks_after_sums_with_low_bits():
    """Sums carrying bits below ulp(u) into chunks of one error (u = 1/4): partial sums then
    round where they cross a power of 2, and fold must add them one by one."""
    from mishaudit.measure.fold import CHUNK

    for n in (3 * CHUNK, 5 * CHUNK + 17):
        for low in (2.0**-45, 3 * 2.0**-45, 2.0**-44 + 2.0**-45, 2.0**-30, 2.0**-52):
            d = np.full(n, 0.25)
            d[0] = 0.25 + low
            rn, E = np.full(n, 1.5), np.zeros(n, dtype=np.int64)
            assert_identical(np.full(n, np.float32(1.5)), rn, d, E)
    for s0 in (0.3, 2.5478467492858172, 0.06611054211411638, 2.4265431030687195):  # low bits, binades crossed
        d = np.full(3 * CHUNK, 0.25)
        d[:CHUNK] = 0.0
        d[5] = s0
        rn, E = np.full(len(d), 1.5), np.zeros(len(d), dtype=np.int64)
        assert_identical(np.full(len(d), np.float32(1.5)), rn, d, E)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 2000), st.data())
def test_same_tells_equal_arrays_from_unequal(n, data):
    """fold.same: equal word for word, or not; one differing word anywhere is found."""
    from mishaudit.measure.fold import same

    a = np.array(data.draw(st.lists(st.integers(0, 2**32 - 1), min_size=n, max_size=n)), dtype=np.uint32)
    b = a.copy()
    assert same(a, b)
    i = data.draw(st.integers(0, n - 1))
    b[i] ^= np.uint32(1 << data.draw(st.integers(0, 31)))
    assert not same(a, b) and not same(b, a)
