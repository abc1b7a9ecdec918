"""Which formulation is this kernel? Every (formulation, compute dtype, libm model) ranked by the share of
inputs on which it reproduces a framework kernel's output bit for bit.

A match is equality of the format's encodings: the same value, the same sign of zero, NaN for NaN.
Candidates: every FPCore formulation, computed natively or in a wider format (binary32 for
binary16/bfloat16 storage, binary64), with each libm model available (cr; numpy's kernels; torch's
own functions where torch is installed, which is how PyTorch eager evaluates a formula written
with torch ops). Inputs: the format's input set (every value of binary16/bfloat16; the seeded
sample of binary32/binary64).

Flush to zero is a finding, not a mismatch: where the best candidates (the FTZ_TRIES best IEEE ones)
do not reproduce the kernel everywhere, each is also evaluated under eval/ftz.py's flush models
(`--ftz after`, x86 FTZ/DAZ; `--ftz before`) and ranked beside the IEEE ones, its compute_dtype
reading e.g. "fp32 ftz after". A kernel that flushes (TensorFlow's) then matches best under a flush
model, on the inputs where an intermediate or the result is subnormal; one that does not, under IEEE.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mishaudit.eval.evaluate import evaluate, policy_for
from mishaudit.eval.ftz import MODES as FTZ_MODES
from mishaudit.eval.inputs import Domain, input_set
from mishaudit.formats import FP32, FP64, Format, get_format, to_dtype
from mishaudit.reference.table import reference

FTZ_TRIES = 3  # the IEEE candidates also tried under each flush model


@dataclass
class Match:
    formula: str
    compute_dtype: str  # the compute format's name, and " ftz after" / " ftz before" under a flush model
    libm: str
    matches: int
    inputs: int
    ftz: str | bool = False  # the flush model (eval/ftz.py): False, "after" or "before"

    @property
    def share(self) -> float:
        return self.matches / self.inputs if self.inputs else 0.0


def same_bits(a: np.ndarray, b: np.ndarray, fmt: Format) -> np.ndarray:
    """Elementwise: a and b (float64 values of fmt) have the same encoding in fmt (NaN matches NaN)."""
    ea = to_dtype(a, fmt).view(fmt.uint)
    eb = to_dtype(b, fmt).view(fmt.uint)
    return (ea == eb) | (np.isnan(a) & np.isnan(b))


def candidates(fmt: Format, computes=None, models=None) -> list[tuple]:
    """(compute format or None, libm model) pairs to try for storage format fmt."""
    from mishaudit.eval.kernels import framework_version

    if computes is None:
        computes = [None] + [c for c in (FP32, FP64) if c.p > fmt.p]
    if models is None:
        models = ["cr", "numpy"] + (["torch"] if framework_version("torch") else [])
    return [(c, m) for c in computes for m in models]


def identify(kernel, fmt: Format, formulas: list, domain: Domain = Domain(), samples: int = 1 << 16, seed: int = 0,
             computes=None, models=None, device: str = "cpu", show: int = 8):
    """(ranking: Matches best first, differences of the best: dicts x / kernel / formulation / inputs)."""
    kernel.require()
    formulas = [f for f in formulas if f.spec == kernel.spec]  # a gradient kernel against the -grad formulations
    x = input_set(fmt, domain, samples, seed).x
    target = kernel.run(x, fmt, device)
    ranking = []
    by_id = {f.id: f for f in formulas}

    def match(f, comp, model, ftz=False) -> Match:
        y = evaluate(f, x, policy_for(fmt, comp, ftz, model)).y
        label = (comp or fmt).name + (f" ftz {ftz}" if ftz else "")
        return Match(f.id, label, model, int(same_bits(y, target, fmt).sum()), len(x), ftz)

    for f in formulas:
        for comp, model in candidates(fmt, computes, models):
            ranking.append(match(f, comp, model))
    width = {"fp16": 0, "bf16": 0, "fp32": 1, "fp64": 2}
    order = {"cr": 0, "numpy": 1, "torch": 2}
    # ties: IEEE before a flush model, the narrowest compute format first (the likeliest explanation),
    # then cr, then by name
    key = lambda m: (-m.matches, bool(m.ftz), width[m.compute_dtype.split()[0]], order.get(m.libm, 3),  # noqa: E731
                     m.formula, str(m.ftz))
    ranking.sort(key=key)
    if ranking and ranking[0].matches < len(x):  # no IEEE candidate explains it all: try flushing
        for m in ranking[:FTZ_TRIES]:
            for mode in FTZ_MODES:
                ranking.append(match(by_id[m.formula], get_format(m.compute_dtype), m.libm, mode))
        ranking.sort(key=key)
    diffs = []
    if ranking:
        best = ranking[0]
        comp = get_format(best.compute_dtype.split()[0])
        y = evaluate(by_id[best.formula], x, policy_for(fmt, comp, best.ftz, best.libm)).y
        bad = np.flatnonzero(~same_bits(y, target, fmt))[:show]
        rn = reference(x[bad], fmt, show_progress=False, spec=kernel.spec).rn if len(bad) else []
        diffs = [{"x": float(x[i]), "kernel": float(target[i]), "formulation": float(y[i]), "rn_mish": float(r)}
                 for i, r in zip(bad, rn)]
    return ranking, diffs
