"""The CI gate's run: exactly the audits a thresholds file names, each limit judged (judge.py)."""

from __future__ import annotations

from mishaudit.analysis.audit import run_audit
from mishaudit.errors import UserError
from mishaudit.eval.inputs import Domain
from mishaudit.eval.kernels import select
from mishaudit.eval.libm import build, numpy_dispatch
from mishaudit.formats import get_format
from mishaudit.gate.judge import Verdict, judge
from mishaudit.gate.thresholds import Thresholds
from mishaudit.lang.registry import apply_settings, parse_settings


def dispatch_warnings(th: Thresholds) -> list[str]:
    """A sentence for every libm = "numpy" limit measured on another numpy dispatch than this machine's,
    and for every kernel limit measured with another framework build or CPU capability."""
    from mishaudit.eval.kernels import KERNELS, describe

    here = numpy_dispatch()
    out = [f"{e.label()} (line {e.line}) was measured with {e.numpy_dispatch}; this machine has {here}: numpy's "
           "kernels differ between CPUs, so this limit may pass or fail for that reason alone (libm = \"cr\" "
           "gives the same verdict everywhere)"
           for e in th.entries if e.libm == "numpy" and e.numpy_dispatch and e.numpy_dispatch != here]
    c_here = build("glibc") if any(e.libm == "glibc" for e in th.entries) else None
    out += [f"{e.label()} (line {e.line}) was measured with {e.c_library}; this machine has {c_here}: the C "
            "library's functions differ between versions and CPU variants, so this limit may pass or fail for "
            "that reason alone (libm = \"cr\" gives the same verdict everywhere)"
            for e in th.entries if e.libm == "glibc" and e.c_library and e.c_library != c_here]
    for e in th.entries:
        k = KERNELS.get(e.formula)
        if k is not None and e.framework and k.available() and describe(k.framework) != e.framework:
            out.append(f"{e.label()} (line {e.line}) was measured with {e.framework}; this machine runs "
                       f"{describe(k.framework)}: the kernel's bits may differ for that reason alone")
    return out


def _given(inputs: str, seed: int, path: str, line: int):
    """A limit's inputs (eval/given.py): a relative file is read from the thresholds file's folder."""
    import os

    from mishaudit.eval.given import parse_inputs

    kind = inputs.partition(":")[0]
    here = os.path.join(os.path.dirname(os.path.abspath(path)), inputs)
    text = inputs if os.path.isabs(inputs) or (kind in ("linspace", "normal") and not os.path.exists(here)) else here
    try:
        return parse_inputs(text, seed)
    except UserError as exc:
        raise UserError(f"{path}:{line}: inputs: {exc}") from None


def run_check(th: Thresholds, registry: dict, use_cache: bool = True, progress: bool = False) -> list[Verdict]:
    """Every limit of `th` against a fresh measurement; limits sharing an audit mode run together."""
    verdicts = []
    for mode in dict.fromkeys(e.mode for e in th.entries):
        entries = [e for e in th.entries if e.mode == mode]
        dtype, compute, ftz, dom, samples, seed, model, settings, exhaustive, inputs = mode
        fids = list(dict.fromkeys(e.formula for e in entries))
        forms = apply_settings(select(registry, fids), parse_settings(settings)) if settings else select(registry, fids)
        given = None
        if inputs is not None:
            given = _given(inputs, seed, th.path, entries[0].line)
        audit = run_audit(forms, [get_format(dtype)], get_format(compute) if compute != dtype else None,
                          ftz,
                          Domain(*dom) if dom else Domain(), samples, seed, use_cache=use_cache, progress=progress,
                          with_formula_error=False, model=model, exhaustive=exhaustive, given=given)
        rows = {r["formula"]: r for r in audit.rows}
        for e in entries:
            now = rows[e.formula].get("spec") or "mish"
            if now != e.spec:
                raise UserError(f"{th.path}:{e.line}: the limits of {e.label()} were measured against {e.spec}, but "
                                f"{e.formula} now approximates {now}: rerun `mishaudit baseline` for it")
            verdicts += judge(e, rows[e.formula])
    return verdicts
