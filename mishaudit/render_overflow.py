"""Render overflow maps and attributions: rich tables with a glyph map, Markdown, CSV, JSON."""

from __future__ import annotations

import csv
import io
import json

from .formats import get_format
from .overflow import GLYPH, axis_labels, text_map

MAX_SHOWN = 3


def _intervals(m) -> str:
    parts = [f"[{i.lo!r}, {i.hi!r}]" for i in m.intervals[:MAX_SHOWN]]
    more = len(m.intervals) - MAX_SHOWN
    return " ".join(parts) + (f" …+{more}" if more > 0 else "")


def to_json(maps: list, attributions: list) -> str:
    out = [dict(kind="event", **m.as_json()) for m in maps]
    out += [dict(kind="attribution", **a) for a in attributions]
    return json.dumps(out, indent=2) + "\n"


def to_csv(maps: list) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["formula", "dtype", "compute_dtype", "ftz", "node", "event", "lo", "hi", "count", "harmful", "enumerated"])
    for m in maps:
        for i in m.intervals:
            w.writerow([m.formula, m.dtype, m.compute_dtype, m.ftz, m.node, m.event, repr(i.lo), repr(i.hi), i.count,
                        i.harmful, m.enumerated])
    return buf.getvalue()


def to_markdown(maps: list, attributions: list) -> str:
    lines = ["| formula | dtype | node | event | intervals | count | harmful |", "|---|---|---|---|---|---|---|"]
    for m in maps:
        node = m.node.replace("|", "\\|")
        lines.append(f"| {m.formula} | {m.dtype} | `{node}` | {m.event} | {_intervals(m)} | {m.count} | "
                     f"{'**yes**' if m.harmful else 'no'} |")
    lines += ["", "Top culprits (Herbie's local error) where the result is more than 1 ulp off:", "",
              "| formula | dtype | node | inputs | max local error (bits) | regions |", "|---|---|---|---|---|---|"]
    for a in attributions:
        for c in a["culprits"][:3]:
            regions = " ".join(f"[{lo!r}, {hi!r}]" for lo, hi in c["regions"][:3])
            lines.append(f"| {a['formula']} | {a['dtype']} | `{c['node']}` | {c['inputs']} | {c['max_local_bits']:.1f} | {regions} |")
    return "\n".join(lines) + "\n"


def print_overflow(maps: list, attributions: list, console, width: int = 64) -> None:
    from rich.table import Table

    by_formula: dict = {}
    for m in maps:
        by_formula.setdefault((m.formula, m.dtype), []).append(m)
    attrib = {(a["formula"], a["dtype"]): a for a in attributions}
    for (fid, dtype), ms in by_formula.items():
        t = Table(title=f"{fid} ({dtype}{'' if ms[0].compute_dtype == dtype else ', computed in ' + ms[0].compute_dtype})"
                        f"{'' if ms[0].enumerated else ' - edges exact, interiors sampled'}", title_justify="left")
        for c in ("node", "event", "intervals", "count", "harmful"):
            t.add_column(c, overflow="fold", justify="right" if c == "count" else "left")
        for m in ms:
            t.add_row(m.node, m.event, _intervals(m), str(m.count), "[bold red]harmful[/]" if m.harmful else "absorbed")
        console.print(t)
        fmt = get_format(dtype)
        console.print(f"  {'':24s} {axis_labels(fmt, width)}")
        for node, glyphs, harm in text_map(ms, fmt, width):
            styled = "".join(f"[red]{g}[/]" if h and g != " " else g for g, h in zip(glyphs, harm))
            console.print(f"  {node[:24]:24s} |{styled}|", highlight=False)
        a = attrib.get((fid, dtype))
        if a and a["culprits"]:
            console.print(f"  {a['bad_inputs']} inputs more than 1 ulp off; culprits by local error:")
            for c in a["culprits"][:3]:
                regions = ", ".join(f"[{lo!r}, {hi!r}]" for lo, hi in c["regions"][:2])
                console.print(f"    {c['node']}: {c['inputs']} inputs, up to {c['max_local_bits']:.1f} bits, e.g. {regions}",
                              highlight=False)
        console.print()
    console.print("[dim]glyphs: " + ", ".join(f"{g} {e}" for e, g in GLYPH.items()) +
                  "; red: harmful (the final output is nonfinite or > 1 ulp off there); x axis symmetric-log.[/]")
