"""The fast reference: identical to the mpmath path over the fp16 and bf16 lattices, within 1e-6 ulp on fp32."""


import mpmath
import numpy as np
import pytest

from mishaudit.eval.evaluate import Policy, evaluate
from mishaudit.formats import BF16, FP16, FP32, FP64, all_finite, from_ordinal
from mishaudit.lang.registry import load_registry
from mishaudit.measure.metrics import errors
from mishaudit.reference.fastref import EPS, exp_bounded, fast_reference
from mishaudit.reference.table import Reference
from mishaudit.reference.ziv import compute_points


def test_exp_error_within_the_proven_bound():
    rng = np.random.default_rng(11)
    a = rng.uniform(-700, 700, 4000).astype(np.float32).astype(np.float64)
    a = np.concatenate([a, [0.0, 1e-30, -0.3466, 0.3466, 700.0, -700.0]]).astype(np.float32).astype(np.float64)
    e = exp_bounded(a)
    with mpmath.workprec(200):
        worst = max(abs((mpmath.mpf(ei) - mpmath.exp(ai)) / mpmath.exp(ai)) for ai, ei in zip(a, e))
    assert worst < 2.0**-47.9


@pytest.mark.parametrize("fmt", [FP16, BF16], ids=lambda f: f.name)
def test_fast_path_equals_mpmath_over_the_whole_lattice(fmt):
    x = np.sort(all_finite(fmt))
    rn, d, E, r64, ok = fast_reference(x, fmt)
    assert ok.mean() > 0.5  # most inputs are decided without mpmath (the rest: x < -700, near-ties)
    slow = compute_points(x[ok], fmt)
    assert np.array_equal(rn[ok], slow["rn"]) and np.array_equal(np.signbit(rn[ok]), np.signbit(slow["rn"]))
    assert np.array_equal(E[ok], slow["E"])
    assert np.max(np.abs(d[ok] - slow["d"])) < 1e-9
    # per-input errors and verdicts of every formulation are the same through either reference
    fast_ref = Reference(x[ok], rn[ok], d[ok], E[ok], r64[ok])
    slow_ref = Reference(x[ok], slow["rn"], slow["d"], slow["E"], slow["r64"])
    for f in load_registry().values():
        y = evaluate(f, x[ok], Policy(fmt)).y
        a, b = errors(y, fast_ref, fmt), errors(y, slow_ref, fmt)
        assert np.array_equal(a.cr, b.cr) and np.array_equal(a.faithful, b.faithful)
        assert np.array_equal(a.dulp, b.dulp)
        assert np.nanmax(np.abs(a.ulp - b.ulp)) < 1e-6


def test_fp32_sample_within_1e_6_ulp_of_mpmath():
    rng = np.random.default_rng(2026)
    o = rng.integers(-(2**31 - 2**23), 2**31 - 2**23, 100_000)
    x = from_ordinal(o, FP32)
    x = x[np.isfinite(x)]
    rn, d, E, r64, ok = fast_reference(x, FP32)
    # the closed-form regions decide every input (fastref's docstring): series, x < -200, x > 350
    assert ok[(np.abs(x) < 2.0**-30) | (x < -200) | (x > 350)].all()
    assert ok.mean() > 0.9999
    sel = np.flatnonzero(ok)
    slow = compute_points(x[sel], FP32)
    assert np.array_equal(rn[sel], slow["rn"]) and np.array_equal(E[sel], slow["E"])
    assert np.max(np.abs(d[sel] - slow["d"])) < 1e-6
    assert EPS * 2.0**FP32.p < 1e-6  # the decision margin itself is below 1e-6 ulp


def test_only_narrow_formats():
    with pytest.raises(ValueError):
        fast_reference(np.array([1.0]), FP64)
