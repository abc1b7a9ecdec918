"""elemref.py, the fast reference of the specs that are one elementary operation of x, against MPFR
computed here independently (gmpy2: RN by a context with the format's precision and exponent range
and subnormals; d from a value rounded toward zero at 200 bits and more): every finite fp16 and bf16
input of each function's domain, fp32 samples (random bit patterns, the dangerous regions, near-ties
found by a sweep), a hypothesis property; its compiled decision against decide.py's; the undecided
share; table.reference against specref; decide's d_res keyword."""

from __future__ import annotations

import functools
import math

import gmpy2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mishaudit.formats import BF16, FP16, FP32, FP64, all_finite, from_ordinal, ordinal
from mishaudit.lang import fpcore as fc
from mishaudit.lang.spec import spec_of
from mishaudit.reference import elemref, fastref
from mishaudit.reference.decide import D_RES, decide, float_ends, outward
from mishaudit.reference.elemref import OPS, RES, elementary_reference
from mishaudit.reference.specref import spec_reference
from mishaudit.reference.table import reference, reference_arrays

TOL = 1e-6  # every figure is exact to 1e-6 ulp


# ---------------------------------------------------------------- the MPFR oracle (independent of elemref)

@functools.cache
def _rn_context(fmt):
    return gmpy2.context(precision=fmt.p, emin=fmt.emin - fmt.p + 2, emax=fmt.emax + 1, subnormalize=True,
                         round=gmpy2.RoundToNearest)


@functools.cache
def _tz_context(prec):
    return gmpy2.context(precision=prec, round=gmpy2.RoundToZero, emin=gmpy2.get_emin_min(),
                         emax=gmpy2.get_emax_max())


def oracle(op, x, fmt):
    """(rn, d, E, resolved) per input: rn = RN(op(x)) by MPFR in the format; r_tz = op(x) rounded toward
    zero at P = 200 + 3 max(0, -exponent(x)) bits (|r| - |r_tz| < 2^-P |r|), E = max(floor(log2|r_tz|),
    emin) (the binade of r unless r is a power of two, then r_tz = r), d = (r_tz - rn)/ulp, within
    2^(p-P) of the true d; `resolved` where |d| exceeds 2^(p-P+4): its sign is then the true side."""
    f_rn = getattr(_rn_context(fmt), op)
    n = len(x)
    rn, d, res = np.empty(n), np.empty(n), np.empty(n, dtype=bool)
    E = np.empty(n, dtype=np.int64)
    for i, v in enumerate(np.asarray(x, dtype=np.float64).tolist()):
        xm = gmpy2.mpfr(v)
        r0 = f_rn(xm)
        rn[i] = float(r0)
        prec = 200 + 3 * min(max(-gmpy2.get_exp(xm), 0), 400) if v != 0 else 200
        c = _tz_context(prec)
        r = getattr(c, op)(xm)
        E[i] = fmt.emin if (r == 0 or not gmpy2.is_finite(r)) else max(gmpy2.get_exp(r) - 1, fmt.emin)
        if gmpy2.is_finite(r0) and gmpy2.is_finite(r):
            dm = c.mul_2exp(c.sub(r, r0), fmt.p - 1 - int(E[i]))
            d[i], res[i] = float(dm), abs(dm) > 2.0 ** (fmt.p - prec + 4)
        else:
            d[i], res[i] = np.nan, False
    return rn, d, E, res


def exact_points(op, x, fmt):
    """Where op(x) is a format value itself (d = 0): x = 0, log(1), exp2 of an integer in range."""
    if op == "log":
        return x == 1
    if op == "exp2":
        return (x == np.rint(x)) & (x >= fmt.emin - fmt.p + 1) & (x <= fmt.emax)
    return x == 0


def known_side(op, x):
    """The side of r around RN(r) where the oracle cannot resolve it (r within 2^-190 ulp of RN(r)): tanh
    saturates below |tanh x| < 1, expm1 above -1, exp and exp2 above 0."""
    return -np.sign(x) if op == "tanh" else np.ones(len(x))


def assert_agrees(op, x, fmt, got, orc):
    """On every decided input: rn (with the sign of a zero) and E equal MPFR's, d within 1e-6 ulp on the
    right side."""
    rn, d, E, _, ok = got
    orn, od, oE, ores = orc
    sel = np.flatnonzero(ok)
    bad = (rn[sel].view(np.int64) != orn[sel].view(np.int64)) | (E[sel] != oE[sel]) | ~(np.abs(d[sel] - od[sel]) <= TOL)
    assert not bad.any(), (op, fmt.name, x[sel][bad][:5], rn[sel][bad][:5], orn[sel][bad][:5], d[sel][bad][:5],
                           od[sel][bad][:5])
    res = ores[sel]
    assert np.array_equal(np.sign(d[sel][res]), np.sign(od[sel][res])), (op, fmt.name)
    ex = exact_points(op, x[sel], fmt)
    assert np.all(d[sel][ex] == 0)
    loose = ~res & ~ex
    assert np.array_equal(np.sign(d[sel][loose]), known_side(op, x[sel][loose])), (op, fmt.name, x[sel][loose][:5])


@functools.cache
def lattice(op, fmt):
    """Every finite input of the 16-bit format: x, elemref's answer, the oracle's."""
    x = all_finite(fmt)
    return x, elementary_reference(op, x, fmt), oracle(op, x, fmt)


# ---------------------------------------------------------------- fp16 and bf16: every input

EXP2_TIE = {"fp16": -25.0, "bf16": -134.0}  # 2^(emin - p): exactly half of ulp(0), d = 1/2 (left to MPFR)


@pytest.mark.parametrize("fmt", [FP16, BF16], ids=lambda f: f.name)
@pytest.mark.parametrize("op", OPS)
def test_every_16_bit_input_against_mpfr(op, fmt):
    x, got, orc = lattice(op, fmt)
    ok = got[4]
    dom = np.isfinite(orc[0])  # the domain: RN(op(x)) finite (log x > 0, log1p x > -1, no overflow)
    assert not ok[~dom].any()  # robust outside the domain: never decided
    # every input of the domain is decided without MPFR, but the exact tie of exp2
    assert x[dom & ~ok].tolist() == ([EXP2_TIE[fmt.name]] if op == "exp2" else [])
    assert_agrees(op, x, fmt, got, orc)


@pytest.mark.parametrize("fmt", [FP16, BF16], ids=lambda f: f.name)
@pytest.mark.parametrize("op", OPS)
def test_compiled_decision_equals_decide(op, fmt):
    """The compiled pass (closed forms, decide's criteria transcribed) gives decide.py's bits."""
    x, got, _ = lattice(op, fmt)
    assert_same(got, elementary_reference(op, x, fmt, check=True))


def assert_same(a, b):
    rn, d, E, r64, ok = a
    rn2, d2, E2, r642, ok2 = b
    assert np.array_equal(ok, ok2)
    assert np.array_equal(rn[ok].view(np.int64), rn2[ok].view(np.int64))
    assert np.array_equal(d[ok].view(np.int64), d2[ok].view(np.int64))
    assert np.array_equal(E[ok], E2[ok])
    assert np.array_equal(r64.view(np.int64), r642.view(np.int64))


# ---------------------------------------------------------------- fp32 samples

def _near(v, k):
    """The k fp32 values either side of each value in v (and v)."""
    o = ordinal(np.asarray(v, dtype=np.float32).astype(np.float64), FP32)
    o = (o[:, None] + np.arange(-k, k + 1)[None, :]).ravel()
    o = o[np.abs(o) < 2**31 - 2**23]  # finite
    return from_ordinal(o, FP32)


LN2 = math.log(2)
# near-ties found by a sweep of 10^7 inputs: elemref leaves them to MPFR (|d| within 1e-6 of 1/2 or of 0)
HARD = {"exp": [-45.68510437011719, -0.20294314622879028],
        "exp2": [-0.0031816160771995783, 2.7366552352905273, 1.0003522634506226],
        "expm1": [0.014842475764453411], "log": [2.813761259814148e-28, 3995.4482421875, 2.715127878506479e-40],
        "log1p": [31419.8359375, 4.0486385578227453e+27], "tanh": [0.3285823464393616, -0.029061665758490562]}


def dangerous(op):
    """fp32 inputs in the regions where a reference goes wrong: subnormals, powers of two and the values
    next to them, every threshold of elemref and of the function (overflow, underflow, saturation,
    the series), near 1 for log and near -1 for log1p, and the near-ties above."""
    p2 = 2.0 ** np.arange(-149, 128)
    parts = [_near(np.concatenate([p2, -p2]), 2), _near([2.0**-149, -2.0**-149, 2.0**-126, -2.0**-126], 40),
             from_ordinal(np.arange(1, 200), FP32), -from_ordinal(np.arange(1, 200), FP32)]
    th = [2.0**-15, 2.0**-12, 2.0**-26, 2.0**-27, 2.0**-22, 2.0**-24, 0.5, 1.0, 2.0]
    th += {"tanh": [0.35 * 26, 19.06, 340.0, 3e38],
           "expm1": [-(26) * LN2, -(25) * LN2, -680.0, 88.7228, -1e30],
           "exp": [88.7228, -87.3365, -103.972, -104.66, -1020.0, -745.13, -708.4, -700.0, -800.0, -3e38],
           "exp2": [127.99, -126.0, -149.0, -150.0, -151.0, -1100.0, -1e30],
           "log": [1.0, 3e38, 0.999, 1.001], "log1p": [-1.0 + 2**-24, -0.5, -0.999, 3e38]}[op]
    parts.append(_near(np.concatenate([th, -np.array(th)]), 60))
    if op == "log":
        parts.append(_near([1.0], 3000))
    if op == "log1p":
        parts.append(_near([-1.0 + 2**-24], 2000))
    if op == "exp2":
        ints = np.arange(-160.0, 130.0)
        parts.append(_near(ints, 3))
    parts.append(np.asarray(HARD[op]))
    x = np.unique(np.concatenate(parts))
    return x[np.isfinite(x)]


def random_fp32(n, seed):
    rng = np.random.default_rng(seed)
    return from_ordinal(rng.integers(-(2**31 - 2**23) + 1, 2**31 - 2**23, n), FP32)


@pytest.mark.parametrize("op", OPS)
def test_fp32_samples_against_mpfr(op):
    x = np.concatenate([random_fp32(12_000, 2026 + OPS.index(op)), dangerous(op)])
    got = elementary_reference(op, x, FP32)
    orc = oracle(op, x, FP32)
    dom = np.isfinite(orc[0])
    ok = got[4]
    assert not ok[~dom].any()
    assert_agrees(op, x, FP32, got, orc)
    # the undecided inputs of the domain are r within the bound of a rounding boundary or a format value
    # (near-ties, as -(p+1) ln2 for expm1, whose e^x 2^p is 1/2 within 1e-6), and the exp2 tie; a handful
    und = dom & ~ok & ~((x == -150.0) & (op == "exp2"))
    near = (np.abs(np.abs(orc[1]) - 0.5) < 2e-6) | (np.abs(orc[1]) < 2e-6)
    assert near[und].all(), x[und & ~near][:10]
    assert und.sum() <= 8, x[und]
    assert_same(got, elementary_reference(op, x, FP32, check=True))


@pytest.mark.parametrize("op", OPS)
def test_near_ties_are_left_to_mpfr_and_resolved_there(op):
    x = np.asarray(HARD[op])
    ok = elementary_reference(op, x, FP32)[4]
    assert not ok.any()
    orn, od, oE, _ = oracle(op, x, FP32)
    assert np.all((np.abs(np.abs(od) - 0.5) < 2e-6) | (np.abs(od) < 2e-6))  # within the bound of a boundary
    spec = _spec(op)
    ref = reference(x, FP32, use_cache=False, show_progress=False, spec=spec)
    assert ref.fallback == len(x)
    assert np.array_equal(ref.rn.view(np.int64), orn.view(np.int64)) and np.array_equal(ref.E, oE)
    assert np.max(np.abs(ref.d - od)) < TOL and np.array_equal(np.sign(ref.d), np.sign(od))


@settings(max_examples=300, deadline=None)
@given(bits=st.integers(0, 2**32 - 1), k=st.integers(0, len(OPS) - 1))
def test_property_random_fp32_bit_patterns(bits, k):
    """Any binary32 bit pattern in the domain: decided implies MPFR's rn, E and d (to 1e-6, its side)."""
    op = OPS[k]
    x = np.array([np.uint32(bits)]).view(np.float32).astype(np.float64)
    if not np.isfinite(x[0]):
        return
    orc = oracle(op, x, FP32)
    got = elementary_reference(op, x, FP32)
    if not np.isfinite(orc[0][0]):
        assert not got[4][0]
        return
    assert_agrees(op, x, FP32, got, orc)


# ---------------------------------------------------------------- how many inputs go to MPFR

# measured over 2^20 random binary32 inputs of each domain (seed 7); an exhaustive sweep sends about
# exp 860, exp2 1400, expm1 1140, log 4700, log1p 3400, tanh 1140 inputs to MPFR (the rate in the host
# regions, 2e-6 to 4.5e-6, times their size: elemref's docstring)
UNDECIDED_PER_MILLION = 12


@pytest.mark.parametrize("op", OPS)
def test_undecided_share_is_small(op):
    x = random_fp32(1 << 20, 7)
    x = x[np.isfinite(oracle_free_domain(op, x))]
    ok = elementary_reference(op, x, FP32)[4]
    assert int((~ok).sum()) <= UNDECIDED_PER_MILLION * len(x) / 1e6, int((~ok).sum())


def oracle_free_domain(op, x):
    """x where op's RN in binary32 is finite (binary64 numpy decides that but within 2^-53 of the overflow
    threshold, whose neighbours are in `dangerous`), NaN elsewhere."""
    with np.errstate(all="ignore"):
        if op == "log":
            return np.where(x > 0, x, np.nan)
        if op == "log1p":
            return np.where(x > -1, x, np.nan)
        if op == "tanh":
            return x
        f = {"exp": np.exp, "exp2": np.exp2, "expm1": np.expm1}[op]
        return np.where(np.isfinite(f(x).astype(np.float32)), x, np.nan)


# ---------------------------------------------------------------- the table and specref

def _spec(op, arg="x"):
    return spec_of(arg, fc.parse(f"(FPCore ({arg}) ({op} {arg}))", "<test>").body)


@pytest.mark.parametrize("op", OPS)
def test_table_reference_equals_specref(op):
    """table.reference for (op x) goes through elemref (MPFR for the rest) and equals specref's MPFR Ziv
    on a sample where specref settles every side (it reads r within 2^-1000 of RN(r) as RN(r) and its
    ulp, specref.py's approximation: tanh and expm1 saturated far out, exp far below its underflow)."""
    rng = np.random.default_rng(11 + OPS.index(op))
    lo, hi = {"exp": (-150.0, 88.0), "exp2": (-200.0, 127.0), "expm1": (-300.0, 88.0), "log": (1e-44, 3e38),
              "log1p": (-0.999, 3e38), "tanh": (-300.0, 300.0)}[op]
    x = random_fp32(40_000, 5)
    x = x[(x > lo) & (x < hi)]
    x = np.concatenate([rng.choice(x, 150, replace=False), HARD[op][:1], [0.0, 2.0**-130, -2.0**-20]])
    x = x[(x > lo) & (x < hi)]
    spec = _spec(op)
    ref = reference(x, FP32, use_cache=False, show_progress=False, spec=spec)
    rn, d, E, _ = spec_reference(spec, x, FP32)
    assert np.array_equal(ref.rn.view(np.int64), rn.view(np.int64)) and np.array_equal(ref.E, E)
    assert np.max(np.abs(ref.d - d)) < TOL and np.array_equal(np.sign(ref.d), np.sign(d))
    assert ref.fallback == int((~elementary_reference(op, np.unique(x), FP32)[4]).sum()) >= 1


def test_dispatch_only_for_one_operation_of_the_argument():
    x = np.array([0.5, 2.0**-30, -3.0])
    # another argument name: still the operation itself (through elemref: no input left to MPFR)
    got = reference_arrays(x, FP32, spec=_spec("tanh", "y"))
    assert got["fallback"] == 0
    want = elementary_reference("tanh", x, FP32)
    assert np.array_equal(got["rn"], want[0]) and np.array_equal(got["d"], want[1])
    # anything else is specref's (fallback counts the fast path's leftovers only)
    other = spec_of("x", fc.parse("(FPCore (x) (tanh (* 2 x)))", "<test>").body)
    got = reference_arrays(x, FP32, spec=other)
    rn, d, _, _ = spec_reference(other, x, FP32)
    assert got["fallback"] == 0 and np.array_equal(got["rn"], rn) and np.array_equal(got["d"], d)
    # binary64: MPFR for every input
    got = reference_arrays(np.array([0.5]), FP64, spec=_spec("log1p"))
    assert got["rn"][0] == math.log1p(0.5)


# ---------------------------------------------------------------- pieces

def test_own_exp_is_fastrefs():
    a = np.concatenate([np.linspace(-1020, -100, 5001).astype(np.float32), [-103.97, -745.13, -1019.9]])
    a = a.astype(np.float64)
    p, k = fastref.exp_parts(a)
    for i in range(len(a)):
        q, j = elemref._exp_parts(a[i])
        assert q == p[i] and j == k[i]


def test_bounds_used():
    # the binary32 d enclosure from the host bound is wider than decide's default resolution, within RES
    from mishaudit.eval.libm import B

    bprime = B + 2.0**-52
    assert B == 2.0**-44 and 2 * bprime * 2.0**24 > 2 * D_RES
    assert 2 * bprime * 2.0**24 * (1 + 2.0**-40) + 2.0**-52 <= 2 * RES and RES <= 1e-6


def test_only_narrow_formats_and_known_operations():
    with pytest.raises(ValueError):
        elementary_reference("tanh", np.array([1.0]), FP64)
    with pytest.raises(ValueError):
        elementary_reference("sqrt", np.array([1.0]), FP32)
    got = elementary_reference("log", np.array([-1.0, 0.0, np.nan, np.inf]), FP32)
    assert not got[4].any()
    assert elementary_reference("exp", np.zeros(0), FP32)[4].shape == (0,)


def test_decide_resolution_keyword():
    """d_res: the default is D_RES; a path may pass up to 1e-6 ulp, never coarser."""
    fmt = FP32
    lo, hi = outward(np.array([1.25]), np.array([1.25]))
    for width, want_default, want_loose in ((1.5 * D_RES, True, True), (1.95e-6, False, True), (2.1e-6, False, False)):
        def bounds(rn, E, w=width):
            return np.array([0.1 - w / 2]), np.array([0.1 + w / 2]), np.array([0.1])

        assert decide(fmt, *float_ends(lo, hi, fmt), bounds).ok[0] == want_default
        assert decide(fmt, *float_ends(lo, hi, fmt), bounds, d_res=1e-6).ok[0] == want_loose
    with pytest.raises(ValueError):
        decide(fmt, *float_ends(lo, hi, fmt), bounds, d_res=2e-6)


def test_structured_near_format_values_are_decided_by_the_series():
    """Inputs whose r lies far within the host's bound of a format value or a midpoint, by the structure of
    the series (not by chance), are decided without MPFR; and every input of the closed forms near 0."""
    cases = {"log": [1 + 2.0**-23, 1 - 2.0**-24, 1 + 2.0**-22], "log1p": [2.0**-24, 2.0**-23, -2.0**-24],
             "exp": [2.0**-23 - 2.0**-47, -(2.0**-22 - 2.0**-47), 2.0**-22], "expm1": [2.0**-22, -(2.0**-21)],
             "tanh": [2.0**-14, -(2.0**-13)], "exp2": [2.0**-22, -(2.0**-23)]}
    for op, x in cases.items():
        x = np.asarray(x)
        got = elementary_reference(op, x, FP32)
        assert got[4].all(), (op, x[~got[4]])
        assert_agrees(op, x, FP32, got, oracle(op, x, FP32))
    tiny = random_fp32(1 << 16, 3)
    tiny = tiny[np.abs(tiny) < 2.0**-27]  # the closed forms of tanh, expm1, log1p, exp, exp2 near 0
    assert len(tiny) > 0.38 * (1 << 16)  # (122 binades and the subnormals of 254)
    for op in ("tanh", "expm1", "log1p", "exp", "exp2"):
        assert elementary_reference(op, tiny, FP32)[4].all()
