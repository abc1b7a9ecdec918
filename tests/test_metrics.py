"""Error measures against direct mpmath computations (property tests)."""

import math

import mpmath
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mishaudit.formats import FP16, FP32, from_ordinal, ordinal
from mishaudit.measure.metrics import errors, summarize
from mishaudit.reference.table import reference


def mish(x):
    with mpmath.workprec(300):
        x = mpmath.mpf(x)
        return x * mpmath.tanh(mpmath.log1p(mpmath.exp(x)))


@settings(max_examples=60, deadline=None)
@given(x=st.floats(-90, 60, width=32), k=st.integers(-5, 5))
def test_ulp_error_of_neighbours_matches_mpmath(x, k):
    fmt = FP32
    xs = np.array([x], dtype=np.float64)
    ref = reference(xs, fmt, show_progress=False)
    y = from_ordinal(ordinal(ref.rn, fmt) + k, fmt)  # k steps from RN(r)
    err = errors(y, ref, fmt)
    r = mish(x)
    with mpmath.workprec(300):
        if r == 0:
            return
        e = int(mpmath.floor(mpmath.log(abs(r), 2)))
        ulp = mpmath.mpf(2) ** (max(e, fmt.emin) - fmt.p + 1)
        want = abs(mpmath.mpf(float(y[0])) - r) / ulp
    assert abs(err.ulp[0] - float(want)) <= 1e-6 * max(1.0, float(want))  # DESIGN: exact to 1e-6 ulp
    assert err.dulp[0] == abs(k)
    assert err.cr[0] == (k == 0)
    assert math.isclose(err.bits[0], math.log2(1 + abs(k)))
    # faithful: RN(r) and its neighbour on r's side
    # compared in mpmath: r may lie within half a binary64 ulp of RN(r), so float(r) can equal it
    side = 1 if r > mpmath.mpf(float(ref.rn[0])) else -1
    assert err.faithful[0] == (k == 0 or k == side)
    if k == 0:
        assert err.ulp[0] <= 0.5


def test_summary_statistics_by_hand():
    xs = np.sort(np.array([-3.0, -1.0, -0.5, 0.25, 1.0, 2.0, 4.0, 8.0]))
    ref = reference(xs, FP16, show_progress=False)
    y = ref.rn.copy()
    y[1] = np.inf  # one nonfinite output
    y[3] = from_ordinal(ordinal(ref.rn[3:4], FP16) + 3, FP16)[0]  # one output 3 steps off
    err = errors(y, ref, FP16)
    row = summarize(err, ref)
    assert row["nonfinite"] == 1 and row["inputs"] == 8
    assert row["dulp_0"] == 6 and row["dulp_3"] == 1 and row["dulp_gt3"] == 0
    assert row["worst_x"] == xs[3]
    assert row["cr_frac"] == 6 / 8
    assert row["max_bits"] == 2.0  # log2(1 + 3)
    assert 2.5 < row["max_ulp"] < 3.5


def test_signed_zero_mismatch_counted():
    xs = np.array([-200.0, -150.0])
    ref = reference(xs, FP16, show_progress=False)
    assert (ref.rn == 0).all() and np.signbit(ref.rn).all()
    err = errors(np.array([0.0, -0.0]), ref, FP16)
    assert err.signed_zero.tolist() == [True, False]
    assert err.cr.all()  # +0 == -0 numerically; the sign is reported apart
