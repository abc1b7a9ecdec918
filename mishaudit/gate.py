"""The CI gate: thresholds x measured rows -> a verdict per limit (pure), and JUnit XML."""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree import ElementTree as ET

from .thresholds import AT_LEAST, Limit

COUNTS = ("nonfinite", "dulp_0", "dulp_1", "dulp_2", "dulp_3", "dulp_gt3")

TIGHTEN = 0.10  # a measurement this much better than its limit is listed as room to tighten


@dataclass
class Verdict:
    entry: Limit
    measure: str
    limit: float
    measured: float | None
    ok: bool
    slack: bool  # better than the limit by more than TIGHTEN

    def line(self) -> str:
        rel = ">=" if self.measure in AT_LEAST else "<="
        word = "ok" if self.ok else "FAILED"
        return f"{self.entry.label()}: {self.measure} = {_fmt(self.measured)} (limit {rel} {_fmt(self.limit)}) {word}"


def _fmt(v) -> str:
    if v is None:
        return "none"
    return repr(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{v:.6g}"


def judge(entry: Limit, row: dict) -> list[Verdict]:
    """Every limit of `entry` against the measured summary `row` (DESIGN.md's keys)."""
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
        out.append(Verdict(entry, measure, limit, float(v), bool(ok), bool(ok and slack)))
    return out


def junit_xml(verdicts: list[Verdict], seconds: float) -> bytes:
    """JUnit XML: one <testcase> per limit, a <failure> for each broken one."""
    failures = sum(not v.ok for v in verdicts)
    suite = ET.Element("testsuite", name="mishaudit check", tests=str(len(verdicts)), failures=str(failures),
                       errors="0", time=f"{seconds:.3f}")
    for v in verdicts:
        case = ET.SubElement(suite, "testcase", classname=f"mishaudit.{v.entry.formula}.{v.entry.dtype}",
                             name=f"{v.entry.label()}: {v.measure}")
        if not v.ok:
            f = ET.SubElement(case, "failure", message=v.line(), type="ThresholdExceeded")
            f.text = v.line()
    root = ET.Element("testsuites", tests=str(len(verdicts)), failures=str(failures))
    root.append(suite)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
