"""Trust in every number: percentiles that never exceed the maximum and say when they are bounds, errors
below the resolution read as 0, errors beyond binary64 counted as inf, one decision for every reference
path (checked against exact Fraction rounding), and MPFR at the bottom of every path (no mpmath)."""

import json
import math
import subprocess
import sys
from fractions import Fraction

import mpmath
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mishaudit.cli import main
from mishaudit.formats import BF16, FP16, FP32, FP64
from mishaudit.measure.metrics import errors, summarize
from mishaudit.measure.summary import Acc, summary_row
from mishaudit.reference.decide import NO_E, decide
from mishaudit.reference.fastref import fast_reference
from mishaudit.reference.table import Reference


def run(*args):
    from click.testing import CliRunner

    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.stdout, r.stderr


# ------------------------------------------------------------------ exact rounding, independent of the code


def rn_exact(v: Fraction, p: int, emin: int) -> Fraction:
    """RN(v) ties to even in a format of precision p and minimum exponent emin (no overflow here)."""
    if v == 0:
        return Fraction(0)
    a = abs(v)
    e = a.numerator.bit_length() - a.denominator.bit_length()  # floor(log2 a), corrected below
    if Fraction(2) ** e > a:
        e -= 1
    q = Fraction(2) ** (max(e, emin) - p + 1)
    m = a / q
    k = math.floor(m)
    rest = m - k
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and k % 2 == 1):
        k += 1
    return (k * q) if v > 0 else -(k * q)


def floor_log2(v: Fraction) -> int:
    a = abs(v)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    return e - 1 if Fraction(2) ** e > a else e


FMTS = {"fp16": FP16, "bf16": BF16, "fp32": FP32}


@st.composite
def enclosures(draw):
    """(format, lo, hi): an interval around a point that is often a format value, a midpoint, 0 or a power
    of two (the hard cases), of a width from 0 to a few ulps."""
    fmt = FMTS[draw(st.sampled_from(sorted(FMTS)))]
    k = draw(st.integers(-(fmt.p + 20), 40))
    kind = draw(st.sampled_from(["value", "midpoint", "pow2", "zero", "any"]))
    q = Fraction(2) ** (max(k, fmt.emin) - fmt.p + 1)
    m = draw(st.integers(2 ** (fmt.p - 1), 2**fmt.p - 1))
    sign = draw(st.sampled_from([-1, 1]))
    centre = {"value": m * q, "midpoint": (m + Fraction(1, 2)) * q, "pow2": Fraction(2) ** k, "zero": Fraction(0),
              "any": (m + Fraction(draw(st.integers(0, 2**20)), 2**20)) * q}[kind] * sign
    w_lo = Fraction(draw(st.integers(0, 2**12)), 2 ** draw(st.integers(0, 40))) * q
    w_hi = Fraction(draw(st.integers(0, 2**12)), 2 ** draw(st.integers(0, 40))) * q
    return fmt, centre - w_lo, centre + w_hi


def down(v: Fraction) -> float:
    f = float(v)
    return f if Fraction(f) <= v else float(np.nextafter(f, -np.inf))


def up(v: Fraction) -> float:
    f = float(v)
    return f if Fraction(f) >= v else float(np.nextafter(f, np.inf))


@settings(max_examples=600, deadline=None)
@given(enc=enclosures())
def test_decide_against_exact_fraction_rounding(enc):
    """decide() claims RN(r), ulp(r) and the side of r only when they hold for every r in [lo, hi], computed
    here with exact rational rounding; and it decides every enclosure that lies well inside one rounding
    interval, one binade and one side."""
    fmt, lo, hi = enc
    p, emin = fmt.p, fmt.emin
    a, b = rn_exact(lo, p, emin), rn_exact(hi, p, emin)
    s_lo, s_hi = (lo > 0) - (lo < 0), (hi > 0) - (hi < 0)
    e_lo = floor_log2(lo) if lo else 0
    e_hi = floor_log2(hi) if hi else 0

    def d_bounds(rn, E):
        ulp = Fraction(2) ** (int(E[0]) - p + 1)
        r0 = Fraction(float(rn[0]))
        return np.array([down((lo - r0) / ulp)]), np.array([up((hi - r0) / ulp)]), \
            np.array([float(((lo + hi) / 2 - r0) / ulp)])

    one = lambda v: np.array([v])  # noqa: E731
    dec = decide(fmt, one(float(a)), one(float(b)), one(s_lo), one(s_hi), one(e_lo), one(e_hi), d_bounds,
                 exact=one(lo == hi and lo == a))
    points = [lo, hi, (lo + hi) / 2, lo + (hi - lo) / 3]
    if dec.ok[0]:
        for r in points:
            want = rn_exact(r, p, emin)
            assert Fraction(float(dec.rn[0])) == want, (lo, hi, r)
            if r != 0:
                assert int(dec.E[0]) == max(floor_log2(r), emin)
                side = (r > want) - (r < want)
                assert side == 0 or np.sign(dec.d[0]) == side, (lo, hi, r, dec.d)
                if want == 0:  # a zero result takes r's sign
                    assert np.signbit(dec.rn[0]) == (r < 0)
        ulp = Fraction(2) ** (int(dec.E[0]) - p + 1)
        assert abs(Fraction(float(dec.d[0])) - ((lo + hi) / 2 - Fraction(float(dec.rn[0]))) / ulp) <= 2.0**-19
    else:
        # undecided only for a reason: the ends round apart, straddle a binade or zero, d unresolved or r's
        # side unknown
        rounds_apart = a != b
        binades = {max(floor_log2(v), emin) if v else emin for v in (lo, hi)}
        ulp = Fraction(2) ** (min(binades) - p + 1)
        unresolved = (hi - lo) / ulp > 2 * Fraction(2) ** -20 * Fraction(1 - 2**-30)
        no_side = lo <= a <= hi and not (lo == hi == a)
        on_boundary = max(abs(lo - a), abs(hi - a)) / ulp >= Fraction(1, 2) - Fraction(2) ** -40  # a tie in reach
        assert rounds_apart or len(binades) > 1 or s_lo * s_hi <= 0 or unresolved or no_side or on_boundary, (lo, hi)


def test_decide_uses_facts_the_enclosure_lacks():
    """A sign, a binade and a side known from mathematics decide what the enclosure alone cannot."""
    fmt = FP16
    # r in [-2^-40 (1 + 2^-10), -2^-40]: RN = -0 with d < 0 (ulp(0) = 2^-24), decided by the enclosure alone
    f = lambda *v: np.array(v)  # noqa: E731
    db = lambda rn, E: (f(-2.0**-16 * (1 + 2.0**-10)), f(-2.0**-16), f(-2.0**-16))  # noqa: E731
    dec = decide(fmt, f(0.0), f(0.0), f(-1), f(-1), f(-40), f(-40), db)
    assert dec.ok[0] and np.signbit(dec.rn[0]) and dec.d[0] < 0
    # an enclosure reaching 0 from below: the sign comes only from a fact (mish(x) < 0 for x < 0)
    dec = decide(fmt, f(0.0), f(0.0), f(-1), f(0), f(-40), f(0), db)
    assert not dec.ok[0]
    dec = decide(fmt, f(0.0), f(0.0), f(-1), f(0), f(-40), f(0), db, sign=f(-1))
    assert dec.ok[0] and np.signbit(dec.rn[0])
    # r just below x = 32 (mish(x) < x): the enclosure straddles 32 but the binade is 4 and the side -1
    db2 = lambda rn, E: (f(-2.0**-30), f(2.0**-30), f(0.0))  # noqa: E731
    dec = decide(fmt, f(32.0), f(32.0), f(1), f(1), f(4), f(5), db2)
    assert not dec.ok[0]
    dec = decide(fmt, f(32.0), f(32.0), f(1), f(1), f(4), f(5), db2, E_known=f(4), side_known=f(-1))
    assert dec.ok[0] and dec.E[0] == 4 and dec.d[0] < 0
    assert decide(fmt, f(32.0), f(32.0), f(1), f(1), f(4), f(5), db2, E_known=f(NO_E), side_known=f(-1)).ok[0] == 0


# ------------------------------------------------------------------ MPFR at the bottom


def test_no_reference_path_calls_mpmath():
    """With mpmath made unimportable, every reference path still answers: the fp32 fast path and its MPFR
    fallback (an input the fast path leaves undecided), binary64 (MPFR), mish' near its root (gradref and
    its MPFR fallback). The values agree with mpmath computed here, in this process."""
    x_undecided = float(np.int32(-1040849295).view(np.float32))  # fastref cannot decide it (near a tie)
    code = f"""
import sys, json
sys.modules['mpmath'] = None
import numpy as np
from mishaudit.formats import FP32, FP64
from mishaudit.lang.spec import MISH_GRAD
from mishaudit.reference.table import reference_arrays
out = {{}}
a = reference_arrays(np.array([{x_undecided!r}, 1.5, -104.0]), FP32)
out['fp32'] = [a['rn'].tolist(), a['d'].tolist(), int(a['fallback'])]
b = reference_arrays(np.array([-745.0, 1e-300, 3.0446451381218638, 700.0]), FP64)
out['fp64'] = [b['rn'].tolist(), b['d'].tolist()]
x0 = np.float32(-1.1924312).item()
g = reference_arrays(np.array([x0]), FP32, spec=MISH_GRAD)
out['grad'] = [g['rn'].tolist(), g['d'].tolist(), int(g['fallback'])]
print(json.dumps(out))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["fp32"][2] == 1  # the near-tie went to MPFR
    for (rn, d), xs, fmt in (((out["fp32"][0], out["fp32"][1]), [x_undecided, 1.5, -104.0], FP32),
                             ((out["fp64"][0], out["fp64"][1]), [-745.0, 1e-300, 3.0446451381218638, 700.0], FP64)):
        for x, rnv, dv in zip(xs, rn, d):
            with mpmath.workprec(3000):
                r = mpmath.mpf(x) * mpmath.tanh(mpmath.log1p(mpmath.exp(mpmath.mpf(x))))
                want = _rn_mpf(r, fmt)
                assert rnv == want, (x, rnv, want)
                e = max(int(mpmath.floor(mpmath.log(abs(r), 2))), fmt.emin)
                dw = (r - mpmath.mpf(want)) / mpmath.mpf(2) ** (e - fmt.p + 1)
                assert abs(dv - float(dw)) < 1e-9 and (dv > 0) == (dw > 0), (x, dv, dw)
    assert out["grad"][2] >= 0 and len(out["grad"][0]) == 1


def _rn_mpf(r, fmt) -> float:
    v = Fraction(int(mpmath.floor(r * mpmath.mpf(2) ** 2000)), 2**2000)  # r to 2^-2000, far below any tie
    return float(rn_exact(v, fmt.p, fmt.emin)) if v != 0 else (-0.0 if r < 0 else 0.0)


def test_every_fp16_and_bf16_input_is_decided_by_the_fast_path_now():
    """The five powers of two 16 ... 256, where mish(x) rounds to x and the enclosure straddles x, are decided
    by the fact mish(x) < x (binade k - 1, r below x): no fp16 or bf16 input is left for MPFR. Checked
    against mpmath: RN(mish(x)) = x, and r lies below it."""
    for fmt in (FP16, BF16):
        xs = np.array([16.0, 32.0, 64.0, 128.0, 256.0])
        rn, d, E, r64, ok = fast_reference(xs, fmt)
        assert ok.all()
        assert np.array_equal(rn, xs) and np.array_equal(E, np.log2(xs).astype(int) - 1) and (d < 0).all()
        with mpmath.workprec(2000):  # r = v (1 - delta), delta ~ 2 e^-2v: 2000 bits hold it for v <= 256
            for v in xs:
                r = mpmath.mpf(v) * mpmath.tanh(mpmath.log1p(mpmath.exp(mpmath.mpf(v))))
                assert r < v and v - r < mpmath.mpf(2) ** -40


# ------------------------------------------------------------------ percentiles and resolution


def test_percentiles_of_a_region_below_the_resolution_read_zero_on_both_paths(tmp_path):
    """x in [400, 400.01]: mish(x) = x (1 - delta), delta < 2 e^-800 (hand-derived: tanh(sp) = 1 - 2/(w+1)..),
    so every binary32 output x is within 2^-1000 ulp of r: every figure reads 0 (< 2^-60 in tables) on
    the streamed path and on the enumerated one, and median <= p99 <= max."""
    with mpmath.workprec(3000):
        x = mpmath.mpf(400)
        err = abs(x - x * mpmath.tanh(mpmath.log1p(mpmath.exp(x)))) / mpmath.mpf(2) ** (8 - 23)
        assert err < mpmath.mpf(2) ** -1000
    for extra in (["--exhaustive"], []):
        code, out, err = run("compare", "--dtype", "fp32", *extra, "--domain", "400:400.01", "--formula",
                             "softplus-tanh", "--format", "json", "--no-cache")
        assert code == 0, err
        row = json.loads(out)[0]
        assert row["strategy"] == "exhaustive" and row["inputs"] == 328
        assert row["percentiles"] == ("bound" if extra else "exact")
        assert row["max_ulp"] == row["median_ulp"] == row["p99_ulp"] == row["mean_ulp"] == 0.0
    code, out, _ = run("compare", "--dtype", "fp32", "--exhaustive", "--domain", "400:400.01", "--formula",
                       "softplus-tanh", "--format", "markdown")
    assert "< 2^-60" in out


def test_streamed_percentiles_are_bounds_never_above_the_maximum():
    """On a block of outputs with known ulp errors (RN(r) + k ulps, d = 0: the error is exactly |k|, a fact of
    the construction) the streamed median and p99 lie in [exact, min(exact (1 + 2^-10), max)] and say so."""
    rng = np.random.default_rng(11)
    for trial in range(20):
        n = int(rng.integers(1, 3000))
        k = rng.integers(-int(rng.integers(1, 2**20)), 2**20, n)
        rn = np.full(n, 1.5)
        y = (rn + k * 2.0**-23).astype(np.float32)
        x = np.arange(n, dtype=np.float64)
        acc = Acc()
        acc.add_block(y, x, rn, np.zeros(n), np.zeros(n, dtype=np.int64), rn)
        row = summary_row(acc)
        u = np.sort(np.abs(k).astype(float))
        assert row["percentiles"] == "bound" and row["max_ulp"] == u[-1]
        for q, key in ((0.5, "median_ulp"), (0.99, "p99_ulp")):
            exact = u[max(1, math.ceil(q * n)) - 1]
            assert exact <= row[key] <= min(max(exact * (1 + 2.0**-10), 2.0**-30 if exact < 2**-30 else 0),
                                            row["max_ulp"]) or exact == row[key] == 0, (trial, key)
        assert row["median_ulp"] <= row["p99_ulp"] <= row["max_ulp"]


@settings(max_examples=60, deadline=None)
@given(errs=st.lists(st.one_of(st.just(0.0), st.floats(2.0**-70, 2.0**-20), st.floats(2.0**-20, 1e6)),
                     min_size=1, max_size=300))
def test_median_p99_max_ordered_on_both_paths(errs):
    """Property: for any ulp errors (including ones below the resolution 2^-60 and below the bin floor 2^-30),
    median <= p99 <= max on the enumerated path (exact) and the streamed one (bounds), the exact ones within
    the bounds, and an error below 2^-60 reads 0 on both."""
    # outputs y = RN(r) + k ulps on r = RN(r) + d ulp with |d| < 1/2: u = |k - d|
    e = np.array(errs)
    k = np.round(e).astype(np.int64)
    d = np.clip(k - e, -0.49, 0.49)
    rn = np.full(len(e), 1.5)
    y = (rn + k * 2.0**-23).astype(np.float32).astype(np.float64)
    x = np.arange(len(e), dtype=np.float64)
    ref = Reference(x, rn, d, np.zeros(len(e), dtype=np.int64), rn + d * 2.0**-23)
    exact = summarize(errors(y, ref, FP32), ref)
    acc = Acc()
    acc.add_block(y.astype(np.float32), x, rn, d, ref.E, ref.r64)
    streamed = summary_row(acc)
    for row in (exact, streamed):
        assert row["median_ulp"] <= row["p99_ulp"] <= row["max_ulp"]
    assert exact["max_ulp"] == streamed["max_ulp"]
    for key in ("median_ulp", "p99_ulp"):
        assert exact[key] <= streamed[key]
    u = np.abs((y - rn) * 2.0**23 - d)
    if (u < 2.0**-60).all():
        assert streamed["max_ulp"] == exact["max_ulp"] == 0.0


# ------------------------------------------------------------------ errors beyond binary64


ONE_BELOW = """(FPCore one-below (x) :name "1 below -700, else mish"
  (if (< x -700) 1 (* x (tanh (log1p (exp x))))))"""


def test_an_error_beyond_binary64_is_inf_counted_and_pinned(tmp_path):
    """fp64, x in [-746, -744]: the formula returns 1 where mish(x) is about x e^x, a subnormal (2^-1074 ulp),
    so |1 - r| / 2^-1074 > 2^1073: beyond binary64. Reported as "inf" (never null), counted in ulp_overflow,
    pinned by baseline (TOML inf) and passing check; a formula returning 0.5 instead still overflows."""
    with mpmath.workprec(200):
        r = mpmath.mpf(-745) * mpmath.tanh(mpmath.log1p(mpmath.exp(mpmath.mpf(-745))))
        assert abs(r) < mpmath.mpf(2) ** -1022 and abs(1 - r) / mpmath.mpf(2) ** -1074 > mpmath.mpf(2) ** 1024
    fdir = tmp_path / "f"
    fdir.mkdir()
    (fdir / "one-below.fpcore").write_text(ONE_BELOW)
    args = ["--dtype", "fp64", "--formulas", str(fdir), "--formula", "one-below", "--domain=-746:-744",
            "--samples", "4096"]
    code, out, err = run("compare", *args, "--format", "json")
    assert code == 0, err
    row = json.loads(out)[0]
    n = row["inputs"]
    # every fp64 input in [-746, -744] is below -700: the output is 1 everywhere, r subnormal or -0
    assert row["ulp_overflow"] == n and row["nonfinite"] == 0
    for key in ("max_ulp", "mean_ulp", "median_ulp", "p99_ulp", "max_rel_err"):
        assert row[key] == "inf", key
    assert row["max_abs_err"] == 1.0 or abs(row["max_abs_err"] - 1.0) < 1e-300
    th = tmp_path / "t.toml"
    code, _, err = run("baseline", *args, "--out", str(th))
    assert code == 0, err
    text = th.read_text()
    assert "max_ulp = inf" in text and f"ulp_overflow = {math.ceil(n * 1.05)}" in text  # the default margin
    code, out, err = run("check", "--thresholds", str(th), "--formulas", str(fdir))
    assert code == 0, out + err
    # the table says inf, not a dash
    code, out, _ = run("compare", *args, "--format", "markdown")
    assert "| inf |" in out


def test_every_compare_row_orders_median_p99_max():
    """Every row of compare, enumerated (every fp16 and bf16 input, all formulations) and streamed (a
    fp32 sweep over a region with NaN, huge and tiny errors)."""
    code, out, err = run("compare", "--dtype", "fp16", "--dtype", "bf16", "--format", "json")
    assert code == 0, err
    rows = json.loads(out)
    code, out, err = run("compare", "--dtype", "fp32", "--exhaustive", "--domain=-110:-80", "--format", "json",
                         "--formula", "softplus-tanh", "--formula", "onednn-jit", "--formula", "exp-rational")
    assert code == 0, err
    rows += json.loads(out)
    assert len(rows) >= 30
    for r in rows:
        if r["strategy"] == "unsupported":  # a formulation made for the other 16-bit format (:mishaudit-dtype)
            assert r["max_ulp"] is None and r["percentiles"] is None
            continue
        if r["max_ulp"] is not None:
            v = [float(r[k]) for k in ("median_ulp", "p99_ulp", "max_ulp")]
            assert v[0] <= v[1] <= v[2], (r["formula"], r["dtype"], v)
        assert r["percentiles"] == ("bound" if r["dtype"] == "fp32" else "exact")
