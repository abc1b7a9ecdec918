"""Overflow maps: which intermediate overflows, turns NaN, underflows, goes subnormal or absorbs, for which inputs.

Events of an operation node, for one input, where the node lies on the taken branch
(DESIGN.md, "Overflow maps"):
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

Error attribution (Herbie's local error): for an operation node f, round its operands'
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
from dataclasses import dataclass, field

import numpy as np

from . import fpcore as fc
from .enclose import enclose_array, enclose_mpfr
from .evaluate import Evaluator, Policy
from .formats import Format, flush_subnormals, from_ordinal, ordinal, round_to
from .inputs import Domain, input_set
from .metrics import errors
from .reference import Reference, reference

EVENTS = ("overflow", "nan", "underflow", "subnormal", "absorption")
NUMERIC_OPS = {"+", "-", "*", "/", "fabs", "sqrt", "exp", "expm1", "log", "log1p", "tanh",
               "fmax", "fmin", "copysign", "pow", "fma"}
_NONZERO_EXACT = {  # does op(operands) have a nonzero exact value?
    "exp": lambda a: np.isfinite(a[0]),
    "expm1": lambda a: a[0] != 0,
    "log": lambda a: a[0] != 1,
    "log1p": lambda a: a[0] != 0,
    "tanh": lambda a: a[0] != 0,
    "sqrt": lambda a: a[0] != 0,
    "*": lambda a: (a[0] != 0) & (a[1] != 0),
    "/": lambda a: (a[0] != 0) & np.isfinite(a[1]),
    "+": lambda a: a[0] != -a[1],
    "-": lambda a: a[0] != a[1],
    "pow": lambda a: a[0] != 0,
    "fma": lambda a: (a[0] * a[1] + a[2]) != 0,
}


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
    nz = None if (rec.op == "-" and len(ops) == 1) else _NONZERO_EXACT.get(rec.op)  # negation is exact
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


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive index runs where mask is True."""
    if not mask.any():
        return []
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1) - 1
    return list(zip(starts.tolist(), ends.tolist()))


def _bad_outputs(formula, x, y, policy) -> np.ndarray:
    """Final output nonfinite or more than 1 ulp off (bool per input)."""
    ref = reference(x, policy.storage, show_progress=False)
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
    runs = []  # (EventMap, i, j)
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
            for i, j in _runs(mask):
                runs.append((em, i, j))
                if not enumerated:  # exact edges: bisect between the run's ends and the neighbouring samples
                    if i > 0 and ords[i] - ords[i - 1] > 1:
                        requests.append((n, k, ords[i - 1], ords[i], False))
                        slots.append((len(runs) - 1, "lo"))
                    if j + 1 < len(x) and ords[j + 1] - ords[j] > 1:
                        requests.append((n, k, ords[j], ords[j + 1], True))
                        slots.append((len(runs) - 1, "hi"))
    edges: dict = {}
    if requests:
        for (r, side), o in zip(slots, _bisect_all(formula, policy, fmt, requests)):
            edges[(r, side)] = o if side == "lo" else o - 1
    lohi = []
    for r, (em, i, j) in enumerate(runs):
        lo_x = float(from_ordinal(np.array([edges[(r, "lo")]]), fmt)[0]) if (r, "lo") in edges else float(x[i])
        hi_x = float(from_ordinal(np.array([edges[(r, "hi")]]), fmt)[0]) if (r, "hi") in edges else float(x[j])
        lohi.append((lo_x, hi_x))
    edge_bad = {}
    if not enumerated and runs:  # the outputs at the exact edges count for harm too
        ex = np.array(sorted({v for pair in lohi for v in pair}))
        ye, *_ = event_matrix(formula, ex, policy)
        edge_bad = dict(zip(ex.tolist(), _bad_outputs(formula, ex, ye, policy).tolist()))
    for (em, i, j), (lo_x, hi_x) in zip(runs, lohi):
        harm = bool(bad[i : j + 1].any()) or edge_bad.get(lo_x, False) or edge_bad.get(hi_x, False)
        if enumerated:
            count = j - i + 1
        else:
            count = int(ordinal(np.array([hi_x]), fmt)[0]) - int(ordinal(np.array([lo_x]), fmt)[0]) + 1
        em.intervals.append(Interval(lo_x, hi_x, count, harm))
    return maps, attribution(formula, policy, x, y, bad)


# ---------------------------------------------------------------- local error attribution


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


def _round_enclosure(lo, hi, w: Format, ftz: bool, exact_zero=None):
    """(RN_w of the value in [lo, hi], decided?) for float64 endpoint arrays: decided where both ends
    round to the same value (zeros of one sign, or the enclosure is exactly 0, which rounds to +0)."""
    with np.errstate(all="ignore"):
        a, b = round_to(lo, w), round_to(hi, w)
    if ftz:
        a, b = flush_subnormals(a, w), flush_subnormals(b, w)
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
        settled = np.ones(len(idx), dtype=bool)
        for k, r in enumerate(recs):
            plus = _rounder(r.fmt)
            rec_ok = np.ones(len(idx), dtype=bool)
            vals = []
            for node in (*r.node.args, r.node):
                lo, hi = pe.nodes[id(node)]
                v, ok = _round_enclosure(plus(lo).astype(np.float64), plus(hi).astype(np.float64), r.fmt,
                                         policy.ftz, exact_zero=((lo == 0) & (hi == 0)).astype(bool))
                vals.append(v)
                rec_ok &= ok
            rec_ok |= ~r.live[idx]  # off the taken path: not needed
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
    from .libm import format_context

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
        runs = _runs(sel)
        regions = sorted(([float(xb[a]), float(xb[b]), b - a + 1] for a, b in runs), key=lambda t: -t[2])
        culprits.append(Culprit(r.label, fc.to_text(r.node), int(sel.sum()), float(local[i][sel].max()),
                                [[lo, hi] for lo, hi, _ in regions[:5]]))
    culprits.sort(key=lambda c: -c.inputs)
    return {"formula": formula.id, "dtype": fmt.name, "bad_inputs": int(bad.sum()),
            "culprits": [c.__dict__ for c in culprits], "note": ""}


# ---------------------------------------------------------------- every binary32 input (overflow --exhaustive)


class ExhaustiveEvents:
    """overflow --exhaustive (a sweep.Sweep job): every binary32 input of the domain is evaluated.

    Inputs are numbered by position in the ascending lattice (-0 and +0 both count). Per formula
    and per (node, event) the state holds the runs of consecutive positions where the event
    occurs, each with whether some output in it is nonfinite or > 1 ulp off (harmful); per
    culprit node of Herbie's local-error attribution, the count of bad inputs and the largest
    local error; and the regions: runs of consecutive bad inputs owned by one culprit. Runs that
    meet at a block or chunk boundary are joined, so every interval and count is exact."""

    def __init__(self, sweep):
        self.sweep = sweep
        self.fallback = 0
        self.state = {f.id: _empty_events() for f in sweep.formulas}

    @staticmethod
    def chunk(sweep, i: int) -> dict:
        from .reference import _compute_with_progress

        out = {f.id: _empty_events() for f in sweep.formulas}
        n = fallback = 0
        pos = _position(sweep, sweep.first_ordinal(i))
        for x32 in sweep.blocks(i):
            x = x32.astype(np.float64)
            arr = _compute_with_progress(x, sweep.policy.storage, False)
            fallback += int(arr["fallback"])
            ref = Reference(x, arr["rn"], arr["d"], arr["E"], arr["r64"])
            for f in sweep.formulas:
                _fold_events(out[f.id], f, sweep.policy, x, ref, pos)
            n += len(x)
            pos += len(x)
        for ev in out.values():
            ev["regions"], ev["inner"] = _edges_and_inner(ev["regions"])
        return {"n": n, "fallback": fallback, "formulas": out}

    def absorb(self, i: int, data: dict) -> None:
        self.fallback += data["fallback"]
        for fid, ev in data["formulas"].items():
            _merge_events(self.state[fid], ev)

    def dump(self) -> tuple[dict, dict]:
        return {"fallback": self.fallback, "state": self.state}, {}

    def load(self, meta: dict, arrays) -> None:
        self.fallback = meta["fallback"]
        self.state = meta["state"]

    def result(self, formula) -> tuple[list, dict]:
        """(EventMaps, attribution) of one formula, as overflow_map returns them."""
        sweep, st, fmt = self.sweep, self.state[formula.id], self.sweep.policy.storage
        comp = (sweep.policy.compute or fmt).name
        maps, seen = [], set()
        for key in sorted(st["runs"], key=lambda k: tuple(int(v) for v in k.split(":"))):
            n, k = (int(v) for v in key.split(":"))
            runs = _coalesce(st["runs"][key])
            text, event = st["texts"][n], EVENTS[k]
            sig = (text, event, tuple(map(tuple, runs)))
            if sig in seen:  # the same expression written twice: report it once
                continue
            seen.add(sig)
            em = EventMap(formula.id, fmt.name, comp, sweep.policy.ftz, st["labels"][n], text, event)
            for lo, hi, harm in runs:
                em.intervals.append(Interval(_value_at(sweep, lo), _value_at(sweep, hi), hi - lo + 1, bool(harm)))
            maps.append(em)
        regions = _top_regions([r for r in _join_regions(st["regions"]) if r[3] >= 0] + st["inner"])
        culprits = []
        for key, c in st["culprits"].items():
            mine = sorted((r for r in regions if r[3] == int(key)), key=lambda r: -r[2])  # stable: by x on ties
            culprits.append(Culprit(c["label"], c["text"], c["inputs"], c["max_bits"],
                                    [[_value_at(sweep, r[0]), _value_at(sweep, r[1])] for r in mine[:5]]))
        culprits.sort(key=lambda c: -c.inputs)
        note = ""
        return maps, {"formula": formula.id, "dtype": fmt.name, "bad_inputs": st["bad"],
                      "culprits": [c.__dict__ for c in culprits], "note": note}


def _empty_events() -> dict:
    return {"labels": [], "texts": [], "runs": {}, "bad": 0, "culprits": {}, "regions": [], "inner": []}


def _position(sweep, o: int) -> int:
    """Position of ordinal o among the domain's inputs (-0 sits between -min_subnormal and +0)."""
    p = o - sweep.olo
    return p + 1 if (o > 0 and sweep.olo <= 0) else p


def _value_at(sweep, p: int) -> float:
    """The input at position p (inverse of _position)."""
    o = p + sweep.olo
    if sweep.olo <= 0 and o >= 0:
        if o == 0:
            return -0.0
        o -= 1
    return float(from_ordinal(np.array([o], dtype=np.int64), sweep.policy.storage)[0])


def _fold_events(st: dict, formula, policy: Policy, x: np.ndarray, ref: Reference, pos: int) -> None:
    """Add one block (inputs x at positions pos, pos+1, ...) to a formula's event state."""
    fmt = policy.storage
    y, labels, texts, mat = event_matrix(formula, x, policy)
    st["labels"], st["texts"] = labels, texts
    err = errors(y, ref, fmt)
    bad = ~err.finite | (err.ulp > 1)
    cum = np.concatenate([[0], np.cumsum(bad)])
    for n in range(mat.shape[0]):
        for k in range(mat.shape[1]):
            if mat[n, k].any():
                runs = st["runs"].setdefault(f"{n}:{k}", [])
                for i, j in _runs(mat[n, k]):
                    _append_run(runs, pos + i, pos + j, int(cum[j + 1] > cum[i]))
    nbad = int(bad.sum())
    st["bad"] += nbad
    if nbad:
        idx = np.flatnonzero(bad)
        recs, who, local = local_culprits(formula, policy, x[idx])
        for c in np.unique(who):
            sel = who == c
            r = recs[c]
            cu = st["culprits"].setdefault(str(int(c)), {"label": r.label, "text": fc.to_text(r.node), "inputs": 0,
                                                         "max_bits": 0.0})
            cu["inputs"] += int(sel.sum())
            cu["max_bits"] = max(cu["max_bits"], float(local[c][sel].max()))
        # regions: runs of consecutive bad inputs (in input order) owned by one culprit
        starts = np.flatnonzero(np.concatenate([[True], who[1:] != who[:-1]]))
        ends = np.concatenate([starts[1:] - 1, [len(who) - 1]])
        p = pos + idx
        for a, b in zip(starts.tolist(), ends.tolist()):
            _append_region(st["regions"], int(p[a]), int(p[b]), b - a + 1, int(who[a]))


def _append_region(regions: list, lo: int, hi: int, count: int, culprit: int) -> None:
    """Append a run of bad inputs, joining it to the previous run of bad inputs when the same
    node owns both (regions may hold good inputs, not bad ones of another culprit)."""
    if regions and regions[-1][3] == culprit:
        regions[-1][1] = hi
        regions[-1][2] += count
    else:
        regions.append([lo, hi, count, culprit])


def _append_run(runs: list, lo: int, hi: int, harm: int) -> None:
    """Append [lo, hi, harm], joining it to the last run when they meet."""
    if runs and runs[-1][1] + 1 == lo:
        runs[-1][1] = hi
        runs[-1][2] |= harm
    else:
        runs.append([lo, hi, harm])


def _coalesce(runs: list) -> list:
    """Sorted runs with meeting neighbours joined (chunks arrive in any order)."""
    out: list = []
    for lo, hi, harm in sorted(runs):
        _append_run(out, lo, hi, harm)
    return out


def _edges_and_inner(regions: list) -> tuple[list, list]:
    """A chunk's regions (in input order) as (edges, inner): the first and last region, which may
    join regions of neighbouring chunks (with a separator, culprit -1, when regions lie between
    them), and the 5 largest of the rest per culprit, which are final."""
    if len(regions) <= 2:
        return regions, []
    first, last = regions[0], regions[-1]
    sep = [first[1] + 1, first[1] + 1, 0, -1]
    return [first, sep, last], _top_regions(regions[1:-1])


def _top_regions(regions: list) -> list:
    """The 5 largest regions of each culprit (ties: the first in input order)."""
    out: dict = {}
    for r in sorted(regions, key=lambda r: (-r[2], r[0])):
        mine = out.setdefault(r[3], [])
        if len(mine) < 5:
            mine.append(r)
    return [r for rs in out.values() for r in rs]


def _join_regions(regions: list) -> list:
    """Regions in input order, neighbours with the same culprit joined (chunks arrive in any order)."""
    out: list = []
    for lo, hi, count, c in sorted(regions):
        _append_region(out, lo, hi, count, c)
    return out


def _merge_events(st: dict, ev: dict) -> None:
    st["labels"], st["texts"] = ev["labels"] or st["labels"], ev["texts"] or st["texts"]
    for key, runs in ev["runs"].items():
        mine = st["runs"].setdefault(key, [])
        mine.extend(runs)
        if len(mine) > 1000:
            st["runs"][key] = _coalesce(mine)
    st["bad"] += ev["bad"]
    for key, c in ev["culprits"].items():
        cu = st["culprits"].setdefault(key, {**c, "inputs": 0, "max_bits": 0.0})
        cu["inputs"] += c["inputs"]
        cu["max_bits"] = max(cu["max_bits"], c["max_bits"])
    st["regions"].extend(ev["regions"])  # chunk edges: at most 3 per chunk
    st["inner"] = _top_regions(st["inner"] + ev["inner"])


# ---------------------------------------------------------------- the terminal map

GLYPH = {"nan": "N", "overflow": "O", "underflow": "U", "subnormal": "s", "absorption": "a"}
PRIORITY = ("nan", "overflow", "underflow", "subnormal", "absorption")


def symlog(v, linthresh: float = 1.0):
    v = np.asarray(v, dtype=float)
    return np.sign(v) * np.log10(1 + np.abs(v) / linthresh)


def text_map(maps: list[EventMap], fmt: Format, width: int = 64) -> list[tuple[str, str, list]]:
    """Rows (node, glyph string, harmful flags) over `width` symmetric-log bins of [-max, max]."""
    edges = np.linspace(-symlog(fmt.max), symlog(fmt.max), width + 1)
    rows: dict = {}
    for m in maps:
        row = rows.setdefault(m.node, [[" ", False] for _ in range(width)])
        for iv in m.intervals:
            a, b = np.searchsorted(edges, symlog([iv.lo, iv.hi]), side="right") - 1
            for c in range(max(a, 0), min(b, width - 1) + 1):
                cur = row[c][0]
                if cur == " " or PRIORITY.index(m.event) < PRIORITY.index({v: k for k, v in GLYPH.items()}[cur]):
                    row[c][0] = GLYPH[m.event]
                row[c][1] = row[c][1] or iv.harmful
    return [(node, "".join(c for c, _ in cells), [h for _, h in cells]) for node, cells in rows.items()]


def axis_labels(fmt: Format, width: int = 64) -> str:
    """A tick line for the map: -max, -1, 0, 1, max at their symmetric-log columns."""
    span = symlog(fmt.max)
    line = [" "] * width
    for v, s in ((-fmt.max, f"-{fmt.max:.3g}"), (-1.0, "-1"), (0.0, "0"), (1.0, "1"), (fmt.max, f"{fmt.max:.3g}")):
        col = int(round((symlog(v) + span) / (2 * span) * (width - 1)))
        col = min(max(col - len(s) // 2, 0), width - len(s))
        for k, ch in enumerate(s):
            line[col + k] = ch
    return "".join(line)
