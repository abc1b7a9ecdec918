"""gradref_jit.py, gradref.py's mish' reference compiled, against gradref.grad_reference (the oracle): the
same decided mask and the same bits of rn, d, E, r64 on every decided entry, over every finite fp16 and
bf16 input, fp32 blocks of consecutive values straddling every region boundary of gradref.py, the
subnormals, +-max, random bit patterns (hypothesis), an unsorted order; its bit-level round_to; the
reference table's mish' path (the compiled reference, MPFR for the rest) against the numpy one."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mishaudit.formats import (
    BF16,
    FP16,
    FP32,
    FP64,
    all_finite,
    from_ordinal,
    ordinal,
    round_to,
)
from mishaudit.lang.spec import MISH_GRAD
from mishaudit.reference import gradref, gradref_jit
from mishaudit.reference.gradref import grad_reference
from mishaudit.reference.gradref_jit import BLOCK, jit_grad_reference
from mishaudit.reference.specref import spec_reference
from mishaudit.reference.table import reference_arrays

ROOT = -1.19243  # near the root of mish'
BOUNDARIES = (gradref.LOW, gradref.BAND_LO, gradref.BAND_HI, -gradref.SERIES, gradref.SERIES, gradref.HIGH,
              gradref.TOP, -1000.0, 0.0, ROOT)
MAX_ORD = int(ordinal(np.array([FP32.max]), FP32)[0])
TINY_ORD = int(ordinal(np.array([FP32.tiny]), FP32)[0])  # the first normal: subnormals below


def same_bits(x, fmt, got=None):
    """Assert jit_grad_reference(x) (or `got`) gives grad_reference's mask and bits; the decided share."""
    want = grad_reference(x, fmt)
    got = jit_grad_reference(x, fmt) if got is None else got
    assert [a.dtype for a in got] == [a.dtype for a in want]
    ok = want[4]
    diff = np.flatnonzero(got[4] != ok)
    assert not len(diff), f"decided masks differ at x = {x[diff[:5]]}"
    for name, w, g in zip(("rn", "d", "E", "r64"), want[:4], got[:4]):
        w, g = w[ok], g[ok]
        bad = np.flatnonzero(w.view(np.int64) != g.view(np.int64))
        assert not len(bad), f"{name} differs at x = {x[ok][bad[:5]]}: {w[bad[:5]]} != {g[bad[:5]]}"
    return ok.mean()


def block(center_ord: int, half: int) -> np.ndarray:
    """The fp32 values of consecutive ordinals center - half .. center + half - 1 (clipped to the finite)."""
    o = np.arange(max(center_ord - half, -MAX_ORD), min(center_ord + half, MAX_ORD + 1))
    return from_ordinal(o, FP32)


def boundary_blocks(half: int = 4096) -> np.ndarray:
    return np.concatenate([block(int(ordinal(np.array([np.float32(c)]), FP32)[0]), half) for c in BOUNDARIES])


@pytest.mark.parametrize("fmt", [FP16, BF16], ids=str)
def test_every_finite_fp16_bf16_input(fmt):
    x = all_finite(fmt)
    assert same_bits(x, fmt) > 0.99
    assert same_bits(x[::-1].copy(), fmt) > 0.99  # another order


@pytest.mark.parametrize("c", BOUNDARIES, ids=lambda c: f"{c:g}")
def test_fp32_blocks_at_the_region_boundaries(c):
    o = int(ordinal(np.array([np.float32(c)]), FP32)[0])
    x = block(o + 700, 3 * BLOCK)  # crosses c inside a block: blocks of one region and a mixed one
    if c == 0.0:
        x = np.concatenate([x, [-0.0, 0.0]])
        assert np.signbit(x).any() and (x == 0).sum() >= 3
    share = same_bits(x, FP32)
    assert share > (0.9 if c == ROOT else 0.999)


def test_fp32_subnormals_and_max():
    x = np.concatenate([block(0, 5000), block(TINY_ORD, 5000), block(-TINY_ORD, 5000), block(MAX_ORD, 5000),
                        block(-MAX_ORD, 5000), [FP32.max, -FP32.max, FP32.min_subnormal, -FP32.min_subnormal]])
    assert same_bits(x, FP32) == 1.0


def test_fp32_low_region_r64():
    """r64 of -1000 <= x < -200, np.ldexp((1 + x) P, k) into binary64's subnormals (compiled as two exact
    steps): a dense random sample."""
    rng = np.random.default_rng(7)
    lo, hi = (int(ordinal(np.array([v]), FP32)[0]) for v in (-1000.0, -200.0))
    x = from_ordinal(rng.integers(lo, hi + 1, 200_000), FP32)
    assert same_bits(x, FP32) == 1.0
    r64 = jit_grad_reference(x, FP32)[3]
    assert (r64 <= 0).all() and ((r64 != 0) & (np.abs(r64) < 2.0**-1022)).any()  # subnormals are met
    assert (r64 == 0).any() and (r64 < -2.0**-1022).any()  # and underflow to -0, and normal values


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=3 * BLOCK))
def test_random_fp32_bit_patterns(bits):
    x = np.array(bits, dtype=np.uint64).astype(np.uint32).view(np.float32).astype(np.float64)
    x = x[np.isfinite(x)]
    if len(x):
        same_bits(x, FP32)


def test_unsorted_order():
    x = boundary_blocks(2048)
    rng = np.random.default_rng(3)
    perm = rng.permutation(len(x))
    xp = x[perm]
    got = jit_grad_reference(xp, FP32)
    same_bits(xp, FP32, got)
    sorted_got = jit_grad_reference(x, FP32)  # the same bits in either order (every entry)
    for a, b in zip(got, sorted_got):
        assert np.array_equal(np.asarray(a).view(np.uint8).reshape(len(x), -1),
                              np.asarray(b)[perm].view(np.uint8).reshape(len(x), -1))


@pytest.mark.parametrize("n", [0, 1, 2, BLOCK - 1, BLOCK, BLOCK + 1])
def test_lengths_and_out(n):
    x = np.linspace(-400.0, 400.0, n).astype(np.float32).astype(np.float64)
    if n:
        same_bits(x, FP16 if n == 2 else FP32)
    out = (np.empty(n), np.empty(n), np.empty(n, dtype=np.int64), np.empty(n), np.empty(n, dtype=bool))
    got = jit_grad_reference(x, FP32, out=out)
    assert all(a is b for a, b in zip(got, out))
    for a, b in zip(got, jit_grad_reference(x, FP32)):
        assert np.array_equal(a, b)
    with pytest.raises(ValueError):
        jit_grad_reference(x, FP32, out=out[:4] + (np.empty(n + 1, dtype=bool),))


def test_rejects_wide_formats():
    with pytest.raises(ValueError):
        jit_grad_reference(np.array([1.0]), FP64)


def test_round_matches_round_to():
    """The compiled round_to (a binary64 addition of 2^(q+52)) over random binary64 bit patterns and the
    edge values, in each format."""
    rng = np.random.default_rng(11)
    v = rng.integers(0, 2**64, 20_000, dtype=np.uint64).view(np.float64)
    v = np.concatenate([v[~np.isnan(v)], [0.0, -0.0, np.inf, -np.inf, 1e308, 5e-324, -5e-324, 0.6, 1 + 2.0**-30]])
    v = np.concatenate([v, v * 2.0**-1000, v * 2.0**-900])
    for fmt in (FP16, BF16, FP32):
        want = round_to(v, fmt)
        got = np.array([gradref_jit._round(a, fmt.p, fmt.emin, fmt.max, fmt is FP32) for a in v])
        assert np.array_equal(want.view(np.int64), got.view(np.int64))
        got = np.array([gradref_jit._round(a, fmt.p, fmt.emin, fmt.max, False) for a in v])  # the general path
        assert np.array_equal(want.view(np.int64), got.view(np.int64))


def _numpy_table(xs, fmt):
    """table._other_spec's mish' path before the compiled reference: grad_reference, MPFR for the rest."""
    rn, d, E, r64, ok = grad_reference(xs, fmt)
    out = {"rn": rn, "d": d, "E": E, "r64": r64}
    rest = np.flatnonzero(~ok)
    if len(rest):
        for k, v in zip(out, spec_reference(MISH_GRAD, xs[rest], fmt)):
            out[k][rest] = v
    out["fallback"] = len(rest)
    return out


@pytest.mark.parametrize("fmt", [FP32, FP16], ids=str)
def test_reference_arrays_mish_grad_unchanged(fmt):
    rng = np.random.default_rng(5)
    if fmt is FP32:
        x = np.concatenate([block(int(ordinal(np.array([np.float32(ROOT)]), FP32)[0]), 300),
                            block(int(ordinal(np.array([np.float32(-0.5)]), FP32)[0]), 300),
                            block(int(ordinal(np.array([np.float32(2.0)]), FP32)[0]), 300)])
    else:
        x = all_finite(FP16)
        x = x[(x > -3.0) & (x < -0.5)]
    x = x[rng.permutation(len(x))]
    want = _numpy_table(x, fmt)
    got = reference_arrays(x, fmt, spec=MISH_GRAD)
    assert got["fallback"] == want["fallback"]
    assert (fmt is FP16) or got["fallback"] > 0  # the root's neighbourhood goes to MPFR
    for k in ("rn", "d", "E", "r64"):
        assert np.array_equal(np.asarray(got[k]).view(np.int64), np.asarray(want[k]).view(np.int64)), k
