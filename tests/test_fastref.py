"""The fast reference: identical to the mpmath path over the fp16 and bf16 lattices, within 1e-6 ulp on fp32;
which inputs it leaves to mpmath, counted exactly and against an independent mpmath computation."""

import functools

import mpmath
import numpy as np
import pytest

from mishaudit.eval.evaluate import Policy, evaluate
from mishaudit.formats import BF16, FP16, FP32, FP64, all_finite, from_ordinal
from mishaudit.lang.registry import load_registry
from mishaudit.measure.metrics import errors
from mishaudit.reference.fastref import EPS, exp_bounded, fast_reference
from mishaudit.reference.table import Reference
from mishaudit.reference.ziv import compute_points

UNDECIDED = {"fp16": 0, "bf16": 0}  # measured; equal to the near set derived below


def test_exp_error_within_the_proven_bound():
    rng = np.random.default_rng(11)
    a = rng.uniform(-700, 700, 4000).astype(np.float32).astype(np.float64)
    a = np.concatenate([a, [0.0, 1e-30, -0.3466, 0.3466, 700.0, -700.0]]).astype(np.float32).astype(np.float64)
    e = exp_bounded(a)
    with mpmath.workprec(200):
        worst = max(abs((mpmath.mpf(ei) - mpmath.exp(ai)) / mpmath.exp(ai)) for ai, ei in zip(a, e))
    assert worst < 2.0**-47.9


@pytest.mark.parametrize("fmt", [FP16, BF16], ids=lambda f: f.name)
def test_fast_path_equals_mpmath_over_the_whole_lattice(fmt):
    x = np.sort(all_finite(fmt))
    rn, d, E, r64, ok = fast_reference(x, fmt)
    # every input is decided without mpmath: no fp16 or bf16 mish(x) lies near enough a rounding
    # boundary (test_undecided_inputs_are_those_near_a_boundary derives that independently)
    assert int((~ok).sum()) == UNDECIDED[fmt.name]
    slow = compute_points(x[ok], fmt)
    assert np.array_equal(rn[ok], slow["rn"]) and np.array_equal(np.signbit(rn[ok]), np.signbit(slow["rn"]))
    assert np.array_equal(E[ok], slow["E"])
    assert np.max(np.abs(d[ok] - slow["d"])) < 1e-9
    # per-input errors and verdicts of every formulation are the same through either reference
    fast_ref = Reference(x[ok], rn[ok], d[ok], E[ok], r64[ok])
    slow_ref = Reference(x[ok], slow["rn"], slow["d"], slow["E"], slow["r64"])
    for f in load_registry().values():
        y = evaluate(f, x[ok], Policy(fmt)).y
        a, b = errors(y, fast_ref, fmt), errors(y, slow_ref, fmt)
        assert np.array_equal(a.cr, b.cr) and np.array_equal(a.faithful, b.faithful)
        assert np.array_equal(a.dulp, b.dulp)
        assert np.nanmax(np.abs(a.ulp - b.ulp)) < 1e-6


def test_fp32_sample_within_1e_6_ulp_of_mpmath():
    rng = np.random.default_rng(2026)
    o = rng.integers(-(2**31 - 2**23), 2**31 - 2**23, 100_000)
    x = from_ordinal(o, FP32)
    x = x[np.isfinite(x)]
    rn, d, E, r64, ok = fast_reference(x, FP32)
    # the closed-form regions decide every input (fastref's docstring): series, x < -200, x > 350
    assert ok[(np.abs(x) < 2.0**-30) | (x < -200) | (x > 350)].all()
    assert int((~ok).sum()) == 0  # near-ties are rarer than 1 in 10^6 binary32 inputs: none in this sample
    sel = np.flatnonzero(ok)
    slow = compute_points(x[sel], FP32)
    assert np.array_equal(rn[sel], slow["rn"]) and np.array_equal(E[sel], slow["E"])
    assert np.max(np.abs(d[sel] - slow["d"])) < 1e-6
    assert EPS * 2.0**FP32.p < 1e-6  # the decision margin itself is below 1e-6 ulp


def test_only_narrow_formats():
    with pytest.raises(ValueError):
        fast_reference(np.array([1.0]), FP64)


# ---------------------------------------------------------------- which inputs are undecided, independently
#
# fastref.py's rule (its docstring): in the two exp regions, -200 <= x <= -2^-30 and 2^-30 <= x <= 350,
# the binary64 value r carries relative error <= EPS; the input is decided when its enclosure
# [r - EPS|r|, r + EPS|r|] rounds alike, stays in one binade, and d = (r - RN)/ulp is known inside
# (-1/2, 1/2) with a certain side, d's enclosure having radius EPS 2^p ulps for x < 0. Facts settle
# the rest without r: mish(x) < x for x > 0 (RN(r) = x: r is below it; x = 2^k: r is in the binade
# below), and mish(x) has x's sign (RN = 0). So, from the exact value alone (mpmath, 150 bits), an
# input is near when, in units of that radius, some boundary the rule must resolve lies within
# NEAR_UNITS: a midpoint or a format value (units: EPS 2^p ulps), or a power of two above 2^emin
# (units: EPS |r|), the value x itself and 0 excepted for x > 0 as the facts say; outside the two exp
# regions the closed forms decide every input.

NEAR_UNITS = 4


@functools.cache
def boundary_distances(fmt_name: str):
    """(x, distance to the nearest midpoint, to the nearest format value, to the nearest power of two)
    for every input of the format's lattice in the two exp regions, in the units above."""
    fmt = {"fp16": FP16, "bf16": BF16}[fmt_name]
    x = np.sort(all_finite(fmt))
    x = x[((x >= -200) & (x <= -(2.0**-30))) | ((x >= 2.0**-30) & (x <= 350))]
    unit = EPS * 2.0**fmt.p
    out = np.empty((len(x), 3))
    with mpmath.workprec(150):
        two = mpmath.mpf(2)
        for i, xi in enumerate(x.tolist()):
            v = mpmath.mpf(xi)
            a = abs(v * mpmath.tanh(mpmath.log1p(mpmath.exp(v))))
            k = int(mpmath.floor(mpmath.log(a, 2)))
            k = k - 1 if two**k > a else k + 1 if two ** (k + 1) <= a else k
            ulp = two ** (max(k, fmt.emin) - fmt.p + 1)
            t = a / ulp
            n = mpmath.nint(t)
            mid = float(abs(t - mpmath.floor(t) - 0.5)) / unit
            val = np.inf if n == 0 or (xi > 0 and n * ulp == xi) else float(abs(t - n)) / unit
            pw = min([float(abs(a - two**j) / a) / EPS for j in (k, k + 1)
                      if j > fmt.emin and not (xi > 0 and two**j == xi)] or [np.inf])
            out[i] = mid, val, pw
    return x, out


@pytest.mark.parametrize("fmt", [FP16, BF16], ids=lambda f: f.name)
def test_undecided_inputs_are_those_near_a_boundary(fmt):
    """The undecided set equals the near set computed from mpmath alone (both empty in fp16 and bf16,
    counted exactly), and no input is anywhere near the line: the nearest lies 16,384 units away
    (fp16; bf16: 21,632): only a radius 2^14 times EPS's would reach it (the binary32 test below
    checks the radius itself). A rule that lost a fact, e.g. no longer capped r below x for x = 2^k,
    leaves x = 16 ... 256 undecided and fails. Where facts settle a near case instead (x > 0 with
    mish(x) within EPS of x, x = 2^k with mish(x) just below a power of two), the fast path's RN, side
    and binade are mpmath's: RN = x, d < 0, E = floor(log2 mish(x))."""
    x, dist = boundary_distances(fmt.name)
    near = set(x[(dist <= NEAR_UNITS).any(axis=1)].tolist())
    xs = np.sort(all_finite(fmt))
    rn, d, E, _, ok = fast_reference(xs, fmt)
    undecided = set(xs[~ok].tolist())
    assert undecided == near and len(undecided) == UNDECIDED[fmt.name]
    assert dist.min() >= {"fp16": 16383, "bf16": 21631}[fmt.name], dist.min()
    # the cases settled by facts: mish(x) within a radius of x itself, or of the power of two x
    pos = xs > 0
    with mpmath.workprec(1100):  # mish(350) = 350 (1 - 2^-1009 ...)
        fact = [i for i in np.flatnonzero(pos & (xs <= 350))
                if float(abs(mish_textbook(xs[i]) / xs[i] - 1)) <= NEAR_UNITS * EPS]
        assert len(fact) > 100 and {16.0, 32.0, 64.0, 128.0, 256.0} <= {float(xs[i]) for i in fact}
        for i in fact:
            r = mish_textbook(xs[i])
            assert rn[i] == xs[i] and d[i] < 0 and E[i] == int(mpmath.floor(mpmath.log(r, 2))), xs[i]


def mish_textbook(x):
    v = mpmath.mpf(float(x))
    return v * mpmath.tanh(mpmath.log1p(mpmath.exp(v)))


def _fp32_run(lo: float, n: int) -> np.ndarray:
    """n consecutive binary32 values from lo away from zero."""
    return (np.float32(lo).view(np.int32) + np.arange(n, dtype=np.int32)).view(np.float32).astype(np.float64)


@functools.lru_cache(maxsize=1)
def fp32_near_midpoint_candidates():
    """binary32 inputs (every one in [1, 2), [-2, -1), [3, 6), [-6, -3)) whose mish, estimated in
    binary64 only to choose them, lies within 2^-19 ulp of a midpoint: 117 of 33.5 million; with, by
    mpmath, the distance to the midpoint in units of the rule's radius (EPS 2^24 ulps for x < 0,
    EPS |r| for x > 0)."""
    xs = []
    for lo in (1.0, -1.0, 3.0, -3.0):
        for c in range(4):
            x = _fp32_run(lo, 1 << 23)[c << 21:(c + 1) << 21]
            with np.errstate(all="ignore"):
                m, _ = np.frexp(np.abs(x * np.tanh(np.log1p(np.exp(x)))))
            xs.append(x[np.abs(np.ldexp(m, 24) % 1.0 - 0.5) < 2.0**-19])
    x = np.concatenate(xs)
    units = []
    with mpmath.workprec(200):
        for xi in x.tolist():
            a = abs(mish_textbook(xi))
            ulp = mpmath.mpf(2) ** (int(mpmath.floor(mpmath.log(a, 2))) - 23)
            t = a / ulp
            radius = EPS * 2**24 if xi < 0 else EPS * a / ulp
            units.append(float(abs(t - mpmath.floor(t) - 0.5) / radius))
    return x, np.array(units)


def test_fp32_undecided_exactly_within_the_radius_of_a_midpoint():
    """Where near-ties exist (binary32), the fast path leaves to mpmath exactly the inputs whose exact
    mish lies within its radius of a midpoint, and decides the others correctly: 14 of the 117
    candidates (the nearest decided one at 1.046 radii, the farthest undecided at 0.815). A rule that
    decided inside its own error bound, or gave up far outside it, fails."""
    x, units = fp32_near_midpoint_candidates()
    assert len(x) == 117 and not ((units > 0.98) & (units < 1.02)).any()  # no candidate on the line
    rn, _, E, _, ok = fast_reference(x, FP32)
    assert np.array_equal(~ok, units < 1) and int((~ok).sum()) == 14
    slow = compute_points(x[ok], FP32)
    assert np.array_equal(rn[ok], slow["rn"]) and np.array_equal(E[ok], slow["E"])
