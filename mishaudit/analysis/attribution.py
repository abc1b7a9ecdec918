"""Error attribution (Herbie's local error): for an operation node f, round its operands'
exact values a to the working format, apply f once in the format, and compare with
the correctly rounded exact value RN(f(a)); local error in bits =
log2(1 + |ord(f_fmt(RN(a))) - ord(RN(f(a)))|). log(1 + e) with 1 + e already rounded
to 1 shows up here as the log's error, as in Herbie. The exact values of operands and
results are the subexpressions in real arithmetic, enclosed (enclose.py) tightly enough to
decide their rounding: binary64 intervals where they do, MPFR otherwise (1 + e for
x < -36.7, where binary64 absorbs e as well; every binary64 format). For every input whose
final result is more than 1 ulp off, the culprit is the live node with the largest local
error.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from mishaudit.eval.evaluate import Evaluator, Policy
from mishaudit.eval.ftz import mode_of, threshold
from mishaudit.formats import Format, ordinal, round_to
from mishaudit.lang import fpcore as fc
from mishaudit.lang.operators import NUMERIC
from mishaudit.reference.enclose import enclose_array, enclose_mpfr

NUMERIC_OPS = NUMERIC  # the operations with a numeric result (lang/operators.py)


def mask_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive index runs where mask is True."""
    if not mask.any():
        return []
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1) - 1
    return list(zip(starts.tolist(), ends.tolist()))


@dataclass
class Culprit:
    node: str
    text: str
    inputs: int  # inputs more than 1 ulp off attributed to this node
    max_local_bits: float
    regions: list  # [[lo, hi], ...] runs of attributed inputs, largest first


def local_culprits(formula, policy: Policy, xb: np.ndarray):
    """(recorded numeric nodes, culprit node index per input of xb, local error in bits [nodes, inputs]).

    Herbie's local error of node f on input x: with a the exact values of f's operands (the
    operand expressions in real arithmetic, enclose.py), log2(1 + |ord(f_w(RN_w(a))) - ord(RN_w(f(a))|)
    in f's working format w, f_w the operation as the policy computes it (w.bits when one side is
    non-finite and the other not); -1 where f is not on the taken path."""
    ev = Evaluator(formula, policy, record=True)
    ev.run(xb)
    recs = [r for r in ev.records if r.op in NUMERIC_OPS and r.values.dtype != bool]
    ops, res, known = exact_rounded(formula, policy, xb, recs)
    local = np.full((len(recs), len(xb)), -1.0)
    for i, r in enumerate(recs):
        w = r.fmt
        with np.errstate(all="ignore"):
            y_loc = ev.apply_op(r.op, ops[i], w)  # the operation once, in the format
        rn = res[i]
        same = (y_loc == rn) | (np.isnan(y_loc) & np.isnan(rn))
        fin = np.isfinite(y_loc) & np.isfinite(rn)
        d = np.abs(ordinal(np.where(fin, y_loc, 0), w) - ordinal(np.where(fin, rn, 0), w)).astype(float)
        bits = np.where(same, 0.0, np.where(fin, np.log2(1 + d), float(w.bits)))
        local[i] = np.where(r.live & known[i], bits, -1.0)
    who = np.argmax(local, axis=0) if recs else np.zeros(len(xb), dtype=np.int64)
    return recs, who, local


def _round_enclosure(lo, hi, w: Format, ftz, exact_zero=None):
    """(RN_w of the value in [lo, hi], decided?) for float64 endpoint arrays: decided where both ends
    round to the same value (zeros of one sign, or the enclosure is exactly 0, which rounds to +0);
    under --ftz an end below the mode's tininess threshold (eval/ftz.py) is a zero of its sign."""
    with np.errstate(all="ignore"):
        a, b = round_to(lo, w), round_to(hi, w)
    if ftz:
        thr = float(threshold(w, mode_of(ftz)))  # 2^emin or 2^emin - 2^(emin-p-1): exact in binary64
        a = np.where(np.abs(lo) < thr, np.copysign(0.0, lo), a)
        b = np.where(np.abs(hi) < thr, np.copysign(0.0, hi), b)
    if exact_zero is None:
        exact_zero = (lo == 0) & (hi == 0)
    ok = ((a == b) & (np.signbit(a) == np.signbit(b))) | exact_zero
    return np.where(exact_zero, 0.0, a), ok


def exact_rounded(formula, policy: Policy, x: np.ndarray, recs: list):
    """For each recorded node: RN_w of its exact operands, RN_w of its exact result, and where these
    are known. binary64 enclosures decide most inputs; the rest (absorption and cancellation such
    as 1 + exp(x) for x < -36.7, where binary64 loses the exact value, and every binary64 format)
    are enclosed with MPFR at 128 to 2048 bits."""
    enc = enclose_array(formula, x, policy.storage, record=True)
    n = len(x)
    ops, res, known = [], [], []
    need = enc.undecided.copy()
    for r in recs:
        vals = []
        ok_all = np.ones(n, dtype=bool)
        for node in (*r.node.args, r.node):
            lo, hi = enc.nodes.get(id(node), (np.full(n, np.nan), np.full(n, np.nan)))
            v, ok = _round_enclosure(lo, hi, r.fmt, policy.ftz)
            vals.append(v)
            ok_all &= ok
        ops.append(vals[:-1])
        res.append(vals[-1])
        known.append(np.ones(n, dtype=bool))
        need |= r.live & ~ok_all
    idx = np.flatnonzero(need)
    for prec in (128, 256, 512, 1024, 2048):
        if not len(idx):
            break
        pe = enclose_mpfr(formula, x[idx], policy.storage, prec, record=True)
        trusted = ~pe.undecided  # an undecided comparison or sign makes the values after it arbitrary
        settled = np.ones(len(idx), dtype=bool)
        for k, r in enumerate(recs):
            plus = _rounder(r.fmt)
            rec_ok = trusted.copy()
            vals = []
            for node in (*r.node.args, r.node):
                lo, hi = pe.nodes[id(node)]
                v, ok = _round_enclosure(plus(lo).astype(np.float64), plus(hi).astype(np.float64), r.fmt,
                                         policy.ftz, exact_zero=((lo == 0) & (hi == 0)).astype(bool))
                vals.append(v)
                rec_ok &= ok
            rec_ok |= trusted & ~r.live[idx]  # off the taken path: not needed
            take = rec_ok | (prec == 2048)
            for j, v in enumerate(vals[:-1]):
                ops[k][j][idx[take]] = v[take]
            res[k][idx[take]] = vals[-1][take]
            known[k][idx[take]] = rec_ok[take]
            settled &= rec_ok
        idx = idx[~settled]
    return ops, res, known


@functools.lru_cache(maxsize=None)
def _rounder(w: Format):
    """A ufunc rounding MPFR numbers once to format w (RN, subnormals, overflow)."""
    from mishaudit.eval.libm import format_context

    return np.frompyfunc(format_context(w).plus, 1, 1)


def attribution(formula, policy: Policy, x: np.ndarray, y: np.ndarray, bad: np.ndarray) -> dict:
    """formula id, culprits (most inputs first) and the number of bad inputs."""
    fmt = policy.storage
    if not bad.any():
        return {"formula": formula.id, "dtype": fmt.name, "bad_inputs": 0, "culprits": [], "note": ""}
    xb = x[bad]
    recs, who, local = local_culprits(formula, policy, xb)
    if not recs:
        return {"formula": formula.id, "dtype": fmt.name, "bad_inputs": int(bad.sum()), "culprits": [], "note": ""}
    culprits = []
    for i in np.unique(who):
        sel = who == i
        r = recs[i]
        regions = sorted(([float(xb[a]), float(xb[b]), b - a + 1] for a, b in mask_runs(sel)), key=lambda t: -t[2])
        culprits.append(Culprit(r.label, fc.to_text(r.node), int(sel.sum()), float(local[i][sel].max()),
                                [[lo, hi] for lo, hi, _ in regions[:5]]))
    culprits.sort(key=lambda c: -c.inputs)
    return {"formula": formula.id, "dtype": fmt.name, "bad_inputs": int(bad.sum()),
            "culprits": [c.__dict__ for c in culprits], "note": ""}
