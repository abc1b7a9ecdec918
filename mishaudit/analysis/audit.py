"""One audit: formulas x formats -> summary rows and special-input checks (no I/O but the cache)."""

from __future__ import annotations

import math
import platform
import sys
from dataclasses import dataclass, field

import numpy as np

from mishaudit.analysis import row_cache
from mishaudit.eval import libm
from mishaudit.eval.evaluate import (
    Policy,
    evaluate,
    policy_for,
)
from mishaudit.eval.inputs import SPECIALS, Domain, InputSet, input_set
from mishaudit.formats import Format
from mishaudit.measure.approx import approx_error
from mishaudit.measure.keys import COMPARE_KEYS
from mishaudit.measure.metrics import errors, summarize
from mishaudit.reference.table import reference
from mishaudit.version import __version__


@dataclass
class Audit:
    rows: list = field(default_factory=list)  # one dict per formula x format (measure/keys.py's COMPARE_KEYS)
    specials: list = field(default_factory=list)  # dicts: formula, dtype, x, expected, got, ok
    meta: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)  # (formula id, dtype) -> metrics.Errors, when kept


def _same(a: float, b: float) -> bool:
    """Equal as floats including NaN == NaN and the sign of zero."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1, a) == math.copysign(1, b)


def check_specials(formula, policy: Policy) -> list[dict]:
    """The outputs at +-0, +-inf and NaN against the spec's values there (lang/spec.py; a spec other
    than mish and mish' is checked at NaN only)."""
    x = np.array(SPECIALS)
    y = evaluate(formula, x, policy).y
    out = []
    for xi, yi in zip(SPECIALS, y):
        want = formula.spec.special(xi, policy.storage)
        if want is not None:
            out.append({"formula": formula.id, "dtype": policy.storage.name, "x": xi, "expected": want,
                        "got": float(yi), "ok": _same(float(yi), want)})
    return out


def environment(model: str = "cr", impls=()) -> dict:
    """What produced the numbers: the libm model, library versions, the CPU's SIMD features and the
    frameworks of any kernel audited."""
    import gmpy2
    import ml_dtypes
    import mpmath

    try:
        from numpy._core._multiarray_umath import __cpu_features__ as feats
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__ as feats
    return {
        "mishaudit": __version__, "numpy": np.__version__, "ml_dtypes": ml_dtypes.__version__,
        "mpmath": mpmath.__version__, "gmpy2": gmpy2.version(), "mpfr": gmpy2.mpfr_version(),
        "python": sys.version.split()[0], "machine": platform.machine(),
        "cpu_simd": sorted(k for k, v in feats.items() if v),
        "libm": model, "numpy_dispatch": libm.numpy_dispatch(),
        "elementary_functions": libm.describe(model),
        "frameworks": sorted({_framework(f) for f in impls if f.kernel}),
    }


def _framework(impl) -> str:
    from mishaudit.eval.kernels import describe

    return describe(impl.framework)


def unsupported_row(impl, fmt: Format) -> dict:
    """A kernel's row for a format its framework does not run it in (or a formulation's for a format it is
    not made for, :mishaudit-dtype): reported, not an error."""
    row = dict.fromkeys(COMPARE_KEYS)
    row.update(formula=impl.id, spec=impl.spec.name, dtype=fmt.name, compute_dtype=fmt.name, ftz=False,
               libm="kernel" if impl.kernel else None,
               strategy="unsupported", inputs=0, implementation=impl.why_not.get(fmt.name, "unsupported"))
    return row


def _input_sets(formulas: list, fmt: Format, domain: Domain, samples: int, seed: int, given=None):
    """Per formula its input set (the given inputs, eval/given.py's Counted, when there are), and the
    union of all (as binary64 bit patterns, sorted)."""
    if given is not None:
        sets = {f.id: InputSet(given.x, "inputs", fmt) for f in formulas}
    elif fmt.bits == 16:  # every value of the format, whatever the formulation (input_set): enumerated once
        one = input_set(fmt, domain, samples, seed)
        sets = {f.id: InputSet(one.x.copy(), one.strategy, fmt) for f in formulas}
        return sets, np.unique(np.ascontiguousarray(one.x).view(np.uint64))
    else:
        sets = {f.id: input_set(fmt, domain, samples, seed, f) for f in formulas}
    bits = np.unique(np.concatenate([np.ascontiguousarray(s.x).view(np.uint64) for s in sets.values()]))
    return sets, bits


def run_audit(formulas: list, fmts: list[Format], compute: Format | None, ftz: bool, domain: Domain,
              samples: int, seed: int, use_cache: bool = True, progress: bool = True,
              with_formula_error: bool = True, keep_errors: bool = False, model: str = "cr",
              exhaustive: bool = False, jobs: int = 0, resume: bool = False, on_sweep=None,
              device: str = "cpu", given=None, scheduler=None) -> Audit:
    """Evaluate every formulation (and kernel) on every format's input set against the reference; with
    `exhaustive`, fp32 streams every input of the domain (analysis/sweep.py; `on_sweep(done, total,
    inputs)` hears of its progress; `scheduler` runs it on a Dask cluster); with `given` (eval/given.py's Given), exactly those inputs, each
    counted as often as it occurs. A kernel in a format its framework lacks gets an 'unsupported'
    row."""
    out = Audit(meta=environment(model, formulas))
    for fmt in fmts:
        runnable = [f for f in formulas if f.supports(fmt)]
        out.rows += [unsupported_row(f, fmt) for f in formulas if f not in runnable]
        policy = policy_for(fmt, compute, ftz, model, device)
        if not runnable:
            continue
        if exhaustive and fmt.name == "fp32":
            out.rows += _exhaustive_rows(runnable, policy, domain, jobs, resume, on_sweep, out, scheduler)
        else:
            counted = None
            if given is not None:
                from mishaudit.eval.given import counted as count_given

                counted = count_given(given, fmt, domain)
                out.meta.setdefault("inputs", {"source": given.source, "given": len(given.values)})[fmt.name] = {
                    "audited": counted.total, "distinct": len(counted.x), "nonfinite_dropped": counted.dropped,
                    "outside_domain": len(given.values) - counted.total - counted.dropped}
            _audit_format(out, runnable, policy, domain, samples, seed, use_cache, progress, with_formula_error,
                          keep_errors, counted)
    return out


def _audit_format(out: Audit, formulas: list, policy: Policy, domain: Domain, samples: int, seed: int,
                  use_cache: bool, progress: bool, with_formula_error: bool, keep_errors: bool,
                  counted=None) -> None:
    """The rows of one format, on each formulation's own input set (or on the given inputs, counted)."""
    fmt = policy.storage
    refs, sets = {}, {}
    keys, cached = {}, {}  # formula id -> (path, key) of its cached row; -> (row, specials) found there
    for spec in dict.fromkeys(f.spec for f in formulas):  # one reference per spec, on the union of its inputs
        group = [f for f in formulas if f.spec == spec]
        gsets, bits = _input_sets(group, fmt, domain, samples, seed, counted)
        sets.update(gsets)
        if use_cache and not keep_errors and counted is None:  # analysis/row_cache.py
            for f in group:
                if not f.kernel:
                    keys[f.id] = row_cache.place(f, policy, domain, samples, seed, gsets[f.id], with_formula_error)
                    hit = row_cache.load(*keys[f.id])
                    if hit is not None:
                        cached[f.id] = hit
        todo = [f for f in group if f.id not in cached]
        name = fmt.name if spec.key == "mish" else f"{fmt.name} {spec.name}"
        if not todo:  # every row cached: nothing of the reference is needed (nor computed)
            out.meta.setdefault("reference", {})[name] = {"inputs": len(bits), "computed_now": 0, "mpfr_fallback": 0}
            continue
        ref_all = reference(bits.view(np.float64), fmt, use_cache=use_cache, show_progress=progress, spec=spec)
        out.meta.setdefault("reference", {})[name] = {
            "inputs": len(bits), "computed_now": ref_all.computed, "mpfr_fallback": ref_all.fallback}
        refs.update({f.id: ref_all.take(np.searchsorted(bits, np.ascontiguousarray(gsets[f.id].x).view(np.uint64)))
                     for f in todo})
    todo = [f for f in formulas if f.id not in cached]
    approx = approx_errors(todo, sets, refs, fmt) if with_formula_error and todo else {}
    for f in formulas:
        if f.id in cached:
            row, sp = cached[f.id]
            out.specials += sp
            out.rows.append(row)
            continue
        inp, ref = sets[f.id], refs[f.id]
        row = {"formula": f.id, "spec": f.spec.name, "dtype": fmt.name, "compute_dtype": policy.work.name,
               "ftz": policy.ftz, "libm": policy.libm, "strategy": inp.strategy,
               "libm_build": None if f.kernel else libm.build(policy.libm), **implementation(f)}
        err = errors(evaluate(f, inp.x, policy).y, ref, fmt)
        row.update(summarize(err, ref, None if counted is None else counted.counts))
        if keep_errors:
            out.errors[(f.id, fmt.name)] = err
        row.update(approx_row(approx.get(f.id)))
        sp = check_specials(f, policy)
        row["specials_wrong"] = sum(not s["ok"] for s in sp)
        out.specials += sp
        out.rows.append(row)
        if f.id in keys:
            row_cache.save(*keys[f.id], row, sp)


def implementation(impl) -> dict:
    """The row keys that tell a kernel from a formulation: its libm, compute dtype and framework."""
    if not impl.kernel:
        return {"implementation": "fpcore", "params": impl.param_text()}
    from mishaudit.eval.kernels import describe

    return {"implementation": describe(impl.framework), "libm": "kernel"}


def _exhaustive_rows(formulas, policy: Policy, domain: Domain, jobs: int, resume: bool, on_sweep, audit,
                     scheduler=None) -> list:
    """Stream every fp32 input of the domain into the compare rows (no approximation error: it would
    cost another pass over every input)."""
    import time

    from mishaudit.analysis.sweep import Sweep, run_sweep
    from mishaudit.measure.summary import summary_row

    t0 = time.perf_counter()
    job = run_sweep(Sweep(formulas, policy, domain), jobs=jobs, resume=resume, progress=on_sweep,
                    scheduler=scheduler)
    merged = job.accs
    audit.meta.setdefault("reference", {})["fp32"] = {"inputs": int(next(iter(merged.values())).counts[0]),
                                                      "mpfr_fallback": job.fallback,
                                                      "seconds": time.perf_counter() - t0}
    rows = []
    for f in formulas:
        row = {"formula": f.id, "spec": f.spec.name, "dtype": "fp32", "compute_dtype": policy.work.name,
               "ftz": policy.ftz, "libm": policy.libm, "strategy": "exhaustive",
               "libm_build": None if f.kernel else libm.build(policy.libm), **implementation(f)}
        row.update(summary_row(merged[f.id]))
        row.update(approx_row(None))
        sp = check_specials(f, policy)
        row["specials_wrong"] = sum(not s["ok"] for s in sp)
        audit.specials += sp
        rows.append(row)
    return rows


def _approx_job(args):
    formula, x, fmt, ref = args
    return formula.id, approx_error(formula, x, fmt, ref)


def approx_errors(formulas: list, sets: dict, refs: dict, fmt: Format) -> dict:
    """formula id -> ApproxError, the formulations spread over the cores (each is independent)."""
    from mishaudit.pool import run_all, workers_for

    jobs = [(f, sets[f.id].x, fmt, refs[f.id]) for f in formulas if not f.kernel]
    return dict(run_all(_approx_job, jobs, workers_for(len(jobs))))


def approx_row(ae) -> dict:
    """The approximation-error keys of a row (None when not computed)."""
    if ae is None:
        return {"formula_ulp": None, "formula_ulp_worst_x": None, "formula_exact": None, "max_formula_rel_err": None,
                "formula_err_worst_x": None, "formula_err_undecided": None}
    return {"formula_ulp": ae.max_ulp, "formula_ulp_worst_x": ae.worst_x, "formula_exact": ae.exact,
            "max_formula_rel_err": ae.max_rel, "formula_err_worst_x": ae.rel_worst_x,
            "formula_err_undecided": ae.undecided}
