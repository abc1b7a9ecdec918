"""Render result records (output/frames.py's rows): rich tables, Markdown, CSV, JSON (pure functions
returning text, and printers)."""

from __future__ import annotations

import csv
import io
import json
import math

from mishaudit.errors import UserError
from mishaudit.measure.metrics import BUCKETS
from mishaudit.output.frames import COMPARE_JSON_KEYS, COMPARE_KEYS

JSON_KEYS = COMPARE_JSON_KEYS
ALL_KEYS = COMPARE_KEYS
ASCENDING_IS_WORSE = {"cr_frac", "faithful_frac"}  # for these a smaller value is worse

LEGEND = (
    "ulp error |y - r|/ulp(r), ulp(r) = 2^(max(floor(log2|r|), emin) - p + 1), r = spec(x) exact (correctly rounded by MPFR interval Ziv loops or proven fast paths; "
    "the spec each title names: mish, mish' or a file's :spec); "
    "statistics over finite outputs; cr = y == RN(r); faithful = y brackets r; "
    "formula ulp = max |F(x) - r|/ulp(r) with F the formula in exact arithmetic (the error of its "
    "thresholds, clamps and blends, apart from rounding; 'exact' when every branch is the spec, '< 2^-10' when an "
    "approximation stays below 2^-10 ulp); dULP = |ord(y) - ord(RN(r))|; ulp errors below 2^-60 read as 0 "
    "(shown '< 2^-60'); 'inf': an ulp error beyond binary64's range (counted in ulp_overflow); "
    "'≤ v': a percentile streamed by --exhaustive, an upper bound within 2^-11 relative (percentiles = bound)."
)


def sort_rows(rows: list[dict], column: str | None) -> list[dict]:
    """Worst first within each dtype: by `column`, or by (nonfinite > 0, max_ulp) by default."""
    if column is not None and column not in ALL_KEYS:
        raise UserError(f"--sort {column!r}: unknown column; use one of {', '.join(ALL_KEYS)}")

    def key(r):
        ran = r.get("strategy") != "unsupported"  # rows of formats a kernel does not run in go last
        if column is None:
            return (ran, (r["nonfinite"] or 0) > 0, _f(r["max_ulp"]))
        v = r[column]
        if isinstance(v, str):
            return v
        v = _f(v)
        return (ran, -v if column in ASCENDING_IS_WORSE else v)

    order = {d: i for i, d in enumerate(dict.fromkeys(r["dtype"] for r in rows))}
    by_dtype = sorted(rows, key=lambda r: order[r["dtype"]])
    out = []
    for d in order:
        grp = [r for r in by_dtype if r["dtype"] == d]
        rev = not (column is not None and isinstance(grp[0].get(column), str))
        out += sorted(grp, key=key, reverse=rev)
    return out


def _f(v) -> float:
    return -math.inf if v is None else float(v)


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


def short(v) -> str:
    """3 significant digits without an exponent between 0.001 and 1e5."""
    if v is None:
        return "—"
    v = float(v)
    if v == 0:
        return "0"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    a = abs(v)
    if 1e-3 <= a < 1e5:
        digits = max(0, 2 - math.floor(math.log10(a)))
        return f"{v:.{digits}f}"
    return f"{v:.2e}"


def ulp_text(v) -> str:
    """An ulp-error figure: '< 2^-60' for 0 (below the resolution, measure/metrics.py), else short()."""
    return "< 2^-60" if v is not None and float(v) == 0 else short(v)


def bound_text(v) -> str:
    """A percentile that is an upper bound (the exhaustive sweep's): '≤ v' (0 stays exact)."""
    return ulp_text(v) if v is None or float(v) == 0 else "≤ " + short(v)


TABLE_COLUMNS = (
    ("formula", "formula", str), ("max ulp", "max_ulp", ulp_text), ("mean ulp", "mean_ulp", ulp_text),
    ("p99 ulp", "p99_ulp", ulp_text), ("worst x", "worst_x", repr), ("CR", "cr_frac", _pct), ("faithful", "faithful_frac", _pct),
    ("nonfinite", "nonfinite", str), ("±0", "signed_zero_mismatch", str),
    ("formula ulp", "formula_ulp", None), ("dULP 0/1/2/3/>3", None, None),
)
GIVEN_COLUMNS = (("MAE", "mean_abs_err", lambda v: f"{v:.3e}"), ("mean rel", "mean_rel_err", lambda v: f"{v:.3e}"))


def columns(rows: list[dict]) -> tuple:
    """The table's columns: with given inputs (--inputs), the mean absolute and relative errors after
    the mean ulp."""
    if not any(r.get("strategy") == "inputs" for r in rows):
        return TABLE_COLUMNS
    return TABLE_COLUMNS[:3] + GIVEN_COLUMNS + TABLE_COLUMNS[3:]


def formula_cell(r: dict) -> str:
    """The formula id, with the parameters set by --set."""
    return r["formula"] + (f" [{r['params']}]" if r.get("params") else "")


def formula_ulp_text(r: dict) -> str:
    """'exact' (every path is mish), '< 2^-10' (approximations below the resolution), or the value."""
    v = r.get("formula_ulp")
    if v is None:
        return "—"
    if r.get("formula_exact"):
        return "exact"
    return "< 2^-10" if v == 0 else short(v)


def _cells(r: dict, cols: tuple = TABLE_COLUMNS) -> list[str]:
    if r.get("strategy") == "unsupported":
        return [r["formula"], "unsupported"] + ["—"] * (len(cols) - 2)
    out = []
    for _, key, fmt in cols:
        if key == "formula":
            out.append(formula_cell(r))
        elif key is None:
            out.append("/".join(str(r[b]) for b in BUCKETS))
        elif key == "formula_ulp":
            out.append(formula_ulp_text(r))
        elif key in ("median_ulp", "p99_ulp") and r.get("percentiles") == "bound":
            out.append(bound_text(r.get(key)))
        else:
            out.append("—" if r.get(key) is None else fmt(r[key]))
    return out


def table_title(dtype: str, rows: list[dict]) -> str:
    """The policy of the formulations (native or computed in, ftz, libm) and the inputs of one format."""
    forms = [r for r in rows if r.get("libm") != "kernel"] or rows
    r0 = forms[0]
    mode = f"computed in {r0['compute_dtype']}" if r0["compute_dtype"] != dtype else "native"
    ftz = f", ftz={r0['ftz']}" if r0["ftz"] else ""  # the flush mode: after / before rounding (eval/ftz.py)
    policy = f"{mode}{ftz}, libm {r0.get('libm', 'cr')}" if r0.get("libm") != "kernel" \
        else "framework kernels"
    counts = sorted({r["inputs"] for r in rows if r.get("strategy") != "unsupported"})
    strategy = next((r["strategy"] for r in rows if r.get("strategy") != "unsupported"), "unsupported")
    n = f"{counts[0]:,}" if len(counts) == 1 else f"{counts[0]:,} to {counts[-1]:,}" if counts else "no"
    strategy = "given (--inputs)" if strategy == "inputs" else strategy
    specs = list(dict.fromkeys(r.get("spec") or "mish" for r in rows))
    against = ", ".join(f"{sp}(x)" if sp in ("mish", "mish'") else sp for sp in specs)
    return f"{dtype} ({policy}): {n} inputs, {strategy} - error against {against}, worst first"


def kernel_notes(rows: list[dict]) -> list[str]:
    """One line per kernel: its framework (version, CPU capability), and the formats it does not run in."""
    out = {}
    for r in rows:
        if r.get("libm") == "kernel" and r.get("strategy") != "unsupported":
            out.setdefault(r["formula"], f"kernel {r['formula']}: {r['implementation']}; figures hold for this CPU")
        elif r.get("strategy") == "unsupported":
            out[r["formula"] + " " + r["dtype"]] = f"kernel {r['formula']} does not run in {r['dtype']}: {r['implementation']}"
    return list(out.values())


def inputs_note(info: dict) -> str:
    """What --inputs gave and what of it was audited per format."""
    parts = []
    for k, v in info.items():
        if isinstance(v, dict):
            extra = [f"{v[n]:,} {t}" for n, t in (("nonfinite_dropped", "not finite after rounding, left out"),
                                                  ("outside_domain", "outside --domain")) if v.get(n)]
            parts.append(f"{k}: {v['audited']:,} audited ({v['distinct']:,} distinct values"
                         + "".join("; " + e for e in extra) + ")")
    return (f"inputs: {info['source']}, {info['given']:,} values, each rounded to the format; duplicates count "
            "as often as they occur; MAE = mean |y - mish(x)|, mean rel = mean |y - mish(x)|/|mish(x)| over finite "
            "outputs; " + "; ".join(parts) + ".")


def undecided_note(rows: list[dict]) -> str:
    """A sentence naming the formulations whose formula ulp leaves inputs out (empty when none)."""
    parts = [f"{r['formula']} {r['dtype']} {r['formula_err_undecided']:,}" for r in rows if r.get("formula_err_undecided")]
    if not parts:
        return ""
    return ("formula ulp is the maximum over inputs whose exact deviation MPFR pins down; inputs left out "
            "(not decided at 1024 bits): " + ", ".join(parts) + ".")


def to_markdown(rows: list[dict], specials: list[dict]) -> str:
    cols = columns(rows)
    head = ["dtype"] + [c for c, _, _ in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        lines.append("| " + " | ".join([r["dtype"]] + _cells(r, cols)) + " |")
    lines += ["", LEGEND] + [ln for n in kernel_notes(rows) for ln in ("", n)]
    models = sorted({r.get("libm") or "cr" for r in rows} - {"kernel"})  # a kernel uses its framework's own
    if models:
        from mishaudit.eval.libm import describe

        lines += ["", "; ".join(describe(m) for m in models) + "."]
    if undecided_note(rows):
        lines += ["", undecided_note(rows)]
    bad = [s for s in specials if not s["ok"]]
    if bad:
        lines += ["", "Special inputs with a wrong result:", "", "| formula | dtype | x | expected | got |", "|---|---|---|---|---|"]
        lines += [f"| {s['formula']} | {s['dtype']} | {s['x']!r} | {s['expected']!r} | {s['got']!r} |" for s in bad]
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(ALL_KEYS), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else (repr(r[k]) if isinstance(r[k], float) else r[k])) for k in ALL_KEYS})
    return buf.getvalue()


def _json_safe(v):
    """JSON has no NaN/inf literals: NaN (no data) is null, an infinite figure the string "inf"/"-inf"."""
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


def to_json(rows: list[dict]) -> str:
    return json.dumps([{k: _json_safe(r.get(k)) for k in ALL_KEYS} for r in rows], indent=2) + "\n"


# On a terminal too narrow for every column, these go first (in this order) until the table fits; the
# formula column is never dropped nor cut, and max ulp, CR and nonfinite always stay.
DROP_ORDER = ("dULP 0/1/2/3/>3", "formula ulp", "±0", "worst x", "mean rel", "MAE", "p99 ulp", "faithful", "mean ulp")


def table_width(console, table) -> int:
    """The width `table` takes with room to spare (its natural width, nothing folded)."""
    from rich.measure import Measurement

    return Measurement.get(console, console.options.update_width(1 << 16), table).maximum


def print_wide(console, table) -> None:
    """Print `table`; on a file or a pipe (not a terminal) at its natural width, however wide, so that
    no column is cut or folded (a terminal keeps its own width)."""
    if console.is_terminal:
        console.print(table)
        return
    need = table_width(console, table)
    if need <= console.width:
        console.print(table)
        return
    old = console.width
    console.width = need
    try:
        console.print(table)
    finally:
        console.width = old


def _compare_table(title: str, grp: list[dict], cols: tuple, id_width: int):
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for name, key, _ in cols:
        t.add_column(name, justify="left" if key == "formula" else "right", no_wrap=True,
                     min_width=id_width if key == "formula" else None)
    nf_col = [k for _, k, _ in cols].index("nonfinite")
    for r in grp:
        cells = _cells(r, cols)
        cells[0] = escape(cells[0])  # "[threshold=15]" is text, not rich markup
        if r.get("nonfinite") and r.get("strategy") != "unsupported":
            cells[nf_col] = f"[bold red]{r['nonfinite']}[/]"
        t.add_row(*cells, style="red" if r.get("nonfinite") else None)
    return t


def fit_columns(console, build, cols: tuple) -> tuple[tuple, list[str]]:
    """(columns, names left out): on a terminal, drop DROP_ORDER's columns until build(columns) fits
    its width; elsewhere every column."""
    dropped: list[str] = []
    if not console.is_terminal:
        return cols, dropped
    for name in DROP_ORDER:
        if table_width(console, build(cols)) <= console.width:
            break
        if any(c[0] == name for c in cols):
            cols = tuple(c for c in cols if c[0] != name)
            dropped.append(name)
    return cols, dropped


def print_table(rows: list[dict], specials: list[dict], meta: dict, console) -> None:
    """One rich table per format, worst first; nonfinite outputs in red; then the specials table. The
    formula column always shows every id in full; a narrow terminal loses the least important columns
    first (DROP_ORDER, said below the table); a file or a pipe gets every column at full width."""
    from rich.markup import escape
    from rich.table import Table

    cols = columns(rows)
    id_width = max([len(formula_cell(r)) for r in rows] + [len("formula")])
    left_out: list[str] = []
    for dtype in dict.fromkeys(r["dtype"] for r in rows):
        grp = [r for r in rows if r["dtype"] == dtype]
        title = table_title(dtype, grp)
        shown, dropped = fit_columns(console, lambda cs, t=title, g=grp: _compare_table(t, g, cs, id_width), cols)
        left_out += [d for d in dropped if d not in left_out]
        print_wide(console, _compare_table(title, grp, shown, id_width))
    if left_out:
        console.print(f"[dim]{console.width} columns: left out {', '.join(left_out)}; widen the terminal, or use "
                      "--format markdown/csv/json (or redirect to a file) for every column.[/]")
    console.print("[dim]" + LEGEND + "[/]")
    if meta.get("inputs"):
        console.print("[dim]" + inputs_note(meta["inputs"]) + "[/]")
    for line in kernel_notes(rows):
        console.print("[dim]" + line + "[/]")
    note = undecided_note(rows)
    if note:
        console.print("[dim]" + note + "[/]")
    console.print(f"[dim]numpy {meta['numpy']}, ml_dtypes {meta['ml_dtypes']}, mpmath {meta['mpmath']}, "
                  f"{meta['mpfr']}; {meta['elementary_functions']}.[/]")
    bad = [s for s in specials if not s["ok"]]
    if bad:
        s = Table(title="special inputs: expected vs got (wrong ones only)", title_justify="left")
        for c in ("formula", "dtype", "x", "expected", "got"):
            s.add_column(c)
        for b in bad:
            s.add_row(escape(b["formula"]), b["dtype"], repr(b["x"]), repr(b["expected"]), f"[red]{b['got']!r}[/]")
        print_wide(console, s)
    else:
        console.print("[dim]special inputs ±0, ±inf, NaN: every formulation gives its spec's value (mish, mish', and IEEE 754's for one elementary operation such as (exp x); NaN alone for any other spec).[/]")


# ---------------------------------------------------------------- any records (list, check)


def plain_json(rows: list[dict]) -> str:
    return json.dumps([{k: _json_safe(v) for k, v in r.items()} for r in rows], indent=2) + "\n"


def plain_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: "" if v is None else (repr(v) if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def plain_markdown(rows: list[dict]) -> str:
    if not rows:
        return ""
    head = list(rows[0])
    cell = lambda v: "—" if v is None else str(v).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(cell(r[k]) for k in head) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def print_formulas(rows: list[dict], console) -> None:
    from rich.table import Table

    forms = sum(r.get("kind") != "kernel" for r in rows)
    t = Table(title=f"{forms} registered formulations, {len(rows) - forms} framework kernels", title_justify="left")
    for c in ("id", "spec", "description", "parameters", "source"):
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(r["id"], r["spec"], r["description"], r.get("params") or "", r["source"])
    console.print(t)


def print_identify(kernel: str, dtype: str, rows: list[dict], diffs: list[dict], console) -> None:
    """The ranking of candidates for a kernel, and where the best one differs."""
    from rich.table import Table

    t = Table(title=f"which formulation is {kernel} in {dtype}? bitwise matches, best first", title_justify="left")
    for c in ("formulation", "compute", "libm", "matches", "share"):
        t.add_column(c, justify="right" if c in ("matches", "share") else "left")
    for r in rows:
        t.add_row(r["formula"], r["compute_dtype"], r["libm"], f"{r['matches']:,} of {r['inputs']:,}",
                  f"{100 * r['share']:.3f}%")
    console.print(t)
    if not rows:
        return
    best = rows[0]
    ties = sum(r["matches"] == best["matches"] for r in rows) - 1
    tie = f" ({ties} other candidate(s) shown match as often)" if ties else ""
    if not diffs:
        console.print(f"{best['formula']} computed in {best['compute_dtype']} with libm {best['libm']} reproduces "
                      f"{kernel} on every input{tie}.")
        return
    if tie:
        console.print(f"best: {best['formula']} ({best['compute_dtype']}, libm {best['libm']}){tie}.")
    d = Table(title=f"where {best['formula']} ({best['compute_dtype']}, libm {best['libm']}) differs from {kernel}",
              title_justify="left")
    for c in ("x", kernel, best["formula"], "RN(spec(x))"):
        d.add_column(c, justify="right")
    for r in diffs:
        d.add_row(repr(r["x"]), repr(r["kernel"]), repr(r["formulation"]), repr(r["rn_mish"]))
    console.print(d)


IMPORT_COLUMNS = ("id", "file", "nodes", "computes_in", "input_precision", "audit_dtype", "same_operations",
                  "same_bits")


def print_imports(meta: dict, rows: list[dict], console) -> None:
    """What `mishaudit import` found: one row per Mish, then the semantics it chose."""
    from rich.table import Table

    what = "written" if meta.get("written") else "found (not written: give --out DIR)"
    t = Table(title=f"{len(rows)} Mish in {meta['model']} ({meta['kind']}, {meta['version']}), {what}",
              title_justify="left")
    for c in IMPORT_COLUMNS:
        t.add_column(c.replace("_", " "), overflow="fold")
    for r in rows:
        t.add_row(*[r[c] or "none" for c in IMPORT_COLUMNS])
    console.print(t)
    for s in meta.get("semantics", ()):
        console.print(f"semantics: {s}")
    for r in rows:
        if r["same_bits"]:
            console.print(f"{r['id']}: the same bits as {r['same_bits']} on {r['checked']} (libm cr)")
    if meta.get("written") and rows:
        r = rows[0]
        folder = str(r["file"]).rsplit("/", 1)[0] if "/" in str(r["file"]) else "."
        console.print(f"audit: mishaudit compare --formulas {folder} --formula {r['id']} "
                      f"--dtype {r['audit_dtype']}")
