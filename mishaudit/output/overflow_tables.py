"""Render overflow maps and attributions: rich tables with a glyph map over a symmetric-log x axis,
Markdown, CSV, JSON (pure functions returning text, and one printer)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np

from mishaudit.formats import Format, get_format

GLYPH = {"nan": "N", "overflow": "O", "underflow": "U", "subnormal": "s", "absorption": "a"}
PRIORITY = ("nan", "overflow", "underflow", "subnormal", "absorption")


def symlog(v, linthresh: float = 1.0):
    v = np.asarray(v, dtype=float)
    return np.sign(v) * np.log10(1 + np.abs(v) / linthresh)


def text_map(events: list[dict], fmt: Format, width: int = 64) -> list[tuple[str, str, list]]:
    """Rows (node, glyph string, harmful flags) over `width` symmetric-log bins of [-max, max], from
    event records (output/frames.py's EVENT_KEYS)."""
    edges = np.linspace(-symlog(fmt.max), symlog(fmt.max), width + 1)
    rows: dict = {}
    for ev in events:
        row = rows.setdefault(ev["node"], [[" ", False] for _ in range(width)])
        for lo, hi, harmful in _ivs(ev):
            a, b = np.searchsorted(edges, symlog([lo, hi]), side="right") - 1
            for c in range(max(a, 0), min(b, width - 1) + 1):
                cur = row[c][0]
                if cur == " " or PRIORITY.index(ev["event"]) < PRIORITY.index({v: k for k, v in GLYPH.items()}[cur]):
                    row[c][0] = GLYPH[ev["event"]]
                row[c][1] = row[c][1] or harmful
    return [(node, "".join(c for c, _ in cells), [h for _, h in cells]) for node, cells in rows.items()]


def axis_labels(fmt: Format, width: int = 64) -> str:
    """A tick line for the map: -max, -1, 0, 1, max at their symmetric-log columns."""
    span = symlog(fmt.max)
    line = [" "] * width
    for v, s in ((-fmt.max, f"-{fmt.max:.3g}"), (-1.0, "-1"), (0.0, "0"), (1.0, "1"), (fmt.max, f"{fmt.max:.3g}")):
        col = int(round((symlog(v) + span) / (2 * span) * (width - 1)))
        col = min(max(col - len(s) // 2, 0), width - len(s))
        for k, ch in enumerate(s):
            line[col + k] = ch
    return "".join(line)


MAX_SHOWN = 3


def _ivs(ev: dict) -> list:
    """(lo, hi, harmful) of an event record's intervals."""
    return list(zip((a for a, _ in ev["intervals"]), (b for _, b in ev["intervals"]), ev["harmful_intervals"]))


def _intervals(ev: dict) -> str:
    parts = [f"[{lo!r}, {hi!r}]" for lo, hi in ev["intervals"][:MAX_SHOWN]]
    more = len(ev["intervals"]) - MAX_SHOWN
    return " ".join(parts) + (f" …+{more}" if more > 0 else "")


def _event_records(events) -> list[dict]:
    from mishaudit.output.frames import records

    return records(events)


def to_json(events) -> str:
    """Event objects (one per formula x format x node x event) then attribution objects."""
    out = [dict(kind="event", **ev) for ev in _event_records(events)]
    out += [dict(kind="attribution", **a) for a in events.attrs.get("attributions", [])]
    return json.dumps(out, indent=2) + "\n"


def to_csv(events) -> str:
    """One row per interval."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["formula", "dtype", "compute_dtype", "ftz", "node", "event", "lo", "hi", "count", "harmful", "enumerated"])
    for ev in _event_records(events) if not isinstance(events, list) else events:
        for lo, hi, harm in _ivs(ev):
            w.writerow([ev["formula"], ev["dtype"], ev["compute_dtype"], ev["ftz"], ev["node"], ev["event"], repr(lo),
                        repr(hi), _count(ev, lo, hi), harm, ev["enumerated"]])
    return buf.getvalue()


def _count(ev: dict, lo: float, hi: float) -> int:
    """Inputs in one interval: the format's lattice points in [lo, hi]."""
    import numpy as np

    from mishaudit.formats import ordinal

    fmt = get_format(ev["dtype"])
    return int(ordinal(np.array([hi]), fmt)[0]) - int(ordinal(np.array([lo]), fmt)[0]) + 1


def to_markdown(events, culprits) -> str:
    from mishaudit.output.frames import records

    lines = ["| formula | dtype | node | event | intervals | count | harmful |", "|---|---|---|---|---|---|---|"]
    for ev in _event_records(events):
        node = ev["node"].replace("|", "\\|")
        lines.append(f"| {ev['formula']} | {ev['dtype']} | `{node}` | {ev['event']} | {_intervals(ev)} | {ev['count']} | "
                     f"{'**yes**' if ev['harmful'] else 'no'} |")
    lines += ["", "Top culprits (Herbie's local error) where the result is more than 1 ulp off:", "",
              "| formula | dtype | node | inputs | max local error (bits) | regions |", "|---|---|---|---|---|---|"]
    shown: dict = {}
    for c in records(culprits):
        key = (c["formula"], c["dtype"])
        shown[key] = shown.get(key, 0) + 1
        if shown[key] <= 3:
            regions = " ".join(f"[{lo!r}, {hi!r}]" for lo, hi in c["regions"][:3])
            lines.append(f"| {c['formula']} | {c['dtype']} | `{c['node']}` | {c['inputs']} | "
                         f"{c['max_local_bits']:.1f} | {regions} |")
    lines += [""] + kernel_notes(events)
    return "\n".join(lines) + "\n"


def kernel_notes(events) -> list[str]:
    """One line per implementation without a map (a kernel: a black box, no intermediates)."""
    mapped = {(ev["formula"], ev["dtype"]) for ev in _event_records(events)}
    return [f"{a['formula']} ({a['dtype']}): no overflow map: {a['note']} (compare and plot audit its outputs)"
            for a in events.attrs.get("attributions", []) if a.get("note") and (a["formula"], a["dtype"]) not in mapped]


def print_overflow(events, culprits, console, width: int = 64) -> None:
    from rich.table import Table

    by_formula: dict = {}
    for ev in _event_records(events):
        by_formula.setdefault((ev["formula"], ev["dtype"]), []).append(ev)
    attrib = {(a["formula"], a["dtype"]): a for a in events.attrs.get("attributions", [])}
    for (fid, dtype), evs in by_formula.items():
        e0 = evs[0]
        t = Table(title=f"{fid} ({dtype}{'' if e0['compute_dtype'] == dtype else ', computed in ' + e0['compute_dtype']})"
                        f"{'' if e0['enumerated'] else ' - edges exact, interiors sampled'}", title_justify="left")
        for c in ("node", "event", "intervals", "count", "harmful"):
            t.add_column(c, overflow="fold", justify="right" if c == "count" else "left")
        for ev in evs:
            t.add_row(ev["node"], ev["event"], _intervals(ev), str(ev["count"]),
                      "[bold red]harmful[/]" if ev["harmful"] else "absorbed")
        console.print(t)
        fmt = get_format(dtype)
        console.print(f"  {'':24s} {axis_labels(fmt, width)}")
        for node, glyphs, harm in text_map(evs, fmt, width):
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
    for line in kernel_notes(events):  # kernels: say why they have no map
        console.print(line, highlight=False)
    console.print("[dim]glyphs: " + ", ".join(f"{g} {e}" for e, g in GLYPH.items()) +
                  "; red: harmful (the final output is nonfinite or > 1 ulp off there); x axis symmetric-log.[/]")
