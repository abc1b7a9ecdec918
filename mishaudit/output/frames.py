"""Result tables as pandas DataFrames, and back to plain records for the renderers.

The Python API returns these frames; the CLI renders its tables, Markdown, CSV and JSON from the
same frames. Columns have nullable dtypes (Int64, Float64, boolean, string): a missing value is
pd.NA, never a NaN standing for it, and every binary64 value is kept exactly; the special-input
columns (x, expected, got) are plain float64, where NaN and inf are values.
"""

from __future__ import annotations

import pandas as pd

from mishaudit.measure.keys import (  # noqa: F401  (the record keys, re-exported: renderers and the API read them here)
    COMPARE_JSON_KEYS,
    COMPARE_KEYS,
    CULPRIT_KEYS,
    EVENT_KEYS,
    SPECIALS_KEYS,
    VERDICT_KEYS,
)
from mishaudit.measure.metrics import BUCKETS

_STRING = {"formula", "spec", "dtype", "compute_dtype", "libm", "libm_build", "strategy", "percentiles", "node", "text", "event", "measure",
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
