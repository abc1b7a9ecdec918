"""Tune one parameter of a formulation: its error against the parameter's value, per format.

A parameter (lang/registry.py, `:mishaudit-params`) is a constant the evaluator rounds to the
working format, so the values worth trying are that format's own values: every one in the range,
or `steps` evenly spaced ones rounded to it (when there are more than MAX_OWN own values and no
`steps`, AUTO_STEPS of them). Today's default is tried as well.

Every value runs on the same inputs against the same exact reference (computed once; only the
formula is re-evaluated): fp16/bf16 every input of the domain; fp32/fp64 the seeded sample plus
the neighbours of every tried value's thresholds; given inputs (--inputs) as they are; or with
`exhaustive` every fp32 input of the domain, one sweep in which each chunk's reference serves
every value (analysis/sweep.py).

Criteria (`by`), each ranking a NaN or an infinity first: nonfinite outputs are worse than any
finite error.
    max_ulp   (nonfinite, max ulp error)               smaller is better
    mean_ulp  (nonfinite, mean ulp error)              smaller is better
    cr_frac   (nonfinite, -share correctly rounded)    smaller is better
"As good" values tie the best on the criterion exactly; the best value is the as-good one with the
smallest remaining criteria (max_ulp, mean_ulp, cr_frac in that order), then the nearest to the
default. Only values inside the range asked for compete: a default outside it is measured and shown
beside the best, never chosen as best nor counted as good.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from mishaudit.errors import UserError
from mishaudit.formats import Format, from_ordinal, round_fraction, round_to

CRITERIA = ("max_ulp", "mean_ulp", "cr_frac")
MAX_OWN = 4096
AUTO_STEPS = 257
KEEP = ("inputs", "nonfinite", "max_ulp", "mean_ulp", "p99_ulp", "percentiles", "cr_frac", "faithful_frac", "worst_x",
        "mean_abs_err", "mean_rel_err")


@dataclass
class Tuned:
    """One format's curve: `rows[i]` is the summary at `values[i]` (the working format's value)."""

    dtype: str
    compute_dtype: str
    param: str
    by: str
    values: list
    rows: list
    default: float
    tried: str  # how the values were chosen, in words
    strategy: str  # the inputs: exhaustive, sampled, given
    best: int = -1
    as_good: list = field(default_factory=list)  # indices
    lo: float = -math.inf  # the range asked for: only values in [lo, hi] compete
    hi: float = math.inf

    def key(self, i: int, by: str | None = None) -> tuple:
        r = self.rows[i]
        by = by or self.by

        def v(name):
            x = r.get(name)
            if x is None:
                return math.inf
            return -x if name == "cr_frac" else x

        return (r["nonfinite"], v(by))

    def rank(self) -> None:
        """Fill `as_good` and `best` among the values inside [lo, hi] (module docstring)."""
        inside = self.inside
        top = min(self.key(i) for i in inside)
        self.as_good = [i for i in inside if self.key(i) == top]
        rest = [c for c in CRITERIA if c != self.by]
        self.best = min(self.as_good, key=lambda i: (*[self.key(i, c) for c in rest],
                                                     abs(self.values[i] - self.default), self.values[i]))

    @property
    def inside(self) -> list:
        """Indices of the values inside the range asked for (all of them but an outside default)."""
        out = [i for i, v in enumerate(self.values) if self.lo <= v <= self.hi]
        return out or list(range(len(self.values)))

    @property
    def default_index(self) -> int:
        return self.values.index(self.default)

    @property
    def default_inside(self) -> bool:
        return self.lo <= self.default <= self.hi


def candidate_values(lo: float, hi: float, steps: int | None, fmt: Format) -> tuple[list, str]:
    """The values of `fmt` to try in [lo, hi] and how they were chosen (module docstring)."""
    from mishaudit.eval.inputs import Domain, inward

    olo, ohi = inward(Domain(lo, hi), fmt)
    own = ohi - olo + 1
    if own < 1:
        raise UserError(f"--range {lo!r}:{hi!r} holds no {fmt.name} value: widen it")
    if steps is None and own <= MAX_OWN:
        vals = from_ordinal(np.arange(olo, ohi + 1, dtype=np.int64), fmt)
        return sorted({float(v) for v in vals}), f"all {own:,} {fmt.name} values in [{lo!r}, {hi!r}]"
    n = steps or AUTO_STEPS
    with np.errstate(all="ignore"):
        vals = round_to(np.linspace(lo, hi, n), fmt)
    vals = sorted({float(v) for v in vals if math.isfinite(v)})
    why = "--steps" if steps else f"more than {MAX_OWN:,}: give --steps to choose"
    return vals, f"{len(vals):,} evenly spaced of the {own:,} {fmt.name} values in [{lo!r}, {hi!r}] ({why})"


def variants(formula, param: str, values: list) -> list:
    """The formula once per value, each with its own id (they run side by side)."""
    return [formula.with_values({param: Fraction(v)}, id=f"{formula.id}[{param}={v!r}]") for v in values]


def _eval_job(args):
    from mishaudit.eval.evaluate import evaluate
    from mishaudit.measure.metrics import errors, summarize

    forms, x, counts, ref, policy = args
    out = []
    for f in forms:
        row = summarize(errors(evaluate(f, x, policy).y, ref, policy.storage), ref, counts)
        out.append({k: row.get(k) for k in KEEP})
    return out


def _inputs(forms: list, policy, domain, samples: int, seed: int, counted):
    """(x, counts, strategy): the inputs every value runs on."""
    from mishaudit.eval.inputs import enumerate_all, formula_thresholds, sample

    fmt = policy.storage
    if counted is not None:
        return counted.x, counted.counts, "given"
    if fmt.bits == 16:
        return enumerate_all(fmt, domain).x, None, "exhaustive"
    th = sorted({t for f in forms for t in formula_thresholds(f, fmt)})
    s = sample(fmt, samples, seed, domain, th)
    return s.x, None, s.strategy


def tune_format(formula, param: str, lo: float, hi: float, steps, by: str, policy, domain, samples: int, seed: int,
                use_cache: bool = True, progress: bool = False, counted=None, exhaustive: bool = False,
                jobs: int = 0, resume: bool = False, on_sweep=None, scheduler=None) -> Tuned:
    """One format's curve and its best value (inside [lo, hi]; the default is measured beside it)."""
    from mishaudit.pool import run, workers_for
    from mishaudit.progress import phase
    from mishaudit.reference.table import reference

    fmt, work = policy.storage, policy.work
    vals, tried = candidate_values(lo, hi, steps, work)
    default = round_fraction(formula.constant(param, fmt), work)
    values = sorted(set(vals) | {default})
    forms = variants(formula, param, values)
    if exhaustive:
        from mishaudit.analysis.sweep import Sweep, run_sweep
        from mishaudit.measure.summary import summary_row

        job = run_sweep(Sweep(forms, policy, domain), jobs=jobs, resume=resume, progress=on_sweep,
                        scheduler=scheduler)
        rows = [{k: summary_row(job.accs[f.id]).get(k) for k in KEEP} for f in forms]
        strategy = "exhaustive"
    else:
        x, counts, strategy = _inputs(forms, policy, domain, samples, seed, counted)
        with phase(f"tune {fmt.name}: exact reference of {len(x):,} inputs"):
            ref = reference(x, fmt, use_cache=use_cache, show_progress=progress, spec=formula.spec)
        workers = workers_for(len(forms), jobs)
        n = min(len(forms), max(workers * 2, 32))  # enough groups for the progress bar to move
        groups = [forms[i::n] for i in range(n)]
        by_id = {}
        with phase(f"tune {fmt.name}: {len(forms):,} values of {param}", total=len(forms)) as step:
            for k, rs in run(_eval_job, [(g, x, counts, ref, policy) for g in groups], workers):
                by_id.update({f.id: r for f, r in zip(groups[k], rs)})
                step(advance=len(groups[k]))
        rows = [by_id[f.id] for f in forms]
    t = Tuned(fmt.name, work.name, param, by, values, rows, default, tried, strategy, lo=lo, hi=hi)
    t.rank()
    return t


def check_tunable(formula, param: str, by: str) -> None:
    if formula.kernel:
        raise UserError(f"{formula.id} is a framework kernel: it has no parameters to tune; give an FPCore formulation")
    if param not in formula.params:
        have = ", ".join(formula.params) or "none"
        raise UserError(f"formula {formula.id} has no parameter {param!r} (its parameters: {have}): pick one of "
                        "them with --param, or declare it in the file's :mishaudit-params")
    if by not in CRITERIA:
        raise UserError(f"--by {by!r}: use one of {', '.join(CRITERIA)}")


def parse_range(text: str) -> tuple[float, float]:
    """'LO:HI' -> (lo, hi), finite, lo <= hi: number literals (decimal, p/q, hexadecimal) within the reader's
    limits (lang/fpcore.py), rounded to the nearest binary64 (which must be finite)."""
    from mishaudit.lang import fpcore as fc

    shown = fc.abbreviate(repr(text))
    parts = text.split(":") if isinstance(text, str) else ()
    try:
        lo, hi = (fc.parse_real(p.strip()) for p in parts) if len(parts) == 2 else (None, None)
    except fc.NumberTooLarge as exc:
        fix = "give values in that range" if exc.within else f"round it to at most {fc.MAX_DIGITS} significant digits"
        raise UserError(f"--range {shown}: a value is beyond the reader's limits ({exc.limit}): {fix}") from None
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        raise UserError(f"--range {shown}: write LO:HI with finite numbers, e.g. --range 5:40")
    if lo > hi:
        raise UserError(f"--range {shown}: LO is greater than HI; write the smaller bound first")
    return lo, hi
