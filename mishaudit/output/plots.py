"""Figures (matplotlib, headless): pure functions from data to Figure objects.

- error_figure: ulp error against x, log y with 0.5 and 1 ulp guides, symmetric-log x,
  the envelope (max per x bin) over the points, nonfinite outputs marked apart along
  the top, thresholds/branch points and overflow edges marked on the x axis.
- overflow_figure: one row per intermediate, a colour per event, harmful intervals
  hatched with a dark edge.
- cdf_figure: the empirical CDF of the ulp error per formulation.
- cost_figure: max and mean ulp error against measured ns per element, Pareto front.
- tune_figure: the error against a parameter's value, one line per format, the default and the
  best value marked, values giving nonfinite outputs marked along the top.
"""

from __future__ import annotations

import math

import matplotlib
import matplotlib.colors
import matplotlib.ticker

matplotlib.use("Agg")  # headless
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ULP_FLOOR = 1e-3  # errors below this (exact results included) are drawn on the floor
CDF_LEVELS = 600  # error levels at which the CDF is drawn
EVENT_COLOURS = {"overflow": "#d62728", "nan": "#000000", "underflow": "#1f77b4", "subnormal": "#9467bd",
                 "absorption": "#ff7f0e"}


# 30 distinct colours for the many-series figures (CDF, overlay): tab10, then the darkest and a middle shade of
# each tab20b group, then tab20's light shades; series_style pairs them with a line style per block of ten, so a
# light shade never shares the style of its dark twin. Black stays for the guides.
PALETTE = [*matplotlib.colormaps["tab10"].colors,
           *(matplotlib.colormaps["tab20b"].colors[i] for i in (0, 4, 8, 12, 16, 2, 6, 10, 14, 18)),
           *matplotlib.colormaps["tab20"].colors[1::2]]
LINE_STYLES = ["-", "--", (0, (4, 1.5, 1, 1.5)), (0, (1, 1))]


def palette(n: int) -> list:
    """n distinct colours: PALETTE's first n, then evenly spaced hues beyond its 30."""
    if n <= len(PALETTE):
        return [matplotlib.colors.to_hex(c) for c in PALETTE[:n]]
    extra = [matplotlib.colors.hsv_to_rgb(((k * 0.618034) % 1, 0.75, 0.7)) for k in range(n - len(PALETTE))]
    return [matplotlib.colors.to_hex(c) for c in (*PALETTE, *extra)]


def series_style(k: int, n: int) -> tuple[str, object]:
    """(colour, line style) of series k of n: a colour of its own, the style changing every ten series."""
    return palette(n)[k], LINE_STYLES[(k // 10) % len(LINE_STYLES)]


def symlog_ticks(xmax: float) -> list[float]:
    """0, +-1 (for narrow ranges) and +-10^k at a decade step that keeps about three ticks a side."""
    decades = math.log10(max(xmax, 1.0))
    step = max(1, math.ceil(decades / 3))
    ks = [k for k in range(step, int(decades) + 1, step)] if decades >= 1 else []
    pos = ([1.0] if decades <= 5 else []) + [10.0**k for k in ks if 10.0**k <= xmax and k > 0]
    return sorted({-v for v in pos} | {0.0} | set(pos))


def _symlog_x(ax, xmax: float):
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(-xmax * 1.05, xmax * 1.05)
    ticks = symlog_ticks(xmax)
    ax.set_xticks(ticks)
    ax.set_xticklabels([_tick(t) for t in ticks])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())


def _tick(t: float) -> str:
    if t == 0:
        return "0"
    e = int(round(math.log10(abs(t))))
    if e <= 2:
        return f"{t:g}"
    return ("−" if t < 0 else "") + f"1e{e}"


def focus(series: list[dict], fmt_max: float, floor: float = 1e-2) -> float:
    """Half-width X of the x range worth drawing: twice the largest |x| with a finite error above
    `floor` ulp (at least 30, at most the format's max). Beyond +-X every finite output is within
    `floor` ulp, which the figure title states; marks beyond it are off the axes."""
    far = 15.0
    for s in series:
        fin = np.isfinite(s["ulp"]) & (s["ulp"] > floor)
        if fin.any():
            far = max(far, float(np.max(np.abs(s["x"][fin]))))
    return min(2 * far, fmt_max)


def envelope(x: np.ndarray, err: np.ndarray, xmax: float, bins: int = 240):
    """(bin centres, max error per bin) over a symmetric-log grid of [-xmax, xmax]; NaN for empty bins."""
    s = np.sign(x) * np.log10(1 + np.abs(x))
    edges = np.linspace(-math.log10(1 + xmax), math.log10(1 + xmax), bins + 1)
    idx = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, bins - 1)
    mx = np.full(bins, np.nan)
    np.fmax.at(mx, idx, err)
    c = (edges[:-1] + edges[1:]) / 2
    centres = np.sign(c) * (10 ** np.abs(c) - 1)
    return centres, mx  # NaN in empty bins: the drawn line breaks there


def error_figure(series: list[dict], dtype: str, fmt_max: float, overlay: bool = False):
    """series: dicts with id, x, ulp (NaN where nonfinite), nonfinite (bool), marks (list of (x, label)).

    The x range is `focus(series)`; nonfinite outputs beyond it are drawn at the edge."""
    n = len(series)
    xmax = focus(series, fmt_max)
    if overlay:
        fig, ax = plt.subplots(figsize=(10, 5.5), constrained_layout=True)
        axes = [ax] * n
    else:
        cols = 4 if n > 6 else min(n, 3)
        rows = math.ceil(n / cols)
        fig, grid = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.1 * rows), sharex=True, sharey=True,
                                 squeeze=False, constrained_layout=True)
        axes = list(grid.ravel())
        for ax in axes[n:]:
            ax.set_visible(False)
    top = max([ULP_FLOOR * 10] + [float(np.nanmax(s["ulp"])) for s in series if np.isfinite(s["ulp"]).any()]) * 3
    for k, (s, ax) in enumerate(zip(series, axes)):
        col, ls = series_style(k, n) if overlay else ("#1f77b4", "-")
        fin = np.isfinite(s["ulp"])
        e = np.maximum(s["ulp"][fin], ULP_FLOOR)
        if not overlay:
            ax.scatter(s["x"][fin], e, s=1.5, alpha=0.25, color="#7f7f7f", linewidths=0, rasterized=True,
                       label="per input")
        cx, cy = envelope(s["x"][fin], e, xmax)
        ax.plot(cx, cy, color=col, ls=ls, lw=1.2, label=f"{s['id']} (max per bin)" if overlay else "max per x bin")
        if s["nonfinite"].any():  # a red band at the top over the x bins holding nonfinite outputs
            xn = np.clip(s["x"][s["nonfinite"]], -xmax, xmax)  # beyond the range: drawn at the edge
            bx, by = envelope(xn, np.ones(len(xn)), xmax)
            ax.plot(bx, np.where(np.isnan(by), np.nan, top / 1.6), color="#d62728", lw=4, solid_capstyle="butt",
                    label="nonfinite output" if (not overlay or k == 0) else None)
        if not overlay:
            for mx, lab in s["marks"]:
                ax.axvline(mx, color="#2ca02c", lw=0.8, ls="--", alpha=0.8)
            ax.set_title(s["id"], fontsize=10)
    for ax in (axes[:1] if overlay else axes[:n]):
        ax.set_yscale("log")
        ax.set_ylim(ULP_FLOOR / 2, top)
        ax.axhline(0.5, color="k", lw=0.7, ls=":")
        ax.axhline(1.0, color="k", lw=0.7, ls="-.")
        _symlog_x(ax, xmax)
        ax.grid(True, which="major", alpha=0.2)
    if overlay:
        axes[0].set_xlabel("x (symmetric log scale)")
        axes[0].set_ylabel("error (ulp of the exact result)")
        axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
        axes[0].set_title(f"ulp error against x, {dtype}: line max per x bin; dotted 0.5 ulp, dash-dot 1 ulp;\n"
                          f"beyond |x| = {xmax:.3g} every finite output is within 0.01 ulp", fontsize=10)
    else:
        for ax in axes[:n]:
            if ax.get_subplotspec().is_last_row() or ax is axes[n - 1]:
                ax.set_xlabel("x (symlog)")
            if ax.get_subplotspec().is_first_col():
                ax.set_ylabel("error (ulp)")
        fig.suptitle(f"ulp error against x, {dtype}: grey points per input, line max per x bin; dotted 0.5 ulp, "
                     f"dash-dot 1 ulp;\ngreen dashes: thresholds and overflow edges; red band: nonfinite outputs "
                     f"(clipped to the edge); beyond |x| = {xmax:.3g} every finite output is within 0.01 ulp")
    return fig


def overflow_figure(maps: list, formula: str, dtype: str, xmax: float):
    """One row per intermediate; a colour per event; harmful intervals hatched."""
    nodes = list(dict.fromkeys(m.node for m in maps))
    fig, ax = plt.subplots(figsize=(10, 0.45 * max(len(nodes), 2) + 1.6), constrained_layout=True)
    seen = set()
    s = lambda v: np.sign(v) * np.log10(1 + abs(v))  # noqa: E731  (drawn in symlog coordinates)
    for m in maps:
        row = nodes.index(m.node)
        for iv in m.intervals:
            a, b = s(iv.lo), s(iv.hi)
            w = max(b - a, 0.03)  # a single input stays visible
            ax.broken_barh([(a, w)], (row - 0.35, 0.7), facecolors=EVENT_COLOURS[m.event],
                           edgecolor="k" if iv.harmful else "none", hatch="///" if iv.harmful else None,
                           lw=0.6, alpha=0.85, label=m.event if m.event not in seen else None)
            seen.add(m.event)
    ax.set_yticks(range(len(nodes)))
    ax.set_yticklabels([n if len(n) <= 40 else n[:37] + "..." for n in nodes], fontsize=8)
    ax.invert_yaxis()
    lim = math.log10(1 + xmax)
    ax.set_xlim(-lim * 1.02, lim * 1.02)
    ticks = symlog_ticks(xmax)
    ax.set_xticks([s(t) for t in ticks])
    ax.set_xticklabels([_tick(t) for t in ticks], fontsize=8)
    ax.set_xlabel("x (symmetric log scale)")
    ax.set_title(f"{formula}, {dtype}: events of each intermediate (hatched: harmful)")
    if seen:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    ax.grid(True, axis="x", alpha=0.2)
    return fig


def cdf_figure(series: list[dict], dtype: str):
    """Empirical CDF of the ulp error (finite outputs) per formulation."""
    fig, ax = plt.subplots(figsize=(9, 5.5), constrained_layout=True)
    for k, s in enumerate(series):
        e = np.sort(np.maximum(s["ulp"][np.isfinite(s["ulp"])], ULP_FLOOR))
        if not len(e):
            continue
        # the exact empirical CDF, sampled at CDF_LEVELS log-spaced error levels (and the largest error)
        levels = np.unique(np.concatenate([np.geomspace(ULP_FLOOR, e[-1], CDF_LEVELS), [e[-1]]]))
        p = np.searchsorted(e, levels, side="right") / len(s["ulp"])
        colour, ls = series_style(k, len(series))
        ax.step(levels, p, where="post", color=colour, ls=ls, lw=1.1, label=s["id"])
    ax.set_xscale("log")
    ax.axvline(0.5, color="k", lw=0.7, ls=":")
    ax.axvline(1.0, color="k", lw=0.7, ls="-.")
    ax.set_xlabel("ulp error (errors below 1e-3 drawn at 1e-3)")
    ax.set_ylabel("share of inputs with at most that error")
    ax.set_ylim(0, 1.01)
    ax.set_title(f"distribution of the ulp error, {dtype}\n(nonfinite outputs never reach 1)", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    ax.grid(True, alpha=0.2)
    return fig


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated in (cost, error), both minimised."""
    out = []
    for i, (c, e) in enumerate(points):
        if not any((c2 <= c and e2 <= e) and (c2 < c or e2 < e) for j, (c2, e2) in enumerate(points) if j != i):
            out.append(i)
    return out


def cost_figure(rows: list[dict], dtype: str):
    """rows: id, ns (per element), max_ulp, mean_ulp, nonfinite. Numbered points, a key, the Pareto front."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2), constrained_layout=True)
    order = sorted(range(len(rows)), key=lambda i: rows[i]["id"])
    num = {i: k + 1 for k, i in enumerate(order)}
    for ax, key, name in ((axes[0], "max_ulp", "max ulp error (finite outputs)"), (axes[1], "mean_ulp", "mean ulp error")):
        pts = [(r["ns"], max(r[key] or ULP_FLOOR, ULP_FLOOR)) for r in rows]
        bad = [bool(r.get("nonfinite")) for r in rows]
        ax.scatter([p[0] for p, b in zip(pts, bad) if not b], [p[1] for p, b in zip(pts, bad) if not b], s=26,
                   color="#1f77b4", zorder=3, label="formulation")
        if any(bad):
            ax.scatter([p[0] for p, b in zip(pts, bad) if b], [p[1] for p, b in zip(pts, bad) if b], s=30, marker="s",
                       color="#d62728", zorder=3, label="has nonfinite outputs")
        front = sorted(pareto(pts), key=lambda i: pts[i][0])
        ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], color="#2ca02c", lw=1, zorder=2,
                label="Pareto front")
        # numbers instead of names, staggered so that coincident points stay readable
        placed: dict = {}
        for i, (c, e) in enumerate(pts):
            cell = (round(c / 6), round(math.log10(e) * 4))
            slot = placed.setdefault(cell, 0)
            placed[cell] += 1
            ax.annotate(str(num[i]), (c, e), fontsize=7, xytext=(4, 3 + 8 * slot), textcoords="offset points")
        ax.set_yscale("log")
        ax.set_xlabel("numpy time per element (ns, measured)")
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.2)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, frameon=False)
    key = "\n".join(f"{num[i]:2d} {rows[i]['id']}" for i in order)
    axes[1].text(1.02, 1.0, key, transform=axes[1].transAxes, fontsize=7.5, va="top", family="monospace")
    fig.suptitle(f"accuracy against cost, {dtype}: lower left is better")
    return fig


def tune_figure(rows: list[dict], summary: list[dict]):
    """`mishaudit tune`: the criterion's error measure against the parameter, one colour per format, a
    marker at each value tried and nothing between them (no line across values never tried); an open
    circle marks today's default (apart, and said so, when it lies outside the range tried), a star
    the best value."""
    by = summary[0]["by"]
    fig, ax = plt.subplots(figsize=(9, 5.5), constrained_layout=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    measure = "mean_ulp" if by == "mean_ulp" else "max_ulp"

    def y_of(r):
        if by == "cr_frac":
            return np.nan if r["cr_frac"] is None else 100 * r["cr_frac"]
        return np.nan if r[measure] is None else max(r[measure], ULP_FLOOR)

    for k, s in enumerate(summary):
        c = colours[k % len(colours)]
        rs = [r for r in rows if r["dtype"] == s["dtype"]]
        swept = [r for r in rs if not r["default"]] or rs
        lo, hi = min(r["value"] for r in swept), max(r["value"] for r in swept)
        inside = [r for r in rs if lo <= r["value"] <= hi]  # the range asked for (the default too, when in it)
        v = np.array([r["value"] for r in inside])
        y = np.array([y_of(r) for r in inside])
        bad = np.array([bool(r["nonfinite"]) for r in inside])
        ax.plot(v[~bad], y[~bad], ".", color=c, ms=3 if len(v) > 200 else 5, ls="none",
                label=f"{s['dtype']}: {len(v):,} values tried")
        if bad.any():
            ax.plot(v[bad], np.full(bad.sum(), 1.0), "|", color=c, ms=9, transform=ax.get_xaxis_transform(),
                    label=f"{s['dtype']}: nonfinite outputs")
        d = next((r for r in rs if r["default"]), None)
        if d is not None:
            outside = not (lo <= d["value"] <= hi)
            yd = 1.0 if d["nonfinite"] else y_of(d)
            ax.plot([d["value"]], [yd], "o", color=c, ms=8, mfc="none", mew=1.5,
                    transform=ax.get_xaxis_transform() if d["nonfinite"] else ax.transData,
                    label=f"{s['dtype']} default {d['value']!r}" + (" (outside the range)" if outside else ""))
        b = next((r for r in rs if r["best"]), None)
        if b is not None:
            ax.plot([b["value"]], [1.0 if b["nonfinite"] else y_of(b)], "*", color=c, ms=11,
                    transform=ax.get_xaxis_transform() if b["nonfinite"] else ax.transData,
                    label=f"{s['dtype']} best {b['value']!r}")
    if by == "cr_frac":
        ax.set_ylabel("correctly rounded outputs (%)")
    else:
        ax.set_yscale("log")
        ax.set_ylabel(f"{measure.replace('_', ' ')} error (ulp of the format; below 1e-3 drawn at 1e-3)")
    s0 = summary[0]
    ax.set_xlabel(f"{s0['param']} (rounded to the working format)")
    ax.set_title(f"{s0['formula']}: error against {s0['param']}, best by {by}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    ax.grid(True, alpha=0.2)
    return fig
