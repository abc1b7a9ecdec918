"""Render `mishaudit tune`'s summary: per format the best value beside today's default (pure text
functions and a rich printer)."""

from __future__ import annotations

import math

from mishaudit.output.tables import _pct, bound_text, print_wide, ulp_text

HEAD = ("dtype", "best", "max ulp", "mean ulp", "p99 ulp", "CR", "nonfinite", "as good",
        "default", "max ulp", "mean ulp", "p99 ulp", "CR", "nonfinite", "default is")

LEGEND = ("best: the value the criterion ranks first among those in the range asked for (nonfinite outputs count "
          "first; ties broken by the other criteria, then by nearness to the default); default: today's value, measured "
          "as well and compared, never chosen when outside the range; as good: the range of values tying the best on the "
          "criterion (how many; 'with gaps' when values inside it do worse); ulp error |y - r|/ulp(r) against the "
          "exact spec r, over finite outputs ('≤': --exhaustive's p99, an upper bound within 2^-11 relative); values are "
          "the working format's (the evaluator rounds the parameter to it).")


def _verdict(s: dict) -> str:
    """The default against the best: as good (it ties inside the range), or better / as good / worse
    (a default outside the range asked for is compared, never chosen)."""
    if s["default_as_good"]:
        return "as good"
    k = s["by"]
    d, b = s[f"default_{k}"], s[f"best_{k}"]
    key = (lambda n, v: (n, -v if k == "cr_frac" else v))
    dk = key(s["default_nonfinite"], math.inf if d is None else d)
    bk = key(s["best_nonfinite"], math.inf if b is None else b)
    word = "worse" if dk > bk else "better" if dk < bk else "as good"
    where = " (outside the range)" if dk <= bk else ""  # inside it, a tie or better would be as good or best
    if s["default_nonfinite"] != s["best_nonfinite"]:
        return f"{word}{where}: {s['default_nonfinite']:,} nonfinite vs {s['best_nonfinite']:,}"
    if word == "as good":
        return f"as good{where}"
    if k == "cr_frac":
        return f"{word}{where}: CR {100 * d:.4f}% vs {100 * b:.4f}%"
    return f"{word}{where}: {d:.6g} vs {b:.6g} ulp"


def _cells(s: dict) -> list[str]:
    p99 = bound_text if s.get("percentiles") == "bound" else ulp_text  # the sweep's p99 is an upper bound
    good = (f"{s['as_good_lo']!r}" if s["as_good_count"] == 1 else
            f"[{s['as_good_lo']!r}, {s['as_good_hi']!r}] ({s['as_good_count']:,}"
            + ("" if s["as_good_contiguous"] else ", with gaps") + ")")
    return [s["dtype"] + ("" if s["compute_dtype"] == s["dtype"] else f" (in {s['compute_dtype']})"),
            repr(s["best_value"]),
            ulp_text(s["best_max_ulp"]), ulp_text(s["best_mean_ulp"]), p99(s["best_p99_ulp"]), _pct(s["best_cr_frac"]),
            f"{s['best_nonfinite']:,}", good, repr(s["default_value"]),
            ulp_text(s["default_max_ulp"]), ulp_text(s["default_mean_ulp"]), p99(s["default_p99_ulp"]),
            _pct(s["default_cr_frac"]), f"{s['default_nonfinite']:,}", _verdict(s)]


def notes(summary: list[dict]) -> list[str]:
    """Per format: which values were tried, on which inputs."""
    return [f"{s['dtype']}: tried {s['tried']}; on {s['inputs']:,} {s['strategy']} inputs" for s in summary]


def title(summary: list[dict]) -> str:
    s = summary[0]
    return f"tune {s['formula']} {s['param']}: best by {s['by']} per format, and today's default"


def tune_markdown(summary: list[dict]) -> str:
    lines = [f"**{title(summary)}**", "", "| " + " | ".join(HEAD) + " |", "|" + "|".join("---" for _ in HEAD) + "|"]
    lines += ["| " + " | ".join(_cells(s)) + " |" for s in summary]
    return "\n".join(lines + [""] + [n + "  " for n in notes(summary)] + ["", LEGEND]) + "\n"


def print_tune(summary: list[dict], console) -> None:
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=title(summary), title_justify="left")
    for i, h in enumerate(HEAD):
        t.add_column(h, justify="left" if i in (0, 7, 14) else "right", overflow="fold",
                     style="bold" if i == 1 else None)
    for s in summary:
        t.add_row(*(escape(c) for c in _cells(s)))
    print_wide(console, t)  # a file or a pipe: every column unfolded
    for n in notes(summary):
        console.print("[dim]" + escape(n) + "[/]")
    console.print("[dim]" + LEGEND + "[/]")
