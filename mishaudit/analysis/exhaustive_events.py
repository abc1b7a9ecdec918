"""overflow --exhaustive: the event intervals and the attribution over every binary32 input of a domain,
as a sweep job (analysis/sweep.py) whose chunk states merge exactly."""

from __future__ import annotations

import numpy as np

from mishaudit.analysis.attribution import Culprit, local_culprits, mask_runs
from mishaudit.analysis.events import EVENTS, EventMap, Interval, event_matrix
from mishaudit.eval.evaluate import Policy
from mishaudit.formats import from_ordinal
from mishaudit.lang import fpcore as fc
from mishaudit.measure.metrics import errors
from mishaudit.reference.table import Reference, reference_arrays


class ExhaustiveEvents:
    """overflow --exhaustive (a sweep.Sweep job): every binary32 input of the domain is evaluated.

    Inputs are numbered by position in the ascending lattice (-0 and +0 both count). Per formula
    and per (node, event) the state holds the runs of consecutive positions where the event
    occurs, each with whether some output in it is nonfinite or > 1 ulp off (harmful); per
    culprit node of Herbie's local-error attribution, the count of bad inputs and the largest
    local error; and the regions: runs of consecutive bad inputs owned by one culprit. Runs that
    meet at a block or chunk boundary are joined, so every interval and count is exact."""

    MODE = "overflow"

    def __init__(self, sweep):
        self.sweep = sweep
        self.fallback = 0
        self.state = {f.id: _empty_events() for f in sweep.formulas}

    @staticmethod
    def chunk(sweep, i: int) -> dict:
        out = {f.id: _empty_events() for f in sweep.formulas}
        n = fallback = 0
        pos = _position(sweep, sweep.first_ordinal(i))
        for x32 in sweep.blocks(i):
            x = x32.astype(np.float64)
            refs = {}
            for f in sweep.formulas:
                if f.spec not in refs:
                    arr = reference_arrays(x, sweep.policy.storage, spec=f.spec)
                    fallback += int(arr["fallback"])
                    refs[f.spec] = Reference(x, arr["rn"], arr["d"], arr["E"], arr["r64"])
                _fold_events(out[f.id], f, sweep.policy, x, refs[f.spec], pos)
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
                for i, j in mask_runs(mat[n, k]):
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
