"""Exact evaluation of formula files and the approximation error (formula_ulp), against mpmath."""

import mpmath
import numpy as np
import pytest

from mishaudit.eval.inputs import Domain, input_set
from mishaudit.formats import BF16, FP16, FP32, all_finite
from mishaudit.lang.registry import load_registry, load_text
from mishaudit.measure.approx import TAU, approx_error
from mishaudit.reference.enclose import enclose_array, enclose_mpfr
from mishaudit.reference.table import reference

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


def exact_value(formula, x: float, fmt, prec: int = 400):
    """F(x) from MPFR intervals at `prec` bits (their midpoint), as an mpmath number."""
    enc = enclose_mpfr(formula, np.array([x]), fmt, prec)
    assert not enc.undecided[0]
    with mpmath.workprec(prec):
        lo, hi = mpmath.mpf(str(enc.lo[0])), mpmath.mpf(str(enc.hi[0]))
        assert hi - lo <= abs(hi) * mpmath.mpf(2) ** (prec // 2 - prec) + mpmath.mpf(2) ** -1000
        return (lo + hi) / 2


@pytest.mark.parametrize("fid", sorted(INACTIVE))
def test_transcription_is_mish_where_inactive(fid):
    lo, hi = INACTIVE[fid]
    rng = np.random.default_rng(3)
    xs = list(rng.uniform(lo, hi, 30)) + [lo + 1e-3, hi - 1e-3, -1.0, 0.5]
    for x in xs:
        x = float(np.float32(x))
        if not lo < x < hi or x == 0:
            continue
        with mpmath.workprec(400):
            assert abs(exact_value(REG[fid], x, FP32) - mish(x, 400)) <= 1e-12 * abs(mish(x, 400)), (fid, x)


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
        if x < 10:  # a blend: it differs from mish by far more than rounding noise below the knee
            assert abs(blend(x) - mish(x)) > 1e-12 * abs(mish(x))


def test_binary64_enclosures_hold_the_mpfr_values():
    x = np.sort(all_finite(FP16))[::37]
    for fid in ("coreml-2359-workaround", "tf-softplus", "darknet-cpu", "opencv-cpu"):
        enc = enclose_array(REG[fid], x, FP16)
        ok = ~enc.undecided
        mp = enclose_mpfr(REG[fid], x[ok], FP16, 200)
        mid = np.array([float((a + b) / 2) for a, b in zip(mp.lo, mp.hi)])
        assert np.all(enc.lo[ok] <= mid) and np.all(mid <= enc.hi[ok]), fid


def run_approx(fid, fmt):
    x = input_set(fmt, Domain(), 1 << 16, 0, REG[fid]).x
    return x, approx_error(REG[fid], x, fmt, reference(x, fmt, show_progress=False))


@pytest.mark.parametrize("fid", ["exp-rational", "pytorch-75251", "log-exp-plus-one", "njuffa", "softplus-tanh",
                                 "stable-softplus", "yashas2"])
def test_exact_rewrites_have_no_approximation_error(fid):
    _, ae = run_approx(fid, FP16)
    assert ae.exact and ae.max_ulp == 0 and ae.worst_x is None and ae.undecided == 0


def brute_max(fid, fmt, xs):
    """max over xs of |F(x) - mish(x)| / ulp(mish(x)), F from MPFR at 300 bits, mish from mpmath."""
    best, arg = -1.0, None
    for x in xs:
        with mpmath.workprec(300):
            r = mish(x, 300)
            e = int(mpmath.floor(mpmath.log(abs(r), 2))) if r != 0 else fmt.emin
            ulp = mpmath.mpf(2) ** (max(e, fmt.emin) - fmt.p + 1)
            d = float(abs(exact_value(REG[fid], x, fmt, 300) - r) / ulp)
        if d > best:
            best, arg = d, x
    return best, arg


def test_tf_softplus_fp16_threshold_costs_6_ulp_by_brute_force():
    # TensorFlow's t = log(eps) + 2 = -4.93 for fp16: below it softplus is replaced by exp(x), which
    # is off by e^x/2 relative, far above fp16's 2^-11. Brute force over the branch x < t with mpmath.
    x, ae = run_approx("tf-softplus", FP16)
    branch = x[(x < -4.9) & (x > -25)]
    want, arg = brute_max("tf-softplus", FP16, branch)
    assert ae.worst_x == arg and abs(ae.max_ulp - want) <= 1e-12 * want
    assert 6 < ae.max_ulp < 7 and not ae.exact


def test_opencv_cutoff_costs_a_whole_bf16_value():
    # OpenCV returns 0 for x <= -36.73, where mish(x) is still a normal bf16 number: the error is
    # |mish(x)|/ulp(mish(x)), at most 2^8 - largest in the binade of the smallest normal results
    x, ae = run_approx("opencv-cpu", BF16)
    branch = x[(x <= -36.73) & (x > -100)]
    want, arg = brute_max("opencv-cpu", BF16, branch)
    assert ae.worst_x == arg and abs(ae.max_ulp - want) <= 1e-12 * want and 128 < want < 256
    assert ae.max_rel == 1.0  # F = 0: the whole value is missing


@pytest.mark.parametrize("fmt, what", [(BF16, 133), (FP32, 149)])
def test_core_ml_clamp_at_minus_100_costs_mish_of_minus_100_in_subnormal_ulps(fmt, what):
    # below -100, F is mish(-100) = -3.72e-42 while mish(x) -> 0: the deviation is largest at the most
    # negative input, |mish(-100)| / 2^-(emin - p + 1) ulps (the subnormal quantum)
    x, ae = run_approx("exp-rational-clamped", fmt)
    with mpmath.workprec(300):
        want = float(abs(mish(-100, 300) - mish(float(x[0]), 300)) * mpmath.mpf(2) ** what)
    assert ae.worst_x == float(x[0]) == -fmt.max
    assert abs(ae.max_ulp - want) <= 1e-12 * want
    assert ae.max_rel == 0.0  # where mish is a normal number, the clamp does not act


def test_core_ml_clamp_is_below_resolution_in_fp16():
    # in fp16 |mish(-100)| = 3.7e-42 is 6e-35 of fp16's subnormal ulp 2^-24: below TAU, not exact
    _, ae = run_approx("exp-rational-clamped", FP16)
    assert float(abs(mish(-100)) * 2**24) < TAU
    assert ae.max_ulp == 0 and not ae.exact and ae.undecided == 0


def test_a_spec_path_with_copysign_and_pow_is_enclosed():
    f = load_text("(FPCore t (x) (* (copysign 1 x) (pow (fabs x) 1.5)))", "t", "t")
    x = np.array([-2.0, 0.5, 3.0])
    enc = enclose_array(f, x, FP32)
    assert not enc.undecided.any()
    want = np.sign(x) * np.abs(x) ** 1.5
    assert np.all(enc.lo <= want) and np.all(want <= enc.hi)
    assert np.all(enc.hi - enc.lo <= 1e-9 * np.abs(want))


def test_mpfr_enclosures_keep_every_bit_through_negation_and_fabs():
    """gmpy2's operators round to its global 53-bit context: the engine must not use them (an
    enclosure at 300 bits once lost all but 53 bits through a unary minus, and was unsound)."""
    f = load_text("(FPCore t (x) (fabs (- (- x 10.39))))", "t", "t")
    enc = enclose_mpfr(f, np.array([0.5]), FP32, 300)
    with mpmath.workprec(300):
        want = abs(mpmath.mpf(0.5) - mpmath.mpf(1039) / 100)
        lo, hi = mpmath.mpf(str(enc.lo[0])), mpmath.mpf(str(enc.hi[0]))
        assert lo <= want <= hi and hi - lo <= mpmath.mpf(2) ** -290
