"""Every formula file, evaluated exactly, is mish wherever its source's thresholds and clamps are inactive."""

import mpmath
import numpy as np
import pytest

from mishaudit.exact import exact_value, formula_error
from mishaudit.formats import FP16, FP32
from mishaudit.reference import reference
from mishaudit.registry import load_registry

REG = load_registry()

# (lo, hi) open ranges where, by reading each source, no threshold or clamp acts (fp32 constants)
INACTIVE = {
    "softplus-tanh": (-80, 80), "log-exp-plus-one": (-80, 80), "exp-rational": (-80, 80),
    "pytorch-75251": (-80, 80), "njuffa": (-80, 80), "stable-softplus": (-80, 80), "yashas2": (-80, 80),
    "softplus-threshold": (-80, 20), "darknet-cpu": (-20, 20), "exp-rational-clamped": (-100, 80),
    "yashas": (-18, 80), "opencv-cpu": (-36.73, 80), "onednn-jit": (-80, 44.3614159),
    "openvino-gpu": (-80, 9.9), "tf-softplus": (-13.9423, 13.9423),
}


def mish(x, prec=300):
    with mpmath.workprec(prec):
        x = mpmath.mpf(x)
        return x * mpmath.tanh(mpmath.log1p(mpmath.exp(x)))


@pytest.mark.parametrize("fid", sorted(INACTIVE))
def test_transcription_is_mish_where_inactive(fid):
    lo, hi = INACTIVE[fid]
    rng = np.random.default_rng(3)
    xs = list(rng.uniform(lo, hi, 40)) + [lo + 1e-3, hi - 1e-3, -1.0, 0.5]
    for x in xs:
        x = float(np.float32(x))
        if not lo < x < hi or x == 0:
            continue
        with mpmath.workprec(400):
            v, m = exact_value(REG[fid], x, FP32, 400), mish(x, 400)
            assert abs(v - m) <= 1e-12 * abs(m), (fid, x)


def blend(x):
    """coreml-2359 by hand: sigmoid blend of x and softplus(min(x, 10.39)) under tanh."""
    with mpmath.workprec(300):
        x = mpmath.mpf(x)
        c = mpmath.mpf("10.39")
        s = 1 / (1 + mpmath.exp(-(x - c)))
        sp = x * s + mpmath.log1p(mpmath.exp(min(x, c))) * (1 - s)
        return x * mpmath.tanh(sp)


@pytest.mark.parametrize("x", [-5.0, -1.0, 0.5, 3.0, 10.0, 10.39, 12.0, 30.0])
def test_coreml_2359_blend_at_hand_computed_points(x):
    f = REG["coreml-2359-workaround"]
    with mpmath.workprec(300):
        assert abs(exact_value(f, x, FP32, 300) - blend(x)) <= mpmath.mpf(10) ** -60 * abs(blend(x))
        # and it is a blend: it differs from mish by far more than rounding noise below the knee
        if x < 10:
            assert abs(blend(x) - mish(x)) > 1e-12 * abs(mish(x))


def test_formula_error_of_thresholds_matches_hand_derivation():
    xs = np.sort(np.unique(np.concatenate([np.linspace(-30, 30, 2001), [20.015625]]).astype(np.float16).astype(np.float64)))
    ref = reference(xs, FP16, show_progress=False)
    fe = formula_error(REG["softplus-threshold"], xs, FP16, ref.r64)
    # beyond 20 the formula is x*tanh(x); mish is x*tanh(log1p(e^x)); the largest gap is at the first x > 20
    x0 = 20.015625
    with mpmath.workprec(300):
        want = float(abs(x0 * mpmath.tanh(x0) - mish(x0)) / abs(mish(x0)))  # about 4 e^(-3 x0)
    assert fe.worst_x == x0
    assert abs(fe.max_rel - want) <= 1e-6 * want
    # exact rewrites have no approximation error at all
    for fid in ("exp-rational", "pytorch-75251", "log-exp-plus-one", "njuffa"):
        assert formula_error(REG[fid], xs, FP16, ref.r64).max_rel == 0.0
