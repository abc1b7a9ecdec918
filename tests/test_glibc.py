"""The `glibc` libm model against evaluators that share no code with it.

(a) mishaudit.eval.libm.apply("glibc", ...) against tests/oracles/ctypes_libm.py (ctypes calls, element by
    element): every finite fp16 and bf16 input, an fp32 sample (tiny, subnormal, near the overflow and
    underflow edges, ordinary) and an fp64 sample, bit for bit (NaN as NaN, zeros by sign);
(b) evaluate(...) under Policy(libm="glibc") against hand transcriptions of three formulations;
(c) `compare --exhaustive --libm glibc` of the libm formulas on fp32 blocks against the C oracle
    tests/oracles/glibc_oracle.c (glibc called from C, exact values from x87 long double and __float128),
    which is itself checked against mpmath here.
Definitions (mishaudit/measure/metrics.py): ulp(r) = 2^(max(floor(log2|r|), emin) - p + 1),
ulp error |y - r| / ulp(r), correctly rounded y == RN(r) (round to nearest even).
"""

import importlib.util
import json
import math
import subprocess
from fractions import Fraction
from pathlib import Path

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mishaudit import api
from mishaudit.eval import libm
from mishaudit.eval.evaluate import Policy, evaluate
from mishaudit.formats import BF16, FP16, FP32, FP64, all_finite, from_ordinal, ordinal
from mishaudit.lang.registry import load_registry

ORACLES = Path(__file__).parent / "oracles"
_spec = importlib.util.spec_from_file_location("ctypes_libm", ORACLES / "ctypes_libm.py")
C = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(C)

UNARY = ("exp", "exp2", "expm1", "log", "log1p", "tanh")
POW_EXPONENTS = (2.0, 0.5, 3.0, -1.5, 10.0)


def same(a, b) -> np.ndarray:
    """Elementwise: both NaN, or equal with the same sign (so +0 and -0 differ)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return (np.isnan(a) & np.isnan(b)) | ((a == b) & (np.signbit(a) == np.signbit(b)))


def assert_same(got, want, x, what):
    bad = ~same(got, want)
    assert not bad.any(), f"{what}: {bad.sum()} differ, e.g. x={x[bad][:4]} mishaudit={got[bad][:4]} ctypes={want[bad][:4]}"


def rn_exact(v, p: int, emin: int, emax: int) -> float:
    """RN(v) to nearest even in the format (p, emin, emax), subnormals and overflow, by exact rationals."""
    if v == 0:
        return float(v)  # a zero keeps its sign (a float -0.0 stays -0.0)
    v = Fraction(v)
    a = abs(v)
    e = a.numerator.bit_length() - a.denominator.bit_length()  # floor(log2 a) is e or e - 1
    if Fraction(2) ** e > a:
        e -= 1
    q = max(e, emin) - p + 1
    m = a / Fraction(2) ** q
    n = math.floor(m)
    if m - n > Fraction(1, 2) or (m - n == Fraction(1, 2) and n % 2):
        n += 1
    r = n * Fraction(2) ** q
    out = math.inf if r >= Fraction(2) ** (emax + 1) else float(r)
    return math.copysign(out, v)


def fp32_sample(n_random: int = 13500, seed: int = 5) -> np.ndarray:
    """~20000 binary32 values: uniform over bit patterns (every binade alike), subnormals, ordinary
    values, and the 64 neighbours of each edge of these functions (overflow and underflow of exp and
    exp2, the start of exp's subnormal results, -1 for log1p, 1, 0, the largest finite)."""
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 1 << 32, n_random, dtype=np.uint64).astype(np.uint32)
    with np.errstate(invalid="ignore"):  # NaN patterns (dropped below)
        x = bits.view(np.float32).astype(np.float64)
    sub = from_ordinal(rng.integers(-(1 << 23) + 1, 1 << 23, 1500), FP32)
    ordinary = rng.uniform(-20, 20, 4000).astype(np.float32).astype(np.float64)
    edges = np.array([88.72283, 88.7228317, 127.99999, 128.0, -87.33654, -103.972, -149.0, -150.0, -151.0,
                      -1.0, 1.0, 0.0, FP32.max, -FP32.max, 2.0**-126, -9.0, 9.01, 1e-4, -1e-4])
    eo = ordinal(np.array(edges, dtype=np.float32).astype(np.float64), FP32)
    near = (eo[:, None] + np.arange(-32, 33)[None, :]).ravel()
    near = near[np.abs(near) <= ordinal(np.array([FP32.max]), FP32)[0]]
    x = np.concatenate([x, sub, ordinary, from_ordinal(near, FP32), [0.0, -0.0]])
    return x[np.isfinite(x)]


def fp64_sample(seed: int = 6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 1 << 63, 3000, dtype=np.uint64).view(np.float64) * rng.choice([-1.0, 1.0], 3000)
    x = np.concatenate([x, rng.uniform(-50, 50, 2000), [709.78, 709.79, -745.13, -745.14, -708.4, 1.0, -1.0, 0.0,
                                                          -0.0, 5e-324, -5e-324, 1.7976931348623157e308]])
    return x[np.isfinite(x)]


ALL16 = {f.name: all_finite(f) for f in (FP16, BF16)}
FP32_SAMPLE = fp32_sample()
FP64_SAMPLE = fp64_sample()
FMT = {"fp16": FP16, "bf16": BF16, "fp32": FP32, "fp64": FP64}
INPUTS = {**ALL16, "fp32": FP32_SAMPLE, "fp64": FP64_SAMPLE}


# ---------------------------------------------------------------- (a) the operations


def test_fp32_sample_covers_the_regions():
    a = np.abs(FP32_SAMPLE)
    assert 15000 <= len(a) <= 25000
    assert ((a > 0) & (a < 2.0**-126)).sum() > 1000 and (a < 1e-30).sum() > 2000  # subnormal, tiny
    assert (np.abs(FP32_SAMPLE - 88.72283) < 3e-4).sum() >= 60 and (FP32_SAMPLE == FP32.max).any()


@pytest.mark.parametrize("fmt", ["fp16", "bf16", "fp32", "fp64"])
@pytest.mark.parametrize("op", UNARY)
def test_operation_matches_ctypes(op, fmt):
    x = INPUTS[fmt]
    got = libm.apply("glibc", op, [x], FMT[fmt])
    want = C.call(op, [x], fmt)
    assert_same(got, want, x, f"{op} {fmt}")
    if fmt != "fp64":  # the 16-bit and binary32 results are values of the format
        assert same(got, C.from32(got, fmt)).all()


@pytest.mark.parametrize("fmt", ["fp16", "bf16", "fp32", "fp64"])
def test_pow_matches_ctypes(fmt):
    x = INPUTS[fmt]
    for b in POW_EXPONENTS:
        bb = np.full_like(x, b)
        assert_same(libm.apply("glibc", "pow", [x, bb], FMT[fmt]), C.call("pow", [x, bb], fmt), x, f"pow(x, {b}) {fmt}")
    y = np.array([2.0, -3.0, 0.25, 7.0])  # pow with both arguments varying
    xs, ys = np.meshgrid(x[:400], y)
    assert_same(libm.apply("glibc", "pow", [xs, ys], FMT[fmt]), C.call("pow", [xs, ys], fmt).reshape(xs.shape),
                xs, f"pow {fmt}")


def test_the_glibc_model_is_not_correctly_rounded_here():
    """The comparison above could fail: glibc's tanhf is wrong on binary32 inputs the cr model gets right."""
    x = FP32_SAMPLE
    g, cr = libm.apply("glibc", "tanh", [x], FP32), libm.apply("cr", "tanh", [x], FP32)
    assert (g != cr).sum() > 100


@settings(max_examples=300, deadline=None)
@given(st.floats(width=32, allow_nan=False, allow_infinity=False), st.sampled_from(UNARY))
def test_any_float_matches_ctypes(x, op):
    got = libm.apply("glibc", op, [np.array([x])], FP32)
    assert same(got, C.call(op, [[x]], "fp32")).all()


TIES32 = [1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-23, 1 + 2**-8 - 2**-24, 2**-134, 3 * 2**-134, 2**-133 * 1.5,
          (2 - 2**-8) * 2**127, (2 - 2**-8) * 2**127 - 2**103, 3.4028234663852886e38, 2**-149, 1 + 2**-11,
          1 + 3 * 2**-11, 65520.0, 65519.99609375, 2**-25, 3 * 2**-25, 2**-25 + 2**-40, 2**-149 * 3]


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.floats(width=32, allow_nan=False, allow_infinity=False), st.sampled_from(TIES32)))
def test_float32_to_16bit_rounds_once(x):
    """numpy's float32 -> float16 and ml_dtypes' float32 -> bfloat16 are RN of the value (ties to even,
    subnormals, overflow): ctypes_libm rounds the float functions' results with them."""
    x = float(np.float32(x))
    for fmt, (p, emin, emax) in {"fp16": (11, -14, 15), "bf16": (8, -126, 127)}.items():
        with np.errstate(over="ignore"):
            got = float(C.from32([x], fmt)[0])
        assert same(got, rn_exact(x, p, emin, emax)), (fmt, x.hex())


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.floats(allow_nan=False, allow_infinity=False),
                 st.sampled_from([1 + 2**-8 + 2**-30, 2**-134 + 2**-160, 1 + 2**-8 - 2**-40, 1 + 2**-11 + 2**-40])))
def test_float64_to_16bit_rounds_once(v):
    """rn16 and rnbf16 (the 16-bit arithmetic of the transcriptions) round a binary64 value once."""
    with np.errstate(over="ignore"):
        assert same(C.rn16([v])[0], rn_exact(v, 11, -14, 15))
        assert same(C.rnbf16([v])[0], rn_exact(v, 8, -126, 127))


def test_rnbf16_rounds_once():
    """rnbf16 rounds binary64 to bfloat16 once (some ml_dtypes versions go through binary32: a double
    rounding), above and below a midpoint and on a tie (to even)."""
    assert C.rnbf16([1 + 2**-8 + 2**-30])[0] == 1 + 2**-7  # above the midpoint 1 + 2^-8
    assert C.rnbf16([1 + 2**-8 - 2**-30])[0] == 1.0  # below it
    assert C.rnbf16([1 + 2**-8])[0] == 1.0  # the tie: the even neighbour
    assert C.rnbf16([1 + 3 * 2**-8])[0] == 1 + 2**-6  # the tie between 1 + 2^-7 and 1 + 2^-6: even


# ---------------------------------------------------------------- (b) three formulations


@pytest.fixture(scope="module")
def registry():
    return load_registry()


@pytest.mark.parametrize("name", sorted(C.TRANSCRIPTIONS))
@pytest.mark.parametrize("fmt", ["fp16", "fp32"])
def test_formulation_matches_transcription(registry, name, fmt):
    x = ALL16["fp16"] if fmt == "fp16" else FP32_SAMPLE[::4]
    with np.errstate(all="ignore"):
        got = evaluate(registry[name], x, Policy(FMT[fmt], libm="glibc")).y
    assert_same(np.asarray(got, dtype=np.float64), C.transcribe(name, x, fmt), x, f"{name} {fmt}")


def test_transcriptions_differ_from_cr(registry):
    """The transcriptions see the libm: under cr the same formulation gives other bits on some fp16 inputs."""
    x = ALL16["fp16"]
    with np.errstate(all="ignore"):
        cr = evaluate(registry["softplus-tanh"], x, Policy(FP16, libm="cr")).y
    assert (~same(cr, C.transcribe("softplus-tanh", x, "fp16"))).sum() > 0


# ---------------------------------------------------------------- (c) the C oracle


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    exe = tmp_path_factory.mktemp("oracle") / "glibc_oracle"
    subprocess.run(["gcc", "-O2", "-fopenmp", "-fno-builtin", str(ORACLES / "glibc_oracle.c"), "-o", str(exe),
                    "-lquadmath", "-lm"], check=True)

    def run(func, lo=None, hi=None, verbose=False):
        args = [str(exe), func] + ([repr(lo) if isinstance(lo, float) else str(lo),
                                     repr(hi) if isinstance(hi, float) else str(hi)] if lo is not None else [])
        out = subprocess.run(args + (["-v"] if verbose else []), capture_output=True, text=True, check=True,
                             timeout=120).stdout.splitlines()
        return json.loads(out[-1]), [line.split() for line in out[:-1]]

    return run


MP = {"expf": mpmath.exp, "exp2f": lambda x: mpmath.power(2, x), "expm1f": mpmath.expm1, "logf": mpmath.log,
      "log1pf": mpmath.log1p, "tanhf": mpmath.tanh}
MP_BLOCKS = [("0.5", "0.500002"), ("ord:-40", "ord:40"), ("1e-20", "1.000001e-20"), ("-1e-20", "-0.999999e-20"),
             ("88.7228", "88.72284"), ("-87.34", "-87.33999"), ("-103.98", "-103.97999"), ("-150.00001", "-149.99999"),
             ("-0.99999997", "-0.9999999"), ("12", "12.00003"), ("3.4028e38", "inf"), ("-5", "-4.99998"),
             ("0.99999994", "1.0000002"), ("-1e-7", "-0.9999995e-7")]


@pytest.mark.parametrize("func", sorted(MP))
def test_oracle_against_mpmath(oracle, func):
    """Per input (-v): RN32(r) and the ulp error against mpmath at 300 bits (exact rationals for RN)."""
    n = 0
    for lo, hi in MP_BLOCKS:
        summary, rows = oracle(func, lo, hi, verbose=True)
        assert summary["undecided"] == 0 and summary["check_bad"] == 0 and summary["inputs"] == len(rows)
        for xs, ys, rns, errs, _ in rows:
            x, y, rn, err = float.fromhex(xs), float.fromhex(ys), float.fromhex(rns), float(errs)
            with mpmath.workprec(300):
                r = MP[func](mpmath.mpf(x))
                e = int(mpmath.floor(mpmath.log(abs(r), 2))) if r != 0 else -126
                want_err = float(abs(mpmath.mpf(y) - r) / mpmath.mpf(2) ** (max(e, -126) - 23))
                sign, man, exp, _ = r._mpf_  # r = (-1)^sign man 2^exp exactly
                want_rn = rn_exact((-1) ** sign * Fraction(int(man)) * Fraction(2) ** int(exp), 24, -126, 127)
            assert rn == want_rn and abs(err - want_err) <= 1e-9 * max(1.0, want_err), (func, xs, ys, rns, errs)
            n += 1
    assert n > 200


BLOCKS = {  # fp32 blocks, a few 10^4 inputs each: ordinary, subnormal and tiny, near the domain's edges
    "exp": [("0.5", "0.5001"), ("-87.5", "-87.3"), ("88.70", "88.72283"), ("-104", "-103.9"), ("-1e-42", "1e-42")],
    "expm1": [("0.5", "0.5001"), ("-1e-42", "1e-42"), ("1e-7", "1.00001e-7"), ("88.70", "88.72283"), ("-0.4", "-0.3999")],
    "log": [("0.5", "0.5001"), ("1e-42", "1e-41"), ("0.999", "1.001"), ("3.4e38", "3.5e38")],
    "log1p": [("-0.99999", "-0.9999"), ("0.5", "0.5001"), ("-1e-42", "1e-42"), ("1e-7", "1.00001e-7")],
    "tanh": [("0.5", "0.5001"), ("-1e-42", "1e-42"), ("8", "8.01"), ("-0.001", "-0.00099")],
}


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_compare_against_oracle(oracle, name):
    func = name + "f"
    for lo, hi in BLOCKS[name]:
        o, _ = oracle(func, lo, hi)
        assert o["undecided"] == 0 and o["check_bad"] == 0
        row = api.compare(dtype="fp32", formulas=[name], libm="glibc", exhaustive=True, domain=f"{lo}:{hi}").iloc[0]
        where = f"{name} on [{lo}, {hi}]: mishaudit {row['max_ulp']!r} at {row['worst_x']!r}, oracle {o}"
        assert int(row["inputs"]) == o["inputs"], where
        assert abs(float(row["max_ulp"]) - o["max_ulp"]) <= 1e-6, where
        assert round((1 - float(row["cr_frac"])) * int(row["inputs"])) == o["wrong"], where
        w = float(row["worst_x"])
        at_w, _ = oracle(func, w, w)  # the oracle's error at mishaudit's worst input is the maximum
        assert at_w["inputs"] == 1 and abs(at_w["max_ulp"] - o["max_ulp"]) <= 1e-6, where
        if o["worst_count"] <= len(o["worst_xs"]) and o["max_ulp"] >= 2.0**-10:
            assert w in o["worst_xs"], where
