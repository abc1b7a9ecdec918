"""Specs: the mish' reference against hand-derived values and mpmath's diff, the -grad formulations,
and a :spec other than mish (softplus) audited end to end."""

import math

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mishaudit import api
from mishaudit.errors import UserError
from mishaudit.formats import BF16, FP16, FP32, FP64, from_ordinal, round_mpf
from mishaudit.lang.registry import load_text
from mishaudit.lang.spec import MISH, MISH_GRAD
from mishaudit.reference.gradref import exp_dd, grad_reference
from mishaudit.reference.specref import spec_reference
from mishaudit.reference.table import reference, reference_arrays


def mish_mp(x):
    return x * mpmath.tanh(mpmath.log1p(mpmath.exp(x)))


def dmish_mp(x):
    """mish'(x) by mpmath's numerical differentiation of mish (independent of the closed form)."""
    with mpmath.workprec(400):
        return mpmath.diff(mish_mp, mpmath.mpf(x))


def ref_of(x, fmt, spec=MISH_GRAD):
    return reference(np.array([x], dtype=np.float64), fmt, use_cache=False, show_progress=False, spec=spec)


def test_mish_grad_at_zero_is_three_fifths():
    # mish'(0) = tanh(log 2) = (4 - 1)/(4 + 1) = 3/5 exactly
    for fmt in (FP16, BF16, FP32, FP64):
        r = ref_of(0.0, fmt)
        with mpmath.workprec(200):
            assert r.rn[0] == round_mpf(mpmath.mpf(3) / 5, fmt)
        assert MISH_GRAD.special(0.0, fmt) == r.rn[0]


def test_mish_grad_limits():
    # large x: mish' = 1 + (4x - 2) e^-2x + ..., so RN is 1 with r just above it
    for fmt in (FP16, FP32, FP64):
        r = ref_of(40.0, fmt)
        assert r.rn[0] == 1.0 and r.d[0] > 0
    # very negative x: mish'(x) ~ x e^x -> 0 from below: RN is -0 in every format
    for x in (-200.5, -1000.0, -3.0e38):
        for fmt in (FP16, BF16, FP32):
            r = ref_of(x, fmt)
            assert r.rn[0] == 0 and math.copysign(1, r.rn[0]) == -1 and r.d[0] < 0
    # in between, x e^x (1 + x)/x is the leading term: at x = -60 RN(mish') is RN(e^x (1 + x)) in fp64
    with mpmath.workprec(300):
        lead = mpmath.exp(-60) * (1 - 60)
    r = ref_of(-60.0, FP64)
    assert abs(r.r64[0] / float(lead) - 1) < 1e-20 * 1e6  # e^x corrections are of order e^-60


@pytest.mark.parametrize("x", [-7.25, -1.1923828125, -1.0, -0.5, 0.3125, 1.5, 2.0, 5.0, 17.0])
def test_mish_grad_reference_matches_mpmath_diff(x):
    want = dmish_mp(x)
    for fmt in (FP16, BF16, FP32, FP64):
        r = ref_of(x, fmt)
        assert r.rn[0] == round_mpf(want, fmt), (x, fmt.name)
        e = max(int(mpmath.floor(mpmath.log(abs(want), 2))), fmt.emin)
        d = (want - mpmath.mpf(float(r.rn[0]))) / mpmath.mpf(2) ** (e - fmt.p + 1)
        assert abs(r.d[0] - float(d)) < 1e-6, (x, fmt.name)


def test_fast_grad_reference_equals_mpfr_on_fp16_bf16_and_a_fp32_sample():
    rng = np.random.default_rng(7)
    sets = [(FP16, from_ordinal(np.arange(-31743, 31744), FP16)),
            (BF16, from_ordinal(np.arange(-32639, 32640), BF16)[::7]),
            (FP32, np.concatenate([rng.uniform(-4, 3, 3000).astype(np.float32).astype(np.float64),
                                   from_ordinal(rng.integers(-2139095039, 2139095040, 3000), FP32)]))]
    for fmt, x in sets:
        x = np.unique(x[np.abs(x) < 800])
        rn, d, E, r64, ok = grad_reference(x, fmt)
        want = spec_reference(MISH_GRAD, x, fmt)
        assert ok.mean() > 0.99
        assert np.array_equal(rn[ok], want[0][ok]) and np.array_equal(np.signbit(rn[ok]), np.signbit(want[0][ok]))
        assert np.array_equal(E[ok], want[2][ok])
        assert np.abs(d[ok] - want[1][ok]).max() < 2.0**-20  # the resolution gradref guarantees


@settings(max_examples=40, deadline=None)
@given(x=st.floats(-3, -0.5, width=32))
def test_double_double_exp_within_its_bound(x):
    hi, lo = exp_dd(np.array([x]))
    with mpmath.workprec(200):
        got = mpmath.mpf(float(hi[0])) + mpmath.mpf(float(lo[0]))
        e = mpmath.exp(mpmath.mpf(x))
        assert abs(got / e - 1) <= mpmath.mpf(2) ** -60


def test_near_root_inputs_are_decided_or_sent_to_mpfr():
    # around the root of mish' (x0 = -1.19243...), where A + B cancels: the decided ones are right
    x0 = np.float32(-1.1924)
    x = np.sort(np.arange(x0.view(np.int32) - 400, x0.view(np.int32) + 400, dtype=np.int32)
                .view(np.float32).astype(np.float64))
    got = reference_arrays(x, FP32, spec=MISH_GRAD)
    for i in range(0, len(x), 37):
        assert got["rn"][i] == round_mpf(dmish_mp(x[i]), FP32)


def test_grad_formulations_in_compare():
    df = api.compare(["fp16"], ["*-grad"])
    assert set(df["formula"]) >= {"pytorch-cpu-grad", "mish-cuda-grad", "darknet-cpu-grad", "darknet-gpu-grad",
                                  "onednn-grad"}
    assert set(df["spec"]) == {"mish'"}
    assert (df["inputs"] == 63488).all()
    # pytorch-cpu-grad is the spec evaluated as written: its formula ulp is exactly 0
    row = df[df["formula"] == "pytorch-cpu-grad"].iloc[0]
    assert row["formula_exact"]


def test_the_default_selection_is_mish_only():
    df = api.compare(["fp16"], [])
    assert set(df["spec"]) == {"mish"} and not df["formula"].str.endswith("-grad").any()


SOFTPLUS = """(FPCore naive-softplus (x)
  :name "log(1 + exp(x))" :description "softplus, naively" :spec (log1p (exp x))
  (log (+ 1 (exp x))))"""


def test_a_softplus_spec_audits_against_softplus(tmp_path):
    (tmp_path / "sp.fpcore").write_text(SOFTPLUS)
    f = load_text(SOFTPLUS, "sp", "sp")
    assert f.spec.key.startswith("spec-") and f.spec.name == "(log1p (exp x))"
    df = api.compare(["fp16"], ["naive-softplus"], formula_dirs=[str(tmp_path)])
    row = df.iloc[0]
    assert row["spec"] == "(log1p (exp x))" and row["formula_exact"]
    # hand-derived: in fp16 1 + e^x rounds to 1 once e^x <= 2^-11 (half of ulp(1) = 2^-10), i.e. x <= ln 2^-11 =
    # -7.62; log gives 0 while softplus(x) ~ e^x: an error of e^x / ulp(e^x), in [2^10, 2^11) ulp, largest
    # for the first such input
    assert -7.7 < row["worst_x"] < -7.5 and 1024 <= row["max_ulp"] < 2048
    # independent check of the reference at hand-picked inputs against mpmath
    for x in (-20.0, -1.5, 0.0, 0.5, 3.0, 12.0):
        r = reference(np.array([x]), FP16, use_cache=False, show_progress=False, spec=f.spec)
        with mpmath.workprec(200):
            assert r.rn[0] == round_mpf(mpmath.log1p(mpmath.exp(x)), FP16)
    # specials: only NaN is checked for a user spec
    sp = df.attrs["specials"]
    assert list(sp["x"].isna()) == [True]


def test_bad_spec_is_one_line(tmp_path):
    with pytest.raises(UserError, match="function of the argument"):
        load_text("(FPCore f (x) :spec (* x y) x)", "f", "f")
    with pytest.raises(UserError, match="not a truth value"):
        load_text("(FPCore f (x) :spec (< x 1) x)", "f", "f")
    with pytest.raises(UserError, match="expression"):
        load_text('(FPCore f (x) :spec "mish" x)', "f", "f")
    # a spec undefined on part of the inputs: a one-line error naming an input and the fix
    f = load_text("(FPCore f (x) :spec (log x) (log x))", "f", "f")
    with pytest.raises(UserError, match="--domain"):
        reference(np.array([-1.0, 2.0]), FP16, use_cache=False, show_progress=False, spec=f.spec)


def test_spec_recognised_by_text_with_any_argument_name():
    f = load_text("(FPCore g (y) :spec (* y (tanh (log1p (exp y)))) y)", "g", "g")
    assert f.spec is MISH
    flat = ("(+ (tanh (log1p (exp z))) (* (* z (/ 1 (+ 1 (exp (- z))))) (- 1 (* (tanh (log1p (exp z))) "
            "(tanh (log1p (exp z)))))))")
    assert load_text(f"(FPCore g (z) :spec {flat} z)", "g", "g").spec is MISH_GRAD


def test_threshold_file_names_the_spec_and_check_refuses_a_changed_one(tmp_path):
    from mishaudit.gate.thresholds import baseline_text, read_thresholds
    from mishaudit.output.frames import records

    df = api.compare(["fp16"], ["darknet-gpu-grad"])

    text = baseline_text(records(df), 0.05, "test", 1 << 16, 0, None)
    assert "spec = \"mish'\"" in text
    path = tmp_path / "t.toml"
    path.write_text(text)
    th = read_thresholds(str(path))
    assert th.entries[0].spec == "mish'"
    assert api.check(str(path))["ok"].all()  # passes against itself
    path.write_text(text.replace("spec = \"mish'\"", "spec = \"mish\""))
    with pytest.raises(UserError, match="measured against mish"):
        api.check(str(path))
