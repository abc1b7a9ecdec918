"""Overflow maps: edges against independent derivations (plain numpy / mpmath), harmful vs absorbed."""

import json
import os
import subprocess
import sys
from fractions import Fraction

import mpmath
import numpy as np
import pytest

from mishaudit.analysis.events import overflow_map
from mishaudit.eval.evaluate import Policy, evaluate
from mishaudit.formats import (
    FP16,
    FP32,
    FP64,
    all_finite,
    from_ordinal,
    ordinal,
    round_fraction,
)
from mishaudit.lang.registry import load_registry
from mishaudit.measure.metrics import errors
from mishaudit.reference.table import reference

REG = load_registry()


def intervals(maps, node, event):
    got = [m for m in maps if m.node == node and m.event == event]
    assert len(got) == 1, [(m.node, m.event) for m in maps]
    return [[i.lo, i.hi] for i in got[0].intervals]


def first_at_or_above(t, fmt) -> float:
    """The smallest value of fmt that is >= the mpmath number t."""
    v = float(t)
    v = float(np.asarray(v).astype(fmt.dtype)) if fmt is not FP64 else v
    o = int(ordinal(np.array([v]), fmt)[0])
    while from_ordinal([o], fmt)[0] < t:
        o += 1
    while from_ordinal([o - 1], fmt)[0] >= t:
        o -= 1
    return float(from_ordinal([o], fmt)[0])


def last_at_or_below(t, fmt) -> float:
    v = first_at_or_above(t, fmt)
    return v if v <= t else float(from_ordinal([int(ordinal(np.array([v]), fmt)[0]) - 1], fmt)[0])


def test_fp16_exp_overflow_edge():
    maps, _ = overflow_map(REG["softplus-tanh"], Policy(FP16))
    edge = float(np.float16(11.09375))
    # by hand: RN16(exp(x)) = inf iff exp(x) >= 65504 + 16; ln(65520) = 11.0898..., next fp16 is 11.09375
    assert mpmath.log(65520) < edge and mpmath.log(65520) > 11.0859375
    assert intervals(maps, "(exp x)", "overflow") == [[edge, 65504.0]]


def test_fp32_exp_overflow_edge_is_a_single_float():
    maps, _ = overflow_map(REG["softplus-tanh"], Policy(FP32), samples=4096)
    # mpmath: RN32(exp(x)) overflows iff exp(x) >= 2^128 - 2^103 (max + half an ulp)
    with mpmath.workprec(200):
        t = mpmath.log(mpmath.mpf(2) ** 128 - mpmath.mpf(2) ** 103)
        want = first_at_or_above(t, FP32)
    assert want == 88.72283935546875  # the figure the README quotes
    assert intervals(maps, "(exp x)", "overflow") == [[want, float(np.finfo(np.float32).max)]]


def test_fp32_absorption_of_exp_in_one_plus_exp():
    maps, _ = overflow_map(REG["log-exp-plus-one"], Policy(FP32), samples=4096)
    iv = intervals(maps, "(+ (exp x) 1)", "absorption")
    neg = [v for v in iv if v[1] < 0]
    assert len(neg) == 1
    lo, hi = neg[0]
    # by hand: 1 + e rounds to 1 iff RN(e) <= 2^-24 (the tie goes to even 1.0), i.e. iff
    # e <= 2^-24 + 2^-48 (RN(e) rounds down to 2^-24 up to half its ulp above, ties to even)
    with mpmath.workprec(200):
        assert hi == last_at_or_below(mpmath.log(mpmath.mpf(2) ** -24 + mpmath.mpf(2) ** -48), FP32)
        # and it stops where RN(exp(x)) is 0, exp(x) <= 2^-150 (then there is nothing to absorb)
        assert lo == first_at_or_above(mpmath.log(mpmath.mpf(2) ** -150), FP32) or \
            mpmath.exp(mpmath.mpf(lo)) > mpmath.mpf(2) ** -150 >= mpmath.exp(mpmath.mpf(lo) - mpmath.mpf(2) ** -17)


def _rn16_exp(x: float) -> float:
    with mpmath.workprec(200):
        v = mpmath.exp(mpmath.mpf(x))
        sign, man, exp, _ = v._mpf_
        return round_fraction(Fraction(int(man)) * Fraction(2) ** exp, FP16)


def test_fp16_interval_where_exp_rational_divides_by_zero():
    maps, _ = overflow_map(REG["exp-rational"], Policy(FP16))
    x = np.sort(all_finite(FP16))
    # by hand: e = RN16(exp x) from mpmath, then e + 2, e (e + 2), 2 / that, each rounded once
    inf = np.zeros(len(x), dtype=bool)
    for i, xi in enumerate(x.tolist()):
        if xi > -9:  # e(e + 2) >= 2/65520 there: no overflow possible
            continue
        e = _rn16_exp(xi)
        n = round_fraction(Fraction(e) * Fraction(round_fraction(Fraction(e) + 2, FP16)), FP16)
        inf[i] = n == 0 or np.isinf(round_fraction(Fraction(2) / Fraction(n), FP16))
    runs, start = [], None
    for i, f in enumerate(inf):
        if f and start is None:
            start = i
        if not f and start is not None:
            runs.append([float(x[start]), float(x[i - 1])])
            start = None
    if start is not None:
        runs.append([float(x[start]), float(x[-1])])
    assert len(runs) == 1 and runs[0][0] == -65504.0  # one run, from the most negative input up
    assert -11.2 < runs[0][1] < -11  # 2/(e(e+2)) leaves the fp16 range once e(e+2) < 2/65520
    assert intervals(maps, "(/ 2 (* e (+ e 2)))", "overflow") == runs


@pytest.mark.parametrize("fid", sorted(REG))
def test_harmful_intervals_hold_bad_outputs_absorbed_ones_none(fid):
    f = REG[fid]
    maps, _ = overflow_map(f, Policy(FP16))
    x = np.sort(all_finite(FP16))
    y = evaluate(f, x, Policy(FP16)).y
    ref = reference(x, FP16, show_progress=False, spec=f.spec)  # mish' for the -grad formulations
    err = errors(y, ref, FP16)
    bad = ~err.finite | (err.ulp > 1)
    for m in maps:
        for iv in m.intervals:
            inside = (x >= iv.lo) & (x <= iv.hi)
            assert iv.harmful == bool(bad[inside].any()), (fid, m.node, m.event, iv)


def test_overflow_json_contract(tmp_path):
    out = tmp_path / "o.json"
    p = subprocess.run([sys.executable, "-m", "mishaudit.cli", "overflow", "--dtype", "fp16", "--formula", "exp-rational",
                        "--format", "json", "--output", str(out)], capture_output=True, text=True, env=os.environ.copy())
    assert p.returncode == 0, p.stderr
    objs = json.loads(out.read_text())
    events = [o for o in objs if o["kind"] == "event"]
    for o in events:
        assert {"formula", "dtype", "node", "event", "intervals", "count", "harmful"} <= set(o)
        assert o["event"] in ("overflow", "nan", "underflow", "subnormal", "absorption")
        assert all(lo <= hi for lo, hi in o["intervals"])
    assert any(o["node"] == "e" and o["event"] == "overflow" for o in events)  # let names name nodes
    attributions = [o for o in objs if o["kind"] == "attribution"]
    assert attributions and attributions[0]["culprits"]


def test_fp64_exp_overflow_edge_despite_int64_ordinals():
    maps, _ = overflow_map(REG["softplus-tanh"], Policy(FP64), samples=2048)
    # mpmath: RN64(exp(x)) overflows iff exp(x) >= 2^1024 - 2^970; the first double at or above
    # that logarithm
    with mpmath.workprec(300):
        x = first_at_or_above(mpmath.log(mpmath.mpf(2) ** 1024 - mpmath.mpf(2) ** 970), FP64)
    assert intervals(maps, "(exp x)", "overflow") == [[x, float(np.finfo(np.float64).max)]]


@pytest.mark.parametrize("x", [-40.0, -50.0, -80.0])
@pytest.mark.parametrize("fid, culprit", [("log-exp-plus-one", "(log (+ (exp x) 1))"),
                                          ("pytorch-75251", "(- 1 (/ 2 (+ 1 (pow (+ 1 e) 2))))")])
def test_attribution_below_minus_36_blames_the_absorbed_sum_not_exp(fid, culprit, x):
    """Below x = -36.7 binary64 absorbs e = exp(x) in 1 + e too, so a binary64 'exact' run blamed
    node 0, (exp x). By hand, in binary32: RN(e) < 2^-24, so 1 + e rounds to 1 correctly (0 bits
    at the sum), exp is correctly rounded (0 bits), and the log (or 1 - 2/(1 + (1+e)^2)) of 1 gives
    0 where the exact operand 1 + e gives about e: its local error is log2(1 + ord(RN32(e))) bits,
    RN32 of the exact result being RN32(e) (log(1 + e) = e - e^2/2 + ..., and 1 - 2/(2 + 2e + e^2)
    = e - e^2/2 + ..., both within a tiny relative distance of e)."""
    from mishaudit.analysis.attribution import local_culprits

    recs, who, local = local_culprits(REG[fid], Policy(FP32), np.array([x]))
    assert recs[who[0]].label == culprit
    with mpmath.workprec(200):
        e = mpmath.exp(mpmath.mpf(x))
        rn = float(mpmath.fadd(e, 0, prec=24, rounding="n"))  # e is a normal binary32 number here
    want = np.log2(1 + float(np.float32(rn).view(np.int32)))
    assert abs(local[who[0], 0] - want) < 0.01


def test_fp64_gets_an_attribution_now():
    _, att = overflow_map(REG["log-exp-plus-one"], Policy(FP64), samples=2048)
    assert att["bad_inputs"] > 0 and att["culprits"]
    assert att["culprits"][0]["node"] == "(log (+ (exp x) 1))"  # 1 + e absorbs e below -36.7


EXHAUSTIVE_DOMAINS = [
    (-89.0, -86.0),  # exp goes subnormal, then the products underflow (fp32)
    (-2.0**-120, 2.0**-120),  # subnormal inputs, both zeros
    (40.0, 45.0),  # onednn-jit's (e+1)^2 overflows to NaN
    (-104.0, -102.0),  # RN(mish) subnormal: harmful underflows, attribution
]


@pytest.mark.parametrize("lo,hi", EXHAUSTIVE_DOMAINS)
def test_exhaustive_overflow_equals_the_enumerated_map(lo, hi):
    """Where the sample already enumerates every input, the streamed sweep must give the same maps."""
    from mishaudit.analysis.sweep import Sweep, run_sweep
    from mishaudit.eval.inputs import Domain, sample

    dom = Domain(lo, hi)
    if sample(FP32, 12_000, 0, dom).strategy != "exhaustive":  # keep the domain small enough to enumerate
        dom = Domain(lo, float(from_ordinal([ordinal(np.array([lo]), FP32)[0] + 12_000], FP32)[0]))
    forms = [REG[i] for i in ("onednn-jit", "exp-rational", "softplus-tanh", "log-exp-plus-one")]
    job = run_sweep(Sweep(forms, Policy(FP32), dom, chunk=1 << 13, mode="overflow"), jobs=1)
    for f in forms:
        want_maps, want_att = overflow_map(f, Policy(FP32), dom, 12_001, 0)
        got_maps, got_att = job.result(f)
        assert [m.as_json() for m in got_maps] == [m.as_json() for m in want_maps], f.id
        assert got_att["bad_inputs"] == want_att["bad_inputs"]
        key = lambda c: (c["node"], c["inputs"])  # noqa: E731
        assert sorted(map(key, got_att["culprits"])) == sorted(map(key, want_att["culprits"]))
        for g, w in zip(sorted(got_att["culprits"], key=key), sorted(want_att["culprits"], key=key)):
            assert g["max_local_bits"] == w["max_local_bits"] and g["regions"] == w["regions"], (f.id, g, w)
