"""Framework kernels (torch, ONNX Runtime, JAX) audited beside the formulations: outputs at hand-picked
inputs against values derived independently, identify, the gate, unsupported formats, missing frameworks."""

import json
import os
import subprocess
import sys
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from click.testing import CliRunner

import mishaudit
from mishaudit.cli import main
from mishaudit.eval import kernels
from mishaudit.formats import BF16, FP16, FP32, FP64, round_fraction


def exact_mish(x: float):
    with mpmath.workprec(300):
        v = mpmath.mpf(x)
        return v * mpmath.tanh(mpmath.log1p(mpmath.exp(v)))


def rn(v, fmt) -> float:
    sign, man, exp, _ = v._mpf_
    return round_fraction((-1) ** sign * Fraction(int(man)) * Fraction(2) ** exp, fmt) if man else 0.0


def far_from_midpoints(fmt, xs, margin=0.05):
    """The inputs whose exact mish lies more than `margin` ulp from every rounding boundary of fmt: there,
    any computation in a wider format that is accurate to `margin` ulp of fmt rounds to RN(mish(x))."""
    out = []
    for x in xs:
        r = exact_mish(x)
        y = rn(r, fmt)
        nxt = float(np.nextafter(np.asarray(y).astype(fmt.dtype), np.asarray(np.inf).astype(fmt.dtype))) \
            if fmt is not BF16 else None
        ulp = abs(nxt - y) if nxt is not None else 2.0 ** (int(np.floor(np.log2(abs(y)))) - 7) if y else 2.0**-133
        if abs(float((r - y) / ulp)) < 0.5 - margin:
            out.append(x)
    return out


HAND = [-20.0, -8.5, -3.0, -1.25, -0.5, -0.0625, 0.0625, 0.5, 1.25, 3.0, 8.5]


@pytest.mark.parametrize("fmt", [FP16, BF16], ids=lambda f: f.name)
def test_torch_mish_in_half_precisions_is_float32_rounded_once(fmt):
    """PyTorch computes half and bfloat16 mish in float32 (its opmath type) and rounds once; float32's
    error (a few 2^-24) is far below an fp16/bf16 ulp, so away from rounding boundaries the result is
    RN(mish(x)), derived here with mpmath."""
    xs = [float(np.asarray(x).astype(fmt.dtype)) for x in HAND]
    xs = far_from_midpoints(fmt, xs)
    assert len(xs) >= 8
    got = kernels.get("torch:mish").run(np.array(xs), fmt)
    assert got.tolist() == [rn(exact_mish(x), fmt) for x in xs]


@pytest.mark.parametrize("kid", ["torch:mish", "onnxruntime:Mish", "jax:mish", "torch:softplus-tanh"])
@pytest.mark.parametrize("fmt", [FP32, FP64], ids=lambda f: f.name)
def test_kernels_are_within_a_few_ulp_of_mish_and_exact_at_the_specials(kid, fmt):
    k = kernels.get(kid)
    # x >= -1.25: softplus(x) >= 0.25, so even log(exp(x) + 1) (ONNX Runtime's binary64 form, below) loses
    # at most 2^-53 / 0.25 relative, a few ulps
    xs = np.array([x for x in HAND if x >= -1.25] + [30.0, 1e4])
    got = k.run(xs, fmt)
    for x, y in zip(xs.tolist(), got.tolist()):
        r = exact_mish(x)
        ulp = 2.0 ** (int(np.floor(np.log2(abs(float(r))))) - fmt.p + 1)
        assert abs(float((mpmath.mpf(y) - r) / ulp)) <= 8, (kid, fmt.name, x, y)
    assert got[-1] == 1e4 and got[-2] == 30.0  # mish(x) rounds to x there (1 - tanh(softplus(30)) < 2^-80)
    z = k.run(np.array([0.0]), fmt)[0]
    assert z == 0.0


def test_onnxruntime_float64_mish_cancels_like_log_of_exp_plus_one():
    """At x = -20, softplus(x) = log1p(e^-20) = 2.06e-9. Computed as log(1 + e^x) in binary64, 1 + e^x
    carries an absolute error up to 2^-53, a relative error up to 2^-53 / 2.06e-9 = 5.4e-8 in softplus,
    hence in mish: far more than a binary64 ulp (1.1e-16), which log1p would keep."""
    y = kernels.get("onnxruntime:Mish").run(np.array([-20.0]), FP64)[0]
    r = exact_mish(-20.0)
    rel = abs(float((mpmath.mpf(y) - r) / r))
    assert 1e-12 < rel <= 2.0**-53 / 2.06e-9 * 1.01


def test_one_table_with_kernels_and_formulations_in_bf16():
    r = CliRunner().invoke(main, ["compare", "--dtype", "bf16", "--formula", "torch:mish", "--formula",
                                  "onnxruntime:Mish", "--formula", "softplus-tanh", "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = {x["formula"]: x for x in json.loads(r.output)}
    assert set(rows) == {"torch:mish", "onnxruntime:Mish", "softplus-tanh"}
    assert rows["onnxruntime:Mish"]["strategy"] == "unsupported" and rows["onnxruntime:Mish"]["inputs"] == 0
    assert "bfloat16" in rows["onnxruntime:Mish"]["implementation"]
    assert rows["torch:mish"]["inputs"] == 65280 and rows["torch:mish"]["libm"] == "kernel"
    assert rows["torch:mish"]["implementation"].startswith("torch ")
    assert rows["softplus-tanh"]["implementation"] == "fpcore"


def test_identify_names_float32_opmath_for_torch_mish_in_fp16():
    df = mishaudit.identify("torch:mish", dtype="fp16")
    best = df.iloc[0]
    assert best["compute_dtype"] == "fp32"  # PyTorch's opmath upcast, read off its source
    assert best["share"] > 0.999
    assert best["matches"] == df["matches"].max() and best["inputs"] == 63488
    diffs = df.attrs["differences"]
    assert len(diffs) == best["inputs"] - best["matches"]


def test_identify_rejects_a_format_the_kernel_lacks():
    with pytest.raises(mishaudit.UserError, match="does not run in bf16"):
        mishaudit.identify("onnxruntime:Mish", dtype="bf16")


def run(*args, env=None):
    p = subprocess.run([sys.executable, "-m", "mishaudit.cli", *args], capture_output=True, text=True,
                       env=env or os.environ.copy(), timeout=600)
    return p.returncode, p.stdout, p.stderr


def test_a_kernel_limit_passes_and_fails_like_a_formulations(tmp_path):
    th = tmp_path / "t.toml"
    code, _, err = run("baseline", "--dtype", "fp16", "--formula", "torch:mish", "--out", str(th))
    assert code == 0, err
    text = th.read_text()
    assert 'kernel = "torch:mish"' in text and "framework = " in text
    code, out, err = run("check", "--thresholds", str(th))
    assert code == 0, out + err
    tight = text.replace("\ndulp_1 = ", "\ndulp_1 = 0\n# was ").replace("\nmax_ulp = ", "\nmax_ulp = 0.25\n# was ")
    th.write_text(tight)
    code, out, err = run("check", "--thresholds", str(th))
    assert code == 1 and "torch:mish fp16: max_ulp" in err and "Traceback" not in err


def test_kernel_in_the_exhaustive_sweep_equals_the_enumerated_run(tmp_path):
    args = ["--dtype", "fp32", "--domain", "-1:-0.999", "--formula", "torch:mish", "--format", "json"]
    r1 = CliRunner().invoke(main, ["compare", *args])
    r2 = CliRunner().invoke(main, ["compare", *args, "--exhaustive", "--jobs", "2"])
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    a, b = json.loads(r1.output)[0], json.loads(r2.output)[0]
    for k in ("inputs", "max_ulp", "worst_x", "dulp_0", "dulp_1", "dulp_gt3", "nonfinite"):
        assert a[k] == b[k], k


def test_overflow_says_kernels_have_no_intermediates():
    events, culprits = mishaudit.overflow(dtype="fp16", formulas=["torch:mish", "exp-rational"])
    assert set(events["formula"]) == {"exp-rational"}
    notes = [a for a in events.attrs["attributions"] if a["formula"] == "torch:mish"]
    assert notes and "no intermediates" in notes[0]["note"]


def test_options_that_do_not_apply_to_kernels_are_errors():
    with pytest.raises(mishaudit.UserError, match="--compute-dtype shapes how FPCore formulations"):
        mishaudit.compare(formulas=["torch:mish"], compute_dtype="fp32")
    with pytest.raises(mishaudit.UserError, match="--device cuda moves torch kernels only"):
        mishaudit.compare(formulas=["softplus-tanh"], device="cuda")


def test_a_missing_framework_is_listed_with_its_install_command(monkeypatch):
    monkeypatch.setattr(kernels, "framework_version", lambda fw: None if fw == "jax" else "1")
    r = CliRunner().invoke(main, ["list", "--format", "json"])
    row = next(x for x in json.loads(r.output) if x["id"] == "jax:mish")
    assert row["source"] == "unavailable: pip install 'mishaudit[jax]'"
    with pytest.raises(mishaudit.UserError, match=r"pip install 'mishaudit\[jax\]'"):
        mishaudit.compare(formulas=["jax:mish"])


def test_libm_torch_is_torchs_own_function():
    import torch

    from mishaudit.eval import libm

    x = np.linspace(-10, 10, 101).astype(np.float32).astype(np.float64)
    got = libm.apply("torch", "exp", [x], FP32)
    want = torch.exp(torch.from_numpy(x.astype(np.float32))).numpy().astype(np.float64)  # the model's definition
    assert np.array_equal(got, want)
    assert libm.apply("torch", "tanh", [np.array([0.5])], FP16)[0] == float(torch.tanh(torch.tensor([0.5], dtype=torch.float16))[0])
