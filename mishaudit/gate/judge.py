"""The CI gate's judgement: thresholds x measured rows -> a verdict per limit (pure)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from mishaudit.gate.thresholds import AT_LEAST, Limit

COUNTS = ("nonfinite", "ulp_overflow", "dulp_0", "dulp_1", "dulp_2", "dulp_3", "dulp_gt3")

TIGHTEN = 0.10  # a measurement this much better than its limit is listed as room to tighten


@dataclass
class Verdict:
    entry: Limit
    measure: str
    limit: float
    measured: float | None
    ok: bool
    slack: bool  # better than the limit by more than TIGHTEN
    bound: bool = False  # the measured value is an upper bound (a percentile streamed by the sweep)

    def row(self) -> dict:
        """The verdict as a record (measure/keys.py's VERDICT_KEYS)."""
        e = self.entry
        return {"formula": e.formula, "dtype": e.dtype, "compute_dtype": e.compute_dtype, "ftz": e.ftz,
                "libm": e.libm, "domain": list(e.domain) if e.domain else None, "measure": self.measure,
                "measured": self.measured, "limit": self.limit, "ok": self.ok, "can_tighten": self.slack}

    def line(self) -> str:
        rel = ">=" if self.measure in AT_LEAST else "<="
        word = "ok" if self.ok else "FAILED"
        what = f"{self.measure} <= {fmt_value(self.measured)} (an upper bound)" if self.bound else \
            f"{self.measure} = {fmt_value(self.measured)}"
        return f"{self.entry.label()}: {what} (limit {rel} {fmt_value(self.limit)}) {word}"


def fmt_value(v) -> str:
    """A measured value or limit as the gate prints it: an integer as such, else 6 significant digits."""
    if v is None:
        return "none"
    if math.isinf(v):
        return "inf"
    return repr(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{v:.6g}"


def judge(entry: Limit, row: dict) -> list[Verdict]:
    """Every limit of `entry` against the measured summary `row` (the `compare --format json` keys, output/frames.py)."""
    out = []
    for measure, limit in entry.limits:
        v = row.get(measure)
        if v is None:  # no finite output at all: every limit on the statistics fails
            out.append(Verdict(entry, measure, limit, None, False, False))
            continue
        if measure == "cr_frac":  # room is measured in the share of inputs not correctly rounded
            ok, slack = v >= limit, (1 - v) < (1 - limit) * (1 - TIGHTEN)
        elif measure in AT_LEAST:
            ok, slack = v >= limit, v > limit * (1 + TIGHTEN)
        else:
            ok, slack = v <= limit, v < limit * (1 - TIGHTEN)
            if measure in COUNTS:
                slack = slack and limit - v >= 2
        bound = measure in ("median_ulp", "p99_ulp") and row.get("percentiles") == "bound"
        out.append(Verdict(entry, measure, limit, float(v), bool(ok), bool(ok and slack), bound))
    return out
