"""The libm models: `cr` against mpmath (exact cases, overflow and underflow edges, subnormal results,
the inputs nearest a rounding boundary); the start-up check of the host libm; `numpy` against MPFR
and numpy's documented error, never against numpy's own kernels."""

import functools
from fractions import Fraction

import gmpy2
import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mishaudit.errors import UserError
from mishaudit.eval import libm
from mishaudit.formats import (
    BF16,
    FP16,
    FP32,
    FP64,
    all_finite,
    from_ordinal,
    ordinal,
    round_fraction,
)

FMTS = [FP16, BF16, FP32, FP64]
MP = {"exp": mpmath.exp, "expm1": mpmath.expm1, "log": mpmath.log, "log1p": mpmath.log1p, "tanh": mpmath.tanh}


def rn_mpmath(op: str, args, fmt) -> float:
    """RN_fmt(op(*args)) from mpmath at 600 bits, rounded by exact rational arithmetic (ties to even).
    At 600 bits no transcendental value of these arguments is near enough a midpoint to mislead."""
    with mpmath.workprec(600):
        a = [mpmath.mpf(float(v)) for v in args]
        if op == "pow":
            if a[0] < 0 and a[1] != int(a[1]):
                return float("nan")
            v = a[0] ** a[1]
        elif op == "log" and a[0] <= 0:
            return float("-inf") if a[0] == 0 else float("nan")
        elif op == "log1p" and a[0] <= -1:
            return float("-inf") if a[0] == -1 else float("nan")
        else:
            v = MP[op](a[0])
        if mpmath.isinf(v):
            return float(v)
        if v == 0:
            return float(v) if args[0] != 0 else (0.0 if op in ("exp", "log") else float(args[0]))
        sign, man, exp, _ = v._mpf_  # (man_exp drops the sign)
        return round_fraction((-1) ** sign * Fraction(int(man)) * Fraction(2) ** exp, fmt)


def check(op, xs, fmt, ys=None):
    args = [np.asarray(xs, dtype=np.float64)] + ([np.asarray(ys, dtype=np.float64)] if ys is not None else [])
    got = libm.correctly_rounded(op, args, fmt)
    for i in range(len(args[0])):
        want = rn_mpmath(op, [a[i] for a in args], fmt)
        g = float(got[i])
        ok = (np.isnan(g) and np.isnan(want)) or (g == want and np.signbit(g) == np.signbit(want))
        assert ok, (op, fmt.name, [float(a[i]) for a in args], g, want)


@pytest.mark.parametrize("fmt", FMTS, ids=lambda f: f.name)
def test_exact_cases_are_exact(fmt):
    got = libm.correctly_rounded
    assert got("exp", [np.array([0.0, -0.0])], fmt).tolist() == [1.0, 1.0]
    z = got("log", [np.array([1.0])], fmt)[0]
    assert z == 0 and not np.signbit(z)
    for op in ("expm1", "log1p", "tanh"):
        r = got(op, [np.array([0.0, -0.0])], fmt)
        assert r.tolist() == [0.0, 0.0] and np.signbit(r).tolist() == [False, True], op
    assert got("pow", [np.array([3.0, -2.0, 0.5]), np.array([2.0, 3.0, -1.0])], fmt).tolist() == [9.0, -8.0, 2.0]
    assert got("log", [np.array([0.0])], fmt)[0] == -np.inf and np.isnan(got("log", [np.array([-1.0])], fmt)[0])
    assert got("exp", [np.array([np.inf, -np.inf])], fmt).tolist() == [np.inf, 0.0]
    assert got("tanh", [np.array([np.inf, -np.inf])], fmt).tolist() == [1.0, -1.0]


@pytest.mark.parametrize("fmt", FMTS, ids=lambda f: f.name)
def test_overflow_and_underflow_edges(fmt):
    # the format's exp overflow threshold ln(max + ulp(max)/2) and the point where exp(x) falls
    # below half the smallest subnormal, with the format values around each
    with mpmath.workprec(300):
        over = mpmath.log(mpmath.mpf(fmt.max) + mpmath.mpf(2) ** (fmt.emax - fmt.p) )
        under = mpmath.log(mpmath.mpf(fmt.min_subnormal) / 2)
        sub = mpmath.log(mpmath.mpf(fmt.tiny))
    xs = []
    for t in (over, under, sub, -over):
        c = round_fraction(Fraction(float(t)), fmt)
        o = np.arange(-3, 4)
        xs += from_ordinal(ordinal(np.array([c]), fmt)[0] + o, fmt).tolist()
    check("exp", xs, fmt)
    check("expm1", xs, fmt)
    check("tanh", xs, fmt)


@pytest.mark.parametrize("fmt", [FP16, BF16, FP32], ids=lambda f: f.name)
def test_subnormal_results(fmt):
    xs = [fmt.min_subnormal * k for k in (1, 2, 3, 5, 1000)] + [fmt.tiny * 0.75]
    xs = [round_fraction(Fraction(v), fmt) for v in xs]
    xs += [-v for v in xs]
    for op in ("expm1", "log1p", "tanh"):
        check(op, xs, fmt)
    with mpmath.workprec(200):  # exp(x) for x a little above the underflow point: subnormal results
        t = float(mpmath.log(mpmath.mpf(fmt.min_subnormal)))
    base = round_fraction(Fraction(t), fmt)
    check("exp", from_ordinal(ordinal(np.array([base]), fmt)[0] + np.arange(-40, 400, 7), fmt), fmt)


def _nearest_midpoints(op: str, x: np.ndarray, fmt, k: int) -> np.ndarray:
    """The k inputs whose exact result (estimated in binary64, only to choose them) lies nearest a
    rounding boundary of the format."""
    with np.errstate(all="ignore"):
        y = {"exp": np.exp, "expm1": np.expm1, "log": np.log, "log1p": np.log1p, "tanh": np.tanh}[op](x)
        ok = np.isfinite(y) & (np.abs(y) >= fmt.tiny) & (np.abs(y) <= fmt.max)
        m, e = np.frexp(np.abs(y))
        frac = np.ldexp(m, fmt.p) % 1.0  # position inside the format's ulp
        dist = np.where(ok, np.abs(frac - 0.5), np.inf)
    return x[np.argsort(dist)[:k]]


@pytest.mark.parametrize("op", ["exp", "expm1", "log", "log1p", "tanh"])
@pytest.mark.parametrize("fmt", [FP16, BF16, FP32], ids=lambda f: f.name)
def test_near_midpoint_inputs(op, fmt):
    if fmt.bits == 16:
        x = all_finite(fmt)
    else:
        rng = np.random.default_rng(11)
        x = rng.uniform(-30, 30, 400_000).astype(np.float32).astype(np.float64)
    if op in ("log", "log1p"):
        x = np.abs(x)
    check(op, _nearest_midpoints(op, x, fmt, 25), fmt)


def test_fp64_through_mpfr_matches_mpmath():
    rng = np.random.default_rng(5)
    x = rng.uniform(-40, 40, 150)
    for op in ("exp", "expm1", "tanh"):
        check(op, x, FP64)
    check("log", np.abs(x), FP64)
    check("log1p", np.abs(x), FP64)
    check("pow", np.abs(x[:40]), FP64, rng.uniform(-3, 3, 40))


@settings(max_examples=150, deadline=None)
@given(a=st.floats(0.01, 100), b=st.floats(-6, 6))
def test_pow_binary32_against_mpmath(a, b):
    a, b = float(np.float32(a)), float(np.float32(b))
    check("pow", [a], FP32, [b])


def test_pow_square_is_exact_even_on_a_midpoint():
    # (1 + 2^-12)^2 = 1 + 2^-11 + 2^-24: RN32 is a tie between 1 + 2^-11 and its successor; even wins
    a = 1 + 2.0**-12
    got = libm.correctly_rounded("pow", [np.array([a]), np.array([2.0])], FP32)[0]
    assert got == round_fraction(Fraction(a) ** 2, FP32) == 1 + 2.0**-11


def test_host_libm_check_passes_here_and_refuses_a_bad_libm(monkeypatch):
    assert libm.verify_host_libm() <= libm.B_CHECK
    good = libm._host_values

    def bad(op, a, b=None):
        v = good(op, a, b)
        return v * (1 + 2.0**-40) if op == "exp" else v  # exp off by 2^-40, beyond the 2^-47 allowed

    libm.verify_host_libm.cache_clear()
    monkeypatch.setattr(libm, "_host_values", bad)
    try:
        with pytest.raises(UserError, match="exp.*more than the 2\\^-47"):
            libm.verify_host_libm()
    finally:
        monkeypatch.undo()
        libm.verify_host_libm.cache_clear()


# ---------------------------------------------------------------- the numpy model, against MPFR
#
# The model (libm.py): binary32 and binary64 use numpy's float32 / float64 ufuncs; fp16 and bf16 use
# the float32 ufunc, rounded once. None of the checks below calls numpy's elementary functions: the
# exact value v comes from MPFR at 200 bits, and a float32 kernel is held to numpy's documented
# error: its own AVX2/AVX512F float32 exp and log are documented at <= 2.52 and 3.83 ulp, its
# SVML-based float32 expm1, log1p, tanh at <= 4 ulp (the most measured here, numpy 2.4 on an
# AVX512_ICL dispatch over every fp16 and bf16 input: 2.55 ulp, log at 0.78076171875).

K_NUMPY = 4  # ulps of binary32
# inputs (over the five functions) whose exact value lies within K_NUMPY ulp32 of a rounding boundary
# of the format, from MPFR alone: there either neighbour is allowed
NEAR_FP16, NEAR_BF16 = 149, 6
ELEM5 = ("exp", "expm1", "log", "log1p", "tanh")
_HI = gmpy2.context(precision=200, emin=-(1 << 24), emax=1 << 24)


def _rn_context(p: int, emin: int, emax: int):
    """Round once to the binary format with p bits, normal exponents emin..emax, subnormals and
    overflow to inf (MPFR's significand lies in [1/2, 1): its exponents run emin - p + 2 .. emax + 1)."""
    return gmpy2.context(precision=p, emin=emin - p + 2, emax=emax + 1, subnormalize=True,
                         round=gmpy2.RoundToNearest)


RN_CTX = {f.name: _rn_context(f.p, f.emin, f.emax) for f in FMTS}


def rn_mpfr(values, fmt) -> np.ndarray:
    """RN_fmt of each MPFR (or float) value, as float64."""
    ctx = RN_CTX[fmt.name]
    return np.array([float(ctx.plus(v)) for v in values])


def test_the_rounding_helper_rounds_once():
    """rn_mpfr against exact facts of each format and against numpy's float64 -> float16 cast (one
    correct rounding), so that the checks built on it rest on something known."""
    m = gmpy2.mpfr
    assert rn_mpfr([m(65519.99), m(65520), m(2.0**-25), m(3 * 2.0**-26), m(1 + 2.0**-11)], FP16).tolist() == \
        [65504.0, np.inf, 0.0, 2.0**-24, 1.0]  # max, overflow, ties to even (0 and 1), subnormal
    assert rn_mpfr([m(1 + 2.0**-8), m(1 + 3 * 2.0**-9), m(2.0**-134), m(2.0**-134 * 1.5)], BF16).tolist() == \
        [1.0, 1 + 2.0**-7, 0.0, 2.0**-133]
    assert rn_mpfr([m(2.0**-150), m(2.0**-150 * 1.0000001), m(2.0**128 - 2.0**103)], FP32).tolist() == \
        [0.0, 2.0**-149, np.inf]
    v = np.random.default_rng(3).uniform(-70000, 70000, 2000) * 2.0 ** np.random.default_rng(4).integers(-30, 1, 2000)
    with np.errstate(over="ignore"):
        assert np.array_equal(rn_mpfr([m(t) for t in v], FP16), v.astype(np.float16).astype(np.float64))


def lattice_inputs(op: str, fmt) -> np.ndarray:
    """Every finite value of a 16-bit format in op's domain (where the exact value is real)."""
    x = np.sort(all_finite(fmt))
    return x[x > 0] if op == "log" else x[x > -1] if op == "log1p" else x


@functools.cache
def exact_values(op: str, fmt_name: str) -> tuple:
    """(inputs, op(x) by MPFR at 200 bits) over a 16-bit lattice; +-inf and 0 where the exact value
    is beyond any binary format (exp of huge arguments)."""
    x = lattice_inputs(op, {"fp16": FP16, "bf16": BF16}[fmt_name])
    f = getattr(_HI, op)
    return x, tuple(f(gmpy2.mpfr(float(t))) for t in x)


def float32_band(values, k: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(RN(v - k ulp32(v)), RN(v + k ulp32(v)), RN(v)) in a target format, as functions of the
    target: every result a binary32 kernel within k ulps can round to lies between the first two."""
    lo, hi = [], []
    for v in values:
        if gmpy2.is_zero(v) or not gmpy2.is_finite(v):
            lo.append(v)
            hi.append(v)
            continue
        w = gmpy2.mul_2exp(gmpy2.mpfr(k), max(gmpy2.get_exp(v) - 1, -126) - 23)  # k ulp32(v)
        lo.append(_HI.sub(v, w))
        hi.append(_HI.add(v, w))
    return lo, hi


def ulp32_error(y: np.ndarray, values) -> np.ndarray:
    """|y - v| / ulp32(v) (DESIGN.md's ulp, subnormal floor), NaN where v or y is not a finite
    number of binary32's range or v = 0."""
    out = np.full(len(y), np.nan)
    for i, (yi, v) in enumerate(zip(y.tolist(), values)):
        if np.isfinite(yi) and gmpy2.is_finite(v) and not gmpy2.is_zero(v) and abs(v) <= np.finfo(np.float32).max:
            q = max(gmpy2.get_exp(v) - 1, -126) - 23
            out[i] = float(gmpy2.mul_2exp(abs(_HI.sub(gmpy2.mpfr(yi), v)), -q))
    return out


def numpy_simd_exp_log() -> bool:
    """numpy dispatches float32 exp and log to its own AVX2/AVX512F kernels (documented at 2.52 and
    3.83 ulp: not correctly rounded) on this CPU."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__ as disp
        from numpy._core._multiarray_umath import __cpu_features__ as feats
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_dispatch__ as disp
        from numpy.core._multiarray_umath import __cpu_features__ as feats
    return any(t in disp and feats.get(t) for t in ("X86_V3", "X86_V4", "AVX2", "AVX512F", "AVX512_SKX"))


def _first_outside(x, y, lo, hi):
    bad = np.flatnonzero(~((lo <= y) & (y <= hi)))
    return [(float(x[i]), float(y[i]), float(lo[i]), float(hi[i])) for i in bad[:5]]


@pytest.mark.parametrize("fmt", [FP16, BF16], ids=lambda f: f.name)
def test_numpy_model_in_half_formats_is_a_float32_kernel_rounded_once(fmt):
    """Over every input of the format: the model's result is RN_fmt(y32) for some y32 within
    K_NUMPY ulp32 of the exact value (MPFR); where no rounding boundary of fmt lies that close, that is
    the correctly rounded value itself. A kernel computed in fp16/bf16 itself (errors of a whole
    fmt ulp: thousands of ulp32), another function, a rounding toward zero or to another format
    fails; so does a binary64 kernel (correctly rounded everywhere) on a CPU where numpy's float32
    exp and log are its documented, not correctly rounded SIMD kernels: there some result must
    differ from RN_fmt(v) (measured here: fp16 exp 2, expm1 2, log 2, log1p 2; bf16 exp 1)."""
    witnesses = near = 0
    for op in ELEM5:
        x, v = exact_values(op, fmt.name)
        y = libm.apply("numpy", op, [x], fmt)
        lo_v, hi_v = float32_band(v, K_NUMPY)
        lo, hi, cr = rn_mpfr(lo_v, fmt), rn_mpfr(hi_v, fmt), rn_mpfr(v, fmt)
        assert not _first_outside(x, y, lo, hi), (op, _first_outside(x, y, lo, hi))
        one = lo == hi  # no boundary within K_NUMPY ulp32: only RN_fmt(v) is possible
        assert np.array_equal(y[one], cr[one]), op
        assert np.all(np.isnan(y) == np.isnan(cr)), op
        # one rounding of the binary32 result (the model's binary32 path, checked against MPFR below)
        y32 = libm.apply("numpy", op, [x], FP32)
        assert np.array_equal(rn_mpfr(y32, fmt), y, equal_nan=True), op
        near += int((~one).sum())
        witnesses += int(((y != cr) & ~np.isnan(cr)).sum())
    # inputs whose band holds a rounding boundary: a fact of MPFR and K_NUMPY alone
    assert near == {"fp16": NEAR_FP16, "bf16": NEAR_BF16}[fmt.name], near
    if numpy_simd_exp_log() and fmt is FP16:
        assert witnesses > 0, "every result correctly rounded: is the model running float64 kernels?"


def test_numpy_model_binary32_within_numpys_documented_error():
    """Binary32 under --libm numpy: a binary32 value within K_NUMPY ulp of the exact value (MPFR) for
    every fp16 and bf16 input (arguments from -3.4e38 to 3.4e38, results from subnormal to overflow),
    and, where numpy's float32 exp and log are its own SIMD kernels, errors beyond 1 ulp (measured:
    exp 2.00 ulp at -6.55859375, log 2.55 ulp at 0.78076171875 over the fp16 inputs): a model that
    ran float64 kernels and rounded (<= 0.5 ulp) or another, more accurate libm, fails."""
    worst = {}
    for fmt in (FP16, BF16):
        for op in ELEM5:
            x, v = exact_values(op, fmt.name)
            y = libm.apply("numpy", op, [x], FP32)
            fin = np.isfinite(y)
            assert np.array_equal(y[fin].astype(np.float32).astype(np.float64), y[fin]), (op, "not binary32 values")
            lo_v, hi_v = float32_band(v, K_NUMPY)
            lo, hi = rn_mpfr(lo_v, FP32), rn_mpfr(hi_v, FP32)
            assert not _first_outside(x, y, lo, hi), (op, fmt.name, _first_outside(x, y, lo, hi))
            e = ulp32_error(y, v)
            worst[op] = max(worst.get(op, 0.0), float(np.nanmax(e)))
    assert max(worst.values()) <= K_NUMPY, worst
    if numpy_simd_exp_log():
        assert worst["exp"] > 1 and worst["log"] > 1, worst


@pytest.mark.parametrize("model", ["numpy", "torch"])
@pytest.mark.parametrize("fmt", FMTS, ids=lambda f: f.name)
def test_exact_cases_are_exact_in_every_model(model, fmt):
    """The exact cases of test_exact_cases_are_exact hold for the numpy and torch models too (any
    kernel within a few ulps must give them: IEEE 754's exact results and signed zeros)."""
    got = lambda op, *a: libm.apply(model, op, [np.array(v, dtype=np.float64) for v in a], fmt)  # noqa: E731
    assert got("exp", [0.0, -0.0, np.inf, -np.inf]).tolist() == [1.0, 1.0, np.inf, 0.0]
    z = got("log", [1.0])[0]
    assert z == 0 and not np.signbit(z)
    assert got("log", [0.0])[0] == -np.inf and np.isnan(got("log", [-1.0])[0])
    for op in ("expm1", "log1p", "tanh"):
        r = got(op, [0.0, -0.0])
        assert r.tolist() == [0.0, 0.0] and np.signbit(r).tolist() == [False, True], op
    assert got("tanh", [np.inf, -np.inf]).tolist() == [1.0, -1.0]
    assert got("pow", [3.0, -2.0, 0.5], [2.0, 3.0, -1.0]).tolist() == [9.0, -8.0, 2.0]
    # exp overflows at the format's own threshold: RN(e^x) = inf iff e^x >= max + ulp(max)/2
    with mpmath.workprec(300):
        t = mpmath.log(mpmath.mpf(fmt.max) + mpmath.mpf(2) ** (fmt.emax - fmt.p))
    o = ordinal(np.array([round_fraction(Fraction(float(t)), fmt)]), fmt)[0]
    xs = from_ordinal(o + np.arange(-2, 3), fmt)
    over = [mpmath.mpf(float(v)) >= t for v in xs]
    assert (np.isinf(got("exp", xs)) == np.array(over)).all(), (model, fmt.name, xs)


def test_unknown_model_is_a_user_error():
    with pytest.raises(UserError, match="unknown --libm 'musl'"):
        libm.check_model("musl")
