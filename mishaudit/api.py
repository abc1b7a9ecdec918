"""The Python API: mishaudit's commands as functions returning pandas DataFrames (for notebooks).

    import mishaudit
    df = mishaudit.compare(dtype=["fp16", "bf16"], formulas=["softplus-tanh", "exp-rational"])
    df.loc[df.max_ulp.idxmax(), ["formula", "dtype", "worst_x"]]

The frames' columns are the CLI's (output/frames.py; DESIGN.md's JSON keys first), with nullable
dtypes; the CLI renders its tables, Markdown, CSV and JSON from these same frames. Bad input raises
mishaudit.UserError with the CLI's one-line message.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from mishaudit.errors import UserError
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


def select_audit(dtype, formulas, formula_dirs, compute_dtype, domain, model: str):
    """(formats, compute format, Domain, formulas, libm model) from what a user typed; UserError on bad input."""
    from mishaudit.eval.inputs import parse_domain
    from mishaudit.eval.kernels import select
    from mishaudit.eval.libm import check_model
    from mishaudit.formats import get_format

    dtypes = _names(dtype)
    if not dtypes:
        raise UserError("no dtype: give one or more of fp16, bf16, fp32, fp64")
    fmts = list(dict.fromkeys(get_format(d) for d in dtypes))
    comp = get_format(compute_dtype) if compute_dtype else None
    reg = load_formulas(*_names(formula_dirs))
    return fmts, comp, parse_domain(domain), select(reg, _names(formulas)), check_model(model)


def check_kernel_options(impls: list, compute, ftz: bool, device: str) -> None:
    """--compute-dtype and --ftz shape how formulations are evaluated, not kernels; --device moves torch
    kernels only."""
    kernels = [f for f in impls if f.kernel]
    if kernels and (compute is not None or ftz):
        opt = "--compute-dtype" if compute is not None else "--ftz"
        raise UserError(f"{opt} shapes how FPCore formulations are evaluated; kernels ({kernels[0].id}) compute as "
                        f"their framework does: drop {opt} or audit the kernel apart")
    if device != "cpu" and not any(f.kernel and f.framework == "torch" for f in impls):
        raise UserError(f"--device {device} moves torch kernels only: select one (e.g. --formula torch:mish) or drop it")


def check_sweep_options(fmts, exhaustive: bool, jobs: int, resume: bool) -> None:
    """--exhaustive, --jobs and --resume only where they apply (UserError otherwise)."""
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


def compare(dtype="fp16", formulas: Iterable[str] | str | None = None, *, formula_dirs=(), compute_dtype=None,
            ftz: bool = False, domain: str | None = None, samples: int = 1 << 16, seed: int = 0, libm: str = "cr",
            exhaustive: bool = False, jobs: int = 0, resume: bool = False, use_cache: bool = True,
            progress: bool = False, on_sweep=None, device: str = "cpu") -> pd.DataFrame:
    """One row per formulation (or kernel) x format: the error against its exact spec, mish unless the
    file's :spec says otherwise (DESIGN.md's keys, and `spec`).

    dtype: a format or a list of them; formulas: ids or patterns ("*-grad"), kernels such as "torch:mish"
    included (default: every formulation of mish, and every one from formula_dirs); domain: "LO:HI"; libm: "cr", "numpy" or "torch";
    exhaustive: stream every fp32 input; device: where torch kernels run. `.attrs["specials"]` holds the special-input checks
    (a DataFrame), `.attrs["meta"]` what produced the numbers."""
    from mishaudit.analysis.audit import run_audit

    if samples < 1:
        raise UserError(f"--samples {samples}: give a positive number of samples")
    if seed < 0:
        raise UserError(f"--seed {seed}: give a non-negative integer")
    fmts, comp, dom, forms, model = select_audit(dtype, formulas, formula_dirs, compute_dtype, domain, libm)
    check_sweep_options(fmts, exhaustive, jobs, resume)
    check_kernel_options(forms, comp, ftz, device)
    audit = run_audit(forms, fmts, comp, ftz, dom, samples, seed, use_cache=use_cache, progress=progress,
                      model=model, exhaustive=exhaustive, jobs=jobs, resume=resume, on_sweep=on_sweep,
                      device=device)
    df = to_frame(audit.rows, COMPARE_KEYS)
    df.attrs["specials"] = to_frame(audit.specials, SPECIALS_KEYS)
    df.attrs["meta"] = audit.meta
    return df


def overflow(dtype="fp16", formulas: Iterable[str] | str | None = None, *, formula_dirs=(), compute_dtype=None,
             ftz: bool = False, domain: str | None = None, samples: int = 1 << 16, seed: int = 0, libm: str = "cr",
             exhaustive: bool = False, jobs: int = 0, resume: bool = False,
             on_sweep=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(events, culprits): one row per formulation x format x intermediate x event, with its input
    intervals; and one row per culprit of the error attribution."""
    from mishaudit.analysis.events import run_overflow

    fmts, comp, dom, forms, model = select_audit(dtype, formulas, formula_dirs, compute_dtype, domain, libm)
    check_sweep_options(fmts, exhaustive, jobs, resume)
    maps, attributions = run_overflow(forms, fmts, comp, ftz, dom, samples, seed, model, exhaustive, jobs, resume,
                                      on_sweep)
    events = to_frame([m.as_json() for m in maps], EVENT_KEYS)
    culprits = to_frame([{"formula": a["formula"], "dtype": a["dtype"], "bad_inputs": a["bad_inputs"], **c}
                         for a in attributions for c in a["culprits"]], CULPRIT_KEYS)
    events.attrs["attributions"] = attributions
    return events, culprits


def identify(kernel: str, dtype="fp16", formulas: Iterable[str] | str | None = None, *, formula_dirs=(),
             compute_dtype=None, libm=None, domain: str | None = None, samples: int = 1 << 16, seed: int = 0,
             device: str = "cpu", show: int = 8) -> pd.DataFrame:
    """Which formulation is this kernel? One row per (formulation, compute dtype, libm model), ranked by
    the share of inputs on which it reproduces the kernel bit for bit (analysis/identify.py);
    compute_dtype and libm narrow the candidates (a name or a list). `.attrs["differences"]`: the
    first inputs where the best candidate differs (x, kernel, formulation, rn_mish)."""
    from mishaudit.analysis.identify import identify as run
    from mishaudit.eval.kernels import get
    from mishaudit.eval.libm import check_model
    from mishaudit.formats import get_format

    k = get(kernel)
    k.require()
    fmts, _, dom, forms, _ = select_audit(dtype, formulas, formula_dirs, None, domain, "cr")
    if len(fmts) != 1:
        raise UserError(f"identify compares in one format: give one --dtype, not {len(fmts)}")
    if not k.supports(fmts[0]):
        raise UserError(f"kernel {k.id} does not run in {fmts[0].name}: {k.why_not.get(fmts[0].name)}")
    forms = [f for f in forms if not f.kernel]
    computes = [get_format(c) for c in _names(compute_dtype)] or None
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
    from mishaudit.gate.check import run_check
    from mishaudit.gate.thresholds import read_thresholds

    reg = load_formulas(*_names(formula_dirs))
    th = read_thresholds(thresholds, set(reg))
    verdicts = run_check(th, reg, use_cache=use_cache, progress=progress)
    df = to_frame([v.row() for v in verdicts], VERDICT_KEYS)
    df.attrs["verdicts"] = verdicts
    return df
