"""`mishaudit import`: models built here (ONNX by onnx.helper and torch.onnx.export, Core ML by
coremltools), imported, audited, and checked against tests/oracles/op_sequence.py, an evaluator
of the expected operation sequence written from the definitions (mpmath, Python integers, its own
round to nearest even), never against mishaudit's own numbers:

- the oracle's rounding against brute force (nearest of every format value) and CPython's
  correctly rounded int / int;
- each import's FPCore file, evaluated by mishaudit on every finite fp16 input, equals the oracle's
  op sequence bit for bit, and its `compare --dtype fp16 --format json` row equals the oracle's
  statistics (max ulp and where, the ulp error at that x, mean, CR count, nonfinite, signed zeros);
- the runtime primitives (eval/primitives.py) against the oracle's RN of mpmath softplus and mish:
  every finite fp16 and bf16 input, ~3,000 fp32 inputs;
- bad input: exit 2, one line "mishaudit: error: ...", no traceback, nothing written.
"""

from __future__ import annotations

import bisect
import functools
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import mishaudit
from mishaudit.cli import main

_path = Path(__file__).parent / "oracles" / "op_sequence.py"
_spec = importlib.util.spec_from_file_location("op_sequence_oracle", _path)
O = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = O  # dataclasses look their module up
_spec.loader.exec_module(O)

N_FP16 = 63488


# ------------------------------------------------------------------ helpers


def same(a, b) -> np.ndarray:
    """Elementwise: both NaN, or equal with the same sign (+0 and -0 differ)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return (np.isnan(a) & np.isnan(b)) | ((a == b) & (np.signbit(a) == np.signbit(b)))


def assert_same(got, want, x, what):
    bad = ~same(got, want)
    assert not bad.any(), (f"{what}: {int(bad.sum())} of {bad.size} differ, e.g. x={list(np.asarray(x)[bad][:5])} "
                           f"mishaudit={list(np.asarray(got)[bad][:5])} oracle={list(np.asarray(want)[bad][:5])}")


def cli(*args) -> str:
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exit_code == 0, (r.stdout, r.stderr, r.exception)
    return r.stdout


def import_model(model, out: Path, *flags) -> list:
    rows = json.loads(cli("import", model, "--out", out, "--format", "json", *flags))
    assert isinstance(rows, list) and rows
    return rows


def audit_fp16(out: Path, ident: str) -> dict:
    rows = json.loads(cli("compare", "--formulas", out, "--formula", ident, "--dtype", "fp16", "--format", "json"))
    assert len(rows) == 1 and rows[0]["formula"] == ident and rows[0]["dtype"] == "fp16"
    return rows[0]


@functools.lru_cache(maxsize=None)
def fp16_inputs() -> tuple:
    return tuple(O.finite_values(O.BINARY16))


@functools.lru_cache(maxsize=None)
def oracle(name: str) -> O.Stats:
    return O.statistics(SEQUENCES[name], fp16_inputs(), O.BINARY16)


SEQUENCES = {
    "log-exp-plus-one": O.LOG_EXP_PLUS_ONE,  # exp, + 1, log, tanh, * x, each rounded to fp16
    "softplus-one-op": O.SOFTPLUS_ONE_OP,  # softplus rounded once, tanh, * x
    "softplus-one-op-cast": O.cast_around(O.SOFTPLUS_ONE_OP, O.BINARY16, O.BINARY32),  # fp32 in and out
    "mish-one-op": O.MISH_ONE_OP,  # mish rounded once
}


def check_import(out: Path, row: dict, sequence: str) -> dict:
    """The imported file equals the oracle's sequence bit for bit on every finite fp16 input (mishaudit's
    evaluator, libm cr), and its fp16 audit equals the oracle's statistics; the audit row."""
    from mishaudit.eval.evaluate import evaluate, policy_for
    from mishaudit.formats import FP16
    from mishaudit.lang.registry import load_registry

    assert Path(row["file"]).is_file() and Path(row["file"]).parent == out
    want = oracle(sequence)
    x = np.array(fp16_inputs())
    formula = load_registry((str(out),), builtin=False)[row["id"]]
    y = evaluate(formula, x, policy_for(FP16, None, None, "cr")).y
    assert_same(y, want.outputs, x, f"{row['id']} vs the oracle's {sequence}")

    a = audit_fp16(out, row["id"])
    assert a["inputs"] == N_FP16 and a["strategy"] == "exhaustive" and a["libm"] == "cr"
    assert a["worst_x"] == want.worst_x, (a["worst_x"], want.worst_x)
    assert a["max_ulp"] == pytest.approx(want.max_ulp, abs=1e-6)  # mishaudit's figures: exact to 1e-6 ulp
    at_worst = float(O.ulp_error(O.run(SEQUENCES[sequence], a["worst_x"], O.BINARY16),
                                 O.reference(a["worst_x"], O.BINARY16)))
    assert a["max_ulp"] == pytest.approx(at_worst, abs=1e-6)
    assert a["mean_ulp"] == pytest.approx(want.mean_ulp, rel=1e-9)
    assert round(a["cr_frac"] * a["inputs"]) == want.cr and a["dulp_0"] == want.cr
    assert a["nonfinite"] == want.nonfinite
    assert a["signed_zero_mismatch"] == want.signed_zero_mismatch
    return a


# ------------------------------------------------------------------ the oracle's own rounding


def _positive(fmt) -> list:
    """The non-negative finite values of a 16-bit format as Fractions, in bit order (= increasing)."""
    vals = [O.decode(b, fmt) for b in range(1 << 15)]
    return [Fraction(v) for v in vals if math.isfinite(v)]


@functools.lru_cache(maxsize=None)
def _table(name):
    return _positive(O.FORMATS[name])


def brute_rn(q: Fraction, fmt) -> float:
    """RN(q) by searching every value of the format: nearest, ties to the even bit pattern, with
    2^(emax+1) as the value after the largest (rounding to it is overflow: inf)."""
    vals = _table(fmt.name) + [Fraction(2) ** (fmt.emax + 1)]  # its bit pattern, even, is inf's
    a = abs(q)
    i = bisect.bisect_left(vals, a)
    if i == len(vals) or a == vals[-1]:
        r = math.inf
    elif vals[i] == a:
        r = float(a)
    else:
        lo, hi = vals[i - 1], vals[i]
        d = (a - lo) - (hi - a)
        r = lo if d < 0 or (d == 0 and (i - 1) % 2 == 0) else hi
        r = math.inf if r == vals[-1] else float(r)
    return -r if q < 0 else r


def _draw_rational(data, fmt) -> Fraction:
    """A random rational over the format's range, or one at or 2^-60 relative beside a rounding
    boundary (a midpoint of two neighbours, the overflow midpoint) or a format value."""
    vals = _table(fmt.name)
    kind = data.draw(st.sampled_from(["random", "midpoint", "value"]))
    if kind == "random":
        q = Fraction(data.draw(st.integers(0, 1 << 40)), data.draw(st.integers(1, 1 << 40)))
        q *= Fraction(2) ** data.draw(st.integers(fmt.emin - fmt.p - 8, fmt.emax + 2))
    else:
        i = data.draw(st.integers(0, len(vals) - 1))
        nxt = vals[i + 1] if i + 1 < len(vals) else Fraction(2) ** (fmt.emax + 1)
        q = (vals[i] + nxt) / 2 if kind == "midpoint" else vals[i]
        q *= 1 + Fraction(data.draw(st.integers(-2, 2)), 1 << 60)
    return -q if data.draw(st.booleans()) else q


@pytest.mark.parametrize("name", ["binary16", "bfloat16"])
@settings(max_examples=500, deadline=None)
@given(data=st.data())
def test_oracle_rounding_is_the_nearest_format_value(name, data):
    fmt = O.FORMATS[name]
    q = _draw_rational(data, fmt)
    want = brute_rn(q, fmt)
    got = O.rn_fraction(q.numerator, q.denominator, fmt)
    assert same(got, want), (q, got, want)
    if q and q.denominator & (q.denominator - 1) == 0:  # a dyadic: the rounding the oracle uses
        d = O.rn_dyadic(q < 0, abs(q.numerator), -(q.denominator.bit_length() - 1), fmt)
        assert same(d, want), (q, d, want)


@pytest.mark.parametrize("q, want", [
    (Fraction(65519), 65504.0), (Fraction(65520), math.inf), (Fraction(-65520), -math.inf),  # overflow midpoint
    (Fraction(1, 1 << 25), 0.0), (Fraction(-1, 1 << 25), -0.0),  # half the smallest subnormal: ties to 0
    (Fraction(3, 1 << 25), 2.0**-23), (Fraction(5, 1 << 25), 2.0**-23),  # subnormal ties to even
    (Fraction(2049), 2048.0), (Fraction(2051), 2052.0), (Fraction(1, 3), 0.333251953125),
])
def test_oracle_rounding_boundaries(q, want):
    assert same(O.rn_fraction(q.numerator, q.denominator, O.BINARY16), want)
    assert same(brute_rn(q, O.BINARY16), want)


BINARY64 = O.Fmt("binary64", 53, -1022, 1023, 64)


@settings(max_examples=400, deadline=None)
@given(n=st.integers(-(1 << 80), 1 << 80), d=st.integers(1, 1 << 80), s=st.integers(-1130, 1030))
def test_oracle_rounding_agrees_with_cpython_int_division(n, d, s):
    """CPython's int / int is correctly rounded binary64 (subnormals; OverflowError beyond): the same
    code with binary64's parameters must agree, on both roundings."""
    num, den = (n << s, d) if s >= 0 else (n, d << -s)
    try:
        want = num / den
    except OverflowError:
        want = math.inf if num > 0 else -math.inf
    assert same(O.rn_fraction(num, den, BINARY64), want) or num == 0
    if num and d & (d - 1) == 0:
        assert same(O.rn_dyadic(num < 0, abs(num), -(den.bit_length() - 1), BINARY64), want)


def test_oracle_decodes_every_16_bit_pattern():
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    want = bits.view(np.float16).astype(np.float64)  # a reinterpretation, no rounding
    got = np.array([O.decode(int(b), O.BINARY16) for b in bits])
    assert_same(got, want, bits, "binary16 decode")
    assert len(fp16_inputs()) == N_FP16 and len(O.finite_values(O.BFLOAT16)) == 65280
    # bfloat16 is the top half of binary32
    with np.errstate(invalid="ignore"):  # NaN patterns
        want = (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    assert_same(np.array([O.decode(int(b), O.BFLOAT16) for b in bits]), want, bits, "bfloat16 decode")


def test_oracle_known_values():
    # exp(-10.6875) = 2.28e-5 < 2^-11 / 2: 1 + e rounds to 1 and Mish collapses to -0
    assert same(O.run(O.LOG_EXP_PLUS_ONE, -10.6875, O.BINARY16), -0.0)
    assert O.correctly_rounded("exp", 11.1, O.BINARY16) == math.inf  # e^11.1 > 65520
    assert O.run(O.LOG_EXP_PLUS_ONE, 12.0, O.BINARY16) == 12.0  # inf + 1, log inf, tanh inf = 1
    assert same(O.correctly_rounded("mish", -0.0, O.BINARY16), -0.0)
    assert O.correctly_rounded("softplus", 0.0, O.BINARY16) == 0.693359375  # RN16(ln 2)
    # mish(8192) = 8192 (1 - 2e^-16384): just below a power of two, ulp(r) = 4, RN = 8192
    ref = O.reference(8192.0, O.BINARY16)
    assert ref.rn == 8192.0 and ref.ulp_exp == 2


# ------------------------------------------------------------------ models


def _onnx_model(path: Path, nodes, opset: int = 18) -> Path:
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1, 16])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return path


@pytest.fixture(scope="module")
def onnx_models(tmp_path_factory):
    from onnx import helper

    d = tmp_path_factory.mktemp("onnx")
    out = {
        "mish-op18": _onnx_model(d / "mish_op18.onnx", [helper.make_node("Mish", ["x"], ["y"], name="mish")]),
        "softplus-tanh-mul": _onnx_model(d / "softplus_tanh_mul.onnx", [
            helper.make_node("Softplus", ["x"], ["s"], name="softplus"), helper.make_node("Tanh", ["s"], ["t"], name="tanh"),
            helper.make_node("Mul", ["x", "t"], ["y"], name="mul")]),
        "relu": _onnx_model(d / "relu.onnx", [helper.make_node("Relu", ["x"], ["y"])]),
    }
    return out


def _torch_export(path: Path, dynamo: bool) -> Path:
    torch = pytest.importorskip("torch")
    if dynamo:
        pytest.importorskip("onnxscript")
    m = torch.nn.Mish().half().eval()
    kw = dict(dynamo=False, opset_version=17) if not dynamo else dict(dynamo=True, verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (torch.randn(1, 16).half(),), str(path), input_names=["x"], output_names=["y"], **kw)
    return path


@pytest.fixture(scope="module")
def coreml(tmp_path_factory):
    """nn.Mish converted by coremltools 9.0 with FLOAT16 compute precision: iOS15 (fp32 input, casts)
    and iOS16 (fp16 input) saved as .mlpackage, and the iOS16 MIL program object."""
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ct = pytest.importorskip("coremltools")
        traced = torch.jit.trace(torch.nn.Mish().eval(), torch.randn(1, 16))
        d = tmp_path_factory.mktemp("coreml")
        out = {}
        for target in ("iOS15", "iOS16"):
            kw = dict(inputs=[ct.TensorType(name="x", shape=(1, 16))], compute_precision=ct.precision.FLOAT16,
                      minimum_deployment_target=getattr(ct.target, target))
            ml = ct.convert(traced, convert_to="mlprogram", **kw)
            p = d / f"mish_{target.lower()}.mlpackage"
            ml.save(str(p))
            out[target] = p
            if target == "iOS16":
                out["program"] = ct.convert(traced, convert_to="milinternal", **kw)
    return out


# ------------------------------------------------------------------ ONNX


def _check_log_exp_plus_one(out: Path, rows: list) -> None:
    assert len(rows) == 1
    row = rows[0]
    assert row["computes_in"] == "binary16" and row["input_precision"] == "binary16" and row["audit_dtype"] == "fp16"
    check_import(out, row, "log-exp-plus-one")
    assert "log-exp-plus-one" in row["same_operations"].split(", "), row
    assert "log-exp-plus-one" in row["same_bits"].split(", "), row
    # every formulation said to give the same bits does give the oracle's bits (mishaudit's evaluator of
    # the registered file, against the oracle of the graph)
    from mishaudit.eval.evaluate import evaluate, policy_for
    from mishaudit.formats import FP16
    from mishaudit.lang.registry import load_registry

    reg = load_registry()
    x = np.array(fp16_inputs())
    for ident in row["same_bits"].split(", "):
        y = evaluate(reg[ident], x, policy_for(FP16, None, None, "cr")).y
        assert_same(y, oracle("log-exp-plus-one").outputs, x, f"registered {ident} (said: same bits)")


def test_onnx_mish_node_is_its_function_body(onnx_models, tmp_path):
    """(a) one Mish node, opset 18, float16: Mish -> Softplus, Tanh, Mul; Softplus -> Log(Exp(x) + 1),
    every operation in fp16."""
    out = tmp_path / "imported"
    rows = import_model(onnx_models["mish-op18"], out)
    _check_log_exp_plus_one(out, rows)
    assert rows[0]["id"] == "mish-op18" and [p.name for p in out.iterdir()] == ["mish-op18.fpcore"]


def test_onnx_softplus_tanh_mul(onnx_models, tmp_path):
    """(b) Softplus -> Tanh -> Mul in float16, as torch.onnx.export(dynamo=False) writes nn.Mish."""
    out = tmp_path / "imported"
    _check_log_exp_plus_one(out, import_model(onnx_models["softplus-tanh-mul"], out))


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript-opset17", "dynamo"])
def test_onnx_torch_export_of_nn_mish(dynamo, tmp_path):
    """nn.Mish().half() exported by torch: Softplus, Tanh, Mul (opset 17) or one Mish node (dynamo)."""
    model = _torch_export(tmp_path / "exported.onnx", dynamo)
    out = tmp_path / "imported"
    _check_log_exp_plus_one(out, import_model(model, out))


def test_onnx_keep_fused_mish_is_one_correctly_rounded_op(onnx_models, tmp_path):
    out = tmp_path / "fused"
    rows = import_model(onnx_models["mish-op18"], out, "--keep-fused")
    assert len(rows) == 1
    text = Path(rows[0]["file"]).read_text()
    assert text.rstrip().endswith("(mish x))"), text
    from mishaudit.lang import fpcore as fc
    from mishaudit.lang.registry import load_registry

    assert fc.to_text(load_registry((str(out),), builtin=False)[rows[0]["id"]].body) == "(mish x)"
    a = check_import(out, rows[0], "mish-one-op")
    assert a["max_ulp"] <= 0.5 and a["cr_frac"] == 1.0 and a["faithful_frac"] == 1.0


def test_onnx_keep_fused_softplus_is_one_op(onnx_models, tmp_path):
    """Softplus -> Tanh -> Mul with --keep-fused: softplus rounded once, as MIL's."""
    out = tmp_path / "fused"
    rows = import_model(onnx_models["softplus-tanh-mul"], out, "--keep-fused")
    assert len(rows) == 1 and "(softplus x)" in Path(rows[0]["file"]).read_text()
    check_import(out, rows[0], "softplus-one-op")


# ------------------------------------------------------------------ Core ML


@pytest.mark.parametrize("target", ["iOS15", "iOS16"])
def test_coreml_fp16_softplus_tanh_mul(coreml, target, tmp_path):
    """(c) MIL cast -> softplus -> tanh -> mul -> cast in fp16 (iOS15: fp32 input and output; iOS16:
    fp16 throughout); softplus is one correctly rounded fp16 operation."""
    out = tmp_path / "imported"
    rows = import_model(coreml[target], out)
    assert len(rows) == 1
    row = rows[0]
    assert row["computes_in"] == "binary16" and row["audit_dtype"] == "fp16"
    assert row["input_precision"] == ("binary32" if target == "iOS15" else "binary16")
    text = Path(row["file"]).read_text()
    assert "(softplus x)" in text and "(log" not in text and "(exp" not in text, text
    check_import(out, row, "softplus-one-op-cast" if target == "iOS15" else "softplus-one-op")


def test_coreml_mil_program_through_the_api(coreml, tmp_path):
    from mishaudit import api
    from mishaudit.eval.evaluate import evaluate, policy_for
    from mishaudit.formats import FP16
    from mishaudit.lang.registry import load_text

    df = api.import_model(coreml["program"], tmp_path / "mil")
    assert len(df) == 1 and df.attrs["kind"] == "Core ML"
    row = df.iloc[0]
    f = load_text(row["text"], "<mil>", row["id"])
    x = np.array(fp16_inputs())
    assert_same(evaluate(f, x, policy_for(FP16, None, None, "cr")).y, oracle("softplus-one-op").outputs, x,
                "MIL program import")
    assert Path(row["file"]).read_text() == row["text"]


# ------------------------------------------------------------------ primitives


def _fp32_spread() -> list:
    """~3,000 binary32 values: random bit patterns, random values in [-120, 100] and near 0, powers of
    two and their neighbours, and the edges (x <= -690, +-0, the largest values)."""
    rng = np.random.default_rng(20240611)
    f32 = O.BINARY32
    bits = rng.integers(0, 1 << 32, 1000, dtype=np.uint64)
    xs = [v for v in (O.decode(int(b), f32) for b in bits) if math.isfinite(v)]
    xs += [O.rn_float(float(v), f32) for v in rng.uniform(-120, 100, 1000)]
    xs += [O.rn_float(float(s * m * 2.0**e), f32) for s, m, e in
           zip(rng.choice([-1, 1], 500), rng.uniform(1, 2, 500), rng.integers(-149, -1, 500))]
    for k in range(-149, 128, 2):
        v = 2.0**k
        up, down = O.rn_float(v * (1 + 2.0**-23), f32), O.rn_float(v * (1 - 2.0**-24), f32)
        xs += [v, -v, up, -down]
    xs += [0.0, -0.0, -690.0, -690.0000610351562, -689.9999389648438, -700.0, -1e4, -1e30, -f32.max_finite,
           f32.max_finite, 88.72283935546875, 89.0, 1e30, -103.97208404541016, -87.33654022216797, 15.942385673522949,
           16.0, 8.0, 2.0**-149, -(2.0**-149), 2.0**-126, -(2.0**-126)]
    xs = [O.rn_float(v, f32) if v else v for v in xs]
    assert all(math.isfinite(v) for v in xs)
    return xs


@pytest.mark.parametrize("op", ["softplus", "mish"])
@pytest.mark.parametrize("name", ["fp16", "bf16", "fp32"])
def test_primitive_is_rn_of_the_exact_value(op, name):
    from mishaudit.eval.primitives import correctly_rounded
    from mishaudit.formats import get_format

    fmt = get_format(name)
    mine = {"fp16": O.BINARY16, "bf16": O.BFLOAT16, "fp32": O.BINARY32}[name]
    xs = fp16_inputs() if name == "fp16" else O.finite_values(mine) if name == "bf16" else _fp32_spread()
    x = np.array(xs)
    got = correctly_rounded(op, [x], fmt)
    want = np.array([O.correctly_rounded(op, v, mine) for v in xs])
    assert_same(got, want, x, f"{op} in {name}")
    if name == "fp32":
        assert len(xs) >= 3000 and min(xs) < -690 and {0.0} <= set(xs)
    # the special inputs: IEEE's limits (mish(-inf) = -0)
    specials = np.array([np.inf, -np.inf])
    want = [math.inf, 0.0] if op == "softplus" else [math.inf, -0.0]
    assert_same(correctly_rounded(op, [specials], fmt), want, specials, f"{op} at +-inf in {name}")


def test_primitive_signed_zero():
    from mishaudit.eval.primitives import correctly_rounded
    from mishaudit.formats import BF16, FP16, FP32

    for fmt in (FP16, BF16, FP32):
        z = np.array([0.0, -0.0])
        assert_same(correctly_rounded("mish", [z], fmt), [0.0, -0.0], z, f"mish(+-0) in {fmt.name}")
        ln2 = O.correctly_rounded("softplus", 0.0, {"fp16": O.BINARY16, "bf16": O.BFLOAT16, "fp32": O.BINARY32}[fmt.name])
        assert_same(correctly_rounded("softplus", [z], fmt), [ln2, ln2], z, f"softplus(+-0) in {fmt.name}")


# ------------------------------------------------------------------ bad input


def _run_cli(cwd: Path, *args):
    env = {**os.environ, "COLUMNS": "200"}
    p = subprocess.run([sys.executable, "-m", "mishaudit.cli", *map(str, args)], capture_output=True, text=True,
                       cwd=cwd, env=env, timeout=300)
    return p.returncode, p.stdout, p.stderr


def _tree(d: Path) -> dict:
    return {str(p.relative_to(d)): (p.read_bytes() if p.is_file() else None) for p in sorted(d.rglob("*"))}


@pytest.mark.parametrize("case", ["missing", "garbage", "no-mish", "suffix", "unwritable-out"])
def test_bad_input_is_one_line_exit_2_and_nothing_written(case, onnx_models, tmp_path):
    import shutil

    model = {"missing": tmp_path / "missing.onnx", "garbage": tmp_path / "garbage.onnx",
             "no-mish": tmp_path / "relu.onnx", "suffix": tmp_path / "mish.txt",
             "unwritable-out": tmp_path / "mish.onnx"}[case]
    if case == "garbage":
        model.write_bytes(bytes(range(256)) * 3)
    elif case == "no-mish":
        shutil.copy(onnx_models["relu"], model)
    elif case in ("suffix", "unwritable-out"):
        shutil.copy(onnx_models["mish-op18"], model)
    (tmp_path / "a-file").write_text("not a folder\n")
    out = tmp_path / "a-file" / "imported" if case == "unwritable-out" else tmp_path / "imported"
    before = _tree(tmp_path)
    code, stdout, err = _run_cli(tmp_path, "import", model, "--out", out)
    assert code == 2, (code, stdout, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mishaudit: error:"), err
    assert "Traceback" not in err + stdout
    assert _tree(tmp_path) == before  # nothing written, nothing changed


def _fpcore_body(path: Path) -> str:
    from mishaudit.lang.registry import load_registry

    (f,) = load_registry((str(path),), builtin=False).values()
    from mishaudit.lang import fpcore as fc

    return fc.to_text(f.body)


def test_mish_of_a_computed_tensor_and_of_a_mish(tmp_path):
    """mish(2 * x) then mish of that: two Mish, the first's argument the product (not a graph input), the
    second's argument the first Mish; each file is log-exp-plus-one's body in x."""
    from onnx import TensorProto, helper

    two = helper.make_node("Constant", [], ["two"], value=helper.make_tensor("v", TensorProto.FLOAT16, [], [2.0]))
    model = _onnx_model(tmp_path / "twice.onnx", [two, helper.make_node("Mul", ["x", "two"], ["x2"], name="scale"),
                                                  helper.make_node("Mish", ["x2"], ["m1"], name="first"),
                                                  helper.make_node("Mish", ["m1"], ["y"], name="second")])
    out = tmp_path / "imported"
    rows = import_model(model, out)
    assert [r["nodes"] for r in rows] == ["first", "second"], rows
    for r in rows:
        assert _fpcore_body(out / f"{r['id']}.fpcore") == "(* x (tanh (log (+ (exp x) 1))))"
        assert "log-exp-plus-one" in r["same_bits"].split(", ")


def test_a_deep_chain_before_a_mish_is_cut_not_a_crash(tmp_path):
    """3,001 Neg nodes before a Mish: the import says where it cut the chain and still finds the Mish
    (of the last Neg's output), exit 0, no RecursionError."""
    from onnx import helper

    nodes = [helper.make_node("Neg", ["x" if i == 0 else f"n{i - 1}"], [f"n{i}"]) for i in range(3001)]
    model = _onnx_model(tmp_path / "deep.onnx", [*nodes, helper.make_node("Mish", ["n3000"], ["y"], name="mish")])
    r = CliRunner().invoke(main, ["import", str(model)])
    assert r.exit_code == 0, (r.output, r.exception)
    assert "is read as a source where it gets deeper" in r.output and "log-exp-plus-one" in r.output


@pytest.mark.parametrize("kw, said", [
    (dict(model=3), "model= (MODEL) must be a path"),
    (dict(model=["m.onnx"]), "model= (MODEL) must be a path"),
    (dict(model="m.onnx", keep_fused="yes"), "keep_fused= (--keep-fused) must be True or False"),
    (dict(model="m.onnx", formula_dirs=5), "formula_dirs= (--formulas)"),
])
def test_api_import_model_takes_python_values_or_says_which_is_wrong(kw, said):
    with pytest.raises(mishaudit.UserError, match=re.escape(said)):
        mishaudit.import_model(**kw)


def test_api_import_model_takes_paths(onnx_models, tmp_path):
    df = mishaudit.import_model(onnx_models["mish-op18"], tmp_path / "o")
    assert list(df["id"]) == ["mish-op18"] and (tmp_path / "o" / "mish-op18.fpcore").is_file()
    assert "log-exp-plus-one" in df.loc[0, "same_bits"].split(", ") and df.attrs["kind"] == "ONNX"


def test_a_full_disk_writes_no_file_of_the_import(tmp_path, monkeypatch):
    """Two Mish, the disk full at the second file (ENOSPC from fsync): exit 2, one line naming --out, and
    neither file nor a temporary left in the folder, an older file there untouched."""
    import errno

    from onnx import helper

    model = _onnx_model(tmp_path / "two.onnx", [helper.make_node("Mish", ["x"], ["m1"], name="first"),
                                                helper.make_node("Mish", ["m1"], ["y"], name="second")])
    out = tmp_path / "o"
    out.mkdir()
    (out / "two-1.fpcore").write_text("old")
    real = os.fsync
    calls = []

    def fsync(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    r = CliRunner().invoke(main, ["import", str(model), "--out", str(out)])
    assert r.exit_code == 2 and "cannot write --out" in r.stderr and "No space left" in r.stderr, r.output
    assert len(r.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == ["two-1.fpcore"] and (out / "two-1.fpcore").read_text() == "old"
