"""The reference against independent mpmath computations, the signed-zero rule, the cache."""

import math

import mpmath
import numpy as np
import pytest

from mishaudit.formats import BF16, FP16, FP32, FP64, all_finite
from mishaudit.reference.table import cache_path, reference
from mishaudit.reference.ziv import reference_point


def mish_textbook(x, prec=400):
    """mish by its definition x*tanh(log1p(exp(x))) at high precision (another formula than the code's)."""
    with mpmath.workprec(prec):
        x = mpmath.mpf(x)
        return x * mpmath.tanh(mpmath.log1p(mpmath.exp(x)))


@pytest.mark.parametrize("fmt", [FP16, BF16, FP32, FP64], ids=lambda f: f.name)
def test_rn_and_ulp_error_agree_with_textbook_mpmath(fmt):
    rng = np.random.default_rng(7)
    xs = rng.uniform(-60, 30, 300)
    xs = np.concatenate([xs, [-1.0, 1.0, 0.5, -0.5, 20.0, -20.0]])
    for x in xs:
        x = float(np.asarray(x).astype(fmt.dtype)) if fmt is not FP64 else float(x)
        pt = reference_point(x, fmt)
        r = mish_textbook(x)
        with mpmath.workprec(400):
            if r == 0:
                continue
            # RN by mpmath itself at p bits where the result is normal
            if abs(r) >= mpmath.mpf(2) ** fmt.emin:
                want = float(mpmath.mpf(r, prec=fmt.p) if False else mpmath.fadd(r, 0, prec=fmt.p, rounding="n"))
                assert pt.rn == want
            e = int(mpmath.floor(mpmath.log(abs(r), 2)))
            ulp = mpmath.mpf(2) ** (max(e, fmt.emin) - fmt.p + 1)
            d = (r - pt.rn) / ulp
            assert abs(float(d) - pt.d) < 1e-9


@pytest.mark.parametrize("fmt", [FP16, BF16, FP32, FP64], ids=lambda f: f.name)
def test_negative_x_that_rounds_to_zero_gives_minus_zero(fmt):
    x = {"fp16": -30.0, "bf16": -120.0, "fp32": -120.0, "fp64": -800.0}[fmt.name]
    r = mish_textbook(x)
    assert r < 0 and abs(r) < mpmath.mpf(fmt.min_subnormal) / 2  # independently: below half the tiniest value
    pt = reference_point(x, fmt)
    assert pt.rn == 0 and math.copysign(1.0, pt.rn) == -1.0


def test_zero_and_power_of_two_inputs():
    assert reference_point(0.0, FP32).rn == 0.0
    z = reference_point(-0.0, FP32).rn
    assert z == 0 and math.copysign(1, z) < 0
    # |mish(x)| < |x| just below a power of two: RN is 2^k, ulp(r) is of the binade below
    pt = reference_point(32768.0, FP16)
    assert pt.rn == 32768.0 and pt.E == 14


def test_cache_roundtrip_and_corruption(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MISHAUDIT_CACHE_DIR", str(tmp_path))
    xs = np.sort(all_finite(FP16))[::50]
    a = reference(xs, FP16, show_progress=False)
    path = cache_path(FP16)
    assert path.exists()
    b = reference(xs, FP16, show_progress=False)
    assert np.array_equal(a.rn, b.rn) and np.array_equal(a.d, b.d)
    # truncate the file: it is detected, reported and recomputed
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    c = reference(xs, FP16, show_progress=False)
    assert "corrupt" in capsys.readouterr().err
    assert np.array_equal(a.rn, c.rn) and np.array_equal(a.d, c.d)
    # flip one byte deep inside an array: the checksum catches it
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    d = reference(xs, FP16, show_progress=False)
    assert "corrupt" in capsys.readouterr().err
    assert np.array_equal(a.rn, d.rn)


@pytest.mark.parametrize("x, fmt", [(25.0, FP32), (60.0, FP64), (2.0**40, FP32), (1e300, FP64), (12.0, FP16)])
def test_d_keeps_its_digits_when_mish_is_just_below_x(x, fmt):
    # r - RN(r) for x > 0 is -x*delta, far below 2^-P x: it must still come out with the right
    # sign and, where representable, the right magnitude (checked at 2000 bits)
    pt = reference_point(x, fmt)
    assert pt.rn == x and pt.d < 0
    with mpmath.workprec(2000):
        want = (mish_textbook(x, 2000) - x) / mpmath.mpf(2) ** (math.frexp(x)[1] - 1 - fmt.p + 1)
    if abs(want) > 1e-300:
        assert abs(pt.d - float(want)) <= 1e-9 * abs(float(want))
    else:
        assert abs(pt.d) < 1e-250


def test_metrics_do_not_invent_absolute_errors_at_huge_x():
    from mishaudit.measure.metrics import errors

    x = np.array([1e30, 3e38, 2.0**100], dtype=np.float32).astype(np.float64)
    ref = reference(x, FP32, show_progress=False)
    err = errors(x.copy(), ref, FP32)  # y = x, the correctly rounded value
    assert err.cr.all() and (err.abs < 1e-200).all()
