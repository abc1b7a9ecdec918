"""mishaudit's own binary64 exp, expm1, log, log1p, tanh (eval/elem64.py): their measured error against
MPFR (160 bits) stays within the bounds its docstring proves, on binary32 arguments of every region the
cr model's fast pass sends them and on random binary64 ones, and those bounds are far below libm.B."""

from __future__ import annotations

import gmpy2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mishaudit.eval import elem64, libm

CTX = gmpy2.context(precision=160)
FUNCS = {"exp": (elem64.exp64, CTX.exp), "expm1": (elem64.expm1_64, CTX.expm1), "log": (elem64.log64, CTX.log),
         "log1p": (elem64.log1p64, CTX.log1p), "tanh": (elem64.tanh64, CTX.tanh)}
RANGES = {  # (lo, hi) of the arguments sampled: the regions of each function's proof and its domain's ends
    "exp": [(-104, 89), (-1e-3, 1e-3), (-700, -690), (690, 700), (-700, 700)],
    "expm1": [(-18, 89), (-0.36, -0.34), (0.34, 0.36), (-0.35, 0.35), (-1e-6, 1e-6), (-700, 700)],
    "tanh": [(-9.2, 9.2), (-0.18, 0.18), (-1e-7, 1e-7), (-20, 20)],
    "log": [(1e-300, 1e300), (0.5, 2), (1 - 1e-6, 1 + 1e-6), (0.70, 0.72), (1.40, 1.43), (2.2250738585072014e-308, 1e-307)],
    "log1p": [(-1 + 2**-24, -0.5), (2**-30, 1e-6), (-1e-5, -2**-30), (1, 1e30), (0.40, 0.43), (-0.3, -0.28),
              (1e290, 1e300)],
}


def rel_error(name: str, v: float) -> float:
    f, g = FUNCS[name]
    exact = g(gmpy2.mpfr(v))
    y = f(v)
    if exact == 0:
        assert y == 0 and np.signbit(y) == np.signbit(v)
        return 0.0
    return float(abs((gmpy2.mpfr(y) - exact) / exact))


def test_bounds_are_below_the_cr_models_bound():
    assert set(elem64.BOUNDS) == set(FUNCS) and elem64.MAX_BOUND == max(elem64.BOUNDS.values())
    assert elem64.MAX_BOUND < libm.B_CHECK  # what verify_host_libm requires of the host (B/8, B = 2^-44)


@pytest.mark.parametrize("name", sorted(FUNCS))
def test_error_within_the_proven_bound_on_binary32_and_binary64_arguments(name):
    rng = np.random.default_rng(7)
    worst = 0.0
    for lo, hi in RANGES[name]:
        v = rng.uniform(lo, hi, 1500)
        with np.errstate(over="ignore"):  # arguments beyond binary32 become inf (not covered)
            v32 = v.astype(np.float32).astype(np.float64)
        for a in np.concatenate([v, v32]):
            a = float(a)
            if not elem64.covered(elem64.OPS[name], a):
                continue
            worst = max(worst, rel_error(name, a))
    assert 0 < worst <= elem64.BOUNDS[name], (name, worst)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(FUNCS)), st.floats(allow_nan=False, allow_infinity=False, width=64))
def test_property_any_covered_argument(name, a):
    if elem64.covered(elem64.OPS[name], a):
        assert rel_error(name, a) <= elem64.BOUNDS[name]


def test_signed_zeros_and_the_domain_ends():
    assert np.signbit(elem64.tanh64(-0.0)) and elem64.tanh64(0.0) == 0 and not np.signbit(elem64.tanh64(0.0))
    assert elem64.exp64(0.0) == 1.0 and elem64.log64(1.0) == 0.0 and elem64.expm1_64(0.0) == 0.0
    cov = elem64.covered
    assert cov(elem64.EXP, 700.0) and not cov(elem64.EXP, 700.0000001) and not cov(elem64.EXP, np.nan)
    assert not cov(elem64.LOG1P, -1.0) and not cov(elem64.LOG1P, 2.0**-31) and cov(elem64.LOG1P, -0.999)
    assert not cov(elem64.LOG, 0.0) and not cov(elem64.LOG, 1e-310) and not cov(elem64.LOG, np.inf)
    assert not cov(elem64.TANH, 20.5) and cov(elem64.TANH, -20.0)


def test_value_outside_the_domain_is_the_hosts():
    """Beyond its domain elem64.value calls the host's function (the address), bit for bit."""
    for name, v in [("exp", 710.0), ("log1p", -1.0), ("log1p", 1e-12), ("tanh", 30.0), ("log", 1e-310)]:
        host = float(libm._host_values(name, np.array([v]))[0])
        got = elem64.value(elem64.OPS[name], libm._host_address(name), 1, v, v)
        assert got == host or (np.isnan(got) and np.isnan(host)), (name, v)
