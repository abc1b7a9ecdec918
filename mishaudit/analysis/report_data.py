"""What `mishaudit report` and `mishaudit plot` draw, computed: the audit (with its per-input errors), and
per format the overflow maps, attributions, error series and timings. output/report.py and
output/plots.py render what collect returns; they compute nothing."""

from __future__ import annotations

import math
import time

import numpy as np

from mishaudit.analysis.audit import run_audit
from mishaudit.analysis.events import overflow_map
from mishaudit.eval.evaluate import Policy, evaluate, policy_for
from mishaudit.eval.inputs import formula_thresholds
from mishaudit.formats import Format
from mishaudit.progress import phase

REPEATS = 3


def measure_ns(formula, x: np.ndarray, policy: Policy) -> float:
    """Best-of-3 wall time of one numpy evaluation of `formula` on `x`, in ns per element."""
    best = math.inf
    for _ in range(REPEATS):
        t = time.perf_counter()
        evaluate(formula, x, policy)
        best = min(best, time.perf_counter() - t)
    return best / len(x) * 1e9


def collect(formulas: list, fmts: list[Format], compute, ftz, domain, samples, seed, use_cache=True, progress=False,
            model: str = "cr", device: str = "cpu", given=None):
    """Everything the figures and tables need, per format (kernels: no overflow map, and only in the
    formats their framework runs them in); with `given` (eval/given.py), the errors are those of the
    given inputs, each counted as often as it occurs (the overflow maps stay on the format's inputs)."""
    with phase(f"auditing {len(formulas)} formulations in {', '.join(f.name for f in fmts)}"):
        audit = run_audit(formulas, fmts, compute, ftz, domain, samples, seed, use_cache=use_cache,
                          progress=progress, keep_errors=True, model=model, device=device, given=given)
    per_fmt = {}
    todo = [(fmt, f) for fmt in fmts for f in formulas if f.supports(fmt)]
    with phase("overflow maps and timings", total=len(todo)) as step:
        for fmt in fmts:
            per_fmt[fmt.name] = _collect_format(fmt, formulas, audit, compute, ftz, domain, samples, seed, model,
                                                device, step)
    return audit, per_fmt


def _collect_format(fmt, formulas, audit, compute, ftz, domain, samples, seed, model, device, step) -> dict:
    """One format's overflow maps, attributions, error series and costs (collect)."""
    policy = policy_for(fmt, compute, ftz, model, device)
    maps, attrib, series, cost = [], [], [], []
    for f in (f for f in formulas if f.supports(fmt)):
        step(f"{fmt.name} {f.id}", advance=0)
        m, a = ([], None) if f.kernel else overflow_map(f, policy, domain, samples, seed)
        maps += m
        if a is not None:
            attrib.append(a)
        err = audit.errors[(f.id, fmt.name)]
        marks = [] if f.kernel else [(t, "threshold") for t in formula_thresholds(f, fmt)]
        marks += [(iv.lo, "overflow edge") for mm in m if mm.event == "overflow" for iv in mm.intervals
                  if abs(iv.lo) < fmt.max]
        series.append({"id": f.id, "x": err.x, "ulp": err.ulp, "nonfinite": ~err.finite,
                       "marks": sorted(set(marks))})
        row = next(r for r in audit.rows if r["formula"] == f.id and r["dtype"] == fmt.name)
        cost.append({"id": f.id, "ns": measure_ns(f, err.x, policy), "max_ulp": row["max_ulp"],
                     "mean_ulp": row["mean_ulp"], "nonfinite": row["nonfinite"]})
        step()
    return {"fmt": fmt, "maps": maps, "attrib": attrib, "series": series, "cost": cost}
