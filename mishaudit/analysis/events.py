"""Overflow maps: which intermediate overflows, turns NaN, underflows, goes subnormal or absorbs, for which inputs.

The per-node event definitions and the map of one formula under one policy (overflow_map);
analysis/overflow.py runs it over formulas and formats, and streams fp32 (exhaustive_events.py).

Events of an operation node, for one input, where the node lies on the taken branch
(README, "Overflow maps and error attribution"; the `overflow --format json` keys are
measure/keys.py's EVENT_KEYS):
  overflow    finite operands, result +-inf
  nan         no NaN operand, result NaN
  underflow   the exact result of the operation on its operands is nonzero, the rounded one is 0
  subnormal   the result is a nonzero subnormal of the working format
  absorption  a + b (or a - b) returns a although b != 0 (or returns +-b although a != 0)
Each (node, event) is compressed into inclusive input intervals whose endpoints are
representable inputs. fp16/bf16: every finite input is evaluated, the intervals are
exact. fp32/fp64: a sorted sample is evaluated, and every change of status between
two neighbouring samples is located by bisection on the ordinal lattice, so each
edge is the exact first or last input of its run; only an interval's interior is
sampled (`enumerated` false).

An interval is `harmful` where the final output is nonfinite or more than 1 ulp off
at some evaluated input in it (edges included), else the formula absorbed the event.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mishaudit.analysis.attribution import NUMERIC_OPS, attribution, mask_runs
from mishaudit.eval.evaluate import Evaluator, Policy
from mishaudit.eval.inputs import Domain, input_set
from mishaudit.formats import Format, from_ordinal, ordinal
from mishaudit.lang import fpcore as fc
from mishaudit.lang.operators import OPERATORS
from mishaudit.measure.metrics import errors
from mishaudit.reference.table import reference

EVENTS = ("overflow", "nan", "underflow", "subnormal", "absorption")


def node_events(rec, fmt: Format) -> dict:
    """Event masks (bool arrays) of one recorded operation node, restricted to its live inputs."""
    v = rec.values
    ops = [o for o in rec.operands if o.dtype != bool]
    fin_ops = np.logical_and.reduce([np.isfinite(o) for o in ops]) if ops else np.ones(len(v), bool)
    nan_ops = np.logical_or.reduce([np.isnan(o) for o in ops]) if ops else np.zeros(len(v), bool)
    out = {
        "overflow": fin_ops & np.isinf(v),
        "nan": ~nan_ops & np.isnan(v),
        "subnormal": (v != 0) & (np.abs(v) < fmt.tiny),
    }
    nz = None if (rec.op == "-" and len(ops) == 1) else OPERATORS[rec.op].nonzero  # negation is exact
    with np.errstate(all="ignore"):
        out["underflow"] = (v == 0) & nz(ops) & fin_ops if nz else np.zeros(len(v), bool)
        if rec.op in ("+", "-") and len(ops) == 2:
            a, b = ops
            other = b if rec.op == "+" else -b
            out["absorption"] = fin_ops & np.isfinite(v) & (((v == a) & (b != 0)) | ((v == other) & (a != 0)))
        else:
            out["absorption"] = np.zeros(len(v), bool)
    return {k: m & rec.live for k, m in out.items()}


def _records(formula, x: np.ndarray, policy: Policy):
    ev = Evaluator(formula, policy, record=True)
    res = ev.run(x)
    recs = [r for r in ev.records if r.op in NUMERIC_OPS and r.values.dtype != bool]
    return res.y, recs


def event_matrix(formula, x: np.ndarray, policy: Policy):
    """(final y, node labels, node texts, array [nodes, events, inputs] of bools)."""
    y, recs = _records(formula, x, policy)
    mat = np.zeros((len(recs), len(EVENTS), len(x)), dtype=bool)
    for i, r in enumerate(recs):
        ev = node_events(r, r.fmt)
        for k, name in enumerate(EVENTS):
            mat[i, k] = ev[name]
    return y, [r.label for r in recs], [fc.to_text(r.node) for r in recs], mat


def _sorted_inputs(x: np.ndarray) -> np.ndarray:
    """Inputs in increasing order, -0 just before +0 (the order of the lattice)."""
    return x[np.lexsort((~np.signbit(x), x))]


@dataclass
class Interval:
    lo: float
    hi: float
    count: int  # lattice points in [lo, hi] (enumerated inputs for 16-bit formats)
    harmful: bool


@dataclass
class EventMap:
    formula: str
    dtype: str
    compute_dtype: str
    ftz: bool
    node: str  # the let name, else the FPCore text
    text: str  # the FPCore text of the node
    event: str
    intervals: list = field(default_factory=list)
    enumerated: bool = True

    @property
    def count(self) -> int:
        return sum(i.count for i in self.intervals)

    @property
    def harmful(self) -> bool:
        return any(i.harmful for i in self.intervals)

    def as_json(self) -> dict:
        return {"formula": self.formula, "dtype": self.dtype, "compute_dtype": self.compute_dtype, "ftz": self.ftz,
                "node": self.node, "event": self.event, "intervals": [[i.lo, i.hi] for i in self.intervals],
                "count": self.count, "harmful": self.harmful,
                "harmful_intervals": [i.harmful for i in self.intervals], "enumerated": self.enumerated}


def _bad_outputs(formula, x, y, policy) -> np.ndarray:
    """Final output nonfinite or more than 1 ulp off (bool per input)."""
    ref = reference(x, policy.storage, show_progress=False, spec=formula.spec)
    err = errors(y, ref, policy.storage)
    return ~err.finite | (err.ulp > 1)


def _bisect_all(formula, policy, fmt, requests: list) -> list[int]:
    """Exact edges for all requests at once: each (node, event index, lo_ord, hi_ord, lo_status)
    has status lo_status at lo_ord and the other one at hi_ord; returns, per request, the first
    ordinal with the other status. One batched evaluation per bisection step (at most 64)."""
    lo = [r[2] for r in requests]
    hi = [r[3] for r in requests]
    nodes = np.array([r[0] for r in requests], dtype=np.int64)
    evs = np.array([r[1] for r in requests], dtype=np.int64)
    want = np.array([r[4] for r in requests], dtype=bool)
    while True:
        open_ = [h - l > 1 for l, h in zip(lo, hi)]
        if not any(open_):
            return hi
        mids = [(l + h) // 2 if o else l for l, h, o in zip(lo, hi, open_)]  # Python ints: no overflow
        _, _, _, mat = event_matrix(formula, from_ordinal(np.array(mids, dtype=np.int64), fmt), policy)
        st = mat[nodes, evs, np.arange(len(mids))]
        for i, o in enumerate(open_):
            if o:
                if st[i] == want[i]:
                    lo[i] = mids[i]
                else:
                    hi[i] = mids[i]


def overflow_map(formula, policy: Policy, domain: Domain = Domain(), samples: int = 1 << 16,
                 seed: int = 0) -> tuple[list[EventMap], dict]:
    """Every (node, event) of `formula` as exact input intervals; also returns the attribution."""
    fmt = policy.storage
    inp = input_set(fmt, domain, samples, seed, formula)
    x = _sorted_inputs(inp.x)
    y, labels, texts, mat = event_matrix(formula, x, policy)
    bad = _bad_outputs(formula, x, y, policy)
    enumerated = inp.strategy == "exhaustive"
    comp = (policy.compute or fmt).name
    ords = [int(o) for o in ordinal(x, fmt)]  # Python ints: fp64 ordinals overflow int64 differences
    spans = []  # (EventMap, i, j)
    requests, slots = [], []  # bisection requests and where their answers go: (run index, "lo" | "hi")
    maps = []
    seen: set = set()
    for n in range(len(labels)):
        for k, event in enumerate(EVENTS):
            mask = mat[n, k]
            key = (texts[n], event, mask.tobytes())
            if not mask.any() or key in seen:  # the same expression written twice: report it once
                continue
            seen.add(key)
            em = EventMap(formula.id, fmt.name, comp, policy.ftz, labels[n], texts[n], event, enumerated=enumerated)
            maps.append(em)
            for i, j in mask_runs(mask):
                spans.append((em, i, j))
                if not enumerated:  # exact edges: bisect between the run's ends and the neighbouring samples
                    if i > 0 and ords[i] - ords[i - 1] > 1:
                        requests.append((n, k, ords[i - 1], ords[i], False))
                        slots.append((len(spans) - 1, "lo"))
                    if j + 1 < len(x) and ords[j + 1] - ords[j] > 1:
                        requests.append((n, k, ords[j], ords[j + 1], True))
                        slots.append((len(spans) - 1, "hi"))
    edges: dict = {}
    if requests:
        for (r, side), o in zip(slots, _bisect_all(formula, policy, fmt, requests)):
            edges[(r, side)] = o if side == "lo" else o - 1
    lohi = []
    for r, (em, i, j) in enumerate(spans):
        lo_x = float(from_ordinal(np.array([edges[(r, "lo")]]), fmt)[0]) if (r, "lo") in edges else float(x[i])
        hi_x = float(from_ordinal(np.array([edges[(r, "hi")]]), fmt)[0]) if (r, "hi") in edges else float(x[j])
        lohi.append((lo_x, hi_x))
    edge_bad = {}
    if not enumerated and spans:  # the outputs at the exact edges count for harm too
        ex = np.array(sorted({v for pair in lohi for v in pair}))
        ye, *_ = event_matrix(formula, ex, policy)
        edge_bad = dict(zip(ex.tolist(), _bad_outputs(formula, ex, ye, policy).tolist()))
    for (em, i, j), (lo_x, hi_x) in zip(spans, lohi):
        harm = bool(bad[i : j + 1].any()) or edge_bad.get(lo_x, False) or edge_bad.get(hi_x, False)
        if enumerated:
            count = j - i + 1
        else:
            count = int(ordinal(np.array([hi_x]), fmt)[0]) - int(ordinal(np.array([lo_x]), fmt)[0]) + 1
        em.intervals.append(Interval(lo_x, hi_x, count, harm))
    return maps, attribution(formula, policy, x, y, bad)

