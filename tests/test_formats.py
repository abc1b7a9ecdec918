"""Exact float facts: ulp at the subnormal/normal boundary, rounding, ordinals (checked against numpy/mpmath)."""

import math

import ml_dtypes
import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mishaudit.formats import (
    BF16,
    FORMATS,
    FP16,
    FP32,
    all_finite,
    from_ordinal,
    ordinal,
    round_fraction,
    round_mpf,
    round_to,
    ulp,
)


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_ulp_at_subnormal_normal_boundary(fmt):
    fi = ml_dtypes.finfo(fmt.dtype) if fmt is BF16 else np.finfo(fmt.dtype)
    tiny = float(fi.smallest_normal)
    sub = float(fi.smallest_subnormal)
    assert tiny == 2.0**fmt.emin
    # below and at 2^emin the spacing is the subnormal quantum; one binade up it doubles
    below = float(np.nextafter(fmt.dtype.type(tiny), fmt.dtype.type(0)))
    assert ulp([below], fmt)[0] == sub
    assert ulp([tiny], fmt)[0] == sub
    assert ulp([0.0], fmt)[0] == sub
    assert ulp([2 * tiny], fmt)[0] == 2 * sub
    assert ulp([1.0], fmt)[0] == float(fi.eps)


def test_finite_counts():
    assert len(all_finite(FP16)) == 63488
    assert len(all_finite(BF16)) == 65280


@pytest.mark.parametrize("fmt", [FP16, BF16, FP32], ids=lambda f: f.name)
@settings(max_examples=300, deadline=None)
@given(v=st.floats(allow_nan=False, allow_infinity=False, width=64))
def test_round_to_matches_mpmath(fmt, v):
    got = round_to([v], fmt)[0]
    if v == 0:
        assert got == 0
        return
    # independent: mpmath rounding at p bits (ties to even), then the subnormal quantum by hand
    q = max(math.frexp(abs(v))[1] - 1, fmt.emin) - fmt.p + 1
    exp = mpmath.mpf(v) / mpmath.mpf(2) ** q
    m = int(mpmath.nint(exp))  # nint rounds half to even
    want = math.ldexp(m, q) if abs(m) * 2.0**q <= fmt.max else math.copysign(math.inf, v)
    assert got == want


@settings(max_examples=300, deadline=None)
@given(v=st.floats(allow_nan=False, allow_infinity=False, width=32))
def test_round_to_fp32_equals_numpy_cast(v):
    assert round_to([v], FP32)[0] == float(np.float32(v))


@settings(max_examples=300, deadline=None)
@given(num=st.integers(-(2**80), 2**80), k=st.integers(-1100, 1100))
def test_round_fraction_equals_round_mpf_on_dyadics(num, k):
    from fractions import Fraction

    fr = Fraction(num) * Fraction(2) ** k  # exact in both representations
    m = mpmath.ldexp(mpmath.mpf(num), k) if num else mpmath.mpf(0)
    for fmt in FORMATS:
        assert round_fraction(fr, fmt) == round_mpf(m, fmt)


def test_round_ties_to_even_by_hand():
    from fractions import Fraction

    # 1 + 2^-11 is the midpoint between 1 and 1 + 2^-10 in fp16: ties to the even 1.0
    assert round_fraction(Fraction(1) + Fraction(1, 2**11), FP16) == 1.0
    assert round_fraction(Fraction(1) + Fraction(3, 2**11), FP16) == 1.0 + 2**-9
    # half the smallest subnormal rounds to 0, a hair more rounds up
    assert round_fraction(Fraction(1, 2**25), FP16) == 0.0
    assert round_fraction(Fraction(1, 2**25) + Fraction(1, 2**60), FP16) == 2.0**-24
    # max + half ulp overflows, just below does not
    assert round_fraction(Fraction(65504 + 16), FP16) == math.inf
    assert round_fraction(Fraction(65504 + 15), FP16) == 65504.0


@pytest.mark.parametrize("fmt", [FP16, BF16], ids=lambda f: f.name)
def test_ordinal_is_the_lattice_position(fmt):
    x = np.sort(all_finite(fmt))
    x = x[x != 0]
    o = ordinal(x, fmt)
    pos = o[o > 0]
    assert np.array_equal(pos, np.arange(1, len(pos) + 1))
    assert np.array_equal(from_ordinal(o, fmt), x)
