"""Overflow maps: edges against independent derivations (plain numpy / mpmath), harmful vs absorbed."""

import json
import os
import subprocess
import sys

import mpmath
import numpy as np
import pytest

from mishaudit.evaluate import Policy, evaluate
from mishaudit.formats import FP16, FP32, all_finite, from_ordinal, ordinal
from mishaudit.metrics import errors
from mishaudit.overflow import overflow_map
from mishaudit.reference import reference
from mishaudit.registry import load_registry

REG = load_registry()


def intervals(maps, node, event):
    got = [m for m in maps if m.node == node and m.event == event]
    assert len(got) == 1, [(m.node, m.event) for m in maps]
    return [[i.lo, i.hi] for i in got[0].intervals]


def fp32_first(pred, lo: float, hi: float) -> float:
    """Smallest fp32 x in [lo, hi] with pred(x) true, scanning the lattice with plain numpy."""
    o = np.arange(ordinal(np.array([lo]), FP32)[0], ordinal(np.array([hi]), FP32)[0] + 1)
    x = from_ordinal(o, FP32).astype(np.float32)
    with np.errstate(all="ignore"):
        ok = pred(x)
    return float(x[np.argmax(ok)])


def test_fp16_exp_overflow_edge():
    maps, _ = overflow_map(REG["softplus-tanh"], Policy(FP16))
    edge = float(np.float16(11.09375))
    # by hand: RN16(exp(x)) = inf iff exp(x) >= 65504 + 16; ln(65520) = 11.0898..., next fp16 is 11.09375
    assert mpmath.log(65520) < edge and mpmath.log(65520) > 11.0859375
    assert intervals(maps, "(exp x)", "overflow") == [[edge, 65504.0]]


def test_fp32_exp_overflow_edge_is_a_single_float():
    maps, _ = overflow_map(REG["softplus-tanh"], Policy(FP32), samples=4096)
    # mpmath: RN32(exp(x)) overflows iff exp(x) >= 2^128 - 2^103 (max + half an ulp)
    t = float(mpmath.log(mpmath.mpf(2) ** 128 - mpmath.mpf(2) ** 103))
    want = fp32_first(lambda x: np.exp(x) == np.inf, 88.7, 88.8)  # what numpy's binary32 exp does
    assert abs(want - t) < 1e-5
    assert intervals(maps, "(exp x)", "overflow") == [[want, float(np.finfo(np.float32).max)]]


def test_fp32_absorption_of_exp_in_one_plus_exp():
    maps, _ = overflow_map(REG["log-exp-plus-one"], Policy(FP32), samples=4096)
    iv = intervals(maps, "(+ (exp x) 1)", "absorption")
    neg = [v for v in iv if v[1] < 0]
    assert len(neg) == 1
    lo, hi = neg[0]
    # by hand: 1 + e rounds to 1 iff e <= 2^-24 (the tie goes to even 1.0): x <= ln(2^-24) = -16.6355...
    last = -fp32_first(lambda x: np.exp(-x) <= np.float32(2.0**-24), 16.5, 16.7)
    assert abs(last - float(mpmath.log(mpmath.mpf(2) ** -24))) < 1e-5
    assert hi == last
    # and it stops where exp(x) underflows to 0 (then there is nothing to absorb)
    first = -fp32_first(lambda x: np.exp(-x) == 0, 103.0, 104.5)
    assert lo == float(np.nextafter(np.float32(first), np.float32(0)))


def test_fp16_interval_where_exp_rational_divides_by_zero():
    maps, _ = overflow_map(REG["exp-rational"], Policy(FP16))
    x = np.sort(all_finite(FP16))
    h = x.astype(np.float16)
    with np.errstate(all="ignore"):
        e = np.exp(h.astype(np.float32)).astype(np.float16)
        d = (np.float16(2) / (e * (e + np.float16(2)))).astype(np.float16)
        inf = np.isinf(d) & np.isfinite(e)
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
    ref = reference(x, FP16, show_progress=False)
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
    from mishaudit.formats import FP64

    maps, _ = overflow_map(REG["softplus-tanh"], Policy(FP64), samples=2048)
    # mpmath: RN64(exp(x)) overflows iff exp(x) >= 2^1024 - 2^970; the first double at or above
    # that logarithm for which numpy's exp is inf
    t = float(mpmath.log(mpmath.mpf(2) ** 1024 - mpmath.mpf(2) ** 970))
    x = np.nextafter(t, -np.inf)
    with np.errstate(over="ignore"):
        while not np.isinf(np.exp(x)):
            x = np.nextafter(x, np.inf)
    assert abs(x - t) < 1e-12
    assert intervals(maps, "(exp x)", "overflow") == [[float(x), float(np.finfo(np.float64).max)]]


EXHAUSTIVE_DOMAINS = [
    (-89.0, -86.0),  # exp goes subnormal, then the products underflow (fp32)
    (-2.0**-120, 2.0**-120),  # subnormal inputs, both zeros
    (40.0, 45.0),  # onednn-jit's (e+1)^2 overflows to NaN
    (-104.0, -102.0),  # RN(mish) subnormal: harmful underflows, attribution
]


@pytest.mark.parametrize("lo,hi", EXHAUSTIVE_DOMAINS)
def test_exhaustive_overflow_equals_the_enumerated_map(lo, hi):
    """Where the sample already enumerates every input, the streamed sweep must give the same maps."""
    from mishaudit.inputs import Domain, sample
    from mishaudit.sweep import Sweep, run_sweep

    dom = Domain(lo, hi)
    if sample(FP32, 1 << 16, 0, dom).strategy != "exhaustive":  # keep the domain small enough to enumerate
        dom = Domain(lo, float(from_ordinal([ordinal(np.array([lo]), FP32)[0] + 60000], FP32)[0]))
    forms = [REG[i] for i in ("onednn-jit", "exp-rational", "softplus-tanh", "log-exp-plus-one")]
    job = run_sweep(Sweep(forms, Policy(FP32), dom, chunk=1 << 13, mode="overflow"), jobs=1)
    for f in forms:
        want_maps, want_att = overflow_map(f, Policy(FP32), dom, 1 << 16, 0)
        got_maps, got_att = job.result(f)
        assert [m.as_json() for m in got_maps] == [m.as_json() for m in want_maps], f.id
        assert got_att["bad_inputs"] == want_att["bad_inputs"]
        key = lambda c: (c["node"], c["inputs"])  # noqa: E731
        assert sorted(map(key, got_att["culprits"])) == sorted(map(key, want_att["culprits"]))
        for g, w in zip(sorted(got_att["culprits"], key=key), sorted(want_att["culprits"], key=key)):
            assert g["max_local_bits"] == w["max_local_bits"] and g["regions"] == w["regions"], (f.id, g, w)
