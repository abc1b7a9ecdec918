"""Framework kernels (torch, ONNX Runtime, JAX) audited beside the formulations: outputs at hand-picked
inputs against values derived independently, identify, the gate, unsupported formats, missing frameworks."""

import functools
import json
import os
import subprocess
import sys

import gmpy2
import mpmath
import numpy as np
import pytest
from click.testing import CliRunner

import mishaudit
from mishaudit.cli import main
from mishaudit.eval import kernels
from mishaudit.formats import BF16, FP16, FP32, FP64, all_finite


def exact_mish(x: float):
    with mpmath.workprec(300):
        v = mpmath.mpf(x)
        return v * mpmath.tanh(mpmath.log1p(mpmath.exp(v)))


HAND = [-20.0, -8.5, -3.0, -1.25, -0.5, -0.0625, 0.0625, 0.5, 1.25, 3.0, 8.5]


# ---------------------------------------------------------------- exact values by MPFR, bands of a float32 kernel

_HI = gmpy2.context(precision=200, emin=-(1 << 24), emax=1 << 24)
RN_CTX = {f.name: gmpy2.context(precision=f.p, emin=f.emin - f.p + 2, emax=f.emax + 1, subnormalize=True,
                                round=gmpy2.RoundToNearest) for f in (FP16, BF16, FP32)}  # one rounding to f


def rn_mpfr(values, fmt) -> np.ndarray:
    ctx = RN_CTX[fmt.name]
    return np.array([float(ctx.plus(v)) for v in values])


def lattice(fmt, op="mish") -> np.ndarray:
    x = np.sort(all_finite(fmt))
    return x[x > 0] if op == "log" else x[x > -1] if op == "log1p" else x


@functools.cache
def exact_on_lattice(op: str, fmt_name: str) -> tuple:
    """(inputs, exact op(x) by MPFR at 200 bits) over every finite value of a 16-bit format; mish by its
    definition x tanh(log1p(exp(x)))."""
    x = lattice({"fp16": FP16, "bf16": BF16}[fmt_name], op)
    if op == "mish":
        f = lambda v: _HI.mul(v, _HI.tanh(_HI.log1p(_HI.exp(v))))  # noqa: E731
    else:
        f = getattr(_HI, op)
    return x, tuple(f(gmpy2.mpfr(float(t))) for t in x)


def band(values, rel_ulps: float, abs_bound=None) -> tuple[list, list]:
    """[v - b, v + b] per value, b = rel_ulps ulp32(v) (+ abs_bound[i]): where a float32 kernel within b
    can land."""
    lo, hi = [], []
    for i, v in enumerate(values):
        if gmpy2.is_zero(v) or not gmpy2.is_finite(v):
            lo.append(v)
            hi.append(v)
            continue
        w = gmpy2.mul_2exp(gmpy2.mpfr(rel_ulps), max(gmpy2.get_exp(v) - 1, -126) - 23)
        if abs_bound is not None:
            w = _HI.add(w, gmpy2.mpfr(abs_bound[i]))
        lo.append(_HI.sub(v, w))
        hi.append(_HI.add(v, w))
    return lo, hi


def ulp32_err(y, values, normal_only=False) -> np.ndarray:
    out = np.full(len(y), np.nan)
    for i, (yi, v) in enumerate(zip(np.asarray(y).tolist(), values)):
        if np.isfinite(yi) and gmpy2.is_finite(v) and not gmpy2.is_zero(v) and abs(v) <= np.finfo(np.float32).max:
            e = gmpy2.get_exp(v) - 1
            if normal_only and e < -126:
                continue
            out[i] = float(gmpy2.mul_2exp(abs(_HI.sub(gmpy2.mpfr(yi), v)), 23 - max(e, -126)))
    return out


def check_rounded_float32_kernel(x, y, values, fmt, rel_ulps, abs_bound=None):
    """y must be RN_fmt(y32) for a y32 within the band around the exact values: where no rounding
    boundary of fmt lies in the band, RN_fmt(v) itself. Returns the number of inputs whose band holds
    a boundary and the number of outputs that differ from RN_fmt(v) (all among the former)."""
    lo_v, hi_v = band(values, rel_ulps, abs_bound)
    lo, hi, cr = rn_mpfr(lo_v, fmt), rn_mpfr(hi_v, fmt), rn_mpfr(values, fmt)
    bad = np.flatnonzero(~((lo <= y) & (y <= hi)))
    assert not len(bad), [(float(x[i]), float(y[i]), float(lo[i]), float(hi[i])) for i in bad[:5]]
    one = lo == hi
    assert np.array_equal(y[one], cr[one])
    return int((~one).sum()), int((y != cr).sum())


# torch:mish in float32 is x*tanh(log1p(exp(x))) in float32 (Sleef's 1-ulp functions): within 4 ulp32 of
# mish while e = exp(x) is a normal float32 (measured: 2.15 ulp32 at most); below x = -87.3, e is a
# float32 subnormal, whose absolute error (<= 2^-149) carries over to mish multiplied by |x|; the final
# rounding adds 2^-150 at most: |y32 - mish(x)| <= 4 ulp32(mish(x)) + (|x| + 1) 2^-148.
MISH32_ULPS = 4


@pytest.mark.parametrize("fmt", [FP16, BF16], ids=lambda f: f.name)
def test_torch_mish_in_half_precisions_is_float32_rounded_once(fmt):
    """PyTorch computes half and bfloat16 mish in float32 (its opmath type) and rounds once. Over every
    input of the format, against MPFR: (1) the float32 kernel is within the float32 bound above, and
    is float32 arithmetic, not binary64: below x = -87.3 its exp is a float32 subnormal, and its error
    there exceeds 16 ulp32 (measured: 109 ulp32 at x = -91.75, fp16 lattice); (2) the fp16/bf16 kernel
    is RN(its float32 result), so it is RN(mish(x)) wherever no rounding boundary lies within the
    float32 bound (measured: 3 fp16 outputs differ from RN(mish(x)), all there). A kernel computed in
    fp16 or bf16 itself, or rounded twice (via bf16), or a float64 one, fails."""
    x, v = exact_on_lattice("mish", fmt.name)
    k = kernels.get("torch:mish")
    y32 = k.run(x, FP32)
    absb = (np.abs(x) + 1) * 2.0**-148
    near, differ = check_rounded_float32_kernel(x, y32, v, FP32, MISH32_ULPS, absb)
    e = ulp32_err(y32, v, normal_only=True)
    sub_e = (x < -87.4) & (x > -100)  # float32 exp(x) subnormal, mish(x) still a normal float32
    assert np.nanmax(e[x >= -87.3]) <= MISH32_ULPS and np.nanmax(e[sub_e]) > 16
    y = k.run(x, fmt)
    near, differ = check_rounded_float32_kernel(x, y, v, fmt, MISH32_ULPS, absb)
    assert differ <= near
    assert np.array_equal(y, rn_mpfr(y32, fmt))  # one rounding of the float32 result


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
    with pytest.raises(mishaudit.UserError, match=r"\(--compute-dtype\) shapes how FPCore formulations"):
        mishaudit.compare(formulas=["torch:mish"], compute_dtype="fp32")
    with pytest.raises(mishaudit.UserError, match=r"\(--device cuda\) moves torch kernels only"):
        mishaudit.compare(formulas=["softplus-tanh"], device="cuda")


def test_a_missing_framework_is_listed_with_its_install_command(monkeypatch):
    monkeypatch.setattr(kernels, "framework_version", lambda fw: None if fw == "jax" else "1")
    r = CliRunner().invoke(main, ["list", "--format", "json"])
    row = next(x for x in json.loads(r.output) if x["id"] == "jax:mish")
    assert row["source"] == "unavailable: pip install 'mishaudit[jax]'"
    with pytest.raises(mishaudit.UserError, match=r"pip install 'mishaudit\[jax\]'"):
        mishaudit.compare(formulas=["jax:mish"])


# torch's CPU elementary functions are Sleef's u10 kernels, documented at <= 1.0 ulp (measured here over
# every fp16 and bf16 input as float32: 0.995, expm1); numpy's float32 kernels here err by up to 2.55 ulp.
K_TORCH = 1.0


def test_libm_torch_is_torchs_own_function():
    """--libm torch against MPFR, not against torch: in binary32 every result is within K_TORCH ulp of
    the exact value (over every fp16 and bf16 input as float32: arguments up to 3.4e38, subnormal to
    overflowing results), so a model that ran numpy's kernels (2.55 ulp here), or computed in fp16,
    fails; in fp16 and bf16 it is RN(its binary32 result), equal to RN(f(x)) wherever no rounding
    boundary lies within K_TORCH ulp32, and IEEE's exact cases hold (test_libm.py, both models)."""
    from mishaudit.eval import libm

    worst = {}
    for fmt in (FP16, BF16):
        for op in ("exp", "expm1", "log", "log1p", "tanh"):
            x, v = exact_on_lattice(op, fmt.name)
            y32 = libm.apply("torch", op, [x], FP32)
            check_rounded_float32_kernel(x, y32, v, FP32, K_TORCH)
            worst[op] = max(worst.get(op, 0.0), float(np.nanmax(ulp32_err(y32, v))))
            y = libm.apply("torch", op, [x], fmt)
            near, differ = check_rounded_float32_kernel(x, y, v, fmt, K_TORCH)
            assert differ <= near and np.array_equal(y, rn_mpfr(y32, fmt), equal_nan=True), (op, fmt.name)
    assert max(worst.values()) <= K_TORCH, worst
