"""--inputs: files and generators, counted duplicates, MAE and mean relative error against mpmath."""

from __future__ import annotations

import json
import math

import mpmath
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from mishaudit import api
from mishaudit.cli import main
from mishaudit.errors import UserError
from mishaudit.eval.given import counted, normal_deviates, parse_inputs
from mishaudit.formats import BF16, FP16, FP32

ZERO = "(FPCore zero (x) :description \"0: its error is |mish(x)|\" 0)"
RELU = "(FPCore relu (x) :description \"max(x, 0)\" (fmax x 0))"


def mish_mp(x: float):
    with mpmath.workprec(200):
        v = mpmath.mpf(x)
        return v * mpmath.tanh(mpmath.log1p(mpmath.exp(v)))


@pytest.fixture()
def forms(tmp_path):
    d = tmp_path / "forms"
    d.mkdir()
    (d / "zero.fpcore").write_text(ZERO)
    (d / "relu.fpcore").write_text(RELU)
    return str(d)


def _rows(df):
    return {r.formula: r for r in df.itertuples()}


def _fp16(v: float) -> float:
    """RN to binary16 of a binary64 value by exact arithmetic (no numpy cast)."""
    from fractions import Fraction

    q = Fraction(v)
    if q == 0:
        return v
    e = max(math.floor(math.log2(abs(v))), -14)
    step = Fraction(2) ** (e - 10)
    m = q / step
    n = math.floor(m)
    rem = m - n
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and n % 2):
        n += 1
    return float(n * step)


@pytest.mark.parametrize("lo, hi, n", [(-0.9, 0.9, 1000), (-31.5, 31.5, 999), (-99.0, 99.0, 500)])
def test_mae_of_exact_outputs_on_linspace(forms, lo, hi, n):
    """zero and relu give exact format values, so their MAE is pure mpmath: mean |mish(x)| and
    mean |mish(x) - max(x, 0)| over the linspace values rounded to binary16."""
    df = api.compare("fp16", ["zero", "relu"], formula_dirs=[forms], inputs=f"linspace:{lo}:{hi}:{n}")
    rows = _rows(df)
    xs = [_fp16(float(v)) for v in np.linspace(lo, hi, n)]
    want_zero = mpmath.fsum(abs(mish_mp(x)) for x in xs) / n
    want_relu = mpmath.fsum(abs(mish_mp(x) - max(x, 0.0)) for x in xs) / n
    assert rows["zero"].inputs == n and rows["zero"].strategy == "inputs"
    assert rows["zero"].mean_abs_err == pytest.approx(float(want_zero), rel=1e-12)
    assert rows["relu"].mean_abs_err == pytest.approx(float(want_relu), rel=1e-12)
    zeros = sum(x == 0 for x in xs)
    assert rows["zero"].mean_rel_err == pytest.approx((n - zeros) / n, rel=1e-15)  # |0 - r|/|r| = 1, 0 at x = 0


def test_duplicates_count_and_text_files(forms, tmp_path):
    f = tmp_path / "x.txt"
    f.write_text("# pre-activations\n1, 1 1\n2.0  # the last one\n")
    r = _rows(api.compare("fp32", ["zero"], formula_dirs=[forms], inputs=str(f)))["zero"]
    assert r.inputs == 4
    want = (3 * mish_mp(1.0) + mish_mp(2.0)) / 4
    assert r.mean_abs_err == pytest.approx(float(want), rel=1e-12)
    assert r.max_abs_err == pytest.approx(float(mish_mp(2.0)), rel=1e-12)


def test_npy_file_and_the_cli(forms, tmp_path):
    f = tmp_path / "act.npy"
    vals = np.array([-3.0, -0.5, 0.25, 0.25, 7.0], dtype=np.float32)
    np.save(f, vals)
    r = CliRunner().invoke(main, ["compare", "--dtype", "bf16", "--formula", "zero", "--formulas", forms, "--inputs",
                                  str(f), "--format", "json"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.output)[0]
    want = mpmath.fsum(abs(mish_mp(float(BF16.dtype.type(v)))) for v in vals) / 5  # each value is a bf16 one
    assert row["inputs"] == 5 and row["mean_abs_err"] == pytest.approx(float(want), rel=1e-12)
    t = CliRunner().invoke(main, ["compare", "--dtype", "bf16", "--formula", "zero", "--formulas", forms, "--inputs",
                                  str(f)])
    assert "MAE" in t.output and "mean rel" in t.output and "given (--inputs)" in t.output


def test_text_number_on_a_binary64_midpoint_rounds_from_its_exact_value(tmp_path):
    """1 + 2^-11 + 10^-23 is above the binary16 midpoint between 1 and 1 + 2^-10, but its binary64
    value is the midpoint itself: rounding twice would give 1 (ties to even)."""
    f = tmp_path / "tie.txt"
    f.write_text("1.00048828125000000000001\n-1.00048828125000000000001\n1.00048828125\n")
    assert float("1.00048828125000000000001") == 1 + 2.0**-11
    c = counted(parse_inputs(str(f)), FP16)
    assert sorted(c.x.tolist()) == [-(1 + 2.0**-10), 1.0, 1 + 2.0**-10]  # the exact midpoint ties to even: 1


def test_nonfinite_after_rounding_is_dropped_and_counted(tmp_path):
    f = tmp_path / "big.txt"
    f.write_text("70000 1 nan inf -2\n")
    c = counted(parse_inputs(str(f)), FP16)
    assert c.dropped == 3 and c.x.tolist() == [-2.0, 1.0] and c.total == 2
    c = counted(parse_inputs(str(f)), FP32)
    assert c.dropped == 2 and c.total == 3


def test_signed_zeros_are_both_kept():
    c = counted(parse_inputs("linspace:-1e-30:1e-30:4"), BF16)
    # -1e-30, -3.3e-31, 3.3e-31, 1e-30 in bf16: all normal, none zero
    assert c.total == 4
    c = counted(parse_inputs("linspace:-1e-300:1e-300:4"), FP16)
    assert c.x.tolist() == [0.0, 0.0] and [math.copysign(1, v) for v in c.x] == [-1, 1]
    assert c.counts.tolist() == [2, 2]


def test_normal_deviates_are_seeded_and_normal():
    a, b = normal_deviates(20000, 3), normal_deviates(20000, 3)
    assert np.array_equal(a.view(np.uint64), b.view(np.uint64))
    assert not np.array_equal(a, normal_deviates(20000, 4))
    assert abs(a.mean()) < 5 / math.sqrt(len(a))
    assert abs(a.std() - 1) < 5 / math.sqrt(2 * len(a))
    # the first deviates by Marsaglia's polar method, re-derived in mpmath from the same uniforms
    rng = np.random.Generator(np.random.PCG64(3))
    uv = rng.random(32) * 2 - 1
    u, v = uv[0::2], uv[1::2]
    s = u * u + v * v
    k = int(np.flatnonzero((s > 0) & (s < 1))[0])
    with mpmath.workprec(200):
        f = mpmath.sqrt(-2 * mpmath.log(mpmath.mpf(s[k])) / mpmath.mpf(s[k]))
    assert a[0] == pytest.approx(float(u[k] * f), rel=4e-16)
    assert a[1] == pytest.approx(float(v[k] * f), rel=4e-16)


def test_normal_generator_uses_the_seed(forms):
    a = api.compare("fp16", ["relu"], formula_dirs=[forms], inputs="normal:0:2:5000", seed=1).iloc[0]
    b = api.compare("fp16", ["relu"], formula_dirs=[forms], inputs="normal:0:2:5000", seed=2).iloc[0]
    assert a.inputs == b.inputs == 5000 and a.mean_abs_err != b.mean_abs_err


@given(st.lists(st.floats(-60, 60, allow_nan=False, width=32), min_size=1, max_size=40))
@settings(max_examples=30, deadline=None)
def test_counted_keeps_every_value_once_with_its_multiplicity(vals):
    g = parse_inputs("linspace:0:1:2")  # replaced below: any Given works the same
    g = type(g)(np.array(vals + vals[:3], dtype=np.float64), "t", {})
    c = counted(g, FP32)
    assert c.total == len(vals) + min(3, len(vals))
    assert np.all(np.diff(c.x) >= 0)
    for v in set(vals):
        i = np.flatnonzero(c.x.view(np.uint64) == np.float64(v).view(np.uint64))
        n = (vals + vals[:3]).count(v) if v != 0 else None
        if n is not None:
            assert c.counts[i[0]] == n


@pytest.mark.parametrize("spec, msg", [
    ("linspace:1:0:5", "LO is greater"), ("linspace:0:1:1", "at least 2"), ("linspace:0:1", "linspace:LO:HI:N"),
    ("normal:0:-1:5", "SIGMA must be positive"), ("normal:0:1:x", "positive integer"), ("linspace:a:1:3", "not a number"),
    ("linspace:0:inf:3", "not finite"), ("/no/such/file.npy", "no such file"),
])
def test_bad_generator_or_path(spec, msg):
    with pytest.raises(UserError, match=msg):
        parse_inputs(spec)


def test_bad_files_are_one_line_exit_2(tmp_path):
    bad = {"words.txt": "1 2 three\n", "empty.txt": "# nothing\n", "latin1.txt": b"1 \xff 2",
           "corrupt.npy": b"\x93NUMPY garbage"}
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([1, "a"], dtype=object), allow_pickle=True)
    cplx = tmp_path / "c.npy"
    np.save(cplx, np.array([1 + 2j]))
    paths = [obj, cplx]
    for name, body in bad.items():
        p = tmp_path / name
        p.write_bytes(body if isinstance(body, bytes) else body.encode())
        paths.append(p)
    for p in paths:
        r = CliRunner().invoke(main, ["compare", "--formula", "softplus-tanh", "--inputs", str(p)])
        assert r.exit_code == 2, (p, r.output)
        assert len(r.output.strip().splitlines()) == 1 and str(p) in r.output
    r = CliRunner().invoke(main, ["compare", "--formula", "softplus-tanh", "--inputs", str(tmp_path / "words.txt")])
    assert ":1:" in r.output and "'three'" in r.output


def test_inputs_clash_with_sample_options():
    r = CliRunner().invoke(main, ["compare", "--dtype", "fp32", "--inputs", "linspace:0:1:3", "--samples", "10"])
    assert r.exit_code == 2 and "--samples" in r.output
    r = CliRunner().invoke(main, ["compare", "--inputs", "linspace:0:1:3", "--seed", "1"])
    assert r.exit_code == 2 and "--seed" in r.output
    r = CliRunner().invoke(main, ["compare", "--dtype", "fp32", "--inputs", "linspace:0:1:3", "--exhaustive"])
    assert r.exit_code == 2 and "--exhaustive" in r.output


def test_report_and_plot_take_given_inputs(forms, tmp_path):
    """report --inputs: the compare table holds the given inputs' errors (zero's MAE is mean |mish(RN16(x))|,
    pure mpmath, as above); plot --inputs draws them; --inputs with --exhaustive is one line, exit 2."""
    import csv

    from click.testing import CliRunner

    from mishaudit.cli import main

    spec = "linspace:-5:5:101"
    out = tmp_path / "rep"
    r = CliRunner().invoke(main, ["report", "--dtype", "fp16", "--formulas", forms, "--formula", "zero",
                                  "--inputs", spec, "--out", str(out)])
    assert r.exit_code == 0, r.stderr
    row = next(csv.DictReader((out / "compare.csv").open()))
    xs = [_fp16(float(v)) for v in np.linspace(-5, 5, 101)]
    want = mpmath.fsum(abs(mish_mp(x)) for x in xs) / 101
    assert row["strategy"] == "inputs" and int(row["inputs"]) == 101
    assert float(row["mean_abs_err"]) == pytest.approx(float(want), rel=1e-12)
    svg = tmp_path / "p.svg"
    r = CliRunner().invoke(main, ["plot", "--dtype", "fp16", "--formulas", forms, "--formula", "zero",
                                  "--inputs", spec, "--out", str(svg)])
    assert r.exit_code == 0, r.stderr
    assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()
    r = CliRunner().invoke(main, ["plot", "--dtype", "fp32", "--formulas", forms, "--formula", "zero",
                                  "--inputs", spec, "--exhaustive", "--domain", "1:2", "--out", str(svg)])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1 and "--inputs" in r.stderr
