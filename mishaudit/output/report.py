"""`mishaudit report`: figures, tables and metadata in one folder, written atomically.

The folder holds index.md, a self-contained index.html (figures embedded, tables
sortable without a network), figures/*.png and *.svg, every table as CSV, and
meta.json (library versions, CPU SIMD features, command line, date). It is built
in a sibling temporary folder and renamed into place, so an interrupted run
leaves the previous report intact. It renders only: the audit, overflow maps and timings
come in from analysis/report_data.py's collect.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np

from mishaudit.files import replace_folder
from mishaudit.formats import Format
from mishaudit.measure.metrics import BUCKETS
from mishaudit.output import overflow_tables as ro
from mishaudit.output import plots
from mishaudit.output import tables as render
from mishaudit.output.frames import COMPARE_KEYS, records, to_frame

_figure_step = None  # write_report's progress step while it draws


def _save(fig, folder: Path, name: str) -> dict:
    import matplotlib.pyplot as plt

    if _figure_step is not None:
        _figure_step(name)
    out = {}
    for ext in ("png", "svg"):
        p = folder / f"{name}.{ext}"
        fig.savefig(p, dpi=110 if ext == "png" else None)
        out[ext] = p
    plt.close(fig)
    return out


def _csv_table(rows: list[dict], keys: list[str]) -> str:
    import csv

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: (repr(r[k]) if isinstance(r.get(k), float) else r.get(k, "")) for k in keys})
    return buf.getvalue()


_SORT_JS = """
document.querySelectorAll('table.sortable th').forEach(function (th, col) {
  th.style.cursor = 'pointer';
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0];
    var rows = Array.from(body.rows), asc = th.dataset.dir !== 'asc';
    th.dataset.dir = asc ? 'asc' : 'desc';
    var idx = Array.from(th.parentNode.children).indexOf(th);
    rows.sort(function (a, b) {
      var x = a.cells[idx].dataset.v || a.cells[idx].textContent, y = b.cells[idx].dataset.v || b.cells[idx].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""


def _cell(shown: str, sort=None, cls: str = "", title: str = "") -> str:
    attrs = ("" if sort is None else f' data-v="{html.escape(str(sort))}"') + (f' class="{cls}"' if cls else "") \
        + (f' title="{html.escape(title)}"' if title else "")
    return f"<td{attrs}>{html.escape(shown)}</td>"


def _table(head: list[str], body: list[tuple[str, list[str]]], tid: str = "") -> str:
    """A sortable table: `body` holds (row class, cells as from _cell)."""
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    trs = "".join(f"<tr{f' class={chr(34)}{c}{chr(34)}' if c else ''}>{''.join(cells)}</tr>" for c, cells in body)
    ident = f' id="{tid}"' if tid else ""
    return f'<div class="wide"><table class="sortable"{ident}><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table></div>'


def rn_of_ref(r64, fmt: Format):
    """RN(r) in `fmt` from r64 = RN64(r), or None where that does not fix it. Every midpoint of two
    neighbours in fp16, bf16 and fp32 is a binary64 number, so none lies strictly between r and r64;
    RN_fmt(r64) = RN_fmt(r) unless r64 itself is a midpoint (then r's side of it is unknown here)."""
    if r64 is None:
        return None
    r64 = float(r64)
    if fmt.p == 53 or not math.isfinite(r64) or r64 == 0:
        return r64
    _, e = math.frexp(r64)
    q = max(e - 1, fmt.emin) - fmt.p + 1
    m = math.ldexp(r64, -q)  # exact: r64 in units of the format's quantum
    if m - math.floor(m) == 0.5:
        return None
    from mishaudit.formats import round_to

    return float(round_to(np.array([r64]), fmt)[0])


def _num_text(v) -> str:
    return "—" if v is None else repr(float(v))


COMPARE_COLS = [("formula", "formula"), ("max ulp", "max_ulp"), ("mean ulp", "mean_ulp"), ("p99 ulp", "p99_ulp"),
                ("worst x", "worst_x"), ("y at worst x", "worst_y"), ("r (binary64)", "worst_ref"), ("RN(r)", "worst_rn"),
                ("CR", "cr_frac"), ("faithful", "faithful_frac"), ("nonfinite", "nonfinite"),
                ("±0", "signed_zero_mismatch"), ("specials wrong", "specials_wrong"), ("formula ulp", "formula_ulp"),
                ("dULP 0/1/2/3/>3", "buckets")]


def compare_cells(r: dict, fmt: Format | None) -> list[str]:
    """One compare row as HTML cells: the terminal's texts (tables.py: ulp_text, bound_text, _pct), the raw
    value to sort by; the worst input with its output y, r = spec(x) in binary64, and RN(r) in the format."""
    if r.get("strategy") == "unsupported":
        return [_cell(render.formula_cell(r)), _cell("unsupported")] + [_cell("—")] * (len(COMPARE_COLS) - 2)
    cells = []
    for _, k in COMPARE_COLS:
        v = r.get(k)
        if k == "formula":
            cells.append(_cell(render.formula_cell(r)))
        elif k in ("max_ulp", "mean_ulp"):
            cells.append(_cell(render.ulp_text(v), v))
        elif k == "p99_ulp":
            cells.append(_cell((render.bound_text if r.get("percentiles") == "bound" else render.ulp_text)(v), v))
        elif k in ("worst_x", "worst_y", "worst_ref"):
            cells.append(_cell(_num_text(v), v))
        elif k == "worst_rn":
            rn = None if fmt is None else rn_of_ref(r.get("worst_ref"), fmt)
            cells.append(_cell(_num_text(rn), rn, title="" if rn is not None or r.get("worst_ref") is None
                               else "r64 is a midpoint of the format: RN(r) not fixed by it"))
        elif k in ("cr_frac", "faithful_frac"):
            cells.append(_cell(render._pct(v), v))
        elif k == "formula_ulp":
            cells.append(_cell(render.formula_ulp_text(r), v))
        elif k == "buckets":
            cells.append(_cell("/".join(str(r.get(b)) for b in BUCKETS)))
        elif k == "nonfinite":
            cells.append(_cell("—" if v is None else str(v), v, "bad" if v else ""))
        else:
            cells.append(_cell("—" if v is None else str(v), v))
    return cells


def compare_table(rows: list[dict], fmt: Format | None) -> str:
    return _table([h for h, _ in COMPARE_COLS],
                  [("bad" if r.get("nonfinite") else "", compare_cells(r, fmt)) for r in rows])


SPECIAL_XS = (("+0", "0.0"), ("-0", "-0.0"), ("+inf", "inf"), ("-inf", "-inf"), ("NaN", "nan"))


def specials_table(specials: list[dict]) -> str:
    """One row per formulation x format: the output at +0, -0, +inf, -inf and NaN; a wrong one is marked
    (class bad) and shows the expected value next to it."""
    order = {d: i for i, d in enumerate(dict.fromkeys(s["dtype"] for s in specials))}
    by: dict = {}
    for s in specials:
        by.setdefault((s["formula"], s["dtype"]), {})[repr(float(s["x"]))] = s
    body = []
    for (fid, dtype), got in sorted(by.items(), key=lambda kv: (order[kv[0][1]], kv[0][0])):
        wrong = sum(not s["ok"] for s in got.values())
        cells = [_cell(fid), _cell(dtype)]
        for _, key in SPECIAL_XS:
            s = got.get(key)
            if s is None:
                cells.append(_cell("—"))
            elif s["ok"]:
                cells.append(_cell(repr(float(s["got"])), cls="ok"))
            else:
                cells.append(_cell(f"{float(s['got'])!r} (expected {float(s['expected'])!r})", cls="wrong",
                                   title=f"expected {float(s['expected'])!r}, got {float(s['got'])!r}"))
        cells.append(_cell(str(wrong), wrong, "bad" if wrong else ""))
        body.append(("bad" if wrong else "", cells))
    return _table(["formula", "dtype"] + [f"x = {h}" for h, _ in SPECIAL_XS] + ["wrong"], body, "specials-table")


def events_table(maps: list, dtype: str) -> str:
    """The overflow map of one format as rows: formula, intermediate, event, intervals, count, harmful."""
    body = []
    for m in maps:
        ev = m.as_json()
        shown = ro._intervals(ev)
        full = " ".join(f"[{lo!r}, {hi!r}]{' harmful' if h else ''}" for (lo, hi), h in
                        zip(ev["intervals"], ev["harmful_intervals"]))
        body.append(("bad" if ev["harmful"] else "",
                     [_cell(ev["formula"]), _cell(ev["node"], cls="l", title=m.text), _cell(ev["event"], cls="l"),
                      _cell(shown, ev["intervals"][0][0] if ev["intervals"] else None, "l", full),
                      _cell(str(ev["count"]), ev["count"]),
                      _cell("harmful" if ev["harmful"] else "absorbed", int(ev["harmful"]))]))
    return _table(["formula", "intermediate", "event", "intervals", "count", "harmful"], body, f"events-{dtype}")


def culprits_table(attrib: list[dict], dtype: str) -> str:
    """The error attribution of one format: per formulation, each intermediate blamed (Herbie's local error)."""
    body = []
    for a in attrib:
        for c in a["culprits"]:
            regions = " ".join(f"[{lo!r}, {hi!r}]" for lo, hi in c["regions"][:ro.MAX_SHOWN])
            more = len(c["regions"]) - ro.MAX_SHOWN
            body.append(("", [_cell(a["formula"]), _cell(c["node"], cls="l", title=c.get("text", "")),
                              _cell(f"{a['bad_inputs']:,}", a["bad_inputs"]), _cell(f"{c['inputs']:,}", c["inputs"]),
                              _cell(f"{c['max_local_bits']:.1f}", c["max_local_bits"]),
                              _cell(regions + (f" …+{more}" if more > 0 else ""), cls="l")]))
    return _table(["formula", "node blamed", "bad inputs (> 1 ulp)", "inputs blamed", "max local error (bits)",
                   "regions"], body, f"culprits-{dtype}")


def write_report(out: Path, audit, per_fmt: dict, meta: dict) -> None:
    """Build the report in a temporary sibling folder, then swap it for `out` in one step: at every
    instant `out` holds the old report or the new one (files.replace_folder)."""
    global _figure_step
    from mishaudit.files import check_interrupt, clean_stale
    from mishaudit.progress import phase

    out = Path(out)
    clean_stale(out)  # what a killed run (kill -9) left: .NAME.tmp-PID folders of dead processes
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    check_interrupt()
    figures = 3 * len(per_fmt) + sum(len({m.formula for m in d["maps"]}) for d in per_fmt.values())
    try:
        (tmp / "figures").mkdir(parents=True)
        with phase(f"writing {out}", total=figures) as step:
            _figure_step = step
            _build(tmp, audit, per_fmt, meta)
        replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        _figure_step = None


def _build(folder: Path, audit, per_fmt: dict, meta: dict) -> None:
    figs: list[tuple[str, str, dict]] = []  # (title, question, paths)
    rows = render.sort_rows(records(to_frame(audit.rows, COMPARE_KEYS)), None)
    for name, d in per_fmt.items():
        fmt = d["fmt"]
        figs.append((f"ulp error against x, {name}", "Where in x does each formulation lose accuracy, and how much?",
                     _save(plots.error_figure(d["series"], name, fmt.max), folder / "figures", f"error-{name}")))
        figs.append((f"distribution of the ulp error, {name}", "For what share of inputs is each formulation within k ulp?",
                     _save(plots.cdf_figure(d["series"], name), folder / "figures", f"cdf-{name}")))
        figs.append((f"accuracy against cost, {name}", "Which formulations are on the accuracy/speed Pareto front?",
                     _save(plots.cost_figure(d["cost"], name), folder / "figures", f"cost-{name}")))
        for fid in dict.fromkeys(m.formula for m in d["maps"]):
            ms = [m for m in d["maps"] if m.formula == fid]
            figs.append((f"overflow map, {fid}, {name}", "Which intermediate overflows, underflows or absorbs, where?",
                         _save(plots.overflow_figure(ms, fid, name, fmt.max), folder / "figures", f"overflow-{name}-{fid}")))
    # tables
    (folder / "compare.csv").write_text(render.to_csv(rows))
    (folder / "specials.csv").write_text(_csv_table(audit.specials, ["formula", "dtype", "x", "expected", "got", "ok"]))
    all_maps = [m for d in per_fmt.values() for m in d["maps"]]
    (folder / "overflow.csv").write_text(ro.to_csv([m.as_json() for m in all_maps]))
    cost_rows = [dict(c, dtype=n) for n, d in per_fmt.items() for c in d["cost"]]
    (folder / "cost.csv").write_text(_csv_table(cost_rows, ["id", "dtype", "ns", "max_ulp", "mean_ulp"]))
    attrib_rows = [{"formula": a["formula"], "dtype": a["dtype"], "node": c["node"], "inputs": c["inputs"],
                    "max_local_bits": c["max_local_bits"], "regions": json.dumps(c["regions"])}
                   for d in per_fmt.values() for a in d["attrib"] for c in a["culprits"]]
    (folder / "attribution.csv").write_text(_csv_table(attrib_rows, ["formula", "dtype", "node", "inputs", "max_local_bits", "regions"]))
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    (folder / "index.md").write_text(index_markdown(rows, audit, per_fmt, meta, figs))
    (folder / "index.html").write_text(index_html(rows, audit, per_fmt, meta, figs))


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def sections(rows: list[dict], audit, per_fmt: dict, figs: list) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """The report's sections as (id, title, [(sub-id, sub-title)]): what the contents list links to."""
    dtypes = list(dict.fromkeys(r["dtype"] for r in rows))
    over = [n for n, d in per_fmt.items() if d["maps"] or any(a["culprits"] for a in d["attrib"])]
    return [("summary", "Summary: accuracy per formulation", [(f"summary-{d}", d) for d in dtypes]),
            ("specials", "Special inputs: ±0, ±inf, NaN", []),
            ("overflow", "Overflow, underflow and absorption; error culprits", [(f"overflow-{n}", n) for n in over]),
            ("figures", "Figures", [(f"fig-{_slug(p['png'].stem)}", t) for t, _, p in figs]),
            ("files", "Tables and metadata", [])]


def _md_anchor(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces as hyphens."""
    return "".join(c for c in title.lower() if c.isalnum() or c in " -_").replace(" ", "-")


def index_markdown(rows: list[dict], audit, per_fmt: dict, meta: dict, figs: list) -> str:
    from mishaudit.output.frames import CULPRIT_KEYS, EVENT_KEYS

    secs = sections(rows, audit, per_fmt, figs)
    md = ["# mishaudit report", "", f"Made by `{meta['command']}` on {meta['date']} "
          f"(mishaudit {meta['mishaudit']}, numpy {meta['numpy']}, ml_dtypes {meta['ml_dtypes']}, mpmath {meta['mpmath']}).", "",
          "Contents:", ""]
    md += [f"- [{t}](#{_md_anchor(t)})" for _, t, _ in secs] + [""]
    md += [f"## {secs[0][1]}", "", render.to_markdown(rows, audit.specials)]
    md += [f"## {secs[1][1]}", "", "| formula | dtype | " + " | ".join(f"x = {h}" for h, _ in SPECIAL_XS) + " |",
           "|---|---|" + "---|" * len(SPECIAL_XS)]
    by: dict = {}
    for sp in audit.specials:
        by.setdefault((sp["formula"], sp["dtype"]), {})[repr(float(sp["x"]))] = sp
    for (fid, dtype), got in by.items():
        cells = [("—" if (sp := got.get(k)) is None else repr(float(sp["got"])) if sp["ok"]
                  else f"**{float(sp['got'])!r}** (expected {float(sp['expected'])!r})") for _, k in SPECIAL_XS]
        md.append(f"| {fid} | {dtype} | " + " | ".join(cells) + " |")
    md += ["", f"## {secs[2][1]}", ""]
    for name, d in per_fmt.items():
        if not d["maps"] and not any(a["culprits"] for a in d["attrib"]):
            continue
        events = to_frame([m.as_json() for m in d["maps"]], EVENT_KEYS)
        culprits = to_frame([{"formula": a["formula"], "dtype": a["dtype"], "bad_inputs": a["bad_inputs"], **c}
                             for a in d["attrib"] for c in a["culprits"]], CULPRIT_KEYS)
        md += [f"### {name}", "", ro.to_markdown(events, culprits)]
    md += [f"## {secs[3][1]}", ""]
    for title, question, paths in figs:
        md += [f"### {title}", "", f"*{question}*", "", f"![{title}](figures/{paths['png'].name})", ""]
    md += [f"## {secs[4][1]}", "", "compare.csv, specials.csv, overflow.csv, attribution.csv, cost.csv; metadata in meta.json.", ""]
    return "\n".join(md)


_CSS = ("body{font-family:sans-serif;max-width:1400px;margin:auto;padding:1em}table{border-collapse:collapse;"
        "font-size:13px;margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
        "td{white-space:nowrap}div.wide{overflow-x:auto;max-width:100%}"
        "th{background:#eee;position:sticky;top:0}td:first-child{text-align:left}img{max-width:100%}"
        "tr.bad td{background:#fdecea}td.wrong,td.bad{background:#f8c9c4;color:#a00;font-weight:bold}"
        "td.ok{color:#555}td.l{text-align:left;white-space:normal;min-width:12em}nav.toc{background:#f6f6f6;border:1px solid #ddd;padding:.3em 1em}"
        "nav.toc ul ul{font-size:90%}nav.toc ul.few li{display:inline;margin-right:1em}nav.toc ul.many{columns:3}caption{text-align:left;font-weight:bold;padding:.3em 0}"
        "code{font-size:12px}.note{color:#555;font-size:13px}")


def _html_figures(figs: list) -> list[str]:
    out = []
    for title, question, paths in figs:
        data = base64.b64encode(paths["png"].read_bytes()).decode()
        out.append(f"<h3 id='fig-{_slug(paths['png'].stem)}'>{html.escape(title)}</h3><p><em>{html.escape(question)}</em></p>"
                   f"<img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>")
    return out


def index_html(rows: list[dict], audit, per_fmt: dict, meta: dict, figs: list) -> str:
    """The self-contained page: contents, the compare table per format, the special inputs, the overflow
    maps with their culprits, the figures (embedded) and the files; every table sortable."""
    from mishaudit.formats import get_format

    secs = sections(rows, audit, per_fmt, figs)
    toc = ["<nav class='toc' id='contents'><strong>Contents</strong><ul>"]
    for sid, title, subs in secs:
        toc.append(f"<li><a href='#{sid}'>{html.escape(title)}</a>")
        if subs:
            toc.append(f"<ul class='{'many' if len(subs) > 6 else 'few'}'>" + "".join(f"<li><a href='#{i}'>{html.escape(t)}</a></li>" for i, t in subs) + "</ul>")
        toc.append("</li>")
    toc.append("</ul></nav>")
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>mishaudit report</title>",
             f"<style>{_CSS}</style></head><body>", "<h1>mishaudit report</h1>",
             f"<p>Made by <code>{html.escape(meta['command'])}</code> on {html.escape(meta['date'])}; "
             f"numpy {meta['numpy']}, ml_dtypes {meta['ml_dtypes']}, mpmath {meta['mpmath']}. "
             "Click a column header to sort.</p>", *toc]
    # summary
    parts.append(f"<h2 id='summary'>{html.escape(secs[0][1])}</h2>")
    for dtype in dict.fromkeys(r["dtype"] for r in rows):
        grp = [r for r in rows if r["dtype"] == dtype]
        try:
            fmt = get_format(dtype)
        except Exception:  # noqa: BLE001  (a format the registry does not know: no RN(r) column values)
            fmt = None
        parts.append(f"<h3 id='summary-{dtype}'>{html.escape(render.table_title(dtype, grp))}</h3>")
        parts.append(compare_table(grp, fmt))
    notes = [render.LEGEND, *render.kernel_notes(rows), render.undecided_note(rows),
             ("y at worst x: the formulation's output there; r (binary64): spec(x) rounded to binary64; RN(r): "
              "spec(x) correctly rounded to the format (from r (binary64): exact, as every midpoint of the format is "
              "a binary64 number; '—' where r (binary64) is such a midpoint).")]
    parts += [f"<p class='note'>{html.escape(n)}</p>" for n in notes if n]
    # special inputs
    bad = sum(not s["ok"] for s in audit.specials)
    wrong_forms = sorted({(s["formula"], s["dtype"]) for s in audit.specials if not s["ok"]})
    parts.append(f"<h2 id='specials'>{html.escape(secs[1][1])}</h2>")
    parts.append(f"<p>The output of every formulation at the special inputs against its spec's value (mish, mish'; NaN "
                 f"alone for any other spec): {bad} wrong results in {len(wrong_forms)} formulation x format pairs, "
                 "marked red with the expected value.</p>")
    parts.append(specials_table(audit.specials))
    # overflow maps and culprits
    parts.append(f"<h2 id='overflow'>{html.escape(secs[2][1])}</h2>")
    parts.append("<p>Per format, every intermediate of every formulation that overflows, underflows, goes subnormal "
                 "or is absorbed, with its exact input intervals (the first three shown, all in the cell's tooltip and "
                 "overflow.csv); harmful (red): the final output is nonfinite or more than 1 ulp off there. Below each, "
                 "the error attribution: the intermediates blamed (Herbie's local error) for the inputs more than "
                 "1 ulp off (attribution.csv).</p>")
    for sid, name in secs[2][2]:
        d = per_fmt[name]
        parts.append(f"<h3 id='{sid}'>{html.escape(name)}</h3>")
        parts.append(f"<h4>events, {html.escape(name)}</h4>" + events_table(d["maps"], name))
        parts.append(f"<h4>culprits, {html.escape(name)}</h4>" + culprits_table(d["attrib"], name))
    # figures, files
    parts.append(f"<h2 id='figures'>{html.escape(secs[3][1])}</h2>")
    parts += _html_figures(figs)
    parts.append(f"<h2 id='files'>{html.escape(secs[4][1])}</h2><ul>" + "".join(
        f"<li><a href='{n}'>{n}</a></li>" for n in
        ("compare.csv", "specials.csv", "overflow.csv", "attribution.csv", "cost.csv", "meta.json", "index.md")) + "</ul>")
    parts.append(f"<script>{_SORT_JS}</script></body></html>")
    return "\n".join(parts)


def report_meta(environment: dict, command: str) -> dict:
    return dict(environment, command=command, date=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
