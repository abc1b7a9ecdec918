"""The overflow command's orchestration: every formula's event maps and attribution in every format,
sampled (events.overflow_map) or, for fp32 with `exhaustive`, streamed over every input of the domain
(a sweep told to run exhaustive_events.ExhaustiveEvents)."""

from __future__ import annotations

from mishaudit.analysis.events import overflow_map
from mishaudit.analysis.exhaustive_events import ExhaustiveEvents
from mishaudit.analysis.sweep import Sweep, run_sweep
from mishaudit.eval.evaluate import policy_for
from mishaudit.eval.inputs import Domain


def run_overflow(formulas: list, fmts: list, compute, ftz: bool, domain: Domain, samples: int, seed: int,
                 model: str = "cr", exhaustive: bool = False, jobs: int = 0, resume: bool = False,
                 on_sweep=None, scheduler=None) -> tuple[list, list]:
    """(event maps, attributions) of every formula in every format; with `exhaustive`, fp32 streams
    every input of the domain (`on_sweep(done, total, inputs)` hears of its progress), on a Dask
    cluster with `scheduler` (cluster.py)."""
    maps, attributions = [], []
    kernels = [f for f in formulas if f.kernel]
    formulas = [f for f in formulas if not f.kernel]
    for fmt in fmts:
        policy = policy_for(fmt, compute, ftz, model)
        attributions += [{"formula": k.id, "dtype": fmt.name, "bad_inputs": None, "culprits": [],
                          "note": "a kernel is a black box: it has no intermediates to map"} for k in kernels]
        if not formulas:
            continue
        if exhaustive and fmt.name == "fp32":
            job = run_sweep(Sweep(formulas, policy, domain, job=ExhaustiveEvents), jobs=jobs, resume=resume,
                            progress=on_sweep, scheduler=scheduler)
            results = [job.result(f) for f in formulas]
        else:
            results = [overflow_map(f, policy, domain, samples, seed) for f in formulas]
        for m, a in results:
            maps += m
            attributions.append(a)
    return maps, attributions
