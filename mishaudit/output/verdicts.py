"""Render the gate's verdicts: a rich table, Markdown, CSV, JSON, and JUnit XML (one test case per limit)."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from mishaudit.gate.judge import Verdict, fmt_value
from mishaudit.gate.thresholds import AT_LEAST


def _relation(v: Verdict) -> str:
    return ">=" if v.measure in AT_LEAST else "<="


def print_verdicts(verdicts: list[Verdict], title: str, console) -> None:
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for c in ("audit", "measure", "measured", "limit", "verdict"):
        t.add_column(c, justify="right" if c in ("measured", "limit") else "left")
    for v in verdicts:
        t.add_row(v.entry.label(), v.measure, fmt_value(v.measured), f"{_relation(v)} {fmt_value(v.limit)}",
                  "[green]ok[/]" if v.ok else "[bold red]FAILED[/]")
    console.print(t)
    slack = [v for v in verdicts if v.slack]
    if slack:
        console.print(f"{len(slack)} limit(s) could be tightened (measured more than 10% better), e.g.:")
        for v in slack[:10]:
            console.print("  " + v.line())
    failed = sum(not v.ok for v in verdicts)
    console.print(f"{len(verdicts) - failed} passed, {failed} failed")


def verdicts_markdown(verdicts: list[Verdict]) -> str:
    lines = ["| audit | measure | measured | limit | verdict |", "|---|---|---|---|---|"]
    lines += [f"| {v.entry.label()} | {v.measure} | {fmt_value(v.measured)} | {_relation(v)} {fmt_value(v.limit)} | "
              f"{'ok' if v.ok else '**FAILED**'} |" for v in verdicts]
    failed = sum(not v.ok for v in verdicts)
    return "\n".join(lines + ["", f"{len(verdicts) - failed} passed, {failed} failed"]) + "\n"


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
