"""`mishaudit report`: figures, tables and metadata in one folder, written atomically.

The folder holds index.md, a self-contained index.html (figures embedded, tables
sortable without a network), figures/*.png and *.svg, every table as CSV, and
meta.json (library versions, CPU SIMD features, command line, date). It is built
in a sibling temporary folder and renamed into place, so an interrupted run
leaves the previous report intact.
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
import time
from pathlib import Path

import numpy as np

from mishaudit.analysis.audit import policy_for, run_audit
from mishaudit.analysis.events import overflow_map
from mishaudit.eval.evaluate import Policy, evaluate
from mishaudit.eval.inputs import formula_thresholds
from mishaudit.files import replace_folder
from mishaudit.formats import Format
from mishaudit.output import overflow_tables as ro
from mishaudit.output import plots
from mishaudit.output import tables as render
from mishaudit.output.frames import COMPARE_KEYS, records, to_frame

REPEATS = 3


def measure_ns(formula, x: np.ndarray, policy: Policy) -> float:
    """Best-of-3 wall time of one numpy evaluation of `formula` on `x`, in ns per element."""
    best = math.inf
    for _ in range(REPEATS):
        t = time.perf_counter()
        evaluate(formula, x, policy)
        best = min(best, time.perf_counter() - t)
    return best / len(x) * 1e9



def collect(formulas: list, fmts: list[Format], compute, ftz, domain, samples, seed, use_cache=True, progress=False,
            model: str = "cr", device: str = "cpu"):
    """Everything the figures and tables need, per format (kernels: no overflow map, and only in the
    formats their framework runs them in)."""
    audit = run_audit(formulas, fmts, compute, ftz, domain, samples, seed, use_cache=use_cache, progress=progress,
                      keep_errors=True, model=model, device=device)
    per_fmt = {}
    for fmt in fmts:
        policy = policy_for(fmt, compute, ftz, model, device)
        maps, attrib, series, cost = [], [], [], []
        for f in (f for f in formulas if not f.kernel or f.supports(fmt)):
            m, a = ([], None) if f.kernel else overflow_map(f, policy, domain, samples, seed)
            maps += m
            if a is not None:
                attrib.append(a)
            err = audit.errors[(f.id, fmt.name)]
            marks = [] if f.kernel else [(t, "threshold") for t in formula_thresholds(f, fmt)]
            marks += [(iv.lo, "overflow edge") for mm in m if mm.event == "overflow" for iv in mm.intervals
                      if abs(iv.lo) < fmt.max]
            series.append({"id": f.id, "x": err.x, "ulp": err.ulp, "nonfinite": ~err.finite,
                           "marks": sorted(set(marks))})
            row = next(r for r in audit.rows if r["formula"] == f.id and r["dtype"] == fmt.name)
            cost.append({"id": f.id, "ns": measure_ns(f, err.x, policy), "max_ulp": row["max_ulp"],
                         "mean_ulp": row["mean_ulp"], "nonfinite": row["nonfinite"]})
        per_fmt[fmt.name] = {"fmt": fmt, "maps": maps, "attrib": attrib, "series": series, "cost": cost}
    return audit, per_fmt


def _save(fig, folder: Path, name: str) -> dict:
    import matplotlib.pyplot as plt

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


def _html_table(rows: list[dict], cols: list[tuple[str, str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h, _ in cols)
    body = []
    for r in rows:
        cells = []
        for _, k in cols:
            v = r.get(k)
            shown = render.short(v) if isinstance(v, float) and k not in ("worst_x",) else ("—" if v is None else str(v))
            if k == "worst_x" and v is not None:
                shown = repr(v)
            if k == "formula_ulp":
                shown = render.formula_ulp_text(r)
            elif k in ("max_ulp", "mean_ulp") and v is not None:
                shown = render.ulp_text(v)
            elif k == "p99_ulp" and v is not None:
                shown = (render.bound_text if r.get("percentiles") == "bound" else render.ulp_text)(v)
            sort = "" if v is None else f' data-v="{html.escape(str(v))}"'
            cells.append(f"<td{sort}>{html.escape(shown)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


COMPARE_COLS = [("formula", "formula"), ("dtype", "dtype"), ("max ulp", "max_ulp"), ("mean ulp", "mean_ulp"),
                ("p99 ulp", "p99_ulp"), ("worst x", "worst_x"), ("CR", "cr_frac"), ("faithful", "faithful_frac"),
                ("nonfinite", "nonfinite"), ("±0", "signed_zero_mismatch"), ("formula ulp", "formula_ulp")]


def write_report(out: Path, audit, per_fmt: dict, meta: dict) -> None:
    """Build the report in a temporary sibling folder, then swap it for `out` in one step: at every
    instant `out` holds the old report or the new one (files.replace_folder)."""
    out = Path(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "figures").mkdir(parents=True)
    try:
        _build(tmp, audit, per_fmt, meta)
        replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
    # index.md
    md = ["# mishaudit report", "", f"Made by `{meta['command']}` on {meta['date']} "
          f"(mishaudit {meta['mishaudit']}, numpy {meta['numpy']}, ml_dtypes {meta['ml_dtypes']}, mpmath {meta['mpmath']}).", "",
          "## Summary", "", render.to_markdown(rows, audit.specials), "## Figures", ""]
    for title, question, paths in figs:
        md += [f"### {title}", "", f"*{question}*", "", f"![{title}](figures/{paths['png'].name})", ""]
    md += ["## Tables", "", "compare.csv, specials.csv, overflow.csv, attribution.csv, cost.csv; metadata in meta.json.", ""]
    (folder / "index.md").write_text("\n".join(md))
    # index.html, self-contained
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>mishaudit report</title>",
             "<style>body{font-family:sans-serif;max-width:1300px;margin:auto;padding:1em}table{border-collapse:collapse;"
             "font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#eee}"
             "td:first-child{text-align:left}img{max-width:100%}</style></head><body>",
             "<h1>mishaudit report</h1>",
             f"<p>Made by <code>{html.escape(meta['command'])}</code> on {html.escape(meta['date'])}; "
             f"numpy {meta['numpy']}, ml_dtypes {meta['ml_dtypes']}, mpmath {meta['mpmath']}. "
             "Click a column header to sort.</p>",
             f"<p>{html.escape(render.LEGEND)}</p>",
             _html_table(rows, COMPARE_COLS)]
    for title, question, paths in figs:
        data = base64.b64encode(paths["png"].read_bytes()).decode()
        parts.append(f"<h3>{html.escape(title)}</h3><p><em>{html.escape(question)}</em></p>"
                     f"<img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>")
    parts.append(f"<script>{_SORT_JS}</script></body></html>")
    (folder / "index.html").write_text("\n".join(parts))


def report_meta(environment: dict, command: str) -> dict:
    return dict(environment, command=command, date=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
