"""One audit: formulas x formats -> summary rows and special-input checks (no I/O but the cache)."""

from __future__ import annotations

import math
import platform
import sys
from dataclasses import dataclass, field

import numpy as np

from . import __version__
from .evaluate import Policy, evaluate
from .exact import formula_errors
from .formats import Format
from .inputs import SPECIALS, Domain, expected_special, input_set
from .metrics import errors, summarize
from .reference import reference


@dataclass
class Audit:
    rows: list = field(default_factory=list)  # one dict per formula x format (DESIGN.md's JSON contract)
    specials: list = field(default_factory=list)  # dicts: formula, dtype, x, expected, got, ok
    meta: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)  # (formula id, dtype) -> metrics.Errors, when kept


def _same(a: float, b: float) -> bool:
    """Equal as floats including NaN == NaN and the sign of zero."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1, a) == math.copysign(1, b)


def check_specials(formula, policy: Policy) -> list[dict]:
    x = np.array(SPECIALS)
    y = evaluate(formula, x, policy).y
    return [
        {"formula": formula.id, "dtype": policy.storage.name, "x": xi, "expected": expected_special(xi),
         "got": float(yi), "ok": _same(float(yi), expected_special(xi))}
        for xi, yi in zip(SPECIALS, y)
    ]


def environment() -> dict:
    """What produced the numbers: library versions and the CPU's SIMD features."""
    import ml_dtypes
    import mpmath

    try:
        from numpy._core._multiarray_umath import __cpu_features__ as feats
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__ as feats
    return {
        "mishaudit": __version__, "numpy": np.__version__, "ml_dtypes": ml_dtypes.__version__,
        "mpmath": mpmath.__version__, "python": sys.version.split()[0], "machine": platform.machine(),
        "cpu_simd": sorted(k for k, v in feats.items() if v),
        "elementary_functions": "fp16/bf16 exp, log, log1p, expm1, tanh, pow are numpy binary32 kernels rounded once",
    }


def run_audit(formulas: list, fmts: list[Format], compute: Format | None, ftz: bool, domain: Domain,
              samples: int, seed: int, use_cache: bool = True, progress: bool = True,
              with_formula_error: bool = True, keep_errors: bool = False) -> Audit:
    """Evaluate every formula on every format's input set against the reference."""
    out = Audit(meta=environment())
    for fmt in fmts:
        inp = input_set(fmt, domain, samples, seed, formulas)
        ref = reference(inp.x, fmt, use_cache=use_cache, show_progress=progress)
        out.meta.setdefault("reference", {})[fmt.name] = {
            "inputs": len(inp.x), "computed_now": ref.computed, "mpmath_fallback": ref.fallback}
        policy = Policy(fmt, compute if compute and compute != fmt else None, ftz)
        ferr = formula_errors(formulas, inp.x, fmt, ref.r64, use_cache=use_cache) if with_formula_error else {}
        for f in formulas:
            ev = evaluate(f, inp.x, policy)
            row = {"formula": f.id, "dtype": fmt.name, "compute_dtype": (policy.compute or fmt).name,
                   "ftz": ftz, "strategy": inp.strategy}
            err = errors(ev.y, ref, fmt)
            row.update(summarize(err, ref))
            if keep_errors:
                out.errors[(f.id, fmt.name)] = err
            fe = ferr.get(f.id)
            row["max_formula_rel_err"] = fe.max_rel if fe and math.isfinite(fe.max_rel) else None
            row["formula_err_worst_x"] = fe.worst_x if fe else None
            row["formula_err_undecided"] = fe.undecided if fe else None
            sp = check_specials(f, policy)
            row["specials_wrong"] = sum(not s["ok"] for s in sp)
            out.specials += sp
            out.rows.append(row)
    return out
