"""The keys of the result records, in column order: what an audit row, a special-input check, an event
map, a culprit and a verdict hold. The producers (analysis/, gate/) fill them; output/frames.py
types them as DataFrame columns and the renderers show them."""

from __future__ import annotations

from mishaudit.measure.metrics import BUCKETS

COMPARE_JSON_KEYS = (  # the `compare --format json` contract (stable keys: scripts rely on them)
    "formula", "dtype", "compute_dtype", "ftz", "strategy", "inputs", "max_ulp", "mean_ulp", "median_ulp",
    "p99_ulp", "worst_x", "worst_y", "worst_ref", "cr_frac", "faithful_frac", "max_abs_err", "max_rel_err",
    "mean_bits", "max_bits", "nonfinite", "signed_zero_mismatch", "max_formula_rel_err",
)
COMPARE_KEYS = COMPARE_JSON_KEYS + ("spec", "libm", "implementation") + BUCKETS + (
    "formula_ulp", "formula_ulp_worst_x", "formula_exact", "formula_err_worst_x", "formula_err_undecided",
    "specials_wrong", "mean_abs_err", "mean_rel_err", "params", "ulp_overflow", "percentiles",
    "libm_build")  # what the libm model's bits depend on here (eval/libm.py build: C library, numpy dispatch)
SPECIALS_KEYS = ("formula", "dtype", "x", "expected", "got", "ok")
EVENT_KEYS = ("formula", "dtype", "compute_dtype", "ftz", "node", "event", "intervals", "count", "harmful",
              "harmful_intervals", "enumerated")
CULPRIT_KEYS = ("formula", "dtype", "bad_inputs", "node", "text", "inputs", "max_local_bits", "regions")
VERDICT_KEYS = ("formula", "dtype", "compute_dtype", "ftz", "libm", "domain", "measure", "measured", "limit", "ok",
                "can_tighten")
