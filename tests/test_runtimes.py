"""The OpenVINO and TensorFlow kernels (openvino:Mish, tensorflow:mish, tensorflow:mish-xla) against values
derived apart from the code under test: oneDNN's jit code transcribed here in numpy binary32, MPFR's mish,
flush boundaries derived by hand, a compiled model's runtime nodes read back here; then `list`, `compare`
and `identify` on them. Both frameworks are in the test extra: these tests run, they are not skipped."""

import functools
import json
import math

import gmpy2
import ml_dtypes
import numpy as np
import pytest
from click.testing import CliRunner

import mishaudit
from mishaudit.cli import main
from mishaudit.eval import kernels
from mishaudit.eval.ftz import flushing
from mishaudit.formats import BF16, FP16, FP32, FP64, all_finite

LN2 = math.log(2)

# ---------------------------------------------------------------- exact values (MPFR), ulps, one rounding

_HI = gmpy2.context(precision=200, emin=-(1 << 24), emax=1 << 24)
_RN = {f.name: gmpy2.context(precision=f.p, emin=f.emin - f.p + 2, emax=f.emax + 1, subnormalize=True,
                             round=gmpy2.RoundToNearest) for f in (FP16, BF16, FP32, FP64)}


def exact(x: float):
    """mish(x) = x tanh(log1p(exp(x))) at 200 bits."""
    v = gmpy2.mpfr(x)
    return _HI.mul(v, _HI.tanh(_HI.log1p(_HI.exp(v))))


def rn(v, fmt) -> float:
    """v rounded once to fmt (subnormals included, ties to even)."""
    return float(_RN[fmt.name].plus(v))


def ulp_err(y: float, r, fmt) -> float:
    """|y - r| / ulp(r), ulp(r) = 2^(max(floor(log2|r|), emin) - p + 1) (the project's definition)."""
    e = fmt.emin if gmpy2.is_zero(r) else max(gmpy2.get_exp(r) - 1, fmt.emin)
    return float(_HI.mul_2exp(abs(_HI.sub(gmpy2.mpfr(y), r)), fmt.p - 1 - e))


@functools.cache
def lattice(fmt_name: str) -> tuple:
    """(every finite value of a 16-bit format, sorted, and mish of each by MPFR)."""
    x = np.sort(all_finite({"fp16": FP16, "bf16": BF16}[fmt_name]))
    return x, tuple(exact(v) for v in x.tolist())


def errors(x, y, values, fmt) -> np.ndarray:
    return np.array([ulp_err(b, r, fmt) if math.isfinite(b) else np.inf
                     for b, r in zip(np.asarray(y).tolist(), values)])


def same_bits(a, b, dtype) -> np.ndarray:
    a, b = np.asarray(a).astype(dtype), np.asarray(b).astype(dtype)
    u = {2: np.uint16, 4: np.uint32, 8: np.uint64}[np.dtype(dtype).itemsize]
    return (a.view(u) == b.view(u)) | (np.isnan(a.astype(np.float64)) & np.isnan(b.astype(np.float64)))


def is_values_of(y, fmt) -> bool:
    """Every element of y (float64) is a value of fmt (NaN allowed)."""
    back = np.asarray(y).astype(fmt.dtype).astype(np.float64)
    return bool(np.all((back == y) | np.isnan(y)))


@pytest.fixture(autouse=True)
def _ieee_after_each_test():
    """No kernel leaves this thread flushing subnormals: numpy binary32 arithmetic still makes them."""
    yield
    assert flushing() == []
    with np.errstate(all="ignore"):
        assert np.float32(2.0**-63) * np.float32(2.0**-70) == np.float32(2.0**-133) != 0


# ---------------------------------------------------------------- oneDNN's jit mish, transcribed

def f32(bits: int) -> np.float32:
    return np.array([bits], dtype=np.uint32).view(np.float32)[0]


def fma32(a, b, c) -> np.ndarray:
    """RN32(a*b + c), one rounding (vfmadd): the float32 product is exact in float64; TwoSum gives the
    float64 sum's error; rounding to odd (an inexact sum made odd) makes the final rounding to float32 the
    correct one (53 >= 24 + 2)."""
    a, b, c = (np.asarray(v, dtype=np.float32).astype(np.float64) for v in (a, b, c))
    p = a * b
    s = p + c
    t = s - p
    err = (p - (s - t)) + (c - t)
    even = (s.view(np.uint64) & 1) == 0
    s = np.where((err != 0) & even & np.isfinite(s), np.nextafter(s, np.where(err > 0, np.inf, -np.inf)), s)
    return s.astype(np.float32)


# oneDNN src/cpu/x64/injectors/jit_uni_eltwise_injector.cpp (exp_compute_vector_fwd, mish_compute_vector_fwd,
# register_table_entries): the constants as the table holds them
LOG2E, LN2F, LN_FLT_MAX, LN_FLT_MIN = f32(0x3FB8AA3B), f32(0x3F317218), f32(0x42B17218), f32(0xC2AEAC50)
EXP_POL = [f32(h) for h in (0x3F7FFFFB, 0x3EFFFEE3, 0x3E2AAD40, 0x3D2B9D0D, 0x3C07CFCE)]  # p1 .. p5
MISH_MAX_X = f32(0x42317217)  # fwd_mish_max_x_for_equation_f, 44.3614159
ONE = np.float32(1)


def onednn_exp32(x) -> np.ndarray:
    """oneDNN's exp: zero below ln(FLT_MIN); x clamped to [ln FLT_MIN, ln FLT_MAX]; n = floor(x log2e + 0.5);
    r = fma(-n, ln2, x); 2^(n-1) built in the exponent bits; p(r) by Horner with fma, 1 + r(p1 + ...);
    p * 2^(n-1) * 2."""
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        zero = x < LN_FLT_MIN
        x = np.maximum(np.minimum(x, LN_FLT_MAX), LN_FLT_MIN)
        n = np.floor(x * LOG2E + np.float32(0.5))
        r = fma32(-n, LN2F, x)
        k = (np.nan_to_num(n) - ONE).astype(np.int32) + 127
        scale = np.where(zero, 0, k.astype(np.uint32) << 23).astype(np.uint32).view(np.float32)
        p = EXP_POL[4]
        for c in (EXP_POL[3], EXP_POL[2], EXP_POL[1], EXP_POL[0], ONE):
            p = fma32(p, r, c)
        return p * scale * np.float32(2)


def onednn_mish32(x) -> np.ndarray:
    """mish_compute_vector_fwd: e = exp(min(x, 44.3614159)); w = (e + 1)^2; ((w - 1) / (w + 1)) * x, in that
    order (the quotient first: w reaches 3.4e38, so x(w - 1) would overflow)."""
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(all="ignore"):
        e = onednn_exp32(np.minimum(x, MISH_MAX_X))
        w = (e + ONE) * (e + ONE)
        return ((w - ONE) / (w + ONE)) * x


def spread32(n: int = 1 << 18, seed: int = 7) -> np.ndarray:
    """float32 inputs: random bit patterns (every binade, subnormals, NaNs), uniform over [-120, 120] and
    [-20, 20], and the edges of each branch of the code above."""
    rng = np.random.default_rng(seed)
    edges = [0.0, -0.0, 1e-45, -1e-45, 1e-40, -1e-40, 1.1754942e-38, np.inf, -np.inf, np.nan, -16.6355, -16.64,
             -87.3365, -87.33655, -88.0, -95.0, -104.0, 44.3614, 44.36142, 44.5, 88.72283, 88.7229, 1e30, -1e30]
    with np.errstate(invalid="ignore"):
        x = np.concatenate([rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32).view(np.float32),
                            rng.uniform(-120, 120, n).astype(np.float32), rng.uniform(-20, 20, n).astype(np.float32),
                            np.array(edges, dtype=np.float32)])
    return x


# ---------------------------------------------------------------- OpenVINO

def test_openvino_fp32_is_onednns_jit_mish_bit_for_bit():
    """The CPU plugin's binary32 Mish (jit_avx512_f32 here) is oneDNN's code above, bit for bit, on ~790k
    inputs; and the transcription is mish: within 4 ulp32 of MPFR where 1 + e keeps e (x >= -1) and x < 40.
    Its findings: for x below about -16.6, 1 + e rounds to 1 and the result is -0 though mish(x) is a normal
    float; mish(-inf) is NaN (0 * -inf), not -0."""
    k = kernels.get("openvino:Mish")
    x = spread32()
    with np.errstate(invalid="ignore"):  # signalling NaN patterns among the random bits
        y = k.run(x.astype(np.float64), FP32)
    assert is_values_of(y, FP32)
    ok = same_bits(y, onednn_mish32(x), np.float32)
    assert ok.all(), [(float(a), float(b)) for a, b in zip(x[~ok][:5], y[~ok][:5])]
    xs = np.linspace(-1, 40, 401).astype(np.float32).astype(np.float64)
    assert max(ulp_err(b, exact(a), FP32) for a, b in zip(xs, onednn_mish32(xs).astype(np.float64))) <= 4
    lo = np.array([-20.0, -17.0, -16.7])
    assert np.all(k.run(lo, FP32) == 0) and np.all(np.signbit(k.run(lo, FP32)))
    assert all(abs(rn(exact(v), FP32)) > 2.0**-126 for v in lo)
    assert np.isnan(k.run(np.array([-np.inf]), FP32)[0]) and k.run(np.array([np.inf]), FP32)[0] == np.inf


def _read_back(ov_type: str) -> dict:
    """Compile a one-op Mish model here (not through mishaudit) and read what the plugin runs."""
    import openvino as ov
    import openvino.opset4 as ops

    p = ops.parameter([-1], getattr(ov.Type, ov_type), name="x")
    hint = "f32" if ov_type == "f64" else ov_type
    cm = ov.Core().compile_model(ov.Model([ops.mish(p)], [p], "m"), "CPU",
                                 {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": hint})
    nodes = [{k: n.get_rt_info()[k].astype(str) for k in ("layerType", "runtimePrecision", "primitiveType")}
             for n in cm.get_runtime_model().get_ordered_ops()]
    mish = [n for n in nodes if n["layerType"] not in ("Input", "Output", "Convert")]
    assert len(mish) == 1
    return {"precision": mish[0]["runtimePrecision"], "primitive": mish[0]["primitiveType"],
            "converts": sum(n["layerType"] == "Convert" for n in nodes),
            "hint": cm.get_property("INFERENCE_PRECISION_HINT").get_type_name()}


def test_openvino_reports_the_precision_each_format_runs_in():
    """What a format runs in is read back and stated, never assumed: describe('openvino') and `list` say,
    per format, the Mish node's runtime precision and primitive as a model compiled here reports them. On a
    CPU without native fp16 (this project's machines: AVX-512 with AVX512_BF16, or AVX2; no AVX512_FP16/AMX),
    fp16 runs in f32 between two Converts (the f16 hint reads back as bf16 or f32), and then the kernel's bits are RN16 of oneDNN's
    binary32 result over every fp16 input. fp64 is refused: the plugin converts it to f32 (read back here)."""
    k = kernels.get("openvino:Mish")
    text = kernels.describe("openvino")
    for name, ov_type in (("fp16", "f16"), ("bf16", "bf16"), ("fp32", "f32")):
        got = _read_back(ov_type)
        assert f"{name} in {got['precision']} ({got['primitive']})" in text, (name, got, text)
        assert kernels.ov_execution(name)["precision"] == got["precision"]
        assert f"hint {ov_type} read back {got['hint']}" in text
    assert _read_back("f32")["precision"] == "f32" and _read_back("f32")["converts"] == 0
    half = _read_back("f16")
    if half["precision"] == "f32":  # fp16 emulated: say so, and be exactly that
        assert half["converts"] == 2 and "fp16 in f32" in text and "f16->f32" in text
        x = all_finite(FP16)
        assert same_bits(k.run(x, FP16), onednn_mish32(x).astype(np.float16), np.float16).all()
    assert not k.supports(FP64)
    dbl = _read_back("f64")
    assert dbl["precision"] == "f32" and dbl["converts"] == 2 and "converts f64 to f32" in k.why_not["fp64"]
    with pytest.raises(mishaudit.UserError, match="does not run in fp64"):
        k.run(np.array([1.0]), FP64)


def ov_bf16_round(v) -> np.ndarray:
    """OpenVINO's own float -> bfloat16 conversion (ov::bfloat16's round_to_nearest_even, used by its
    CPU plugin's Convert where the CPU has no vcvtneps2bf16): bits b -> (b + ((b & 0x10000) >> 1)) >> 16.
    Not round-to-nearest: it rounds up only when the kept last bit is 1 and the dropped half is at
    least 0x8000, and truncates otherwise (0x0082cccd -> 0x0082, where RN gives 0x0083)."""
    b = np.asarray(v, dtype=np.float32).view(np.uint32).astype(np.uint64)
    out = ((b + ((b & 0x10000) >> 1)) >> 16).astype(np.uint16)
    return out.view(ml_dtypes.bfloat16)


def test_openvino_bf16_is_the_float32_result_rounded_once_as_the_cpu_path_it_reports():
    """bf16 in and out (the bits travel as ml_dtypes bfloat16 <-> ov.Type.bf16 tensors): over every bf16
    input, the kernel is oneDNN's binary32 result v rounded once to bf16, in the way of the path the
    compiled model reports (ov_execution), never bf16 arithmetic (that would differ in thousands of places):
    - natively in bf16 (jit_avx512_bf16, a CPU with AVX512_BF16): vcvtneps2bf16, round-to-nearest-even
      except that |v| < 2^-126 gives a zero of v's sign (it reads float32 subnormals as zero);
    - in f32 between Converts bf16->f32, f32->bf16 (a CPU without it, AVX2 say): OpenVINO's own
      conversion (ov_bf16_round), which truncates about half the inexact results and keeps subnormals."""
    k = kernels.get("openvino:Mish")
    x = all_finite(BF16)
    y = k.run(x, BF16)
    assert is_values_of(y, BF16)
    v = onednn_mish32(x)
    rne = v.astype(ml_dtypes.bfloat16)
    ran = kernels.ov_execution("bf16")
    assert ran["precision"] in ("bf16", "f32"), ran  # a path this test does not know yet
    if ran["precision"] == "bf16":
        want = np.where(np.abs(v) < np.float32(2.0**-126), np.copysign(np.float32(0), v), v).astype(ml_dtypes.bfloat16)
    else:
        assert ran["converts"] == ["bf16->f32", "f32->bf16"], ran
        want = ov_bf16_round(v)
    ok = same_bits(y, want, ml_dtypes.bfloat16)
    assert ok.all(), [(float(a), float(b), float(c)) for a, b, c in zip(x[~ok][:5], y[~ok][:5], want[~ok][:5])]
    if ran["precision"] == "bf16":
        flushed = (y == 0) & (rne.astype(np.float64) != 0)
        assert flushed.sum() > 100  # the flush is a visible finding: RN(v) is a nonzero subnormal there
    else:
        assert (~same_bits(y, rne, ml_dtypes.bfloat16)).sum() > 1000  # not RN: a visible finding
        assert ((y.astype(np.float64) != 0) & (np.abs(v) < np.float32(2.0**-126))).sum() > 100  # no flush


def test_openvinos_bf16_conversion_by_hand():
    """ov_bf16_round on hand-made bits against its definition: round up only when the last kept bit is 1."""
    bits = np.array([0x3F80_7FFF, 0x3F80_8000, 0x3F80_FFFF, 0x3F81_7FFF, 0x3F81_8000, 0x0082_CCCD, 0x8082_CCCD],
                    dtype=np.uint32)
    got = ov_bf16_round(bits.view(np.float32)).view(np.uint16).tolist()
    assert got == [0x3F80, 0x3F80, 0x3F80, 0x3F81, 0x3F82, 0x0082, 0x8082]


# ---------------------------------------------------------------- TensorFlow

TF = ["tensorflow:mish", "tensorflow:mish-xla"]


@pytest.mark.parametrize("kid", TF)
def test_tensorflow_flushes_exactly_where_exp_is_subnormal(kid):
    """TensorFlow's CPU kernels flush subnormals. In binary32, softplus(x) = exp(x) below x = log(2^-23) + 2,
    and exp(x) < 2^-126 iff x < -126 ln 2 = -87.33654: over every float32 in [-87.34, -87.33] the kernel is
    -0 exactly there and nonzero above. Down to -91.8 mish(x) is still a normal float (MPFR), so the flush
    costs the whole value; to about -108.6 (where |x| e^x = 2^-150) RN(mish(x)) is a nonzero subnormal
    (-5.2e-40 at -95); below, -0 is right. Likewise binary64 below -1022 ln 2 (mish is normal there) and
    bfloat16 below -126 ln 2. fp16 does not flush: it keeps a subnormal result, and its zeros are IEEE's
    (exp(x) rounds to zero in fp16 iff x <= -25 ln 2)."""
    k = kernels.get(kid)
    lo, hi = (np.array([v], dtype=np.float32).view(np.uint32)[0] for v in (-87.33, -87.34))
    x = np.arange(lo, hi + 1, dtype=np.uint32).view(np.float32).astype(np.float64)
    y = k.run(x, FP32)
    assert np.array_equal(y == 0, x < -126 * LN2) and np.signbit(y[y == 0]).all()
    grid = np.linspace(-103.9, -87.34, 2001).astype(np.float32).astype(np.float64)
    g = k.run(grid, FP32)
    assert np.all(g == 0) and np.signbit(g).all()
    assert all(rn(exact(v), FP32) != 0 for v in grid[::50])  # IEEE would not give 0 anywhere there
    assert abs(rn(exact(-91.8), FP32)) >= 2.0**-126 and 0 < abs(rn(exact(-95.0), FP32)) < 2.0**-126
    assert rn(exact(-108.0), FP32) != 0 == rn(exact(-109.0), FP32) and k.run(np.array([-95.0, -108.0]), FP32).max() == 0
    d = np.array([-708.39, -708.3964, -708.39643, -708.3965, -709.0, -710.0])
    yd = k.run(d, FP64)
    assert np.array_equal(yd == 0, d < -1022 * LN2) and abs(rn(exact(-710.0), FP64)) >= 2.0**-1022
    b = np.array([-87.0, -87.25, -87.5, -88.0, -90.0])  # bf16 values
    yb = k.run(b, BF16)
    assert np.array_equal(yb == 0, b < -126 * LN2) and is_values_of(yb, BF16)
    h = np.array([-17.3125, -17.328125, -17.34375, -17.5])  # fp16 values around -25 ln 2 = -17.3287
    yh = k.run(h, FP16)
    assert np.array_equal(yh == 0, h <= -25 * LN2) and 0 < abs(yh[1]) < 2.0**-14  # a subnormal result kept


# Bounds, derived: TensorFlow's softplus takes exp(x) below t = log(eps_T) + 2, which errs by e^x/2 relative,
# at most e^t / 2 = eps_T e^2 / 2 = 3.69 eps_T; then exp, log1p, tanh and the product each round once in the
# format (condition numbers <= 1 along the way), < 2^-p relative each, or 2^(1-p) for binary64, whose Eigen
# functions are not correctly rounded. A relative error d is < d 2^p ulps. So: fp16 eager, eps_T = 2^-13
# (Eigen's NumTraits<half>::epsilon()): 2^11 * 3.69 * 2^-13 + 4 = 4.92 (measured 2.43); fp16 XLA, whose
# threshold is log(2^-10) + 2 (its errors jump just below -4.93): 7.39 + 4 = 11.39 (measured 7.01); bf16,
# eps_T = 2^-7: 7.39 + 4 = 11.39 (measured 5.80); fp64, eps_T = 2^-52: 7.39 + 8 = 15.39 (measured 7.93).
# Where they hold: every fp16 x >= -7 (mish(x) normal; below, exp(x) and then mish underflow in fp16), every
# bf16 x > -87.33 with |x| >= 2^-125 (the flush above), binary64 on [-700, 40] and [-1, 1].
BOUNDS = {("tensorflow:mish", "fp16"): 4.92, ("tensorflow:mish-xla", "fp16"): 11.39, ("tensorflow:mish", "bf16"): 11.39,
          ("tensorflow:mish-xla", "bf16"): 11.39, ("tensorflow:mish", "fp64"): 15.39,
          ("tensorflow:mish-xla", "fp64"): 15.39}


@pytest.mark.parametrize("kid", TF)
@pytest.mark.parametrize("fmt", [FP16, BF16], ids=lambda f: f.name)
def test_tensorflow_half_precisions_within_the_derived_bound(kid, fmt):
    x, values = lattice(fmt.name)
    y = kernels.get(kid).run(x, fmt)
    assert is_values_of(y, fmt)
    e = errors(x, y, values, fmt)
    where = x >= -7 if fmt is FP16 else (x > -87.33) & (np.abs(x) >= 2.0**-125)
    worst = int(np.argmax(np.where(where, e, -1)))
    assert e[worst] <= BOUNDS[(kid, fmt.name)], (x[worst], y[worst], e[worst])
    assert e[worst] > 1  # not correctly rounded: a kernel that rounded mish once would fail here


@pytest.mark.parametrize("kid", TF)
def test_tensorflow_binary64_within_the_derived_bound(kid):
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(-700, 40, 1500), rng.uniform(-1, 1, 500), -34.04 - rng.uniform(0, 0.1, 200)])
    y = kernels.get(kid).run(x, FP64)
    e = np.array([ulp_err(b, exact(a), FP64) for a, b in zip(x.tolist(), y.tolist())])
    assert e.max() <= BOUNDS[(kid, "fp64")], (x[np.argmax(e)], e.max())
    assert e.max() > 3.69  # the threshold's own error shows just below t = log(2^-52) + 2 = -34.04


def test_tensorflow_eager_and_xla_are_different_kernels_and_position_does_not_matter():
    """XLA's code gives other bits than eager's (both are audited); and an input's result does not depend on
    where it sits in the array (Eigen's scalar tail code, which differs, is never used)."""
    x = np.linspace(-5, 5, 1001).astype(np.float32).astype(np.float64)
    a, b = kernels.get("tensorflow:mish").run(x, FP32), kernels.get("tensorflow:mish-xla").run(x, FP32)
    assert (a != b).sum() > 100
    alone = np.concatenate([kernels.get("tensorflow:mish").run(x[i:i + 3], FP32) for i in range(0, 999, 3)])
    assert np.array_equal(alone, a[:999])


# ---------------------------------------------------------------- the CLI: list, compare, identify

def test_list_shows_the_kernels_and_what_they_run_in():
    r = CliRunner().invoke(main, ["list", "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = {x["id"]: x for x in json.loads(r.output)}
    ov, tf, xla = rows["openvino:Mish"], rows["tensorflow:mish"], rows["tensorflow:mish-xla"]
    assert ov["kind"] == tf["kind"] == xla["kind"] == "kernel"
    assert "(runs in fp16, bf16, fp32)" in ov["description"] and "(runs in fp16, bf16, fp32, fp64)" in tf["description"]
    assert ov["source"] == kernels.describe("openvino") and "fp32 in f32" in ov["source"]
    assert tf["source"].startswith("tensorflow ") and "oneDNN ops" in tf["source"]
    assert "flushes subnormals" in tf["source"] and xla["source"] == tf["source"]


def test_compare_tensorflow_fp16_json_agrees_with_mpfr_on_every_input():
    """The JSON row's worst case, recomputed here: the kernel on every finite fp16 value, its ulp error
    against MPFR; the row's max_ulp, worst_x, worst_y and worst_ref (mish at worst_x) must be those."""
    r = CliRunner().invoke(main, ["compare", "--formula", "tensorflow:mish", "--dtype", "fp16", "--format", "json"])
    assert r.exit_code == 0, r.output
    (row,) = json.loads(r.output)
    x, values = lattice("fp16")
    y = kernels.get("tensorflow:mish").run(x, FP16)
    e = errors(x, y, values, FP16)
    i = int(np.argmax(e))
    assert row["inputs"] == len(x) == 63488 and row["nonfinite"] == 0 and row["libm"] == "kernel"
    assert row["max_ulp"] == pytest.approx(e[i], rel=1e-9) and row["worst_x"] == x[i] == -17.34375
    assert row["worst_y"] == y[i] == 0.0 and row["worst_ref"] == pytest.approx(float(values[i]), rel=1e-12)
    assert rn(values[i], FP16) != 0  # RN16(mish) is a subnormal there: exp(x) underflowed in fp16
    assert row["mean_ulp"] == pytest.approx(e.mean(), rel=1e-6)


def test_compare_runs_every_format_and_reports_the_unsupported_one():
    r = CliRunner().invoke(main, ["compare", "--formula", "openvino:Mish", "--formula", "tensorflow:mish-xla",
                                  "--dtype", "bf16", "--dtype", "fp32", "--dtype", "fp64", "--samples", "4096",
                                  "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = {(x["formula"], x["dtype"]): x for x in json.loads(r.output)}
    assert rows[("openvino:Mish", "fp64")]["strategy"] == "unsupported"
    assert "f32" in rows[("openvino:Mish", "fp64")]["implementation"]
    for key in [("openvino:Mish", "bf16"), ("openvino:Mish", "fp32"), ("tensorflow:mish-xla", "bf16"),
                ("tensorflow:mish-xla", "fp32"), ("tensorflow:mish-xla", "fp64")]:
        assert rows[key]["inputs"] > 4000 and rows[key]["max_ulp"] is not None, key
    assert rows[("openvino:Mish", "bf16")]["inputs"] == 65280


ONEDNN_SOURCE_ORDER = """; oneDNN mish_compute_vector_fwd as the jit code orders it: the quotient, then times x.
(FPCore onednn-source-order (x)
  :name "e = exp(min(x, 44.3614159)); w = (e+1)^2; ((w-1)/(w+1))*x"
  (let* ([e (exp (fmin x 44.3614159))]
         [w (* (+ e 1) (+ e 1))])
    (* (/ (- w 1) (+ w 1)) x)))
"""


def test_identify_openvino_fp32_as_onednns_formula_up_to_its_exp(tmp_path):
    """identify names oneDNN's formula for openvino:Mish: computed in fp32, equal on > 99% of [-20, 45];
    every input where it differs is one where oneDNN's exp polynomial (transcribed above) is not RN32(exp)
    (with libm cr every other operation is IEEE's, so that is the only way to differ)."""
    (tmp_path / "onednn-source-order.fpcore").write_text(ONEDNN_SOURCE_ORDER)
    df = mishaudit.identify("openvino:Mish", "fp32", ["onednn-source-order", "log-exp-plus-one", "softplus-tanh"],
                            formula_dirs=[str(tmp_path)], domain="-20:45", samples=20000, libm="cr")
    best = df.iloc[0]
    assert best["formula"] == "onednn-source-order" and best["compute_dtype"] == "fp32" and best["share"] > 0.99
    other = df[df["formula"] != "onednn-source-order"]["share"].max()
    assert best["share"] > other + 0.02
    d = df.attrs["differences"]
    assert len(d) > 0
    xs = d["x"].to_numpy().astype(np.float32)
    cr_exp = np.array([rn(_HI.exp(gmpy2.mpfr(float(min(v, MISH_MAX_X)))), FP32) for v in xs], dtype=np.float32)
    assert np.all(onednn_exp32(np.minimum(xs, MISH_MAX_X)) != cr_exp)
    assert np.array_equal(d["kernel"].to_numpy(), onednn_mish32(xs).astype(np.float64))


def test_registered_onednn_jit_order_differs_from_openvinos_kernel():
    """A finding, kept until formulas/onednn-jit.fpcore is changed (its exhaustive figures with it): the
    registered form computes (x*(w-1))/(w+1), oneDNN divides first and then multiplies by x (uni_vdivps,
    then uni_vmulps), so x*(w-1) overflows in binary32 from x = 42.5 while the kernel returns x there."""
    from mishaudit.eval.evaluate import evaluate, policy_for
    from mishaudit.formats import FP32

    x = np.array([42.5, 43.0, 44.0], dtype=np.float32).astype(np.float64)
    reg = mishaudit.load_formulas()["onednn-jit"]
    y_reg = evaluate(reg, x, policy_for(FP32, None, None, "cr")).y
    from mishaudit.eval.kernels import KERNELS

    y_ov = KERNELS["openvino:Mish"].run(x, FP32)
    assert not np.isfinite(y_reg).any()  # (x*(w-1)) = inf, inf/(w+1) = inf (or NaN)
    assert np.array_equal(y_ov, x)  # mish(x) rounds to x there


def tf_softplus_bf16(x) -> tuple:
    """TensorFlow's mish in IEEE bfloat16, transcribed: t = RN(log(2^-7)) + 2 rounded; sp = x if x > -t,
    exp(x) if x < t, else log1p(exp(x)); x * tanh(sp); every operation rounded to bf16 (from float64).
    (e = RN(exp(x)), the exact product x * RN(tanh(sp)), its rounding: the result)."""
    def r(v):
        return np.asarray(v, dtype=np.float64).astype(ml_dtypes.bfloat16).astype(np.float64)

    with np.errstate(all="ignore"):
        t = r(r(np.log(2.0**-7)) + 2)
        e = r(np.exp(x))
        sp = np.where(x > -t, x, np.where(x < t, e, r(np.log1p(e))))
        prod = x * r(np.tanh(sp))  # exact: 8 x 8 significand bits
        return e, prod, r(prod)


def test_identify_shows_tensorflows_flush_as_a_finding_in_bf16():
    """tensorflow:mish in bf16 is tf-softplus under a flush model, on every input; under IEEE it misses the
    inputs where the transcription above has a subnormal exp(x) or result and TensorFlow returns zero: as
    many as identify counts."""
    r = CliRunner().invoke(main, ["identify", "tensorflow:mish", "--dtype", "bf16", "--formula", "tf-softplus",
                                  "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    best = rows[0]
    assert best["formula"] == "tf-softplus" and "ftz" in best["compute_dtype"] and best["share"] == 1.0
    assert best["compute_dtype"] == "bf16 ftz before"  # float32 ops under FTZ: tininess before the bf16 rounding
    ieee = next(x for x in rows if x["compute_dtype"] == "bf16" and x["libm"] == "cr")
    x = all_finite(BF16)
    y = kernels.get("tensorflow:mish").run(x, BF16)
    e, prod, t = tf_softplus_bf16(x)
    miss = ~same_bits(y, t, ml_dtypes.bfloat16)
    assert ieee["inputs"] - ieee["matches"] == miss.sum() > 100
    tiny = 2.0**-126  # exp(x) subnormal, or the product tiny before its rounding: flushed
    assert np.all(y[miss] == 0) and np.all((np.abs(e[miss]) < tiny) | (np.abs(prod[miss]) < tiny))


def test_identify_shows_tensorflows_fp32_flush_where_exp_is_subnormal():
    """On [-103.9, -87.34] (exp(x) a nonzero binary32 subnormal: it rounds to 0 only below -103.97) tf-softplus
    reproduces TensorFlow only under a flush model: IEEE gives a nonzero mish there, TensorFlow -0."""
    df = mishaudit.identify("tensorflow:mish", "fp32", ["tf-softplus"], domain="-103.9:-87.34", samples=4000)
    best = df.iloc[0]
    assert best["formula"] == "tf-softplus" and best["compute_dtype"].startswith("fp32 ftz") and best["share"] > 0.99
    ieee = df[~df["compute_dtype"].str.contains("ftz")]
    assert ieee["share"].max() == 0
