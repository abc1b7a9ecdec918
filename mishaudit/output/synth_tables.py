"""Render `mishaudit synthesize`: the regimes chosen, the result's figures from its exhaustive audit,
its cost, and the commands that reproduce both (pure text functions and a rich printer)."""

from __future__ import annotations

from mishaudit.output.tables import print_wide, ulp_text

FIGURES = (("max ulp", "max_ulp", ulp_text), ("mean ulp", "mean_ulp", ulp_text), ("worst x", "worst_x", repr),
           ("CR", "cr_frac", lambda v: "—" if v is None else f"{100 * v:.4f}%"),
           ("faithful", "faithful_frac", lambda v: "—" if v is None else f"{100 * v:.4f}%"),
           ("nonfinite", "nonfinite", str), ("±0 wrong", "signed_zero_mismatch", str),
           ("specials wrong", "specials_wrong", str), ("inputs", "inputs", lambda v: f"{v:,}"),
           ("strategy", "strategy", str))

LEGEND = ("ulp error |y - r|/ulp(r) against the exact spec r, over every finite input of the format (fp32: "
          "the exhaustive sweep); CR: y = RN(r); faithful: y is one of the two format values around r; "
          "calls: elementary functions on the costliest path, ops: every operation on it.")


def title(attrs: dict) -> str:
    cost = attrs["cost"]
    ns = cost.get("ns_per_input")
    t = (f"mishaudit synthesize: {attrs['id']} for {attrs['spec']} in {attrs['dtype']}, {attrs['regimes']} "
         f"regimes, at most {cost['calls']} elementary calls and {cost['ops']} operations on a path")
    return t + (f", {ns:.2f} ns/input as emitted C (gcc, this machine)" if ns is not None else "")


def figure_cells(fig: dict) -> list[str]:
    return [fn(fig.get(k)) if fig.get(k) is not None or k in ("nonfinite",) else "—" for _, k, fn in FIGURES]


def regime_cells(r: dict) -> list[str]:
    return [repr(r["from_x"]), repr(r["below_x"]), r["form"], r["origin"], str(r["calls"]), str(r["ops"])]


REGIME_HEAD = ("from x", "below x", "form", "origin", "calls", "ops")


def lines(attrs: dict) -> list[str]:
    """The commands and notes printed under the tables."""
    out = [f"reproduce: {attrs['command']}"]
    if attrs.get("figures") is not None:
        out.append(f"figures from: {attrs['proof']}")
    if attrs.get("written"):
        out.append(f"wrote {attrs['written']}")
    out += [f"note: {n}" for n in attrs.get("notes", ())]
    return out


def synth_markdown(attrs: dict, rows: list[dict]) -> str:
    out = [f"**{title(attrs)}**", "", "| " + " | ".join(REGIME_HEAD) + " |",
           "|" + "---|" * len(REGIME_HEAD)]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in regime_cells(r)) + " |" for r in rows]
    fig = attrs.get("figures")
    if fig is not None:
        out += ["", "| " + " | ".join(h for h, _, _ in FIGURES) + " |", "|" + "---|" * len(FIGURES),
                "| " + " | ".join(figure_cells(fig)) + " |"]
    out += ["", *lines(attrs), "", LEGEND, ""]
    return "\n".join(out)


def print_synthesis(attrs: dict, rows: list[dict], console) -> None:
    from rich.table import Table

    t = Table(title=title(attrs), title_justify="left")
    for h in REGIME_HEAD:
        t.add_column(h, justify="right" if h in ("calls", "ops") else "left")
    for r in rows:
        t.add_row(*regime_cells(r))
    print_wide(console, t)
    fig = attrs.get("figures")
    if fig is not None:
        f = Table(title=f"audit of {attrs['id']} over every finite {attrs['dtype']} input", title_justify="left")
        for h, _, _ in FIGURES:
            f.add_column(h)
        f.add_row(*figure_cells(fig))
        print_wide(console, f)
    for line in lines(attrs):
        console.print(line, highlight=False, soft_wrap=True)
    console.print(LEGEND, style="dim", highlight=False)
    if not attrs.get("written"):
        console.print(attrs["fpcore"], highlight=False, markup=False, soft_wrap=True)

