"""fastref_jit.py, fastref.fast_reference compiled: bit for bit the same as fast_reference (the decided
mask, and rn, d, E, r64 on every decided entry, as int64 bits: -0 is not +0) over every finite fp16
and bf16 input, fp32 runs straddling each region boundary of fastref.py (and 0, the subnormals, the
smallest normals, +-max), random fp32 bit patterns (hypothesis), any input order; and table.py's
reference_arrays, which now runs it, unchanged (MPFR fallback included); the inputs given as binary32
values or as binary64 alike."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mishaudit.formats import BF16, FP16, FP32, FP64, all_finite, ordinal, round_to
from mishaudit.reference import fastref
from mishaudit.reference.fastref import fast_reference
from mishaudit.reference.fastref_jit import BLOCK, jit_reference, jit_reference_counted
from mishaudit.reference.mpfrref import mpfr_reference
from mishaudit.reference.table import reference_arrays

MAX_ORD = 2**31 - 2**23 - 1  # ord(max binary32)
BOUNDARIES = (fastref.UNDER_LIMIT, fastref.SCALED_LIMIT, -fastref.SERIES_LIMIT, 0.0, fastref.SERIES_LIMIT,
              fastref.EXP_LIMIT)


def assert_same(x, fmt) -> int:
    """jit_reference(x) is fast_reference(x) bit for bit where decided, with the same mask; returns the
    number of undecided inputs."""
    want = fast_reference(x, fmt)
    got = jit_reference(x, fmt)
    assert got[2].dtype == np.int64 and got[4].dtype == np.bool_
    as32 = jit_reference_counted(np.asarray(x, dtype=np.float64).astype(np.float32), fmt)  # the sweep's binary32
    for a, b in zip(got, as32):
        assert np.array_equal(a.view(np.uint8), b.view(np.uint8))
    assert as32[5] == np.count_nonzero(~want[4])
    assert np.array_equal(got[4], want[4]), np.asarray(x)[got[4] != want[4]][:5]
    ok = want[4]
    for name, a, b in zip(("rn", "d", "E", "r64"), want[:4], got[:4]):
        bad = np.flatnonzero(a[ok].view(np.int64) != b[ok].view(np.int64))
        assert not len(bad), (name, np.asarray(x)[ok][bad][:5], a[ok][bad][:5], b[ok][bad][:5])
    return int((~ok).sum())


def fp32_run(lo: int, hi: int) -> np.ndarray:
    """The binary32 values of ordinals lo..hi, ascending (-0 and +0 both where 0 is in), as float64."""
    return values32(max(lo, -MAX_ORD), min(hi, MAX_ORD))


def values32(lo: int, hi: int) -> np.ndarray:
    """The binary32 values of ordinals lo..hi, ascending, -0 and +0 both where 0 is in (as
    analysis/sweep.py's values), as float64."""
    parts = []
    if lo <= 0:
        parts.append(np.arange(-lo, max(-hi, 0) - 1, -1, dtype=np.uint32) | np.uint32(0x80000000))
    if hi >= 0:
        parts.append(np.arange(max(lo, 0), hi + 1, dtype=np.uint32))
    return np.concatenate(parts).view(np.float32).astype(np.float64)


def ord32(v: float) -> int:
    return int(ordinal(np.array([v]), FP32)[0])


@pytest.mark.parametrize("fmt", [FP16, BF16], ids=lambda f: f.name)
def test_every_finite_16_bit_input(fmt):
    x = all_finite(fmt)  # bit-pattern order: not sorted
    assert not np.all(x[1:] >= x[:-1])
    assert assert_same(x, fmt) == 0  # fp16 and bf16 are decided everywhere (test_fastref.py)
    assert assert_same(np.sort(x), fmt) == 0


@pytest.mark.parametrize("b", BOUNDARIES, ids=lambda b: f"{b:g}")
@pytest.mark.parametrize("fmt", [FP32, FP16, BF16], ids=lambda f: f.name)
def test_fp32_runs_straddling_each_region_boundary(b, fmt):
    """Consecutive binary32 values around each boundary (on it, and on both sides), cut so that some
    compiled blocks lie wholly on one side and one holds the boundary; for 0, -0 and +0 and the
    smallest subnormals. The same runs rounded to fp16 and bf16 (their distinct values) for those
    formats."""
    o = ord32(b)
    x = fp32_run(o - 1500, o + 2500)
    assert b in x and x[0] < b < x[-1] and len(x) > 3 * BLOCK
    if b == 0:
        assert np.signbit(x[x == 0]).tolist() == [True, False]
    if fmt is FP32:
        assert_same(x, fmt)
    else:
        xs = np.unique(round_to(x, fmt))
        assert_same(xs[np.isfinite(xs)], fmt)


@pytest.mark.parametrize("v", [2.0**-126, -(2.0**-126), FP32.max, -FP32.max, 1.0, -1.0, 256.0, -256.0],
                         ids=lambda v: f"{v:g}")
def test_fp32_runs_at_subnormals_normals_and_max(v):
    o = ord32(v)
    assert_same(fp32_run(o - 2100, o + 2100), FP32)


def test_fp32_every_region_in_one_unsorted_array():
    """All the boundary runs together, shuffled: the same as fast_reference (which sorts) and as the
    compiled reference of the sorted array, put back in order."""
    x = np.concatenate([fp32_run(ord32(b) - 700, ord32(b) + 700) for b in BOUNDARIES]
                       + [fp32_run(-MAX_ORD, -MAX_ORD + 500), fp32_run(MAX_ORD - 500, MAX_ORD)])
    perm = np.random.default_rng(7).permutation(len(x))
    xp = x[perm]
    assert_same(xp, FP32)
    a, b = jit_reference(xp, FP32), jit_reference(x, FP32)
    for u, w in zip(a, b):
        assert np.array_equal(u.view(np.uint8), w[perm].view(np.uint8))


def test_fp32_near_ties_leave_the_same_inputs_undecided():
    """Runs around binary32 inputs that fastref leaves to MPFR (near a midpoint or a format value)."""
    n = 0
    for v in (1.0130432844161987, -1.06661856174469, 3.4997665882110596, -3.5725507736206055):
        o = ord32(v)
        n += assert_same(fp32_run(o - 1000, o + 1000), FP32)
    assert n == 4


finite32 = st.integers(0, 2**32 - 1).map(lambda b: float(np.uint32(b).view(np.float32))).filter(np.isfinite)
in_exp = st.floats(-1100, 400, width=32)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(finite32, in_exp), min_size=1, max_size=3 * BLOCK // 2))
def test_fp32_random_bit_patterns(xs):
    assert_same(np.array(xs, dtype=np.float64), FP32)


def test_contract_edges():
    with pytest.raises(ValueError):
        jit_reference(np.array([1.0]), FP64)
    out = jit_reference(np.empty(0), FP32)
    assert [len(a) for a in out] == [0] * 5 and out[2].dtype == np.int64
    assert_same(np.array([-0.0]), FP32)
    assert_same(np.array([0.0, -0.0, 5.0, -5.0]), FP16)


def test_reference_arrays_unchanged_including_the_mpfr_fallback():
    """table.reference_arrays (now on the compiled path) against the path it replaced, fast_reference
    then MPFR for what it leaves undecided: every entry the same bits, the same fallback count."""
    o = ord32(-1.06661856174469)  # undecided by the fast path
    x = np.concatenate([fp32_run(o - 1500, o + 1500), fp32_run(ord32(-1.0994257926940918) - 10,
                                                                ord32(-1.0994257926940918) + 10)])
    got = reference_arrays(x, FP32)
    rn, d, E, r64, ok = fast_reference(x, FP32)
    want = {"rn": rn, "d": d, "E": E, "r64": r64}
    rest = np.flatnonzero(~ok)
    for k, v in zip(want, mpfr_reference(x[rest], FP32)):
        want[k][rest] = v
    assert got["fallback"] == len(rest) == 2
    for k in want:
        assert np.array_equal(np.asarray(got[k]).view(np.int64), np.asarray(want[k]).view(np.int64)), k
