"""The Python API: mishaudit's commands as functions returning pandas DataFrames (for notebooks).

    import mishaudit
    df = mishaudit.compare(dtype=["fp16", "bf16"], formulas=["softplus-tanh", "exp-rational"])
    df.loc[df.max_ulp.idxmax(), ["formula", "dtype", "worst_x"]]

The frames' columns are the CLI's (output/frames.py; the `compare --format json` keys first), with nullable
dtypes; the CLI renders its tables, Markdown, CSV and JSON from these same frames. This is the one
validation layer (arguments.py): the functions take Python values (tuples for domains, arrays for
inputs, dicts for settings, 16/32/64 for dtypes) and raise mishaudit.UserError, one line naming the
argument and its CLI flag, for a bad value or a wrong type; the CLI passes its flags on unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import pandas as pd

from mishaudit import arguments as A
from mishaudit.arguments import about, said
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


def _names(v, name: str = "formulas") -> tuple:
    return A.names(name, v)


def _dirs(v) -> tuple:
    return tuple(os.fspath(d) for d in A.names("formula_dirs", v, (str, os.PathLike)))


def _flag(name: str, v) -> bool:
    import numpy as np

    if not isinstance(v, (bool, np.bool_)):
        raise UserError(f"{A.arg(name)} must be True or False, not {A._shown(v)}")
    return bool(v)


def _text(name: str, v, choices=None) -> str:
    if not isinstance(v, str):
        raise UserError(f"{A.arg(name)} must be a text{' (' + ', '.join(choices) + ')' if choices else ''}, "
                        f"not {A._shown(v)}")
    if choices is not None and v not in choices:
        raise UserError(f"{said(name, v)}: give one of {', '.join(choices)}")
    return v


def _sample_args(samples, seed) -> tuple[int, int]:
    return (A.integer("samples", samples, 1, "a positive integer"),
            A.integer("seed", seed, 0, "a non-negative integer"))


def load_formulas(*dirs, builtin: bool = True) -> dict:
    """Formula id -> Formula: the shipped formulations (unless builtin=False), then the .fpcore files
    of each folder (or file) in `dirs`."""
    from mishaudit.lang.registry import load_registry

    return load_registry(_dirs(list(dirs)), builtin=_flag("builtin", builtin))


def select_audit(dtype, formulas, formula_dirs, compute_dtype, domain, model: str, settings=()):
    """(formats, compute format, Domain, formulas, libm model) from what a user typed, `settings`
    ("NAME=VALUE", --set) applied to the formulations declaring the parameter; UserError on bad input,
    a compute format that cannot hold every value of a format (analysis/audit.py's
    eval/evaluate.py check_compute_dtype) included, and in a process that flushes subnormals (eval/ftz.py)."""
    from mishaudit.eval.evaluate import check_compute_dtype
    from mishaudit.eval.ftz import require_ieee
    from mishaudit.eval.inputs import with_spec_bounds
    from mishaudit.eval.kernels import select
    from mishaudit.eval.libm import check_model
    from mishaudit.lang.registry import apply_settings, parse_settings

    fmts = A.formats("dtype", dtype)
    require_ieee()
    comp = None
    if compute_dtype is not None:
        comps = A.formats("compute_dtype", compute_dtype)
        if len(comps) != 1:
            raise UserError(f"{A.arg('compute_dtype')} is one format here, not {len(comps)}")
        comp = comps[0]
    with about("compute_dtype"):
        for fmt in fmts:
            check_compute_dtype(fmt, comp)
    dom = A.domain(domain)
    texts = A.settings(settings)
    _text("libm", model)
    with about("libm"):
        model = check_model(model)
    reg = load_formulas(*_dirs(formula_dirs))
    with about("formulas"):
        forms = select(reg, _names(formulas))
    with about("settings"):
        forms = apply_settings(forms, parse_settings(texts))
    return fmts, comp, with_spec_bounds(dom, forms, fmts), forms, model


def check_kernel_options(impls: list, compute, ftz, device: str) -> None:
    """--compute-dtype and --ftz shape how formulations are evaluated, not kernels; --device moves torch
    kernels only."""
    kernels = [f for f in impls if f.kernel]
    if kernels and (compute is not None or ftz):
        opt = A.arg("compute_dtype") if compute is not None else A.arg("ftz")
        raise UserError(f"{opt} shapes how FPCore formulations are evaluated; kernels ({kernels[0].id}) compute as "
                        f"their framework does: drop it or audit the kernel apart")
    if device != "cpu" and not any(f.kernel and f.framework == "torch" for f in impls):
        raise UserError(f"{said('device', device)} moves torch kernels only: select one (e.g. --formula torch:mish) or drop it")


def check_sweep_options(fmts, exhaustive: bool, jobs: int, resume: bool, scheduler=None) -> None:
    """--exhaustive, --jobs, --resume and --scheduler only where they apply (UserError otherwise)."""
    if scheduler is not None:
        if not exhaustive:
            raise UserError("scheduler= (--scheduler) runs the chunks of an exhaustive sweep on a Dask cluster: add --exhaustive "
                            "(and --dtype fp32) or drop --scheduler")
        if jobs:
            raise UserError(f"{said('jobs', jobs)} sets local processes; with scheduler= (--scheduler) the cluster's workers run the "
                            "chunks: drop --jobs")
        if isinstance(scheduler, str):
            from mishaudit.cluster import check_address

            check_address(scheduler)
    if jobs and not exhaustive:
        raise UserError(f"{said('jobs', jobs)} sets the processes of an exhaustive= (--exhaustive) sweep: add --exhaustive or drop --jobs")
    if resume and not exhaustive:
        raise UserError("resume= (--resume) continues an exhaustive sweep: add --exhaustive (and --dtype fp32)")
    if exhaustive:
        other = [f.name for f in fmts if f.name != "fp32"]
        if other:
            why = "fp64 has 2^64 inputs" if "fp64" in other else "fp16 and bf16 are always exhaustive"
            raise UserError(f"exhaustive=True: --exhaustive streams every fp32 input; {why}: use it with --dtype fp32 alone "
                            f"(not {', '.join(other)})")


def given_inputs(inputs, seed: int, exhaustive: bool = False):
    """The inputs= values (eval/given.py's Given: a file, linspace:/normal: text or an array-like), None
    without; UserError where they clash."""
    if inputs is None:
        return None
    if exhaustive:
        raise UserError("inputs= (--inputs) audits the values given; exhaustive= (--exhaustive) every fp32 input: "
                        "use one of them")
    return A.given(inputs, seed)


def sweep_args(fmts, exhaustive, jobs, resume, scheduler) -> tuple[bool, int, bool]:
    """exhaustive, jobs (clamped to the cores), resume checked and applying."""
    exhaustive, resume = _flag("exhaustive", exhaustive), _flag("resume", resume)
    jobs = A.jobs(jobs)
    check_sweep_options(fmts, exhaustive, jobs, resume, scheduler)
    return exhaustive, jobs, resume


def _ftz(v):
    with about("ftz"):
        return mode_of(v)


def _sampled(fmts, exhaustive: bool) -> list:
    """The formats that draw a sample (fp32/fp64, not fp32 swept exhaustively)."""
    return [f for f in fmts if f.bits != 16 and not (exhaustive and f.name == "fp32")]


def exhaustive_samples(fmts, dom, n_formulas: int) -> int:
    """For the audits that keep every error (plot, report): --exhaustive as a sample of every fp32 value of
    the domain, which must fit in memory (arguments.py's estimate)."""
    from mishaudit.eval.inputs import inward

    check_sweep_options(fmts, True, 0, False)
    olo, ohi = inward(dom, fmts[0])
    count = max(1, ohi - olo + 1)
    A.check_memory(count, n_formulas, f"exhaustive= (--exhaustive) keeps every error to draw it: its {count:,} fp32 "
                   "inputs (narrow domain= (--domain))")
    return count


def _validated_audit(dtype, formulas, formula_dirs, compute_dtype, ftz, domain, samples, seed, libm, exhaustive,
                     jobs, resume, use_cache, progress, on_sweep, device, settings, inputs, scheduler,
                     with_formula_error: bool = True):
    """Every audit argument checked (the one sequence compare and baseline share), then the audit:
    (Audit, (samples, seed, domain, exhaustive) as validated)."""
    from mishaudit.analysis.audit import run_audit

    samples, seed = _sample_args(samples, seed)
    fmts, comp, dom, forms, model = select_audit(dtype, formulas, formula_dirs, compute_dtype, domain, libm, settings)
    ftz = _ftz(ftz)
    exhaustive, jobs, resume = sweep_args(fmts, exhaustive, jobs, resume, scheduler)
    _text("device", device)
    check_kernel_options(forms, comp, ftz, device)
    A.check_sample_options(fmts, samples, seed, inputs, exhaustive)
    given = given_inputs(inputs, seed, exhaustive)
    A.check_samples(samples, _sampled(fmts, exhaustive), len(forms), sampled=given is None)
    audit = run_audit(forms, fmts, comp, ftz, dom, samples, seed, use_cache=use_cache, progress=progress,
                      with_formula_error=with_formula_error, model=model, exhaustive=exhaustive, jobs=jobs,
                      resume=resume, on_sweep=on_sweep, device=device, given=given, scheduler=scheduler)
    return audit, (samples, seed, dom, exhaustive)


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
    audit, _ = _validated_audit(dtype, formulas, formula_dirs, compute_dtype, ftz, domain, samples, seed, libm,
                                exhaustive, jobs, resume, use_cache, progress, on_sweep, device, settings, inputs,
                                scheduler)
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
    from mishaudit.analysis.overflow import run_overflow

    samples, seed = _sample_args(samples, seed)
    fmts, comp, dom, forms, model = select_audit(dtype, formulas, formula_dirs, compute_dtype, domain, libm, settings)
    ftz = _ftz(ftz)
    exhaustive, jobs, resume = sweep_args(fmts, exhaustive, jobs, resume, scheduler)
    A.check_sample_options(fmts, samples, seed, None, exhaustive)
    A.check_samples(samples, _sampled(fmts, exhaustive), len(forms))
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
    from mishaudit.analysis.identify import identify as run
    from mishaudit.eval.evaluate import check_compute_dtype
    from mishaudit.eval.kernels import get
    from mishaudit.eval.libm import check_model

    samples, seed = _sample_args(samples, seed)
    show = A.integer("show", show, 1, "a positive integer")
    _text("kernel", kernel)
    _text("device", device)
    with about("kernel"):
        k = get(kernel)
        k.require()
    fmts, _, dom, forms, _ = select_audit(dtype, formulas, formula_dirs, None, domain, "cr", settings)
    if len(fmts) != 1:
        raise UserError(f"{A.arg('dtype')}: identify compares in one format: give one, not {len(fmts)}")
    A.check_sample_options(fmts, samples, seed, None, False)
    A.check_samples(samples, fmts, len(forms))
    if not k.supports(fmts[0]):
        raise UserError(f"kernel {k.id} does not run in {fmts[0].name}: {k.why_not.get(fmts[0].name)}")
    forms = [f for f in forms if not f.kernel]
    computes = A.formats("compute_dtype", compute_dtype) if compute_dtype not in (None, (), []) else None
    with about("compute_dtype"):
        for c in computes or ():
            check_compute_dtype(fmts[0], c)
    with about("libm"):
        models = [check_model(m) for m in _names(libm, "libm")] or None
    ranking, diffs = run(k, fmts[0], forms, dom, samples, seed, computes, models, device, show)
    df = pd.DataFrame([{"formula": m.formula, "compute_dtype": m.compute_dtype, "libm": m.libm, "matches": m.matches,
                        "inputs": m.inputs, "share": m.share} for m in ranking])
    df.attrs["differences"] = pd.DataFrame(diffs, columns=["x", "kernel", "formulation", "rn_mish"])
    df.attrs["kernel"] = k.id
    df.attrs["dtype"] = fmts[0].name
    return df


THRESHOLDS_SEARCH = (os.path.join("reports", "thresholds.toml"), "thresholds.toml")


def find_thresholds(thresholds=None) -> str:
    """thresholds= as a path; None: the current folder's reports/thresholds.toml, else its thresholds.toml."""
    if thresholds is not None:
        if not isinstance(thresholds, (str, os.PathLike)):
            raise UserError(f"{A.arg('thresholds')} must be a path (str or os.PathLike), not {A._shown(thresholds)}")
        return os.fspath(thresholds)
    for p in THRESHOLDS_SEARCH:
        if os.path.isfile(p):
            return p
    looked = " and ".join(os.path.abspath(p) for p in THRESHOLDS_SEARCH)
    raise UserError(f"no thresholds file: looked for {looked} (the defaults, in the current folder): pass "
                    "thresholds= (--thresholds FILE), or write one with `mishaudit baseline --out thresholds.toml`")


def check(thresholds=None, formula_dirs=(), use_cache: bool = True, progress: bool = False) -> pd.DataFrame:
    """One row per limit of a thresholds file: the measured value, the limit, ok, can_tighten. thresholds:
    a path; None looks for reports/thresholds.toml, then thresholds.toml, in the current folder."""
    from mishaudit.eval.ftz import require_ieee
    from mishaudit.gate.check import run_check
    from mishaudit.gate.thresholds import read_thresholds

    path = find_thresholds(thresholds)
    require_ieee()
    reg = load_formulas(*_dirs(formula_dirs))
    th = read_thresholds(path, set(reg))
    verdicts = run_check(th, reg, use_cache=_flag("use_cache", use_cache), progress=progress)
    df = to_frame([v.row() for v in verdicts], VERDICT_KEYS)
    df.attrs["verdicts"] = verdicts
    df.attrs["path"] = path
    return df


def baseline(dtype="fp16", formulas: Iterable[str] | str | None = None, *, output=None, margin: float = 0.05,
             formula_dirs=(), compute_dtype=None, ftz: bool | str = False, domain=None, samples: int = 1 << 16,
             seed: int = 0, libm: str = "cr", exhaustive: bool = False, jobs: int = 0, resume: bool = False,
             inputs=None, use_cache: bool = True, progress: bool = False, on_sweep=None, device: str = "cpu",
             settings=(), scheduler=None, command: str = "mishaudit baseline") -> str:
    """The text of a thresholds file (gate/thresholds.py) pinning the current figures loosened by `margin`
    (a fraction in [0, 1)); `output`: the file it is meant for (a relative inputs= file is written relative
    to its folder). inputs= must be a file or linspace:/normal: text here (the file names it)."""
    import numbers

    from mishaudit.eval.libm import build, numpy_dispatch
    from mishaudit.gate.thresholds import baseline_text

    if isinstance(margin, bool) or not isinstance(margin, numbers.Real) or not (0 <= margin < 1):
        raise UserError(f"margin={margin!r} (--margin {margin}): give a fraction in [0, 1), e.g. 0.05")
    if inputs is not None and not isinstance(inputs, (str, os.PathLike)):
        raise UserError("inputs= (--inputs): a thresholds file names its inputs: give a file or 'linspace:LO:HI:N' / "
                        f"'normal:MU:SIGMA:N' text, not {A._shown(inputs)} (np.save the array to a .npy file)")
    audit, (samples, seed, dom, exhaustive) = _validated_audit(
        dtype, formulas, formula_dirs, compute_dtype, ftz, domain, samples, seed, libm, exhaustive, jobs, resume,
        use_cache, progress, on_sweep, device, settings, inputs, scheduler, with_formula_error=False)
    written = None
    if inputs is not None:
        written = os.fspath(inputs)
        kind = written.partition(":")[0]
        if not (kind in ("linspace", "normal") and not os.path.exists(written)):
            base = os.path.dirname(os.path.abspath(os.fspath(output))) if output is not None else os.getcwd()
            written = os.path.relpath(os.path.abspath(written), base)
    text = baseline_text(audit.rows, float(margin), command, samples, seed, dom, numpy_dispatch(),
                         exhaustive=exhaustive, inputs=written, c_library=build("glibc") if libm == "glibc" else None)
    return text


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
    from mishaudit.analysis.tune import check_tunable, tune_format
    from mishaudit.eval.evaluate import policy_for

    if steps is not None:
        steps = A.integer("steps", steps, 2, "at least 2 (the two ends of value_range=)")
    samples, seed = _sample_args(samples, seed)
    _text("formula", formula)
    _text("param", param)
    _text("by", by)
    lo, hi = A.value_range(value_range)
    fmts, comp, dom, forms, model = select_audit(dtype, [formula], formula_dirs, compute_dtype, domain, libm, settings)
    ftz = _ftz(ftz)
    if len(forms) != 1:
        raise UserError(f"{said('formula', formula)}: tune one formulation at a time, not {len(forms)}")
    check_tunable(forms[0], param, by)
    exhaustive, jobs, resume = sweep_args(fmts, exhaustive, jobs, resume, scheduler)
    A.check_sample_options(fmts, samples, seed, inputs, exhaustive)
    given = given_inputs(inputs, seed, exhaustive)
    A.check_samples(samples, _sampled(fmts, exhaustive), 1, sampled=given is None)
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


def emit(formula: str, lang: str = "c", dtype="fp32", *, formula_dirs=()) -> str:
    """The source code of one FPCore formulation (emit/): a C99 (`c`), CUDA (`cuda`), PyTorch (`torch`)
    or numpy (`numpy`) function for format `dtype` performing exactly the evaluator's operations, each
    rounded once (c equals the evaluator under libm glibc bit for bit, numpy under numpy, torch under
    torch). UserError for an unknown formula, language or dtype, a kernel, or a primitive operation."""
    from mishaudit.emit import LANGS
    from mishaudit.emit import emit as emit_source
    from mishaudit.eval.kernels import KERNELS, select

    _text("formula", formula)
    if not isinstance(lang, str) or lang not in LANGS:
        shown = f"{lang!r} (--lang {lang})" if isinstance(lang, str) else A._shown(lang)
        raise UserError(f"lang={shown}: unknown language: give one of {', '.join(LANGS)}")
    fmts = A.formats("dtype", dtype)
    if len(fmts) != 1:
        raise UserError(f"{A.arg('dtype')} is one format here, not {len(fmts)}: emit writes one function")
    if formula in KERNELS:
        raise UserError(f"{said('formula', formula)}: a framework kernel, run as a black box: emit writes FPCore "
                        "formulations only (e.g. --formula softplus-tanh)")
    reg = load_formulas(*_dirs(formula_dirs))
    with about("formula"):
        forms = select(reg, [formula])
    if len(forms) != 1:
        raise UserError(f"{said('formula', formula)} matches {len(forms)} formulations "
                        f"({', '.join(f.id for f in forms[:4])}{', ...' if len(forms) > 4 else ''}): emit writes one")
    if not forms[0].supports(fmts[0]):
        raise UserError(f"{said('formula', formula)} is made for {', '.join(forms[0].made_for)} only "
                        f"(:mishaudit-dtype): give {A.arg('dtype')} {forms[0].made_for[0]}")
    with about("formula"):
        return emit_source(forms[0], lang, fmts[0])


def synthesize(dtype="fp16", spec: str = "mish", *, compute_dtype=None, libm: str = "cr", budget: int = 3,
               penalty: float = 256.0, tau: float = 1.0, samples: int = 1 << 18, seed: int = 0,
               ident: str | None = None, formula_dirs=(), out=None, prove: bool = True, timing: bool = True,
               rounds: int = 3, jobs: int = 0, on_sweep=None) -> pd.DataFrame:
    """The most accurate piecewise formulation of `spec` ("mish" or "mish'") found for format `dtype` under
    the evaluation model (analysis/synthesize.py): one row per regime (from_x, form, origin, calls, ops).

    `.attrs`: "fpcore" (the formula file's text, id `ident`, default mishaudit-<dtype> or
    mishaudit-grad-<dtype>), "id", "command" (the synthesize command reproducing it), "proof" (the compare
    command whose figures these are), "figures" (its audit row over every finite input: fp32 through the
    exhaustive sweep; None when prove=False), "cost" (elementary calls and operations on the costliest
    path, ns per input of its emitted C when timing and gcc), "written" (the path, with `out`).

    fp32 and fp64 choose the regimes on a sample: a proof whose max ulp exceeds `tau` adds the inputs
    around its worst input to the sample and solves again, `rounds` times at most (the figures are the
    last proof's)."""
    from mishaudit.analysis import synthesize as S
    from mishaudit.eval.evaluate import check_compute_dtype
    from mishaudit.eval.libm import check_model
    from mishaudit.files import atomic_write_all
    from mishaudit.lang.registry import load_text
    from mishaudit.lang.spec import MISH, MISH_GRAD

    fmts = A.formats("dtype", dtype)
    if len(fmts) != 1:
        raise UserError(f"{A.arg('dtype')} is one format here, not {len(fmts)}: synthesize one at a time")
    fmt = fmts[0]
    specs = {"mish": MISH, "mish'": MISH_GRAD}
    _text("spec", spec, list(specs))
    comp = None
    if compute_dtype is not None:
        comps = A.formats("compute_dtype", compute_dtype)
        if len(comps) != 1:
            raise UserError(f"{A.arg('compute_dtype')} is one format here, not {len(comps)}")
        comp = None if comps[0] is fmt else comps[0]
        with about("compute_dtype"):
            check_compute_dtype(fmt, comp)
    _text("libm", libm)
    with about("libm"):
        libm = check_model(libm)
    budget = A.integer("budget", budget, 0, "a number of elementary calls, 0 or more")
    penalty = A.number("penalty", penalty, 0.0, "a non-negative loss per branch")
    tau = A.number("tau", tau, 0.0, "a positive number of ulps", strict=True)
    samples = A.integer("samples", samples, 1024, "at least 1024 samples")
    if samples > S.MAX_SAMPLES:  # each measured input holds a loss, an ulp error and a verdict per candidate
        raise UserError(f"{said('samples', samples)}: at most {S.MAX_SAMPLES:,} (each sampled input holds about "
                        "5 KB, 13 bytes for each of some 400 candidates): give fewer")
    seed = A.integer("seed", seed, 0, "a non-negative integer")
    rounds = A.integer("rounds", rounds, 0, "a number of proofs, 0 or more")
    grad = spec == "mish'"
    ident = ident if ident is not None else f"mishaudit-{'grad-' if grad else ''}{fmt.name}"
    _text("ident", ident)
    if not ident or not all(c.isalnum() or c in "-_." for c in ident):
        raise UserError(f"{said('ident', ident)}: an id is letters, digits, '-', '_' and '.'")
    if out is not None:
        out = os.fspath(out)
        folder = os.path.dirname(os.path.abspath(out))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise UserError(f"{said('out', out)}: the folder {folder} is not a writable folder: create it or "
                            "choose another")
    reg = {k: f for k, f in load_formulas(*_dirs(formula_dirs)).items() if not S.is_synthesized(f)}
    search = S.Search(reg, specs[spec], fmt, comp, libm, budget, samples, seed, tau)
    command = S.command_line(spec, fmt, comp, libm, budget, penalty, samples, seed, tau, ident, rounds)
    res = search.solve(penalty)
    proofs = []
    for r in range(rounds + 1):
        text = S.to_fpcore(res, ident, command, specs[spec].text if grad else None)
        formula = load_text(text, out or f"<{ident}>", ident)
        figures = S.prove(formula, res.policy, jobs, on_sweep) if prove else None
        if figures is None or search.exhaustive or r == rounds or not figures["max_ulp"] > tau:
            break
        proofs.append((figures["max_ulp"], figures["worst_x"]))
        if not search.add(S.window(figures["worst_x"], fmt)):
            break
        res = search.solve(penalty)
    for j, (u, w) in enumerate(proofs, 1):
        res.notes.append(f"proof {j}: {u:.4g} ulp at x = {w!r}, above --tau {tau:g}: the {2 * S.WINDOW + 1:,} "
                         "inputs around it were added and the regimes chosen again")
    ns = S.c_time(formula, fmt) if timing and libm in ("cr", "glibc") and comp is None else None
    if out is not None:
        atomic_write_all({out: text.encode()})
    rows = []
    for j, (v, c) in enumerate(res.regimes):
        upto = res.regimes[j + 1][0] if j + 1 < len(res.regimes) else float("inf")
        rows.append({"from_x": v, "below_x": upto, "form": c.name, "origin": c.origin, "calls": c.calls,
                     "ops": c.ops})
    df = pd.DataFrame(rows)
    folder = os.path.dirname(os.path.abspath(out)) if out else "DIR"
    df.attrs.update(fpcore=text, id=ident, command=command, figures=figures, written=out, notes=res.notes,
                    cost={"calls": res.calls, "ops": res.ops, "ns_per_input": ns},
                    proof=f"mishaudit compare --dtype {fmt.name}{' --exhaustive' if fmt.name == 'fp32' else ''}"
                          f"{' --compute-dtype ' + comp.name if comp else ''}{' --libm ' + libm if libm != 'cr' else ''}"
                          f" --formulas {folder} --formula {ident}",
                    considered=res.considered, inputs=res.inputs, dtype=fmt.name, spec=spec, regimes=len(rows))
    return df


def import_model(model, out=None, *, keep_fused: bool = False, formula_dirs=()) -> pd.DataFrame:
    """The Mish of an exported model as FPCore files (graphs/importer.py): one row per Mish found
    (id, file, nodes, computes_in, input_precision, audit_dtype, same_operations, same_bits, checked,
    text); `model`
    is an .onnx file, an .mlpackage folder, an .mlmodel file or a coremltools MIL program. With `out`
    (a folder) the files are written there atomically. `.attrs["semantics"]`: what the reader chose
    (expansions, primitives); `.attrs["model"]`, `.attrs["kind"]`, `.attrs["version"]`."""
    from mishaudit.graphs import importer

    if isinstance(model, (str, os.PathLike)):
        _text("model", str(model))
    elif not hasattr(model, "functions"):
        raise UserError(f"{A.arg('model')} must be a path to an .onnx file, an .mlpackage or an .mlmodel, or a "
                        f"coremltools MIL program, not {A._shown(model)}")
    keep_fused = _flag("keep_fused", keep_fused)
    reg = load_formulas(*_dirs(formula_dirs))
    g, items = importer.import_model(model, keep_fused, reg)
    paths = importer.write(items, out) if out is not None else [None] * len(items)
    df = pd.DataFrame([{"id": it.ident, "file": p or it.file, "nodes": ", ".join(it.nodes),
                        "computes_in": ", ".join(it.precisions), "input_precision": it.source_precision,
                        "audit_dtype": {"binary16": "fp16", "bfloat16": "bf16", "binary32": "fp32",
                                        "binary64": "fp64"}[it.audit_precision],
                        "same_operations": ", ".join(it.same_operations), "same_bits": ", ".join(it.same_bits),
                        "checked": it.checked, "text": it.text} for it, p in zip(items, paths)])
    df.attrs.update(semantics=list(g.semantics), model=str(g.path), kind=g.kind, version=g.version,
                    written=out is not None)
    return df
