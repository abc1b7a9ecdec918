"""The same figures on every CPU: under the cr libm, numpy's SIMD dispatch changes no bit of any output.

Each run is a subprocess, once with numpy's dispatch as the CPU allows and once with every SIMD
target numpy dispatches to on this machine switched off (NPY_DISABLE_CPU_FEATURES, as on an older
CPU). On a CPU with nothing above numpy's baseline the two settings coincide."""

import os
import subprocess
import sys

import pytest


def dispatched_targets() -> str:
    """The SIMD targets numpy dispatches to here (what an older CPU would lack)."""
    code = ("from numpy._core._multiarray_umath import __cpu_dispatch__ as d, __cpu_features__ as f;"
            "print(' '.join(t for t in d if f.get(t)))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def run_json(args, tmp_path, name, disable):
    out = tmp_path / f"{name}.json"
    env = dict(os.environ, MISHAUDIT_CACHE_DIR=str(tmp_path / f"cache-{name}"))  # nothing shared between runs
    if disable:
        env["NPY_DISABLE_CPU_FEATURES"] = disable
    p = subprocess.run([sys.executable, "-m", "mishaudit.cli", *args, "--format", "json", "--output", str(out)],
                       capture_output=True, text=True, env=env, timeout=900)
    assert p.returncode == 0, p.stderr
    return out.read_bytes()


@pytest.mark.parametrize("args", [
    ["compare", "--dtype", "fp16", "--dtype", "bf16", "--dtype", "fp32"],
    ["compare", "--dtype", "fp32", "--exhaustive", "--domain", "-20:-19.5", "--formula", "softplus-tanh",
     "--formula", "pytorch-75251", "--formula", "tf-softplus", "--formula", "njuffa", "--jobs", "2"],
    ["overflow", "--dtype", "fp32", "--samples", "8192", "--formula", "log-exp-plus-one",
     "--formula", "coreml-2359-workaround"],
    ["compare", "--dtype", "fp32", "--dtype", "fp64", "--samples", "8192", "--formula", "onednn-grad", "--formula",
     "pytorch-cpu-grad", "--formula", "darknet-cpu-grad"],  # the mish' references (gradref.py, MPFR for fp64) as well
    ["compare", "--dtype", "fp32", "--exhaustive", "--domain=-300:-1", "--formula", "darknet-gpu-grad",
     "--formula", "mish-cuda-grad", "--jobs", "2"],
    ["compare", "--dtype", "fp16", "--dtype", "fp32", "--inputs", "normal:0:8:20000", "--seed", "3"],
    ["tune", "--formula", "softplus-threshold", "--param", "threshold", "--range", "2:6", "--steps", "41"],
], ids=["compare-sample", "compare-exhaustive-domain", "overflow-sample", "grad-sample", "grad-exhaustive-domain",
        "inputs-normal", "tune"])
def test_json_is_bit_identical_with_numpys_simd_switched_off(args, tmp_path):
    top = run_json(args, tmp_path, "top", None)
    old = run_json(args, tmp_path, "old", dispatched_targets() or None)
    assert top == old
    assert b'"libm": "cr"' in top or args[0] in ("overflow", "tune")
