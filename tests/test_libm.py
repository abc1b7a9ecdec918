"""The libm models: `cr` against mpmath (exact cases, overflow and underflow edges, subnormal results,
the inputs nearest a rounding boundary); the start-up check of the host libm; `numpy` is numpy's."""

from fractions import Fraction

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
        from mishaudit.formats import ordinal

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
    from mishaudit.formats import ordinal

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
    raw, kernel = libm._jit()

    def bad_raw(op, a, b):
        v = raw(op, a, b)
        return v * (1 + 2.0**-40) if op == 0 else v  # exp off by 2^-40, beyond the 2^-47 allowed

    libm.verify_host_libm.cache_clear()
    monkeypatch.setattr(libm, "_jit", lambda: (bad_raw, kernel))
    try:
        with pytest.raises(UserError, match="exp.*more than the 2\\^-47"):
            libm.verify_host_libm()
    finally:
        monkeypatch.undo()
        libm.verify_host_libm.cache_clear()


def test_numpy_model_is_numpys_float32_kernel_rounded_once():
    x = np.sort(all_finite(FP16))
    x = x[np.abs(x) < 20]
    got = libm.apply("numpy", "exp", [x], FP16)
    with np.errstate(over="ignore"):
        want = np.exp(x.astype(np.float32)).astype(np.float16).astype(np.float64)  # the model's definition
    assert np.array_equal(got, want)


def test_unknown_model_is_a_user_error():
    with pytest.raises(UserError, match="unknown --libm 'glibc'"):
        libm.check_model("glibc")
