"""--compute-dtype must hold every value of --dtype: a narrower one (fp32 in fp16, bf16 in fp16, fp16
in bf16) is refused by the CLI (one line, exit 2), the API, the gate and identify, all through one
check; equal means native. Which pairs are narrower is decided here by numpy/ml_dtypes casts of
each storage format's extreme values (every finite value, for the 16-bit formats)."""

import importlib.util
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest

import mishaudit
from mishaudit.errors import UserError

DTYPES = {"fp16": np.float16, "bf16": ml_dtypes.bfloat16, "fp32": np.float32, "fp64": np.float64}


def _values(name: str) -> np.ndarray:
    """Values of the storage format that a compute format must hold: all finite ones for 16-bit
    formats, else the largest, the smallest subnormal and 1 + ulp(1)."""
    if name in ("fp16", "bf16"):
        bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
        with np.errstate(invalid="ignore"):
            v = bits.view(DTYPES[name]).astype(np.float64)
        return v[np.isfinite(v)]
    fi = np.finfo(DTYPES[name])
    return np.array([float(fi.max), float(fi.smallest_subnormal), 1 + float(fi.eps)])


def holds(storage: str, compute: str) -> bool:
    v = _values(storage)
    with np.errstate(all="ignore"):
        back = v.astype(DTYPES[compute]).astype(np.float64)
    return bool(np.array_equal(back, v))


PAIRS = [(s, c) for s in DTYPES for c in DTYPES]


@pytest.mark.parametrize("storage, compute", PAIRS, ids=[f"{s}-in-{c}" for s, c in PAIRS])
def test_refused_exactly_where_the_compute_format_misses_a_storage_value(storage, compute):
    from mishaudit.eval.evaluate import check_compute_dtype
    from mishaudit.formats import get_format

    if holds(storage, compute):
        check_compute_dtype(get_format(storage), get_format(compute))
    else:
        with pytest.raises(UserError, match=f"--compute-dtype {compute} cannot hold every {storage} value"):
            check_compute_dtype(get_format(storage), get_format(compute))


def test_the_narrow_pairs_are_the_expected_ones():
    narrow = {(s, c) for s, c in PAIRS if not holds(s, c)}
    assert {("fp32", "fp16"), ("bf16", "fp16"), ("fp16", "bf16"), ("fp32", "bf16"), ("fp64", "fp32")} <= narrow
    assert not narrow & {("fp16", "fp32"), ("bf16", "fp32"), ("fp16", "fp16"), ("fp32", "fp64")}


@pytest.mark.parametrize("args, names", [
    (["--dtype", "fp32", "--compute-dtype", "fp16", "--samples", "16"], ("fp16", "fp32", "precision")),
    (["--dtype", "bf16", "--compute-dtype", "fp16", "--domain", "1:1.1"], ("fp16", "bf16", "exponent range")),
], ids=["fp32-in-fp16", "bf16-in-fp16"])
def test_cli_refuses_in_one_line(args, names):
    p = subprocess.run([sys.executable, "-m", "mishaudit.cli", "compare", "--formula", "softplus-tanh", *args],
                       check=False, capture_output=True, text=True, timeout=600)
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mishaudit: error:"), p.stderr
    assert all(n in lines[0] for n in names) and "at least as wide" in lines[0]


def test_api_refuses_and_equal_means_native():
    calls = [lambda: mishaudit.compare("bf16", "softplus-tanh", compute_dtype="fp16", domain="1:1.1"),
                 lambda: mishaudit.compare(["fp16", "fp32"], "softplus-tanh", compute_dtype="fp16", samples=16),
                 lambda: mishaudit.overflow("fp32", "softplus-tanh", compute_dtype="bf16", samples=16),
                 lambda: mishaudit.tune("softplus-threshold", "threshold", "10:20", "fp32", steps=2,
                                        compute_dtype="fp16", samples=16)]
    if importlib.util.find_spec("torch") is not None:  # identify needs the kernel's framework
        calls.append(lambda: mishaudit.identify("torch:mish", "fp32", "softplus-tanh", compute_dtype="fp16"))
    for call in calls:
        with pytest.raises(UserError, match="cannot hold every"):
            call()
    native = mishaudit.compare("fp16", "softplus-tanh", domain="1:1.1")
    same = mishaudit.compare("fp16", "softplus-tanh", compute_dtype="fp16", domain="1:1.1")
    assert same.loc[0, "compute_dtype"] == "fp16"
    assert same.equals(native)


def test_gate_refuses_a_narrow_compute_dtype(tmp_path):
    th = tmp_path / "t.toml"
    th.write_text('version = 1\n[[limit]]\nformula = "softplus-tanh"\ndtype = "bf16"\ncompute_dtype = "fp16"\n'
                  'domain = [1.0, 1.1]\nmax_ulp = 3.0\n')
    with pytest.raises(UserError, match="cannot hold every bf16 value"):
        mishaudit.check(str(th))
