"""Figures and reports: scales, labels, series, marked edges, legible ticks; valid PNG/SVG/HTML; atomic writes."""

import csv
import json
from html.parser import HTMLParser
from xml.etree import ElementTree as ET

import mpmath
import numpy as np
import pytest
from conftest import png_size
from hypothesis import given
from hypothesis import strategies as st

from mishaudit.analysis.report_data import collect
from mishaudit.eval.inputs import Domain
from mishaudit.formats import FP16
from mishaudit.lang.registry import load_registry
from mishaudit.output import plots
from mishaudit.output.report import report_meta, write_report

REG = load_registry()
IDS = ["softplus-threshold", "exp-rational", "onednn-jit"]


@pytest.fixture(scope="module")
def data():
    formulas = [REG[i] for i in IDS]
    audit, per = collect(formulas, [FP16], None, False, Domain(), 1 << 12, 0)
    return audit, per


def _no_overlap(labels):
    boxes = [t.get_window_extent() for t in labels if t.get_text() and t.get_visible()]
    for a, b in zip(boxes, boxes[1:]):
        assert not a.overlaps(b), "tick labels overlap"


def test_error_figure_axes_series_and_marks(data):
    _, per = data
    d = per["fp16"]
    fig = plots.error_figure(d["series"], "fp16", FP16.max)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == len(IDS)
    fig.canvas.draw()
    for ax, s in zip(axes, d["series"]):
        assert ax.get_xscale() == "symlog" and ax.get_yscale() == "log"
        assert ax.get_title() == s["id"]
        hlines = sorted(l.get_ydata()[0] for l in ax.get_lines() if l.get_linestyle() in (":", "-."))
        assert hlines == [0.5, 1.0]  # the 0.5 and 1 ulp guides
        vlines = {round(float(l.get_xdata()[0]), 6) for l in ax.get_lines() if l.get_linestyle() == "--"}
        assert vlines == {round(m[0], 6) for m in s["marks"]}
        _no_overlap(ax.get_xticklabels())
    st_ax = axes[IDS.index("softplus-threshold")]
    assert 20.0 in {float(l.get_xdata()[0]) for l in st_ax.get_lines() if l.get_linestyle() == "--"}
    # the fp16 exp overflow edge 11.09375 is marked for exp-rational
    er_ax = axes[IDS.index("exp-rational")]
    assert 11.09375 in {float(l.get_xdata()[0]) for l in er_ax.get_lines() if l.get_linestyle() == "--"}
    # onednn-jit has nonfinite outputs: a red band, labelled
    od_ax = axes[IDS.index("onednn-jit")]
    assert any(l.get_label() == "nonfinite output" for l in od_ax.get_lines())
    assert all(ax.get_ylabel() for ax in axes if ax.get_subplotspec().is_first_col())


def test_overlay_has_one_series_per_formula_and_a_legend(data):
    _, per = data
    fig = plots.error_figure(per["fp16"]["series"], "fp16", FP16.max, overlay=True)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sum(lab.endswith("(max per bin)") for lab in labels) == len(IDS)
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()


def test_overflow_figure_rows_and_harmful(data):
    _, per = data
    maps = [m for m in per["fp16"]["maps"] if m.formula == "exp-rational"]
    fig = plots.overflow_figure(maps, "exp-rational", "fp16", FP16.max)
    ax = fig.axes[0]
    nodes = list(dict.fromkeys(m.node for m in maps))
    assert [t.get_text() for t in ax.get_yticklabels()] == nodes
    bars = ax.collections
    assert len(bars) == sum(len(m.intervals) for m in maps)
    assert sum(b.get_hatch() == "///" for b in bars) == sum(i.harmful for m in maps for i in m.intervals)
    fig.canvas.draw()
    _no_overlap(ax.get_xticklabels())


def test_cdf_figure_ends_at_the_finite_share(data):
    audit, per = data
    fig = plots.cdf_figure(per["fp16"]["series"], "fp16")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and len([l for l in ax.get_lines() if l.get_label() in IDS]) == len(IDS)
    for line in ax.get_lines():
        if line.get_label() == "onednn-jit":
            row = next(r for r in audit.rows if r["formula"] == "onednn-jit")
            assert abs(line.get_ydata()[-1] - (1 - row["nonfinite"] / row["inputs"])) < 1e-12


@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0, 100)), min_size=1, max_size=30))
def test_pareto_front_property(points):
    front = set(plots.pareto(points))
    dominated = lambda i: any(c <= points[i][0] and e <= points[i][1] and (c, e) != points[i] for c, e in points)  # noqa: E731
    for i in range(len(points)):
        assert (i in front) == (not dominated(i))


def test_report_files_are_valid_and_atomic(data, tmp_path, monkeypatch):
    audit, per = data
    out = tmp_path / "rep"
    meta = report_meta(audit.meta, "mishaudit report --test")
    write_report(out, audit, per, meta)
    pngs = list((out / "figures").glob("*.png"))
    svgs = list((out / "figures").glob("*.svg"))
    # one figure of each kind for fp16, and one overflow map per formulation, each as PNG and SVG
    want = {"error-fp16", "cdf-fp16", "cost-fp16"} | {f"overflow-fp16-{i}" for i in IDS}
    assert {p.stem for p in pngs} == want == {p.stem for p in svgs}
    for p in pngs:
        w, h = png_size(p.read_bytes())
        assert w > 100 and h > 100
    for p in svgs:
        assert ET.parse(p).getroot().tag.endswith("svg")
    # the tables hold what independent facts fix: every fp16 input per formulation; onednn-jit's nonfinite
    # outputs, every fp16 x >= 4.7578125 (test_overflow.py derives it: x (w - 1) overflows from there,
    # (w - 1)/(w + 1) is inf/inf from 5.54296875); exp's fp16 overflow edge, the first x with e^x >= 65520
    # (max + half an ulp), up to the top for exp-rational and up to softplus-threshold's threshold 20
    with open(out / "compare.csv", newline="") as fh:
        rows = {r["formula"]: r for r in csv.DictReader(fh)}
    assert set(rows) == set(IDS) and all(int(r["inputs"]) == 63488 and r["dtype"] == "fp16" for r in rows.values())
    fp16 = np.arange(0, 0x7C00, dtype=np.uint16).view(np.float16).astype(np.float64)  # +0 .. 65504
    assert int(rows["onednn-jit"]["nonfinite"]) == int((fp16 >= 4.7578125).sum()) == 14142
    assert int(rows["exp-rational"]["nonfinite"]) == 0
    with mpmath.workprec(100):
        edge = float(next(v for v in fp16 if mpmath.exp(mpmath.mpf(float(v))) >= 65520))
    assert edge == 11.09375
    with open(out / "overflow.csv", newline="") as fh:
        ov = [r for r in csv.DictReader(fh) if r["event"] == "overflow" and r["node"] in ("e", "(exp x)")]
    got = {(r["formula"], float(r["lo"]), float(r["hi"])) for r in ov}
    assert {("exp-rational", edge, 65504.0), ("softplus-threshold", edge, 20.0)} <= got
    md = (out / "index.md").read_text()
    assert all(f"| fp16 | {i} |" in md for i in IDS)

    class P(HTMLParser):
        tags, imgs = [], 0

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            if tag == "img" and dict(attrs)["src"].startswith("data:image/png;base64,"):
                P.imgs += 1

    P().feed((out / "index.html").read_text())
    assert "table" in P.tags and "script" in P.tags and P.imgs == len(pngs)
    m = json.loads((out / "meta.json").read_text())
    assert {"numpy", "ml_dtypes", "mpmath", "mishaudit", "cpu_simd", "command", "date"} <= set(m)
    for name in ("specials.csv", "cost.csv", "attribution.csv"):
        with open(out / name, newline="") as fh:
            got = list(csv.DictReader(fh))
        key = "id" if name == "cost.csv" else "formula"
        assert {r[key] for r in got} == set(IDS), name  # every formulation has its rows
    # an interrupted rebuild leaves the previous report as it was
    before = (out / "index.md").read_text()
    import mishaudit.output.report as rep

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(rep, "_build", boom)
    with pytest.raises(KeyboardInterrupt):
        write_report(out, audit, per, meta)
    assert (out / "index.md").read_text() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".rep")]


def test_every_command_help_ends_with_an_example():
    from click.testing import CliRunner

    from mishaudit.cli import main

    for cmd in [None, *main.commands]:
        out = CliRunner().invoke(main, ([cmd] if cmd else []) + ["--help"]).output
        lines = out.rstrip().splitlines()
        assert lines[-2].strip() == "Example:" and lines[-1].strip().startswith("mishaudit "), (cmd, lines[-3:])


@pytest.mark.parametrize("fmt_name", ["fp16", "bf16", "fp32", "fp64"])
def test_ticks_stay_legible_over_every_format_range(fmt_name):
    from mishaudit.analysis.events import EventMap, Interval
    from mishaudit.formats import get_format

    fmt = get_format(fmt_name)
    maps = [EventMap("f", fmt_name, fmt_name, False, "e", "(exp x)", "overflow", [Interval(88.0, fmt.max, 10, True)]),
            EventMap("f", fmt_name, fmt_name, False, "e", "(exp x)", "underflow", [Interval(-fmt.max, -104.0, 10, False)])]
    fig = plots.overflow_figure(maps, "f", fmt_name, fmt.max)
    fig.canvas.draw()
    _no_overlap(fig.axes[0].get_xticklabels())
    x = np.linspace(-300, 300, 2001)
    series = [{"id": "f", "x": x, "ulp": np.abs(np.sin(x)), "nonfinite": x > 250, "marks": [(20.0, "t")]}]
    fig = plots.error_figure(series, fmt_name, fmt.max)
    fig.canvas.draw()
    _no_overlap(fig.axes[0].get_xticklabels())
    assert fig.axes[0].get_xlim()[1] >= 300  # the range reaches every error above 0.01 ulp


def test_titles_fit_in_their_figures_with_many_series():
    # the registry's ids as legend entries (the longest ones widen the legend, which squeezes the axes)
    ids = sorted(REG)[:17]
    x = np.linspace(-20, 20, 400)
    series = [{"id": i, "x": x, "ulp": np.abs(np.sin(x * (k + 1))), "nonfinite": x > 19, "marks": [(10.0, "t")]}
              for k, i in enumerate(ids)]
    figs = {"overlay": plots.error_figure(series, "bf16", 3.39e38, overlay=True), "cdf": plots.cdf_figure(series, "bf16"),
            "grid": plots.error_figure(series, "bf16", 3.39e38)}
    for name, fig in figs.items():
        fig.canvas.draw()
        box = fig.bbox
        titles = [t for ax in fig.axes for t in (ax.title,) if t.get_text()] + ([fig._suptitle] if fig._suptitle else [])
        assert titles, name
        for t in titles:
            e = t.get_window_extent()
            assert e.x0 >= box.x0 - 0.5 and e.x1 <= box.x1 + 0.5 and e.y1 <= box.y1 + 0.5, (name, t.get_text())
