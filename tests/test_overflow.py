"""Overflow maps: edges against independent derivations (plain numpy / mpmath), harmful vs absorbed."""

import functools
import json
import os
import subprocess
import sys
from fractions import Fraction

import gmpy2
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


# ---------------------------------------------------------------- fp16 maps by an independent evaluation
#
# Three formulations evaluated in fp16 without mishaudit: every operation by MPFR, rounded once to
# binary16 (an MPFR context of 11 bits, binary16's exponent range, subnormals), the events of each
# node by DESIGN.md's definitions (overflow: finite operands, infinite result; nan: no NaN operand;
# underflow: nonzero exact result on the operands, zero rounded one; subnormal; absorption: a + b
# returns a with b != 0, or b with a != 0, finite operands and result, as events.py states), and
# harm from mish by MPFR at 200 bits with DESIGN.md's ulp. The maps must equal these exactly:
# every interval's ends, its count and its harmful flag.

_HI = gmpy2.context(precision=200, emin=-(1 << 24), emax=1 << 24)
_C16 = gmpy2.context(precision=11, emin=-23, emax=16, subnormalize=True, round=gmpy2.RoundToNearest)
_M = gmpy2.mpfr


def lattice16() -> np.ndarray:
    """Every finite binary16 value in increasing order, -0 before +0, from the bit patterns."""
    neg = np.arange(0xFBFF, 0x7FFF, -1, dtype=np.uint16)  # -65504 .. -0
    pos = np.arange(0x0000, 0x7C00, dtype=np.uint16)  # +0 .. 65504
    return np.concatenate([neg, pos]).view(np.float16).astype(np.float64)


def test_the_independent_fp16_evaluator_rounds_like_binary16():
    x = lattice16()
    assert len(x) == 63488 and np.all(np.diff(x) >= 0) and np.signbit(x[31743]) and not np.signbit(x[31744])
    c = lambda v: float(_C16.plus(_HI.plus(_M(v))))  # noqa: E731
    assert [c(65519.99), c(65520), c(2.0**-25), c(3 * 2.0**-26), c(1 + 2.0**-11), c(2049)] == \
        [65504.0, np.inf, 0.0, 2.0**-24, 1.0, 2048.0]  # max, overflow, ties to even, subnormal
    assert float(_C16.exp(_M(-17.0))) == 2.0**-24 and float(_C16.div(_M(2), _M(0))) == np.inf


def _op(name, *a):
    """(RN16 value, exact value) of one operation on binary16 operands."""
    if name == "fmin":  # exact; C's fmin ignores a NaN operand
        r = a[1] if gmpy2.is_nan(a[0]) else a[0] if gmpy2.is_nan(a[1]) else min(a[0], a[1])
        return r, r
    f = {"+": "add", "-": "sub", "*": "mul", "/": "div"}.get(name, name)
    return getattr(_C16, f)(*a), getattr(_HI, f)(*a)


def _events(name, args, v, exact) -> set:
    fin = all(gmpy2.is_finite(t) for t in args)
    ev = set()
    if fin and gmpy2.is_infinite(v):
        ev.add("overflow")
    if not any(gmpy2.is_nan(t) for t in args) and gmpy2.is_nan(v):
        ev.add("nan")
    if fin and gmpy2.is_zero(v) and not gmpy2.is_zero(exact):
        ev.add("underflow")
    if gmpy2.is_finite(v) and not gmpy2.is_zero(v) and abs(v) < 2.0**-14:
        ev.add("subnormal")
    if name in ("+", "-") and fin and gmpy2.is_finite(v):
        a, b = args
        if (v == a and not gmpy2.is_zero(b)) or (v == (b if name == "+" else -b) and not gmpy2.is_zero(a)):
            ev.add("absorption")
    return ev


class _Trace:
    """Evaluates one input, recording (node label, events) per operation."""

    def __init__(self):
        self.recs = []

    def __call__(self, label, name, *a):
        v, exact = _op(name, *a)
        self.recs.append((label, _events(name, a, v, exact)))
        return v


def _log_exp_plus_one(x, o):
    e = o("(exp x)", "exp", x)
    s = o("(+ (exp x) 1)", "+", e, _M(1))
    t = o("(tanh (log (+ (exp x) 1)))", "tanh", o("(log (+ (exp x) 1))", "log", s))
    return o("(* x (tanh (log (+ (exp x) 1))))", "*", x, t)


def _exp_rational(x, o):
    e = o("e", "exp", x)
    n = o("(* e (+ e 2))", "*", e, o("(+ e 2)", "+", e, _M(2)))
    d = o("(+ 1 (/ 2 (* e (+ e 2))))", "+", _M(1), o("(/ 2 (* e (+ e 2)))", "/", _M(2), n))
    return o("(/ x (+ 1 (/ 2 (* e (+ e 2)))))", "/", x, d)


def _onednn_jit(x, o):
    e = o("e", "exp", o("(fmin x clamp)", "fmin", x, _C16.plus(_HI.plus(_M("44.3614159")))))  # clamp: RN16
    a = o("(+ e 1)", "+", e, _M(1))
    w = o("w", "*", a, a)
    num = o("(* x (- w 1))", "*", x, o("(- w 1)", "-", w, _M(1)))
    return o("(/ (* x (- w 1)) (+ w 1))", "/", num, o("(+ w 1)", "+", w, _M(1)))


HAND16 = {"log-exp-plus-one": _log_exp_plus_one, "exp-rational": _exp_rational, "onednn-jit": _onednn_jit}


@functools.lru_cache(maxsize=1)
def exact_mish16() -> tuple:
    return tuple(_HI.mul(v, _HI.tanh(_HI.log1p(_HI.exp(v)))) for v in map(_M, lattice16().tolist()))


@functools.cache
def hand_map16(fid: str):
    """({(node, event): [(lo, hi, count, harmful)]}, outputs) of formulation fid over every fp16 input."""
    x = lattice16()
    ys, traces = [], []
    for xi in x.tolist():
        o = _Trace()
        ys.append(HAND16[fid](_M(xi), o))
        traces.append(o.recs)
    bad = np.empty(len(x), dtype=bool)
    for i, (y, r) in enumerate(zip(ys, exact_mish16())):  # nonfinite, or more than 1 ulp(r) off
        E = -14 if gmpy2.is_zero(r) else max(gmpy2.get_exp(r) - 1, -14)
        bad[i] = not gmpy2.is_finite(y) or float(gmpy2.mul_2exp(abs(_HI.sub(y, r)), 10 - E)) > 1
    out = {}
    for label in dict.fromkeys(lab for lab, _ in traces[0]):  # (+ e 1) twice in onednn-jit: one node
        for ev in ("overflow", "nan", "underflow", "subnormal", "absorption"):
            idx = np.flatnonzero([any(lab == label and ev in evs for lab, evs in t) for t in traces])
            if len(idx):
                runs = np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)
                out[(label, ev)] = [(float(x[r[0]]), float(x[r[-1]]), len(r), bool(bad[r].any())) for r in runs]
    return out, np.array([float(y) for y in ys])


def _fp16_maps(fid):
    maps, _ = overflow_map(REG[fid], Policy(FP16))
    return {(m.node, m.event): [(i.lo, i.hi, i.count, i.harmful) for i in m.intervals] for m in maps}


@pytest.mark.parametrize("fid", sorted(HAND16))
def test_fp16_map_equals_an_independent_evaluation(fid):
    """Every (node, event) of the map, each interval's ends, count and harmful flag, against the MPFR
    evaluation above (log-exp-plus-one: 6 maps, 38 absorption intervals of 1 + e; exp-rational: 10;
    onednn-jit: 14). An edge off by one input, a harmful flag taken from the wrong inputs, an absorbed
    event called harmful or the reverse, a missed or invented event fails."""
    want, _ = hand_map16(fid)
    got = _fp16_maps(fid)
    assert set(got) == set(want), set(got) ^ set(want)
    for k in want:
        assert got[k] == want[k], (k, [v for v in got[k] if v not in want[k]][:4], [v for v in want[k] if v not in got[k]][:4])


def _count16(lo, hi) -> int:
    x = lattice16()
    return int(((x >= lo) & (x <= hi)).sum())


def _first16_at_or_above(t) -> float:
    """The least binary16 value >= the mpmath number t."""
    x = lattice16()
    i = int(np.searchsorted(x, float(t)))
    while x[i] < t:
        i += 1
    while i > 0 and x[i - 1] >= t:
        i -= 1
    return float(x[i])


def _last16_at_or_below(t) -> float:
    x = lattice16()
    i = int(np.searchsorted(x, float(t), side="right")) - 1
    while x[i] > t:
        i -= 1
    while i + 1 < len(x) and x[i + 1] <= t:
        i += 1
    return float(x[i])


def test_fp16_culprits_derived_by_hand():
    """The culprits, their edges from mpmath and binary16's rounding rules alone, and their harm.

    log-exp-plus-one, 1 + e absorbs e = RN16(e^x): RN16(1 + e) = 1 iff e <= 2^-11 (half an ulp of 1 from
    above; the tie goes to even 1), i.e. e^x <= 2^-11 + 2^-22 (RN16 ties 2^-11 + 2^-22 down to even
    2^-11); it starts where e is no longer 0, e^x > 2^-25. Then log(1) = 0 and the output is -0 where
    mish(x) ~ x e^x is 8.7 ulps (x = -17.328125) to 2^10 ulps (x = -7.625) away from 0: harmful.
    exp-rational, 2/(e(e+2)) = inf: for e < 2^-10, e + 2 rounds to 2 and e(e+2) = 2e exactly; 2/(2e) >=
    65520 iff e <= 1/65520, i.e. (fp16 spacing 2^-24 there) e <= 2^-16, e^x <= 2^-16 + 2^-25; every more
    negative input too (e = 0: 2/0). Then x/(1 + inf) = -0 where mish(-11.09375) = -1.7e-4: harmful.
    onednn-jit, w = (e+1)^2 = inf: RN16(a^2) = inf iff a >= 256 (255.875^2 < 65520 <= 256^2), a = RN16(e + 1)
    >= 256 iff e + 1 >= 255.9375 (tie to even 256) iff e >= 255 iff e^x >= 254.9375 (tie to even 255); up
    to the last x with e^x < 65520 (beyond it e itself is inf); then (w-1)/(w+1) = inf/inf = NaN from
    5.54296875 to 65504, and below it x(w-1) already overflows (inf/(w+1) = inf) from the first input
    the evaluation above finds, 4.7578125: 14,142 nonfinite outputs."""
    with mpmath.workprec(200):
        L = lambda v: mpmath.log(mpmath.mpf(v))  # noqa: E731
        absorb = [_first16_at_or_above(L(2.0**-25)), _last16_at_or_below(L(2.0**-11 + 2.0**-22))]
        div0 = [-65504.0, _last16_at_or_below(L(2.0**-16 + 2.0**-25))]
        w_over = [_first16_at_or_above(L(254.9375)), _last16_at_or_below(L(65520))]  # e^x < 65520: e finite
    assert absorb == [-17.328125, -7.625] and div0 == [-65504.0, -11.09375] and w_over == [5.54296875, 11.0859375]
    maps = {fid: _fp16_maps(fid) for fid in HAND16}
    assert maps["log-exp-plus-one"][("(+ (exp x) 1)", "absorption")][0] == (*absorb, _count16(*absorb), True)
    assert maps["exp-rational"][("(/ 2 (* e (+ e 2)))", "overflow")] == [(*div0, _count16(*div0), True)]
    assert maps["onednn-jit"][("w", "overflow")] == [(*w_over, _count16(*w_over), True)]
    assert maps["onednn-jit"][("(/ (* x (- w 1)) (+ w 1))", "nan")] == [(5.54296875, 65504.0, 13941, True)]
    # the harm: the outputs at the edges, by the hand evaluation, against mish by mpmath
    for fid, xe in (("log-exp-plus-one", absorb), ("exp-rational", [div0[1]])):
        for v in xe:
            y = float(HAND16[fid](_M(v), _Trace()))
            r = mpmath.mpf(v) * mpmath.tanh(mpmath.log1p(mpmath.exp(mpmath.mpf(v))))
            ulp = mpmath.mpf(2) ** (max(int(mpmath.floor(mpmath.log(abs(r), 2))), -14) - 10)
            assert y == 0 and np.signbit(y) and abs(r) / ulp > 8, (fid, v, y)  # -0, mish(x) >= 8 ulps away
    y = evaluate(REG["onednn-jit"], lattice16(), Policy(FP16)).y
    _, hand_y = hand_map16("onednn-jit")
    assert np.array_equal(np.isnan(y), np.isnan(hand_y)) and int((~np.isfinite(y)).sum()) == 14142
    assert int((~np.isfinite(y)).sum()) == _count16(4.7578125, 65504.0)
    assert maps["onednn-jit"][("(* x (- w 1))", "overflow")] == [(4.7578125, 5.5390625, 201, True)]


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
    from mishaudit.analysis.exhaustive_events import ExhaustiveEvents
    from mishaudit.analysis.sweep import Sweep, run_sweep
    from mishaudit.eval.inputs import Domain, sample

    dom = Domain(lo, hi)
    if sample(FP32, 12_000, 0, dom).strategy != "exhaustive":  # keep the domain small enough to enumerate
        dom = Domain(lo, float(from_ordinal([ordinal(np.array([lo]), FP32)[0] + 12_000], FP32)[0]))
    forms = [REG[i] for i in ("onednn-jit", "exp-rational", "softplus-tanh", "log-exp-plus-one")]
    job = run_sweep(Sweep(forms, Policy(FP32), dom, chunk=1 << 13, job=ExhaustiveEvents), jobs=1)
    for f in forms:
        want_maps, want_att = overflow_map(f, Policy(FP32), dom, 12_001, 0)
        got_maps, got_att = job.result(f)
        assert [m.as_json() for m in got_maps] == [m.as_json() for m in want_maps], f.id
        assert got_att["bad_inputs"] == want_att["bad_inputs"]
        key = lambda c: (c["node"], c["inputs"])  # noqa: E731
        assert sorted(map(key, got_att["culprits"])) == sorted(map(key, want_att["culprits"]))
        for g, w in zip(sorted(got_att["culprits"], key=key), sorted(want_att["culprits"], key=key)):
            assert g["max_local_bits"] == w["max_local_bits"] and g["regions"] == w["regions"], (f.id, g, w)
