"""Result tables as pandas DataFrames, and back to plain records for the renderers.

The Python API returns these frames; the CLI renders its tables, Markdown, CSV and JSON from the
same frames. Columns have nullable dtypes (Int64, Float64, boolean, string): a missing value is
pd.NA, never a NaN standing for it, and every binary64 value is kept exactly; the special-input
columns (x, expected, got) are plain float64, where NaN and inf are values.
"""

from __future__ import annotations

import pandas as pd

from mishaudit.measure.metrics import BUCKETS

COMPARE_JSON_KEYS = (  # the `compare --format json` contract (stable keys: scripts rely on them)
    "formula", "dtype", "compute_dtype", "ftz", "strategy", "inputs", "max_ulp", "mean_ulp", "median_ulp",
    "p99_ulp", "worst_x", "worst_y", "worst_ref", "cr_frac", "faithful_frac", "max_abs_err", "max_rel_err",
    "mean_bits", "max_bits", "nonfinite", "signed_zero_mismatch", "max_formula_rel_err",
)
COMPARE_KEYS = COMPARE_JSON_KEYS + ("spec", "libm", "implementation") + BUCKETS + (
    "formula_ulp", "formula_ulp_worst_x", "formula_exact", "formula_err_worst_x", "formula_err_undecided",
    "specials_wrong", "mean_abs_err", "mean_rel_err", "params", "ulp_overflow", "percentiles")
SPECIALS_KEYS = ("formula", "dtype", "x", "expected", "got", "ok")
EVENT_KEYS = ("formula", "dtype", "compute_dtype", "ftz", "node", "event", "intervals", "count", "harmful",
              "harmful_intervals", "enumerated")
CULPRIT_KEYS = ("formula", "dtype", "bad_inputs", "node", "text", "inputs", "max_local_bits", "regions")
VERDICT_KEYS = ("formula", "dtype", "compute_dtype", "ftz", "libm", "domain", "measure", "measured", "limit", "ok",
                "can_tighten")

_STRING = {"formula", "spec", "dtype", "compute_dtype", "libm", "strategy", "percentiles", "node", "text", "event", "measure",
           "implementation", "params", "param", "by", "tried"}
_BOOL = {"formula_exact", "ok", "harmful", "enumerated", "can_tighten", "default", "best", "as_good",
         "default_as_good", "as_good_contiguous"}
_INT = {"inputs", "nonfinite", "ulp_overflow", "signed_zero_mismatch", *BUCKETS, "formula_err_undecided", "specials_wrong", "count",
        "bad_inputs", "best_nonfinite", "default_nonfinite", "as_good_count"}
_OBJECT = {"intervals", "harmful_intervals", "regions", "domain",  # lists
           "ftz"}  # False, or the flush mode "after" / "before" (eval/ftz.py)
_IEEE = {"x", "expected", "got"}  # special inputs and outputs: NaN and infinities are values here


def _dtype(col: str) -> str:
    if col in _STRING:
        return "string"
    if col in _BOOL:
        return "boolean"
    if col in _INT:
        return "Int64"
    if col in _OBJECT:
        return "object"
    if col in _IEEE:
        return "float64"
    return "Float64"


def to_frame(rows: list[dict], columns: tuple) -> pd.DataFrame:
    """rows (dicts, None for missing) as a DataFrame with the given columns, in order, typed."""
    df = pd.DataFrame.from_records([{k: r.get(k) for k in columns} for r in rows], columns=list(columns))
    return df.astype({c: _dtype(c) for c in columns})


def _plain(v):
    if isinstance(v, (list, tuple, dict)):
        return v
    if v is pd.NA or v is None:
        return None
    return v.item() if hasattr(v, "item") else v


def records(df: pd.DataFrame) -> list[dict]:
    """The frame's rows as dicts of plain Python values (None where missing)."""
    cols = list(df.columns)
    return [dict(zip(cols, (_plain(v) for v in row))) for row in df.itertuples(index=False, name=None)]
