"""The HTML report as a browser shows it: headless Chromium loads index.html, runs its script, and the DOM it
dumps holds every section the contents list links to, the special inputs, the overflow tables with their
culprits, the terminal's percentages; the many-series figures give every series a colour of its own.

Chromium is the Debian package `chromium` (.ci/run installs it). Without it the page is checked as written
(its script not run), except in CI
(CI set), where it fails."""

import csv
import io
import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from xml.etree import ElementTree as ET

import matplotlib.colors
import mpmath
import numpy as np
import pytest

from mishaudit.analysis.report_data import collect
from mishaudit.eval.inputs import Domain
from mishaudit.formats import FP16
from mishaudit.lang.registry import load_registry
from mishaudit.output import plots
from mishaudit.output import tables as render
from mishaudit.output.report import report_meta, write_report

REG = load_registry()
IDS = ["softplus-tanh", "exp-rational", "onednn-jit"]


def _chromium() -> str | None:
    """The browser, or None outside CI when it is missing (then the page is checked as written, without
    running its script); in CI a missing browser fails (.ci/run installs it)."""
    exe = shutil.which("chromium")
    if exe is None and os.environ.get("CI"):
        pytest.fail("chromium is not installed; CI must run the HTML report test (.ci/run installs it)")
    return exe


def _run_chromium(*args: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        p = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                            "--disable-background-networking", "--disable-component-update", "--disable-sync",
                            f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=180, check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


class Dom(HTMLParser):
    """Elements as (tag, attrs, text) with the text of every element, and the rows of every table by id."""

    def __init__(self, text: str):
        super().__init__()
        self.ids, self.links, self.tables, self.heads = set(), [], {}, []
        self._table, self._row, self._cell, self._head, self.th_styles = None, None, None, None, []
        self.source, self.rendered = text, True
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and a.get("href", "").startswith("#"):
            self.links.append(a["href"][1:])
        if tag == "table":
            self._table = self.tables.setdefault(a.get("id", f"table-{len(self.tables)}"), [])
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = [a.get("class", ""), ""]
            self._row.append(self._cell)
            if tag == "th":
                self.th_styles.append(a.get("style", ""))
        elif tag in ("h2", "h3"):
            self._head = [a.get("id"), ""]
            self.heads.append(self._head)

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        elif tag == "tr":
            self._row = None
        elif tag in ("td", "th"):
            self._cell = None
        elif tag in ("h2", "h3"):
            self._head = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data
        if self._head is not None:
            self._head[1] += data

    def rows(self, table_id: str) -> list[dict]:
        """A table's rows as {header: (class, text)}."""
        t = self.tables[table_id]
        head = [text for _, text in t[0]]
        return [dict(zip(head, ((c, text) for c, text in r))) for r in t[1:]]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    audit, per = collect([REG[i] for i in IDS], [FP16], None, False, Domain(), 1 << 12, 0)
    out = tmp_path_factory.mktemp("html") / "rep"
    write_report(out, audit, per, report_meta(audit.meta, "mishaudit report --test"))
    return audit, out


@pytest.fixture(scope="module")
def dom(report):
    _, out = report
    if _chromium() is None:  # the page as written (apt-get install chromium to render it in a browser)
        d = Dom((out / "index.html").read_text())
        d.rendered = False
        return d
    d = Dom(_run_chromium("--dump-dom", (out / "index.html").as_uri()))
    d.rendered = True
    return d


def test_the_script_ran_and_every_contents_link_resolves(dom):
    # the sortable-table script ran in the browser: it gives each header a pointer cursor (without a
    # browser: the page carries the script and sortable tables for it to act on)
    if dom.rendered:
        assert dom.th_styles and all("cursor: pointer" in s for s in dom.th_styles)
    else:
        assert dom.tables and "cursor" in (report_html := dom.source) and "sortable" in report_html
    assert {"summary", "specials", "overflow", "figures", "files"} <= set(dom.links)
    assert dom.links and all(link in dom.ids for link in dom.links), set(dom.links) - dom.ids
    # every section and subsection heading is in the contents
    assert {i for i, _ in dom.heads if i} <= set(dom.links)
    assert {"summary-fp16", "overflow-fp16", "fig-error-fp16", "fig-cdf-fp16"} <= set(dom.links)


def test_specials_show_nan_at_minus_inf_for_softplus_tanh(dom):
    # independent: x tanh(log1p(e^x)) at x = -inf is -inf * tanh(log1p(0)) = -inf * 0 = NaN in IEEE arithmetic,
    # while mish(x) = x tanh(softplus(x)) -> 0 from below as x -> -inf (x e^x < 0): the spec's value is -0
    with np.errstate(invalid="ignore"):
        x = np.float64(-np.inf)
        assert np.isnan(x * np.tanh(np.log1p(np.exp(x))))
    assert mpmath.mpf(-1000) * mpmath.tanh(mpmath.log1p(mpmath.exp(-1000))) < 0
    rows = {(r["formula"][1], r["dtype"][1]): r for r in dom.rows("specials-table")}
    assert {(i, "fp16") for i in IDS} <= set(rows)
    cls, text = rows[("softplus-tanh", "fp16")]["x = -inf"]
    assert "wrong" in cls and text.startswith("nan") and "expected -0.0" in text
    # the right ones are not marked: softplus-tanh at +inf gives inf
    cls, text = rows[("softplus-tanh", "fp16")]["x = +inf"]
    assert "wrong" not in cls and text == "inf"


def test_overflow_section_has_the_fp16_exp_edge_and_culprits(dom, report):
    _, out = report
    # independent: the smallest fp16 x with RN16(e^x) = inf, e^x >= 65520 (max 65504 + half its ulp 32)
    fp16 = np.arange(0, 0x7C00, dtype=np.uint16).view(np.float16).astype(np.float64)
    with mpmath.workprec(100):
        edge = float(next(v for v in fp16 if mpmath.exp(mpmath.mpf(float(v))) >= 65520))
    assert edge == 11.09375
    events = dom.rows("events-fp16")
    hit = [r for r in events if r["formula"][1] == "exp-rational" and r["event"][1] == "overflow"
           and r["intervals"][1].startswith(f"[{edge!r}, ")]
    assert hit, [r["intervals"][1] for r in events if r["event"][1] == "overflow"]
    # harmful rows are highlighted, and match overflow.csv's harmful flags
    with open(out / "overflow.csv", newline="") as fh:
        harmful = {(r["formula"], r["node"], r["event"]) for r in csv.DictReader(fh) if r["harmful"] == "True"}
    marked = {(r["formula"][1], r["intermediate"][1], r["event"][1]) for r in events if r["harmful"][1] == "harmful"}
    assert marked == harmful and harmful
    # the culprits: one row per attribution.csv row, with the node blamed and its max local error
    with open(out / "attribution.csv", newline="") as fh:
        attrib = list(csv.DictReader(fh))
    culprits = dom.rows("culprits-fp16")
    assert len(culprits) == len(attrib) > 0
    assert {(r["formula"][1], r["node blamed"][1]) for r in culprits} == {(r["formula"], r["node"]) for r in attrib}


def test_percentages_and_worst_inputs_as_in_the_terminal(dom, report):
    audit, out = report
    from rich.console import Console

    from mishaudit.output.frames import COMPARE_KEYS, records, to_frame

    rows = render.sort_rows(records(to_frame(audit.rows, COMPARE_KEYS)), None)
    console = Console(record=True, width=400, file=io.StringIO())
    render.print_table(rows, audit.specials, audit.meta, console)
    head = [h for h, _, _ in render.columns(rows)]
    term = {}
    for line in console.export_text().splitlines():  # the compare table's rows (the specials table's come after)
        cells = [c.strip() for c in re.split("[│┃]", line)[1:-1]]
        if len(cells) == len(head) and cells[0] in IDS:
            term.setdefault(cells[0], cells)
    assert set(term) == set(IDS)
    html_rows = {r["formula"][1]: r for r in dom.rows(dom_compare_id(dom))}
    for fid in IDS:
        for col in ("CR", "faithful", "max ulp", "mean ulp", "p99 ulp"):
            assert html_rows[fid][col][1] == term[fid][head.index(col)], (fid, col)
        assert html_rows[fid]["CR"][1].endswith("%")
    # onednn-jit: CR 51.4% of fp16 (compare.csv's cr_frac, as a percentage)
    with open(out / "compare.csv", newline="") as fh:
        cr = {r["formula"]: float(r["cr_frac"]) for r in csv.DictReader(fh)}
    assert html_rows["onednn-jit"]["CR"][1] == f"{100 * cr['onednn-jit']:.1f}%" == "51.4%"
    # worst inputs with y, r in binary64 and RN(r): RN(r) is a fp16 value next to r, y the formulation's output
    for fid in IDS:
        r = next(a for a in audit.rows if a["formula"] == fid)
        cells = html_rows[fid]
        assert float(cells["worst x"][1]) == r["worst_x"] and float(cells["y at worst x"][1]) == r["worst_y"]
        ref = float(cells["r (binary64)"][1])
        assert ref == r["worst_ref"]
        # RN(r) = RN16(r64): numpy's binary64 -> binary16 cast rounds once, to nearest even (r64 is no midpoint here)
        assert float(cells["RN(r)"][1]) == float(np.float16(ref))


def dom_compare_id(dom) -> str:
    """The compare table of fp16: the first table after the heading summary-fp16 (it has no id of its own)."""
    return next(k for k, t in dom.tables.items() if t and [c[1] for c in t[0]][:2] == ["formula", "max ulp"])


def _series_colours(svg_path) -> list[str]:
    """The stroke colour of each data line of a matplotlib SVG (groups line2d_*), guides (black) left out."""
    root = ET.parse(svg_path).getroot()
    out = []
    for g in root.iter("{http://www.w3.org/2000/svg}g"):
        if not (g.get("id") or "").startswith("line2d_"):
            continue
        for p in g.iter("{http://www.w3.org/2000/svg}path"):
            m = re.search(r"stroke:\s*(#[0-9a-fA-F]{6})", p.get("style") or "")
            if m and m.group(1).lower() != "#000000":
                out.append(m.group(1).lower())
    return out


def test_many_series_get_distinct_colours(report, tmp_path):
    _, out = report
    got = _series_colours(out / "figures" / "cdf-fp16.svg")
    assert len(set(got)) >= len(IDS)
    # 31 series, the registry's 22 formulations and 9 kernels: each its own colour, in the CDF and the overlay
    n = 31
    rng = np.random.default_rng(0)
    series = [{"id": f"f{k}", "x": np.linspace(-20, 20, 400), "ulp": rng.random(400) * (k + 1),
               "nonfinite": np.zeros(400, bool), "marks": []} for k in range(n)]
    for name, fig in (("cdf", plots.cdf_figure(series, "fp16")), ("overlay", plots.error_figure(series, "fp16", FP16.max, overlay=True))):
        fig.savefig(tmp_path / f"{name}.svg")
        cols = _series_colours(tmp_path / f"{name}.svg")
        assert len(set(cols)) >= n, (name, len(set(cols)))
    pal = plots.palette(40)
    assert len({matplotlib.colors.to_hex(c) for c in pal}) == 40


def test_rn_of_ref_is_the_format_rounding_of_r64_except_at_midpoints():
    from mishaudit.formats import BF16, FP32, FP64
    from mishaudit.output.report import rn_of_ref

    # 1 + 2^-11 is the fp16 midpoint of 1 and 1 + 2^-10: r64 there leaves r's side open
    assert rn_of_ref(1 + 2.0**-11, FP16) is None and rn_of_ref(65520.0, FP16) is None  # 65520: max + ulp/2
    assert rn_of_ref(1 + 2.0**-11 + 2.0**-40, FP16) == 1 + 2.0**-10
    assert rn_of_ref(65520.00001, FP16) == np.inf and rn_of_ref(65519.99, FP16) == 65504.0
    assert rn_of_ref(2.0**-25 + 2.0**-50, FP16) == 2.0**-24  # above half the least subnormal
    rng = np.random.default_rng(1)
    for fmt, dt in ((FP16, np.float16), (FP32, np.float32)):
        v = rng.standard_normal(2000) * 10.0 ** rng.integers(-6, 4, 2000)
        assert all(rn_of_ref(float(a), fmt) == float(dt(a)) for a in v)  # numpy's one-step cast
    assert rn_of_ref(1 + 2.0**-8 + 2.0**-30, BF16) == 1 + 2.0**-7 and rn_of_ref(0.1, FP64) == 0.1
    assert rn_of_ref(None, FP16) is None
