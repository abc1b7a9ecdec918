"""README.md: its generated figures agree with facts computed here without mishaudit, its markers name what
scripts/readme.py writes, and every repository path it (or a docstring or comment of mishaudit/) names exists.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import re
import sys
import tokenize
from pathlib import Path

import mpmath
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def load_generator():
    spec = importlib.util.spec_from_file_location("readme_generator", ROOT / "scripts" / "readme.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["readme_generator"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def gen():
    return load_generator()


# ------------------------------------------------------------------------------ figures against facts


def every_finite_fp16() -> np.ndarray:
    v = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    return v[np.isfinite(v)]


def rn16(v) -> np.float16:
    """The float16 nearest to the mpmath value v (ties to even, overflow to inf), from exact comparisons."""
    if abs(v) >= 65520:
        return np.float16(np.inf if v > 0 else -np.inf)
    guess = np.float16(float(v))
    with np.errstate(over="ignore"):  # nextafter of the largest value is inf: left out below
        up, down = np.nextafter(guess, np.float16(np.inf)), np.nextafter(guess, np.float16(-np.inf))
    cands = [c for c in {guess, up, down}
             if np.isfinite(c)]
    best = min(cands, key=lambda c: (abs(mpmath.mpf(float(c)) - v), int(np.array(c).view(np.uint16)) & 1))
    if best == 0:
        best = np.float16(-0.0) if v < 0 else np.float16(0.0)
    return best


def test_the_fp16_exp_overflow_figure_is_the_first_fp16_value_above_ln_65520(gen):
    """opencv-cpu's exp(-x) overflows for x <= -e0, e0 the least fp16 value whose exp rounds to inf in fp16
    (exp(e) >= 65504 + 16, i.e. e >= ln 65520 = 11.0898...: e0 = 11.09375); it starts right above the
    formula's cutoff -36.73 (rounded to fp16, -36.71875)."""
    with mpmath.workprec(100):
        edge = mpmath.log(65520)
    xs = np.sort(every_finite_fp16().astype(np.float64))
    e0 = float(xs[np.searchsorted(xs, float(edge))])
    assert e0 == 11.09375 and float(mpmath.mpf(e0)) >= edge
    cutoff = np.float16(-36.73)
    lo = np.nextafter(cutoff, np.float16(0))
    assert gen.render_value("opencv-exp-overflow-fp16") == f"[{float(lo)!r}, {-e0!r}]" == "[-36.6875, -11.09375]"


def test_a_headline_row_against_brute_force(gen, monkeypatch):
    """coreml-2725's row of the fp16 headline table against a brute-force count: every finite fp16 input
    evaluated op by op with numpy float16 arithmetic and exp, log, tanh from mpmath rounded to fp16, compared
    with RN16(mish(x)) from mpmath at 120 bits."""
    monkeypatch.setattr(gen, "DTYPES", ("fp16",))  # the headline needs fp16 alone
    for f in (gen.mish_frame, gen.source_rows):
        f.cache_clear()
    table = gen.BLOCKS["headline-fp16"]()
    cells = next(line for line in table.splitlines() if line.startswith("| coreml-2725 |")).split(" | ")
    header = [h.strip() for h in table.splitlines()[0].strip("|").split("|")]
    got = dict(zip(header, [c.strip(" |") for c in cells]))

    memo: dict = {}

    def cr(fn, a):
        a = np.float16(a)
        k = (fn, a.tobytes())
        if k not in memo:
            if fn == "log" and a == 0:
                memo[k] = np.float16(-np.inf)
            else:
                with mpmath.workprec(80):
                    memo[k] = rn16(getattr(mpmath, fn)(mpmath.mpf(float(a))))
        return memo[k]

    xs = every_finite_fp16()
    ok = zero_mismatch = nonfinite = 0
    for x in xs:
        e = cr("exp", np.float16(-np.abs(x)))
        sp = np.float16((x if x > 0 else np.float16(0)) + cr("log", np.float16(e + np.float16(1))))
        y = np.float16(x * cr("tanh", sp))
        with mpmath.workprec(120):
            xm = mpmath.mpf(float(x))
            r = rn16(xm * mpmath.tanh(mpmath.log1p(mpmath.exp(xm)))) if x != 0 else x
        nonfinite += not np.isfinite(y)
        same = y.tobytes() == r.tobytes()
        ok += same
        zero_mismatch += (y == 0 and r == 0 and not same)
    assert got["CR"] == f"{100 * ok / xs.size:.1f}%"
    assert got["nonfinite"] == f"{nonfinite:,}" and got["±0 mismatch"] == f"{zero_mismatch:,}"
    assert got["formula ulp"] == "exact"  # every branch of max(x, 0) + log(1 + exp(-|x|)) is softplus


# ---------------------------------------------------------------------------------------- the markers


def test_every_marker_of_the_readme_names_what_the_generator_writes(gen):
    text = README.read_text()
    blocks = [m.group("name") for m in gen.BLOCK.finditer(text)]
    keys = [m.group("key") for m in gen.INLINE.finditer(text)]
    assert blocks and keys
    assert set(blocks) <= set(gen.BLOCKS), set(blocks) - set(gen.BLOCKS)
    sources = {"mish", "grad", "exhaustive", "exhaustive-grad", "kernel"} | {f"inputs-{r}" for r in gen.RANGES}
    for k in keys:
        if k in gen.VALUES:
            continue
        parts = k.split("/")
        assert len(parts) == 4 and parts[0] in sources, f"README.md marker {k!r} is neither a value nor a query"
    # an opening without its end (or a stray end) would be left as it is: none
    assert text.count("<!-- generated: ") == text.count("<!-- end: ") == len(blocks)
    assert text.count("<!-- g: ") == text.count("<!-- /g -->") == len(keys)


def test_render_rewrites_a_stale_figure_and_names_it(gen):
    stale = "x <!-- g: formats/fp16/finite -->1<!-- /g --> y\n<!-- generated: nothing -->\n"
    with pytest.raises(KeyError, match="nothing"):
        gen.render(stale + "<!-- end: nothing -->\n")
    new, changed = gen.render(stale.split("\n")[0] + "\n")
    assert new == "x <!-- g: formats/fp16/finite -->63,488<!-- /g --> y\n" and changed == ["formats/fp16/finite"]
    again, changed = gen.render(new)
    assert again == new and changed == []


# ----------------------------------------------------------------------------------------- the paths

PATH = re.compile(r"(?<![\w./-])[\w/-]*\w\.(?:py|md|toml|json|fpcore)\b")
# files the README tells a user to write, or that a command writes; not files of this repository
EXAMPLES = {
    "r.json", "overflow-fp32.json", "ci/mish/ours.fpcore", "ci/mish/thresholds.toml", "mishaudit.xml",
    "thresholds.toml",  # a gate file a user keeps, in check's --help
}


def repository_files() -> tuple[set, set]:
    tracked = set()
    for p in ROOT.rglob("*"):
        rel = p.relative_to(ROOT)
        if rel.parts and rel.parts[0] in (".git", ".venv") or "__pycache__" in rel.parts or ".egg-info" in str(rel):
            continue
        tracked.add(rel.as_posix())
    return tracked, {Path(t).name for t in tracked}


def docs_of(path: Path) -> list[tuple[int, str]]:
    """The docstrings and comments of a Python file, with their first line numbers."""
    src = path.read_text()
    out = [(t.start[0], t.string) for t in tokenize.generate_tokens(io.StringIO(src).readline)
           if t.type == tokenize.COMMENT]
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                out.append((body[0].lineno, body[0].value.value))
    return out


def dangling(where: Path, lineno: int, text: str, tracked: set, names: set) -> list[str]:
    bad = []
    for m in PATH.finditer(text):
        p = m.group(0)
        if p in EXAMPLES:
            continue
        rel_dir = where.parent.relative_to(ROOT)
        bases = ["", "mishaudit/", f"{rel_dir.as_posix()}/", f"{rel_dir.parent.as_posix()}/"]
        if any((b + p).lstrip("./") in tracked for b in bases):
            continue
        if "/" not in p and p in names:  # a bare file name of this repository (the README's package table)
            continue
        bad.append(f"{where.relative_to(ROOT)}:{lineno}: {p}")
    return bad


def test_every_path_named_in_the_readme_and_in_docstrings_exists():
    """README.md and every docstring and comment under mishaudit/ name only files that exist (relative to the
    repository, to mishaudit/, or to the naming file's folder or its parent); DESIGN.md and CONTEXT.md live
    outside the repository and must not be named as if they were in it."""
    tracked, names = repository_files()
    bad = []
    for i, line in enumerate(README.read_text().splitlines(), 1):
        bad += dangling(README, i, line, tracked, names)
    for py in sorted((ROOT / "mishaudit").rglob("*.py")):
        for lineno, text in docs_of(py):
            bad += dangling(py, lineno, text, tracked, names)
    assert not bad, "dangling paths:\n" + "\n".join(bad)


def test_the_path_scan_catches_a_moved_file():
    tracked, names = repository_files()
    assert dangling(README, 1, "see `mishaudit/libm.py` and DESIGN.md", tracked, names) == [
        "README.md:1: mishaudit/libm.py", "README.md:1: DESIGN.md"]
    assert dangling(README, 1, "see `mishaudit/eval/libm.py`, `reports/thresholds.toml`", tracked, names) == []
