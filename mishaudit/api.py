"""The Python API: mishaudit's commands as functions returning pandas DataFrames (for notebooks).

    import mishaudit
    df = mishaudit.compare(dtype=["fp16", "bf16"], formulas=["softplus-tanh", "exp-rational"])
    df.loc[df.max_ulp.idxmax(), ["formula", "dtype", "worst_x"]]

The frames' columns are the CLI's (output/frames.py; the `compare --format json` keys first), with nullable
dtypes; the CLI renders its tables, Markdown, CSV and JSON from these same frames. Bad input raises
mishaudit.UserError with the CLI's one-line message.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from mishaudit.errors import UserError
from mishaudit.eval.ftz import mode_of
from mishaudit.output.frames import (
    COMPARE_KEYS,
    CULPRIT_KEYS,
    EVENT_KEYS,
    SPECIALS_KEYS,
    VERDICT_KEYS,
    to_frame,
)


def _names(v) -> tuple:
    if v is None:
        return ()
    return (v,) if isinstance(v, str) else tuple(v)


def load_formulas(*dirs, builtin: bool = True) -> dict:
    """Formula id -> Formula: the shipped formulations (unless builtin=False), then the .fpcore files
    of each folder (or file) in `dirs`."""
    from mishaudit.lang.registry import load_registry

    return load_registry(tuple(str(d) for d in dirs), builtin=builtin)


def select_audit(dtype, formulas, formula_dirs, compute_dtype, domain, model: str, settings=()):
    """(formats, compute format, Domain, formulas, libm model) from what a user typed, `settings`
    ("NAME=VALUE", --set) applied to the formulations declaring the parameter; UserError on bad input,
    a compute format that cannot hold every value of a format (analysis/audit.py's
    check_compute_dtype) included, and in a process that flushes subnormals (eval/ftz.py)."""
    from mishaudit.analysis.audit import check_compute_dtype
    from mishaudit.eval.ftz import require_ieee
    from mishaudit.eval.inputs import parse_domain
    from mishaudit.eval.kernels import select
    from mishaudit.eval.libm import check_model
    from mishaudit.formats import get_format
    from mishaudit.lang.registry import apply_settings, parse_settings

    dtypes = _names(dtype)
    if not dtypes:
        raise UserError("no dtype: give one or more of fp16, bf16, fp32, fp64")
    require_ieee()
    fmts = list(dict.fromkeys(get_format(d) for d in dtypes))
    comp = get_format(compute_dtype) if compute_dtype else None
    for fmt in fmts:
        check_compute_dtype(fmt, comp)
    reg = load_formulas(*_names(formula_dirs))
    values = parse_settings(_names(settings))
    return (fmts, comp, parse_domain(domain), apply_settings(select(reg, _names(formulas)), values),
            check_model(model))


def check_kernel_options(impls: list, compute, ftz, device: str) -> None:
    """--compute-dtype and --ftz shape how formulations are evaluated, not kernels; --device moves torch
    kernels only."""
    kernels = [f for f in impls if f.kernel]
    if kernels and (compute is not None or ftz):
        opt = "--compute-dtype" if compute is not None else "--ftz"
        raise UserError(f"{opt} shapes how FPCore formulations are evaluated; kernels ({kernels[0].id}) compute as "
                        f"their framework does: drop {opt} or audit the kernel apart")
    if device != "cpu" and not any(f.kernel and f.framework == "torch" for f in impls):
        raise UserError(f"--device {device} moves torch kernels only: select one (e.g. --formula torch:mish) or drop it")


def check_sweep_options(fmts, exhaustive: bool, jobs: int, resume: bool, scheduler=None) -> None:
    """--exhaustive, --jobs, --resume and --scheduler only where they apply (UserError otherwise)."""
    if scheduler is not None:
        if not exhaustive:
            raise UserError("--scheduler runs the chunks of an --exhaustive sweep on a Dask cluster: add --exhaustive "
                            "(and --dtype fp32) or drop --scheduler")
        if jobs:
            raise UserError(f"--jobs {jobs} sets local processes; with --scheduler the cluster's workers run the "
                            "chunks: drop --jobs")
        if isinstance(scheduler, str):
            from mishaudit.cluster import check_address

            check_address(scheduler)
    if jobs < 0:
        raise UserError(f"--jobs {jobs}: give a number of processes >= 1 (0 means all cores)")
    if jobs and not exhaustive:
        raise UserError(f"--jobs {jobs} sets the processes of an --exhaustive sweep: add --exhaustive or drop --jobs")
    if resume and not exhaustive:
        raise UserError("--resume continues an --exhaustive sweep: add --exhaustive (and --dtype fp32)")
    if exhaustive:
        other = [f.name for f in fmts if f.name != "fp32"]
        if other:
            why = "fp64 has 2^64 inputs" if "fp64" in other else "fp16 and bf16 are always exhaustive"
            raise UserError(f"--exhaustive streams every fp32 input; {why}: use it with --dtype fp32 alone "
                            f"(not {', '.join(other)})")


def given_inputs(inputs: str | None, seed: int, exhaustive: bool = False):
    """The --inputs values (eval/given.py's Given), None without --inputs; UserError where they clash."""
    if inputs is None:
        return None
    if exhaustive:
        raise UserError("--inputs audits the values given; --exhaustive every fp32 input: use one of them")
    from mishaudit.eval.given import parse_inputs

    return parse_inputs(str(inputs), seed)


def compare(dtype="fp16", formulas: Iterable[str] | str | None = None, *, formula_dirs=(), compute_dtype=None,
            ftz: bool | str = False, domain: str | None = None, samples: int = 1 << 16, seed: int = 0, libm: str = "cr",
            exhaustive: bool = False, jobs: int = 0, resume: bool = False, use_cache: bool = True,
            progress: bool = False, on_sweep=None, device: str = "cpu", settings=(),
            inputs: str | None = None, scheduler=None) -> pd.DataFrame:
    """One row per formulation (or kernel) x format: the error against its exact spec, mish unless the
    file's :spec says otherwise (the `compare --format json` keys, and `spec`).

    dtype: a format or a list of them; formulas: ids or patterns ("*-grad"), kernels such as "torch:mish"
    included (default: every formulation of mish, and every one from formula_dirs); compute_dtype: a format
    holding every value of each dtype (UserError otherwise), the dtype itself meaning native; ftz: False,
    "after" (True: tininess after rounding, x86) or "before" (eval/ftz.py); domain: "LO:HI"; libm: "cr", "numpy" or "torch";
    exhaustive: stream every fp32 input; device: where torch kernels run; settings: "NAME=VALUE" parameter
    values (--set); inputs: audit exactly these values instead (eval/given.py: a .npy or text file,
    "linspace:LO:HI:N", "normal:MU:SIGMA:N" seeded by `seed`), rows then carry mean_abs_err and
    mean_rel_err over them; scheduler: run an exhaustive sweep on a Dask cluster (an address such as
    "tcp://host:8786", "local:N", or a distributed.Client). `.attrs["specials"]` holds the special-input checks
    (a DataFrame), `.attrs["meta"]` what produced the numbers."""
    from mishaudit.analysis.audit import run_audit

    if samples < 1:
        raise UserError(f"--samples {samples}: give a positive number of samples")
    if seed < 0:
        raise UserError(f"--seed {seed}: give a non-negative integer")
    fmts, comp, dom, forms, model = select_audit(dtype, formulas, formula_dirs, compute_dtype, domain, libm, settings)
    ftz = mode_of(ftz)
    check_sweep_options(fmts, exhaustive, jobs, resume, scheduler)
    check_kernel_options(forms, comp, ftz, device)
    given = given_inputs(inputs, seed, exhaustive)
    audit = run_audit(forms, fmts, comp, ftz, dom, samples, seed, use_cache=use_cache, progress=progress,
                      model=model, exhaustive=exhaustive, jobs=jobs, resume=resume, on_sweep=on_sweep,
                      device=device, given=given, scheduler=scheduler)
    df = to_frame(audit.rows, COMPARE_KEYS)
    df.attrs["specials"] = to_frame(audit.specials, SPECIALS_KEYS)
    df.attrs["meta"] = audit.meta
    return df


def overflow(dtype="fp16", formulas: Iterable[str] | str | None = None, *, formula_dirs=(), compute_dtype=None,
             ftz: bool | str = False, domain: str | None = None, samples: int = 1 << 16, seed: int = 0, libm: str = "cr",
             exhaustive: bool = False, jobs: int = 0, resume: bool = False,
             on_sweep=None, settings=(), scheduler=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(events, culprits): one row per formulation x format x intermediate x event, with its input
    intervals; and one row per culprit of the error attribution."""
    from mishaudit.analysis.events import run_overflow

    fmts, comp, dom, forms, model = select_audit(dtype, formulas, formula_dirs, compute_dtype, domain, libm, settings)
    ftz = mode_of(ftz)
    check_sweep_options(fmts, exhaustive, jobs, resume, scheduler)
    maps, attributions = run_overflow(forms, fmts, comp, ftz, dom, samples, seed, model, exhaustive, jobs, resume,
                                      on_sweep, scheduler)
    events = to_frame([m.as_json() for m in maps], EVENT_KEYS)
    culprits = to_frame([{"formula": a["formula"], "dtype": a["dtype"], "bad_inputs": a["bad_inputs"], **c}
                         for a in attributions for c in a["culprits"]], CULPRIT_KEYS)
    events.attrs["attributions"] = attributions
    return events, culprits


def identify(kernel: str, dtype="fp16", formulas: Iterable[str] | str | None = None, *, formula_dirs=(),
             compute_dtype=None, libm=None, domain: str | None = None, samples: int = 1 << 16, seed: int = 0,
             device: str = "cpu", show: int = 8, settings=()) -> pd.DataFrame:
    """Which formulation is this kernel? One row per (formulation, compute dtype, libm model), ranked by
    the share of inputs on which it reproduces the kernel bit for bit (analysis/identify.py);
    compute_dtype and libm narrow the candidates (a name or a list). `.attrs["differences"]`: the
    first inputs where the best candidate differs (x, kernel, formulation, rn_mish)."""
    from mishaudit.analysis.audit import check_compute_dtype
    from mishaudit.analysis.identify import identify as run
    from mishaudit.eval.kernels import get
    from mishaudit.eval.libm import check_model
    from mishaudit.formats import get_format

    k = get(kernel)
    k.require()
    fmts, _, dom, forms, _ = select_audit(dtype, formulas, formula_dirs, None, domain, "cr", settings)
    if len(fmts) != 1:
        raise UserError(f"identify compares in one format: give one --dtype, not {len(fmts)}")
    if not k.supports(fmts[0]):
        raise UserError(f"kernel {k.id} does not run in {fmts[0].name}: {k.why_not.get(fmts[0].name)}")
    forms = [f for f in forms if not f.kernel]
    computes = [get_format(c) for c in _names(compute_dtype)] or None
    for c in computes or ():
        check_compute_dtype(fmts[0], c)
    models = [check_model(m) for m in _names(libm)] or None
    ranking, diffs = run(k, fmts[0], forms, dom, samples, seed, computes, models, device, show)
    df = pd.DataFrame([{"formula": m.formula, "compute_dtype": m.compute_dtype, "libm": m.libm, "matches": m.matches,
                        "inputs": m.inputs, "share": m.share} for m in ranking])
    df.attrs["differences"] = pd.DataFrame(diffs, columns=["x", "kernel", "formulation", "rn_mish"])
    df.attrs["kernel"] = k.id
    df.attrs["dtype"] = fmts[0].name
    return df


def check(thresholds="reports/thresholds.toml", formula_dirs=(), use_cache: bool = True,
          progress: bool = False) -> pd.DataFrame:
    """One row per limit of a thresholds file: the measured value, the limit, ok, can_tighten."""
    from mishaudit.eval.ftz import require_ieee
    from mishaudit.gate.check import run_check
    from mishaudit.gate.thresholds import read_thresholds

    require_ieee()
    reg = load_formulas(*_names(formula_dirs))
    th = read_thresholds(thresholds, set(reg))
    verdicts = run_check(th, reg, use_cache=use_cache, progress=progress)
    df = to_frame([v.row() for v in verdicts], VERDICT_KEYS)
    df.attrs["verdicts"] = verdicts
    return df


TUNE_KEYS = ("formula", "param", "dtype", "compute_dtype", "value", "default", "best", "as_good", "inputs", "nonfinite",
             "max_ulp", "mean_ulp", "p99_ulp", "cr_frac", "faithful_frac", "worst_x", "mean_abs_err", "mean_rel_err")
TUNE_SUMMARY_KEYS = ("formula", "param", "dtype", "compute_dtype", "by", "tried", "strategy", "percentiles", "inputs", "best_value", "best_max_ulp",
                     "best_mean_ulp", "best_p99_ulp", "best_cr_frac", "best_nonfinite", "as_good_lo", "as_good_hi",
                     "as_good_count", "as_good_contiguous", "default_value", "default_max_ulp", "default_mean_ulp", "default_p99_ulp",
                     "default_cr_frac", "default_nonfinite", "default_as_good")


def tune(formula: str, param: str, value_range: str, dtype=("fp16", "bf16", "fp32"), *, steps: int | None = None,
         by: str = "max_ulp", formula_dirs=(), compute_dtype=None, ftz: bool | str = False, domain: str | None = None,
         samples: int = 1 << 16, seed: int = 0, libm: str = "cr", inputs: str | None = None,
         exhaustive: bool = False, jobs: int = 0, resume: bool = False, use_cache: bool = True,
         progress: bool = False, on_sweep=None, settings=(), scheduler=None) -> pd.DataFrame:
    """The error of `formula` against the value of its parameter `param` over `value_range` ("LO:HI"), per
    format (analysis/tune.py): one row per (format, value) with the summary there, and flags `default`
    (today's value), `as_good` (ties the best on `by`) and `best`. `.attrs["summary"]`: one row per
    format, the best value beside the default."""
    from mishaudit.analysis.audit import policy_for
    from mishaudit.analysis.tune import check_tunable, parse_range, tune_format

    if steps is not None and steps < 2:
        raise UserError(f"--steps {steps}: give at least 2 (the two ends of --range)")
    lo, hi = parse_range(value_range)
    fmts, comp, dom, forms, model = select_audit(dtype, [formula], formula_dirs, compute_dtype, domain, libm, settings)
    ftz = mode_of(ftz)
    if len(forms) != 1:
        raise UserError(f"--formula {formula!r}: tune one formulation at a time, not {len(forms)}")
    check_tunable(forms[0], param, by)
    check_sweep_options(fmts, exhaustive, jobs, resume, scheduler)
    given = given_inputs(inputs, seed, exhaustive)
    rows, summary = [], []
    for fmt in fmts:
        counted = None
        if given is not None:
            from mishaudit.eval.given import counted as count_given

            counted = count_given(given, fmt, dom)
        t = tune_format(forms[0], param, lo, hi, steps, by, policy_for(fmt, comp, ftz, model), dom, samples, seed,
                        use_cache, progress, counted, exhaustive, jobs, resume, on_sweep, scheduler)
        for i, (v, r) in enumerate(zip(t.values, t.rows)):
            rows.append({"formula": forms[0].id, "param": param, "dtype": t.dtype, "compute_dtype": t.compute_dtype,
                         "value": v, "default": v == t.default, "best": i == t.best, "as_good": i in t.as_good, **r})
        b, d = t.rows[t.best], t.rows[t.default_index]
        good = [t.values[i] for i in t.as_good]
        summary.append({"formula": forms[0].id, "param": param, "dtype": t.dtype, "compute_dtype": t.compute_dtype,
                        "by": by, "tried": t.tried, "strategy": t.strategy, "percentiles": b.get("percentiles"),
                        "inputs": b["inputs"],
                        "best_value": t.values[t.best],
                        **{f"best_{k}": b[k] for k in ("max_ulp", "mean_ulp", "p99_ulp", "cr_frac", "nonfinite")},
                        "as_good_lo": min(good), "as_good_hi": max(good), "as_good_count": len(good),
                        "as_good_contiguous": t.as_good == list(range(t.as_good[0], t.as_good[-1] + 1)),
                        "default_value": t.default,
                        **{f"default_{k}": d[k] for k in ("max_ulp", "mean_ulp", "p99_ulp", "cr_frac", "nonfinite")},
                        "default_as_good": t.default_index in t.as_good})
    df = to_frame(rows, TUNE_KEYS)
    df.attrs["summary"] = to_frame(summary, TUNE_SUMMARY_KEYS)
    return df
