"""Write every figure of README.md from mishaudit itself: no number in its tables or marked sentences is typed
by hand.

Run from the repository root (about a minute on a 2-core machine, warm or cold cache alike):
    .venv/bin/python scripts/readme.py             rewrite README.md
    .venv/bin/python scripts/readme.py --check     exit 1, with a one-line summary, when README.md differs from
                                                   what it would write (.ci/run runs this)
    .venv/bin/python scripts/readme.py --measure   first re-measure reports/machine.json (the framework kernels
                                                   and numpy's SIMD dispatch: figures of this machine), then
                                                   rewrite README.md
Exit 2 when a sentence's claim no longer holds for the figures (Stale: the prose must change, not only the
numbers), e.g. "exp-rational and exp-rational-clamped have the same figures".

README.md marks what this script writes with HTML comments (hidden once rendered):
    <!-- generated: NAME -->          a block (a table, a code block) on the lines in between
    ...
    <!-- end: NAME -->
    <!-- g: KEY -->value<!-- /g -->   one value inside a sentence
NAME is a block below (BLOCKS). KEY is a value below (VALUES: overflow intervals, tune sweeps, mpmath roots,
identify rankings, ...), or a query SOURCE/DTYPE/FORMULA/COLUMN[:FMT] that reads one cell of a result row, so
that the README says where each number comes from. SOURCE:
    mish              mishaudit.compare of every formulation of mish, fp16/bf16 every input, fp32 the seeded
                      2^16 sample (libm cr: the same bits on every machine), computed now
    grad              the same for the derivative formulations (the transcribed -grad files; their kernels are
                      `kernel`; the synthesized mishaudit-grad-* are `synthesized`)
    inputs-0.9 ...    compare --inputs linspace:-R:R:1000 (fp16, fp32), R = 0.9, 31.5, 99, computed now (the
                      transcribed formulations: not the synthesized mishaudit-*)
    exhaustive        reports/exhaustive-fp32.json (every fp32 input; rows of `compare --format json`)
    exhaustive-grad   reports/exhaustive-fp32-grad.json
    exhaustive-glibc  reports/exhaustive-fp32-glibc.json (the same as exhaustive, under --libm glibc)
    synthesized       reports/synthesized.json (scripts/synthesized.py): the shipped mishaudit-* results over
                      every finite input (fp32 --exhaustive)
    libm-MODEL        reports/libm-fp32.json (scripts/libm_fp32.py): the elementary functions of formulas/libm/
                      over every fp32 input of their domain under libm MODEL (cr, glibc, numpy, torch)
    kernel            reports/machine.json: the framework kernels as --measure found them
    models            reports/models/*.fpcore (the imports scripts/model_runs.py kept), audited now: each in
                      the narrowest format it computes in (fp16 every input, fp32 the seeded 2^16 sample)
    models-R          the same under --inputs linspace:-R:R:1000, R = 0.9, 31.5, 99
COLUMN is a key of `compare --format json` (or cr_count, faithful_count: the share times the inputs);
FMT: s (3 significant digits, the CLI's tables), gN (N significant digits), fN (N decimals), pct (one
decimal), int (thousands separated), x (the exact value, repr). Without FMT: by the column.

The exhaustive JSON files (and reports/overflow-fp32-softplus-tanh.json) are written by the mishaudit
commands the README names next to them, which take minutes per formulation: this script only reads them.
Timings are one run's measurements on the machine named beside them: the exhaustive-fp32 speed table is
read from reports/speed-fp32.json (written by python benchmarks/exhaustive.py --output reports/speed-fp32.json).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
REPORTS = ROOT / "reports"
MACHINE = REPORTS / "machine.json"
EXHAUSTIVE = REPORTS / "exhaustive-fp32.json"
EXHAUSTIVE_GRAD = REPORTS / "exhaustive-fp32-grad.json"
EXHAUSTIVE_GLIBC = REPORTS / "exhaustive-fp32-glibc.json"
SYNTHESIZED = REPORTS / "synthesized.json"
LIBM = REPORTS / "libm-fp32.json"
OVERFLOW_EXHAUSTIVE = REPORTS / "overflow-fp32-softplus-tanh.json"
MODELS = REPORTS / "models"
MODEL_RUNS = REPORTS / "model-runs.json"
SPEED = REPORTS / "speed-fp32.json"  # benchmarks/exhaustive.py --output

BLOCK = re.compile(r"<!-- generated: (?P<name>[\w.-]+) -->\n(?P<body>.*?)<!-- end: (?P=name) -->", re.DOTALL)
INLINE = re.compile(r"<!-- g: (?P<key>[^ ]+) -->(?P<body>[^\n]*?)<!-- /g -->")

DTYPES = ("fp16", "bf16", "fp32")
RANGES = ("0.9", "31.5", "99")  # the input ranges of coremltools PR #2618's test, linspace of 1000 values each
KERNELS = ("torch:mish", "torch:softplus-tanh", "onnxruntime:Mish", "jax:mish")
GRAD_KERNELS = ("torch:mish-grad", "jax:mish-grad")


class Stale(Exception):
    """A sentence's claim no longer holds for the figures: the README's prose must change."""


# ---------------------------------------------------------------------------------------------- sources


def records(df) -> list[dict]:
    """DataFrame rows as dicts, pandas' <NA> as None."""
    import pandas as pd

    return [{k: (None if (not isinstance(v, (list, tuple, dict)) and pd.isna(v)) else v) for k, v in r.items()}
            for r in df.to_dict("records")]


@functools.cache
def mish_frame():
    import mishaudit

    return mishaudit.compare(dtype=list(DTYPES))


@functools.cache
def grad_frame():
    import mishaudit

    # the transcribed formulations only: not the kernels, not the synthesized mishaudit-grad-* (the
    # `synthesized` source has those)
    ids = [f.id for f in registry().values() if f.spec.key == "mish'" and not f.source.startswith("mishaudit synth")]
    return mishaudit.compare(dtype=list(DTYPES), formulas=ids)


@functools.cache
def inputs_rows(rng: str) -> list[dict]:
    import mishaudit

    ids = [f.id for f in registry().values() if f.spec.key == "mish" and not f.source.startswith("mishaudit synth")]
    return records(mishaudit.compare(dtype=["fp16", "fp32"], formulas=ids, inputs=f"linspace:-{rng}:{rng}:1000"))


@functools.lru_cache(maxsize=None)
def models_rows(rng: str | None) -> list[dict]:
    """compare of each imported model file in its audit format (reports/model-runs.json's audit_dtype)."""
    import mishaudit

    out = []
    by_dtype: dict = {}
    for r in read_json(MODEL_RUNS)["rows"]:
        by_dtype.setdefault(r["audit_dtype"], []).append(r["id"])
    for dtype, ids in sorted(by_dtype.items()):
        kw = {"inputs": f"linspace:-{rng}:{rng}:1000"} if rng else {}
        out += records(mishaudit.compare(dtype=dtype, formulas=ids, formula_dirs=(str(MODELS),), **kw))
    return out


def read_json(path: Path):
    if not path.exists():
        raise SystemExit(f"scripts/readme.py: {path.relative_to(ROOT)} is missing: the README names the command that "
                         "writes it")
    return json.loads(path.read_text())


@functools.cache
def machine() -> dict:
    return read_json(MACHINE)


@functools.cache
def source_rows(source: str) -> list[dict]:
    if source in ("mish", "grad"):  # a formulation made for another format (:mishaudit-dtype) has no figures there
        rows = records(mish_frame() if source == "mish" else grad_frame())
        return [r for r in rows if r.get("strategy") != "unsupported"]
    if source.startswith("inputs-"):
        return inputs_rows(source[len("inputs-"):])
    if source == "exhaustive":
        return read_json(EXHAUSTIVE)
    if source == "exhaustive-grad":
        return read_json(EXHAUSTIVE_GRAD)
    if source == "exhaustive-glibc":
        return read_json(EXHAUSTIVE_GLIBC)
    if source == "synthesized":
        return read_json(SYNTHESIZED)["rows"]
    if source.startswith("libm-"):
        return [r for r in read_json(LIBM)["rows"] if r["libm"] == source[len("libm-"):]]
    if source == "kernel":
        return machine()["compare"]
    if source == "models":
        return models_rows(None)
    if source.startswith("models-"):
        return models_rows(source[len("models-"):])
    raise KeyError(f"unknown source {source!r}")


def row(source: str, dtype: str, formula: str) -> dict:
    for r in source_rows(source):
        if r["dtype"] == dtype and r["formula"] == formula:
            return r
    raise KeyError(f"no row {source}/{dtype}/{formula}")


@functools.cache
def registry() -> dict:
    import mishaudit

    return mishaudit.load_formulas()


@functools.cache
def overflow(dtype: str, formulas: tuple, settings: tuple = ()):
    """(events, culprits) rows of mishaudit.overflow."""
    import mishaudit

    events, culprits = mishaudit.overflow(dtype=dtype, formulas=list(formulas), settings=list(settings))
    return records(events), records(culprits)


def event(dtype: str, formula: str, node: str, kind: str, settings: tuple = ()) -> dict:
    for e in overflow(dtype, (formula,), settings)[0]:
        if e["node"] == node and e["event"] == kind:
            return e
    raise KeyError(f"no {kind} event of {node} in {formula} {dtype}")


def culprit(dtype: str, formula: str, node: str) -> dict:
    for c in overflow(dtype, (formula,))[1]:
        if c["node"] == node:
            return c
    raise KeyError(f"no culprit {node} in {formula} {dtype}")


# the parameter sweeps of the tuning table: (formula, parameter, range, formats, steps)
TUNES = (
    ("softplus-threshold", "threshold", "1:6", ("fp16", "bf16"), None),
    ("softplus-threshold", "threshold", "1:20", ("fp32",), 381),
    ("exp-rational-clamped", "clamp", "-12:-10", ("fp16",), None),
    ("exp-rational-clamped", "clamp", "-100:-80", ("bf16",), None),
    ("exp-rational-clamped", "clamp", "-100:-80", ("fp32",), 201),
    ("onednn-jit", "clamp", "5:44.3614159", ("bf16",), None),
)


@functools.cache
def tune_sweep(spec: tuple) -> dict:
    """One sweep of TUNES, all its formats at once: format -> (by=max_ulp summary row, every value's row)."""
    import mishaudit

    formula, param, rng, fmts, steps = spec
    df = mishaudit.tune(formula, param, rng, dtype=list(fmts), steps=steps)
    summ = {r["dtype"]: r for r in records(df.attrs["summary"])}
    rows = records(df)
    return {d: (summ[d], [r for r in rows if r["dtype"] == d]) for d in fmts}


def tuned(formula: str, dtype: str) -> dict:
    """{'summary', 'rows', 'spec'} of the TUNES sweep of `formula` that covers `dtype`."""
    for spec in TUNES:
        if spec[0] == formula and dtype in spec[3]:
            summary, rows = tune_sweep(spec)[dtype]
            return {"summary": summary, "rows": rows, "spec": spec}
    raise KeyError(f"no tune sweep of {formula} in {dtype}")


def as_good(t: dict, by: str) -> list[float]:
    """The values tied with the best on `by`: tune's own rule (analysis/tune.py), key (nonfinite, value)
    equal to the least, read off the per-value rows of one sweep instead of sweeping once more."""
    def key(r):
        v = r[by]
        return (r["nonfinite"], math.inf if v is None else (-v if by == "cr_frac" else v))

    top = min(key(r) for r in t["rows"])
    return sorted(r["value"] for r in t["rows"] if key(r) == top)


# ------------------------------------------------------------------------------------------- formatting


def short(v) -> str:
    """3 significant digits without an exponent between 0.001 and 1e5 (the CLI tables' figures)."""
    from mishaudit.output.tables import short as s

    return s(v)


def sig(v, n: int) -> str:
    return "—" if v is None else f"{float(v):.{n}g}"


def pct(v) -> str:
    return "—" if v is None else f"{100 * float(v):.1f}%"


def pct_down(v, decimals: int = 4) -> str:
    """A share as a percentage rounded down (100% only when it is every input: 'all')."""
    if v is None:
        return "—"
    if v == 1:
        return "all"
    k = 10**decimals
    return f"{math.floor(100 * float(v) * k) / k:.{decimals}f}%"


def count(v) -> str:
    return "—" if v is None else f"{int(v):,}"


def exact(v) -> str:
    return "—" if v is None else repr(float(v))


def by_column(col: str):
    if col.endswith("_frac"):
        return pct
    if col in ("inputs", "nonfinite", "signed_zero_mismatch", "cr_count", "faithful_count", "wrong") or col.startswith("dulp_"):
        return count
    if col.startswith("worst_") or col.endswith("_worst_x"):
        return exact
    return short


def fmt(v, spec: str | None, col: str = "") -> str:
    if spec is None:
        return by_column(col)(v)
    if spec == "s":
        return short(v)
    if spec == "pct":
        return pct(v)
    if spec == "int":
        return count(v)
    if spec == "x":
        return exact(v)
    if spec[0] == "g":
        return sig(v, int(spec[1:]))
    if spec[0] == "f":
        return f"{float(v):.{int(spec[1:])}f}"
    raise ValueError(f"unknown format {spec!r}")


def cell(r: dict, col: str):
    if col == "wrong" and "wrong" not in r:
        return r["inputs"] - r["dulp_0"]
    if col in ("cr_count", "faithful_count"):
        return round(r[col.replace("_count", "_frac")] * r["inputs"])
    return r[col]


def query(key: str) -> str:
    """SOURCE/DTYPE/FORMULA/COLUMN[:FMT] (the module docstring)."""
    parts = key.split("/")
    if len(parts) != 4:
        raise KeyError(key)
    source, dtype, formula, col = parts
    col, _, spec = col.partition(":")
    return fmt(cell(row(source, dtype, formula), col), spec or None, col)


def interval(iv, f=exact) -> str:
    return f"[{f(iv[0])}, {f(iv[1])}]"


def md_table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def sorted_rows(rows: list[dict]) -> list[dict]:
    """Worst first within each format: nonfinite outputs first, then by max ulp (the CLI's order)."""
    from mishaudit.output.tables import sort_rows

    return sort_rows(rows, None)


# ---------------------------------------------------------------------------------------- exact facts


@functools.cache
def mp_root(what: str, k: int | None, guess: float, digits: int) -> str:
    """The x near `guess` where mish(x) (what='mish') or mish'(x) ('grad') equals -2^k (0 for k None), by
    mpmath at 200 bits."""
    import mpmath

    with mpmath.workprec(200):
        def mish(x):
            return x * mpmath.tanh(mpmath.log1p(mpmath.exp(x)))

        def grad(x):
            t = mpmath.tanh(mpmath.log1p(mpmath.exp(x)))
            return t + x / (1 + mpmath.exp(-x)) * (1 - t * t)

        f = mish if what == "mish" else grad
        c = mpmath.mpf(0) if k is None else -mpmath.mpf(2) ** k
        x = mpmath.findroot(lambda x: f(x) - c, mpmath.mpf(guess))
        return f"{float(x):.{digits}f}"


# --------------------------------------------------------------------------------------------- blocks

BLOCKS: dict = {}
VALUES: dict = {}


def block(name):
    def deco(fn):
        BLOCKS[name] = fn
        return fn
    return deco


def value(name):
    def deco(fn):
        VALUES[name] = fn
        return fn
    return deco


@block("headline-fp16")
def headline_fp16() -> str:
    from mishaudit.output.tables import formula_ulp_text

    rows = sorted_rows([r for r in source_rows("mish") if r["dtype"] == "fp16"])
    return md_table(["formula", "max ulp", "mean ulp", "worst x", "CR", "nonfinite", "±0 mismatch", "formula ulp"],
                    [[r["formula"], short(r["max_ulp"]), short(r["mean_ulp"]), exact(r["worst_x"]), pct(r["cr_frac"]),
                      count(r["nonfinite"]), count(r["signed_zero_mismatch"]), formula_ulp_text(r)] for r in rows])


def kernel_cell(r: dict | None) -> str:
    if r is None or r.get("strategy") == "unsupported" or r.get("max_ulp") is None:
        return "unsupported"
    return f"{sig(r['max_ulp'], 4)} / {pct(r['cr_frac'])}"


def maybe(source: str, dtype: str, formula: str) -> dict | None:
    try:
        return row(source, dtype, formula)
    except KeyError:
        return None


@block("kernels")
def kernels() -> str:
    body = []
    for impl in (*KERNELS, "softplus-tanh", "log-exp-plus-one"):
        src = "kernel" if ":" in impl else "mish"
        cells = [kernel_cell(maybe(src, d, impl)) for d in DTYPES]
        r32 = maybe(src, "fp32", impl)
        body.append([impl, *cells, exact(r32["worst_x"]) if r32 else "—"])
    return md_table(["implementation", "fp16 max ulp / CR", "bf16 max ulp / CR", "fp32 max ulp / CR", "fp32 worst x"], body)


@block("model-runs")
def model_runs() -> str:
    """Each imported model's Mish: how it was made, what it equals, its audit (libm cr)."""
    body = []
    for r in read_json(MODEL_RUNS)["rows"]:
        a = row("models", r["audit_dtype"], r["id"])
        maes = [sig(row(f"models-{rng}", r["audit_dtype"], r["id"])["mean_abs_err"], 4) for rng in RANGES]
        equal = r["same_operations"] or (f"same bits: {r['same_bits']}" if r["same_bits"] else "none")
        sample = "every input" if r["audit_dtype"] in ("fp16", "bf16") else "2^16 sample"
        body.append([f"`{r['model']}`", r["computes_in"], equal, f"{r['audit_dtype']} ({sample})", short(a["max_ulp"]),
                     pct(a["cr_frac"]), exact(a["worst_x"]), count(a["nonfinite"]), *maes])
    return md_table(["model", "computes in", "equal to", "audit", "max ulp", "CR", "worst x", "nonfinite",
                     *[f"MAE [-{rng}, {rng}]" for rng in RANGES]], body)


@value("model-roundtrip")
def model_roundtrip() -> str:
    """The fp16 ONNX exports, both exporters, against log-exp-plus-one's fp16 figures (Stale when they differ)."""
    ref = row("mish", "fp16", "log-exp-plus-one")
    keys = ("max_ulp", "mean_ulp", "cr_frac", "worst_x", "nonfinite")
    for ident in ("onnx-dynamo-fp16", "onnx-torchscript-fp16"):
        got = row("models", "fp16", ident)
        if any(got[k] != ref[k] for k in keys):
            raise Stale(f"{ident}'s fp16 figures differ from log-exp-plus-one's")
    return (f"{short(ref['max_ulp'])} ulp at x = {exact(ref['worst_x'])}, mean {short(ref['mean_ulp'])}, "
            f"CR {pct(ref['cr_frac'])}")


@value("kernel-versions")
def kernel_versions() -> str:
    return ", ".join(machine()["frameworks"])


@value("machine")
def machine_name() -> str:
    m = machine()
    return "; ".join(v for v in (m.get("cpu"), m.get("machine"), m["numpy_dispatch"]) if v)


def identified(kernel: str, dtype: str) -> dict:
    return machine()["identify"][kernel][dtype]


def best_text(kernel: str, dtype: str) -> str:
    """identify's best candidate, how it ran, and the other formulations tied with it."""
    rk = identified(kernel, dtype)["ranking"]
    best = rk[0]
    how = "natively" if best["compute_dtype"] == dtype else f"in {best['compute_dtype']}"
    libm = "" if best["libm"] == "cr" else f" with {best['libm']}'s own functions"
    tied = [f for f in dict.fromkeys(c["formula"] for c in rk if c["matches"] == best["matches"]) if f != best["formula"]]
    return f"{best['formula']} computed {how}{libm}" + (f" (tied with {', '.join(tied)})" if tied else "")


def share_text(kernel: str, dtype: str) -> str:
    b = identified(kernel, dtype)["ranking"][0]
    if b["matches"] == b["inputs"]:
        return f"on all {b['inputs']:,} inputs"
    if b["share"] >= 0.9999:
        return f"on {b['matches']:,} of {b['inputs']:,} inputs"
    return f"on {100 * b['share']:.{2 if b['share'] > 0.99 else 1}f}% of the inputs"


for _k, _d in (("torch:mish", "fp16"), ("torch:mish", "bf16"), ("torch:mish", "fp32"), ("onnxruntime:Mish", "fp16"),
               ("onnxruntime:Mish", "fp64"), ("jax:mish", "fp16"), ("jax:mish", "bf16"), ("jax:mish", "fp32")):
    VALUES[f"identify/{_k}/{_d}/best"] = functools.partial(best_text, _k, _d)
    VALUES[f"identify/{_k}/{_d}/share"] = functools.partial(share_text, _k, _d)


@value("identify/torch:mish/bf16/full")
def torch_bf16_full() -> str:
    """How many candidates reproduce torch:mish on every bf16 input, by compute dtype."""
    rk = identified("torch:mish", "bf16")["ranking"]
    full = [c for c in rk if c["matches"] == c["inputs"]]
    if not full:
        raise Stale("no candidate reproduces torch:mish on every bf16 input")
    by: dict = {}
    for c in full:
        by[c["compute_dtype"]] = by.get(c["compute_dtype"], 0) + 1
    total = identified("torch:mish", "bf16").get("candidates", len(rk))
    parts = [f"{n} in {d}" for d, n in sorted(by.items())]
    return f"{len(full)} of the {total} candidates ({' and '.join(parts)})"


@value("kernel-worst/fp32/torch:mish")
def kernel_worst() -> str:
    from mishaudit.formats import FP32

    r = row("kernel", "fp32", "torch:mish")
    where = "a subnormal result" if abs(r["worst_ref"]) < FP32.tiny else f"mish(x) = {r['worst_ref']:.3g}"
    return f"{short(r['max_ulp'])} ulp at x = {r['worst_x']:.5g}, {where}"


SYNTH = (("mish", "fp16", "mishaudit-fp16"), ("mish", "bf16", "mishaudit-bf16"), ("mish", "fp32", "mishaudit-fp32"),
         ("mish'", "fp16", "mishaudit-grad-fp16"), ("mish'", "bf16", "mishaudit-grad-bf16"),
         ("mish'", "fp32", "mishaudit-grad-fp32"))


def todays(spec: str, dtype: str) -> list[dict]:
    """Every registered formulation of `spec` in `dtype` but the synthesized ones, over every finite input
    (fp16/bf16 computed now, fp32 from the exhaustive reports)."""
    synthesized = {i for _, _, i in SYNTH}
    if dtype == "fp32":
        rows = source_rows("exhaustive" if spec == "mish" else "exhaustive-grad")
    else:
        rows = source_rows("mish" if spec == "mish" else "grad")
    return [r for r in rows if r["dtype"] == dtype and r["formula"] not in synthesized
            and r.get("strategy") == "exhaustive"]


def best_of(rows: list[dict], key, reverse: bool = False) -> dict:
    return sorted(rows, key=key, reverse=reverse)[0]


@block("synthesized")
def synthesized() -> str:
    """The shipped results beside the best registered formulation on max ulp and on CR share."""
    from mishaudit.analysis.synthesize import path_cost

    body = []
    for spec, d, ident in SYNTH:
        r = row("synthesized", d, ident)
        calls, _ = path_cost(registry()[ident].body)
        rows = todays(spec, d)
        fin = [t for t in rows if t["nonfinite"] == 0] or rows
        bm = best_of(fin, lambda t: t["max_ulp"])
        bc = best_of(rows, lambda t: t["cr_frac"], reverse=True)
        body.append([f"`{ident}`", spec, d, sig(r["max_ulp"], 3), f"{100 * r['cr_frac']:.2f}%",
                     pct_down(r["faithful_frac"]), count(r["nonfinite"]), str(calls),
                     f"{sig(bm['max_ulp'], 3)} ({bm['formula']})", f"{100 * bc['cr_frac']:.2f}% ({bc['formula']})"])
    return md_table(["result", "spec", "dtype", "max ulp", "CR", "faithful", "nonfinite", "calls",
                     "today's best max ulp (no nonfinite)", "today's best CR"], body)


@value("synthesize-seconds")
def synthesize_seconds() -> str:
    s = read_json(SYNTHESIZED)["synthesize_seconds"]
    return ", ".join(f"{k} {v:g} s" for k, v in s.items())


@block("grad-table")
def grad_table() -> str:
    out = []
    for d in DTYPES:
        rows = [r for r in source_rows("grad") if r["dtype"] == d]
        rows += [r for r in source_rows("kernel") if r["dtype"] == d and r["formula"] in GRAD_KERNELS]
        merged: dict = {}
        for r in sorted_rows(rows):
            cells = (short(r["max_ulp"]), short(r["mean_ulp"]), exact(r["worst_x"]), pct(r["cr_frac"]),
                     count(r["nonfinite"]), count(r["signed_zero_mismatch"]))
            merged.setdefault(cells, []).append(r["formula"])
        out += [[d, ", ".join(sorted(names)), *cells] for cells, names in merged.items()]
    return md_table(["dtype", "formula", "max ulp", "mean ulp", "worst x", "CR", "nonfinite", "±0 mismatch"], out)


@block("exhaustive-fp32")
def exhaustive_fp32() -> str:
    rows = sorted_rows(source_rows("exhaustive"))
    return md_table(["formula", "max_ulp", "worst_x", "nonfinite", "cr_frac"],
                    [[r["formula"], sig(r["max_ulp"], 6), exact(r["worst_x"]), str(r["nonfinite"]),
                      f"{r['cr_frac']:.5f}"] for r in rows])


LIBM_MODELS = ("glibc", "numpy", "torch", "cr")


@block("libm-fp32")
def libm_fp32() -> str:
    """Each elementary function over every fp32 input of its domain, under each libm model."""
    body = []
    for r in read_json(LIBM)["rows"]:
        body.append([f"`{r['formula']}`", r["libm"], sig(r["max_ulp"], 6), exact(r["worst_x"]), count(r["wrong"]),
                     count(r["inputs"])])
    order = {m: i for i, m in enumerate(LIBM_MODELS)}
    body.sort(key=lambda c: (c[0], order[c[1]]))
    return md_table(["function", "libm", "max ulp", "worst x", "incorrectly rounded", "inputs"], body)


@block("speed-fp32")
def speed_fp32() -> str:
    """benchmarks/exhaustive.py's one run: the C loop beside mishaudit's exhaustive sweeps, and per stage."""
    r = read_json(SPEED)
    c = r.get("c_loop")
    rows = []
    if c:
        rows.append(["C loop, `x*tanhf(log1pf(expf(x)))` against binary64 glibc (unproven)", "1",
                     f"{c['seconds']:.1f}", "1", f"max {sig(c['max_ulp'], 4)} ulp, mean {sig(c['mean_ulp'], 3)}"])
    for key, what in (("one", "mishaudit, `softplus-tanh` (proven reference)"),
                      ("all", "mishaudit, every fp32 formulation of mish and mish' in one sweep")):
        x = r[key]
        rows.append([what, str(x["formulas"]), f"{x['seconds']:.1f}",
                     f"{x['seconds'] / c['seconds']:.2f}" if c else "", f"{count(x['inputs'])} inputs each"])
    s16 = r["sixteen"]
    rows.append(["`compare --dtype fp16 --dtype bf16`, tables cached", "all", f"{s16['warm_seconds']:.2f}",
                 f"{s16['warm_seconds'] / s16['bare_import_seconds']:.2f} (of the bare import)",
                 f"bare `import numpy, pandas, matplotlib, numba` {s16['bare_import_seconds']:.2f} s; "
                 f"`--no-cache` {s16['no_cache_seconds']:.2f} s"])
    out = md_table(["run (every finite input)", "formulations", "seconds", "x the C loop", "notes"], rows)
    st = [[k] + [f"{r[w].get(k, 0):.1f}" for w in ("stages_one", "stages_all")]
          for k in ("reference", "evaluate", "fold", "total")]
    return out + "\n\n" + md_table(["stage, ns per input on one core", "softplus-tanh",
                                   f"all {len(r['formulas'])}"], st)


@value("speed-machine")
def speed_machine() -> str:
    return read_json(SPEED)["machine"]


@value("libm-builds")
def libm_builds() -> str:
    b = read_json(LIBM)["builds"]
    return "; ".join(f"{m}: {b[m]}" for m in LIBM_MODELS if b.get(m))


@block("glibc-share")
def glibc_share() -> str:
    """Each shipped mish formulation, every fp32 input, under libm cr and under glibc."""
    cr = {r["formula"]: r for r in source_rows("exhaustive")}
    body = []
    for g in sorted_rows(source_rows("exhaustive-glibc")):
        c = cr.get(g["formula"])
        if c is None:
            continue
        body.append([g["formula"], sig(c["max_ulp"], 4), sig(g["max_ulp"], 4), pct(c["cr_frac"]), pct(g["cr_frac"]),
                     count(c["nonfinite"]), count(g["nonfinite"])])
    return md_table(["formula", "max ulp, cr", "max ulp, glibc", "CR, cr", "CR, glibc", "nonfinite, cr",
                     "nonfinite, glibc"], body)


@value("glibc-share-text")
def glibc_share_text() -> str:
    """What the two sweeps say about the libm's share, as a sentence (Stale when its shape no longer holds)."""
    cr = {r["formula"]: r for r in source_rows("exhaustive")}
    g = {r["formula"]: r for r in source_rows("exhaustive-glibc") if r["formula"] in cr}
    moved = sorted(f for f in g if g[f]["max_ulp"] != cr[f]["max_ulp"] or g[f]["worst_x"] != cr[f]["worst_x"])
    if moved:
        raise Stale(f"glibc moves the worst case of {', '.join(moved)}: rewrite the glibc-share sentence")
    drop = {f: cr[f]["cr_frac"] - g[f]["cr_frac"] for f in g}
    worst = max(drop, key=drop.get)
    same = sorted(f for f in g if abs(drop[f]) < 5e-5)
    from mishaudit.lang import fpcore as fc

    tanh = {f for f in g if "(tanh " in fc.to_text(registry()[f].body)}
    if not {f for f in g if f not in same} <= tanh:
        raise Stale("a formulation that does not call tanh moves under glibc: rewrite the glibc-share sentence")
    return (f"The worst case of every formulation is its own: max ulp and worst x are the same under glibc as under "
            f"cr for all {len(g)}. The libm shows in the correctly rounded share: down by up to "
            f"{100 * drop[worst]:.2f} points ({worst}, {pct(cr[worst]['cr_frac'])} to {pct(g[worst]['cr_frac'])}), "
            f"only in formulations that call tanh (glibc's tanhf is incorrectly rounded on "
            f"{query('libm-glibc/fp32/tanh/wrong:int')} inputs), and within 0.005 points for "
            f"{', '.join(same)} (glibc's expf is wrong on {query('libm-glibc/fp32/exp/wrong:int')}).")


@value("libm-claims")
def libm_claims() -> str:
    e, lg = row("libm-glibc", "fp32", "exp"), row("libm-glibc", "fp32", "log")
    return (f"expf {sig(e['max_ulp'], 6)} ulp (at x = {exact(e['worst_x'])}) with {count(e['wrong'])} incorrectly "
            f"rounded results, logf {sig(lg['max_ulp'], 6)} ulp (at x = {exact(lg['worst_x'])})")


@value("exhaustive-count")
def exhaustive_count() -> str:
    return f"{len(source_rows('exhaustive'))}"


@value("exhaustive-missing")
def exhaustive_missing() -> str:
    have = {r["formula"] for r in source_rows("exhaustive")}
    synthesized = {i for _, _, i in SYNTH}  # their exhaustive rows are reports/synthesized.json's
    missing = sorted(f.id for f in registry().values() if f.spec.key == "mish" and f.id not in have
                     and f.id not in synthesized)
    if not missing:
        return "every transcribed formulation of mish (the synthesized mishaudit-fp32 is in the table at the top)"
    return "not yet " + ", ".join(missing) + " (registered since)"


@value("exhaustive-inputs")
def exhaustive_inputs() -> str:
    ns = {r["inputs"] for r in source_rows("exhaustive")}
    if len(ns) != 1:
        raise Stale("the exhaustive rows cover different input counts")
    return count(ns.pop())


@value("formats/fp16/finite")
def fp16_finite() -> str:
    from mishaudit.formats import FP16, all_finite

    return count(all_finite(FP16).size)


@value("formats/bf16/finite")
def bf16_finite() -> str:
    from mishaudit.formats import BF16, all_finite

    return count(all_finite(BF16).size)


# ---- headline prose


@value("tf-threshold-fp16")
def tf_threshold_fp16() -> str:
    f = registry()["tf-softplus"]
    from mishaudit.formats import FP16

    eps, off = f.constant("eps", FP16), f.constant("offset", FP16)
    return f"{math.log(eps) + float(off):.2f}"


ONE_PLUS_E = {"log-exp-plus-one": "(+ (exp x) 1)", "pytorch-75251": "(+ 1 e)", "onednn-jit": "(+ e 1)",
              "darknet-cpu": "(+ (exp x) 1)", "coreml-2725": "(+ (exp (* -1 (fabs x))) 1)"}


@value("fp16-zero-from")
def fp16_zero_from() -> str:
    """Where 1 + exp(x) starts rounding to 1 on the negative side (the upper end of the absorption interval),
    the same for every form the sentence names; njuffa's fma form has no sum to absorb, but the same worst
    case."""
    ends = set()
    for f, node in ONE_PLUS_E.items():
        neg = [iv for iv in event("fp16", f, node, "absorption")["intervals"] if iv[1] < 0]
        ends.add(max(iv[1] for iv in neg))
    a, b = row("mish", "fp16", "njuffa"), row("mish", "fp16", "log-exp-plus-one")
    if len(ends) != 1 or (a["max_ulp"], a["worst_x"]) != (b["max_ulp"], b["worst_x"]):
        raise Stale(f"the 1 + exp(x) forms no longer return 0 from the same x in fp16: {sorted(ends)}")
    return exact(ends.pop())


@value("onednn-w-overflow-fp16")
def onednn_w_overflow() -> str:
    return exact(event("fp16", "onednn-jit", "w", "overflow")["intervals"][0][0])


@value("opencv-exp-overflow-fp16")
def opencv_exp_overflow() -> str:
    e = event("fp16", "opencv-cpu", "y", "overflow")  # y = x > cutoff ? exp(-x) : 1
    if not e["harmful"] or len(e["intervals"]) != 1:
        raise Stale(f"opencv-cpu's exp(-x) overflow in fp16 is now {e['intervals']} (harmful: {e['harmful']})")
    return interval(e["intervals"][0])


@value("opencv-nan-fp16")
def opencv_nan() -> str:
    r = row("mish", "fp16", "opencv-cpu")
    return count(r["nonfinite"])


# ---- the libm model: numpy's dispatch


@value("dispatch/targets")
def dispatch_targets() -> str:
    return machine()["dispatch"]["disabled"]


@value("dispatch/numpy")
def dispatch_numpy() -> str:
    d = machine()["dispatch"]
    a, b = d["numpy_on"]["dulp_2"], d["numpy_off"]["dulp_2"]
    return f"from {a:,} to {b:,}" if a != b else f"not at all ({a:,})"


@value("dispatch/cr")
def dispatch_cr() -> str:
    d = machine()["dispatch"]
    diff = sorted(k for k in d["cr_on"] if d["cr_on"][k] != d["cr_off"].get(k))
    return "nothing" if not diff else "the figures " + ", ".join(diff)


# ---- the API example


@block("api-example")
def api_example() -> str:
    rows = [r for r in source_rows("mish") if r["dtype"] in ("fp16", "bf16")
            and r["formula"] in ("softplus-tanh", "exp-rational", "tf-softplus")]
    worst = max(rows, key=lambda r: r["max_ulp"])
    return "\n".join([
        "```python",
        "import mishaudit",
        "",
        'df = mishaudit.compare(dtype=["fp16", "bf16"], formulas=["softplus-tanh", "exp-rational", "tf-softplus"])',
        'print(df[["formula", "dtype", "max_ulp", "cr_frac", "formula_ulp"]])',
        'worst = df.loc[df["max_ulp"].idxmax()]',
        (f'print(worst["formula"], worst["dtype"], worst["worst_x"])  # {worst["formula"]} {worst["dtype"]} '
         f'{exact(worst["worst_x"])}'),
        'events, culprits = mishaudit.overflow(dtype="fp16", formulas="exp-rational")',
        'print(events[events["harmful"]][["node", "event", "count"]])',
        "",
        "# Python values: a (lo, hi) tuple, a bit width, an array of inputs, a dict of parameters",
        "import numpy as np",
        'near_one = mishaudit.compare(dtype=32, formulas="softplus-tanh", domain=(1, 1.001))  # every fp32 value there',
        'real = mishaudit.compare(dtype="fp16", formulas="softplus-tanh", inputs=np.random.default_rng(0).normal(size=1000))',
        'tuned = mishaudit.compare(dtype="fp16", formulas="softplus-threshold", settings={"threshold": 15})',
        'print(near_one["inputs"].iloc[0], real["mean_rel_err"].iloc[0], tuned["max_ulp"].iloc[0])',
        "```",
    ])


# ---- the backward pass


@value("grad-root")
def grad_root() -> str:
    return mp_root("grad", None, -1.19, 5)


def rn_zero_bound(dtype: str) -> str:
    """Below this x, RN(mish'(x)) is -0: mish'(x) = -(half the smallest subnormal), mpmath."""
    guess = {"fp16": -20.0, "bf16": -98.0, "fp32": -108.0}[dtype]
    from mishaudit.formats import get_format

    f = get_format(dtype)
    k = f.emin - f.p + 1  # the smallest subnormal is 2^k
    return mp_root("grad", k - 1, guess, 2)


for _d in DTYPES:
    VALUES[f"grad-zero-below/{_d}"] = functools.partial(rn_zero_bound, _d)


@value("grad-sp-culprit-fp16")
def grad_sp_culprit() -> str:
    a, b = culprit("fp16", "mish-cuda-grad", "grad_sp"), culprit("fp16", "darknet-cpu-grad", "grad_sp")
    if (a["inputs"], a["max_local_bits"]) != (b["inputs"], b["max_local_bits"]):
        raise Stale("mish-cuda-grad and darknet-cpu-grad no longer share their grad_sp culprit in fp16")
    return f"{a['inputs']:,} inputs, up to {a['max_local_bits']:.1f} bits lost"


@value("grad-s-culprit-fp32")
def grad_s_culprit() -> str:
    c = culprit("fp32", "pytorch-cpu-grad", "s")
    lo, hi = max(c["regions"], key=lambda r: r[1] - r[0])  # the widest of its regions
    return f"[{lo:.2f}, {hi:.2f}]"


@value("grad-best-no-nonfinite")
def grad_best() -> str:
    """Claim: darknet-gpu-grad is the most accurate transcribed formulation (the synthesized mishaudit-grad-*
    aside) with no nonfinite output in every format."""
    synthesized = {i for _, _, i in SYNTH}
    for d in DTYPES:
        ok = [r for r in source_rows("grad") if r["dtype"] == d and r["nonfinite"] == 0
              and r["formula"] not in synthesized]
        best = min(ok, key=lambda r: r["max_ulp"])
        if best["formula"] != "darknet-gpu-grad":
            raise Stale(f"{best['formula']} beats darknet-gpu-grad in {d}")
    return "in " + ", ".join(DTYPES)


@value("fp32-exp-overflow")
def fp32_exp_overflow() -> str:
    return f"{event('fp32', 'pytorch-cpu-grad', '(exp (- x))', 'overflow')['intervals'][0][1]:.2f}"


@value("torch-grad-fp32-vs-transcription")
def torch_grad_vs() -> str:
    from mishaudit.measure.metrics import BUCKETS

    k, f = row("kernel", "fp32", "torch:mish-grad"), row("grad", "fp32", "pytorch-cpu-grad")
    same = k["worst_x"] == f["worst_x"] and k["max_ulp"] == f["max_ulp"]
    gap = max(abs(k[b] - f[b]) for b in BUCKETS) / f["inputs"]
    head = "same worst input, same maximum" if same else \
        f"worst x {exact(k['worst_x'])} and {exact(f['worst_x'])}, max {short(k['max_ulp'])} and {short(f['max_ulp'])} ulp"
    crs = pct(k["cr_frac"]) + (" both" if pct(k["cr_frac"]) == pct(f["cr_frac"]) else f" and {pct(f['cr_frac'])}")
    return f"{head}; CR {crs}, the dULP buckets within {100 * gap:.2g}% of the inputs"


@value("onednn-grad-fp16-nan-from")
def onednn_grad_nan_from() -> str:
    return f"{event('fp16', 'onednn-grad', '(/ (* e w) (* d d))', 'nan')['intervals'][0][0]:.3f}"


@value("onednn-grad-fp16-nonfinite")
def onednn_grad_nonfinite() -> str:
    """The nonfinite fp16 outputs of onednn-grad: NaN from inf/inf and from 0*inf, the rest inf/finite."""
    a = event("fp16", "onednn-grad", "(/ (* e w) (* d d))", "nan")["count"]
    b = event("fp16", "onednn-grad", "(* e (+ (* 4 x) 6))", "nan")["count"]
    n = row("grad", "fp16", "onednn-grad")["nonfinite"]
    if a + b > n:
        raise Stale(f"onednn-grad fp16: {a} + {b} NaN events but {n} nonfinite outputs")
    return f"{a:,} + {b:,} NaN and {n - a - b:,} infinite, {n:,} nonfinite"


@value("onednn-grad-ew-overflow/fp16")
def onednn_ew16() -> str:
    return f"{event('fp16', 'onednn-grad', '(* e w)', 'overflow')['intervals'][0][0]:.3f}"


@value("onednn-grad-ew-overflow/fp32")
def onednn_ew32() -> str:
    return f"{event('fp32', 'onednn-grad', '(* e w)', 'overflow')['intervals'][0][0]:.1f}"


@value("onednn-grad-4x-overflow/fp16")
def onednn_4x16() -> str:
    ivs = [iv for iv in event("fp16", "onednn-grad", "(* 4 x)", "overflow")["intervals"] if iv[1] < 0]
    return f"{max(iv[1] for iv in ivs):g}"


@value("grad-zero-mismatch/fp16")
def grad_zero_mismatch() -> str:
    """Claim: every derivative formulation but onednn-grad has the same fp16 signed-zero mismatches."""
    n = {r["formula"]: r["signed_zero_mismatch"] for r in source_rows("grad") if r["dtype"] == "fp16"}
    others = {v for k, v in n.items() if k != "onednn-grad"}
    if len(others) != 1 or n["onednn-grad"] != 0:
        raise Stale(f"the fp16 signed-zero mismatches of the derivative formulations changed: {n}")
    return count(others.pop())


@value("fp32-exp-overflow-edge")
def fp32_exp_edge() -> str:
    """The fp32 exp overflow edge as the sampled overflow map finds it (bisection between samples)."""
    e = event("fp32", "softplus-tanh", "(exp x)", "overflow")
    return exact(e["intervals"][0][0])


# ---- exhaustive fp32


def exhaustive_event(node: str, kind: str) -> dict:
    for e in read_json(OVERFLOW_EXHAUSTIVE):
        if e.get("formula") == "softplus-tanh" and e.get("node") == node and e.get("event") == kind:
            return e
    raise KeyError(f"no exhaustive {kind} event of {node}")


@value("exhaustive-overflow/exp")
def exh_exp_overflow() -> str:
    return exact(exhaustive_event("(exp x)", "overflow")["intervals"][0][0])


@value("exhaustive-overflow/exp-underflow")
def exh_exp_underflow() -> str:
    return exact(exhaustive_event("(exp x)", "underflow")["intervals"][-1][1])


@value("exhaustive-overflow/product-subnormal")
def exh_product_subnormal() -> str:
    e = exhaustive_event("(* x (tanh (log1p (exp x))))", "subnormal")
    if not e["harmful"]:
        raise Stale("the subnormal product of softplus-tanh is no longer harmful")
    return count(e["count"])


# ---- parameters and tuning


@value("params-list")
def params_list() -> str:
    groups: dict = {}
    for f in registry().values():
        if f.params:
            groups.setdefault(f.param_defaults(), []).append(f.id)
    return "; ".join(f"{', '.join(ids)} `{text}`" for text, ids in groups.items())


def in_format(v: float, dtype: str) -> str:
    """A tried value: exact for the 16-bit formats (2.05078125), the shortest decimal that names the binary32
    value for fp32 (6.95)."""
    import numpy as np

    return str(np.float32(v)) if dtype == "fp32" else repr(float(v))


def good_text(t: dict, vals: list) -> str:
    """The tied values of a sweep in words: '>= lo', '<= hi', 'lo to hi' or 'every value tried'."""
    d = t["summary"]["dtype"]
    tried = sorted(r["value"] for r in t["rows"])
    lo, hi = vals[0], vals[-1]
    contiguous = tried[tried.index(lo):tried.index(hi) + 1] == vals
    if not contiguous:
        return f"{len(vals)} values from {in_format(lo, d)} to {in_format(hi, d)}, not contiguous"
    if lo == tried[0] and hi == tried[-1]:
        return f">= {in_format(lo, d)}, every value tried"
    if hi == tried[-1]:
        return f">= {in_format(lo, d)}"
    if lo == tried[0]:
        return f"<= {in_format(hi, d)}"
    return f"{in_format(lo, d)} to {in_format(hi, d)}"


def steps_text(t: dict) -> str:
    _, _, rng, _, steps = t["spec"]
    if steps is None:
        return ""
    a, b = (float(v) for v in rng.split(":"))
    return f"{(b - a) / (steps - 1):g} steps; "


@block("tune-commands")
def tune_commands() -> str:
    """The CLI commands of the TUNES sweeps (what the tuning table shows)."""
    lines = ["```"]
    for formula, param, rng, fmts, steps in TUNES:
        r = f"--range={rng}" if rng.startswith("-") else f"--range {rng}"
        s = f" --steps {steps}" if steps else ""
        lines.append(f"mishaudit tune --formula {formula} --param {param} {r}{s} " + " ".join(f"--dtype {d}" for d in fmts))
    return "\n".join(lines + ["```"])


@block("tune")
def tune_table() -> str:
    body = []
    for formula, param in (("softplus-threshold", "threshold"), ("exp-rational-clamped", "clamp")):
        for i, d in enumerate(DTYPES):
            t = tuned(formula, d)
            s = t["summary"]
            by_max = as_good(t, "max_ulp")
            by_mean = as_good(t, "mean_ulp")
            max_cell = f"{good_text(t, by_max)} ({steps_text(t)}max {short(s['best_max_ulp'])} ulp)"
            if by_mean == by_max:
                mean_cell = "same"
            elif s["default_value"] in by_mean:
                mean_cell = good_text(t, by_mean)
            else:
                best = min(t["rows"], key=lambda r: (r["nonfinite"], r["mean_ulp"]))
                dflt = next(r for r in t["rows"] if r["value"] == s["default_value"])
                mean_cell = (f"{good_text(t, by_mean)}: {best['mean_ulp']:.6f} against {dflt['mean_ulp']:.6f} at "
                             f"{s['default_value']:g}")
            body.append([f"{formula} `{param}`" if i == 0 else "", d, f"{s['default_value']:g}", max_cell, mean_cell])
    return md_table(["formulation, parameter", "format", "default", "as good by max ulp", "as good by mean ulp"], body)


def default_as_good(formula: str) -> str:
    """Claim: the shipped default of `formula`'s parameter ties the best max ulp error in every format."""
    def ties(s):  # the default (inside the range or not) ties the best on (nonfinite, max ulp)
        return (s["default_nonfinite"], s["default_max_ulp"]) == (s["best_nonfinite"], s["best_max_ulp"])

    bad = [d for d in DTYPES if not ties(tuned(formula, d)["summary"])]
    if bad:
        raise Stale(f"{formula}'s default is no longer as good as the best by max ulp in {', '.join(bad)}")
    return "in every format"


VALUES["tune/threshold-harmless"] = functools.partial(default_as_good, "softplus-threshold")
VALUES["tune/clamp-harmless"] = functools.partial(default_as_good, "exp-rational-clamped")


@value("tune/threshold-mean-from/fp16")
def thr_mean16() -> str:
    return in_format(as_good(tuned("softplus-threshold", "fp16"), "mean_ulp")[0], "fp16")


@value("tune/threshold-mean-from/bf16")
def thr_mean_bf16() -> str:
    return in_format(as_good(tuned("softplus-threshold", "bf16"), "mean_ulp")[0], "bf16")


@value("tune/threshold-max-from/fp16")
def thr_max16() -> str:
    return in_format(as_good(tuned("softplus-threshold", "fp16"), "max_ulp")[0], "fp16")


@value("tune/threshold-fp32-mean")
def thr_fp32_mean() -> str:
    t = tuned("softplus-threshold", "fp32")
    vals = as_good(t, "mean_ulp")
    best = min(t["rows"], key=lambda r: (r["nonfinite"], r["mean_ulp"]))
    dflt = next(r for r in t["rows"] if r["default"])
    if dflt["value"] in vals:
        raise Stale("the fp32 default threshold is as good on the mean as the best")
    return (f"thresholds from {vals[0]:g} to {vals[-1]:g} ({steps_text(t)[:-2]}) are marginally better on the mean "
            f"than {dflt['value']:g} ({best['mean_ulp']:.6f} against {dflt['mean_ulp']:.6f} ulp)")


@value("tune/threshold-fp32-max")
def thr_fp32_max() -> str:
    t = tuned("softplus-threshold", "fp32")
    vals = as_good(t, "max_ulp")
    r = next(r for r in t["rows"] if r["default"])
    return f"{short(r['max_ulp'])} ulp at x = {r['worst_x']:.2f} for every threshold from {vals[0]:g} up"


@value("tune/clamp-as-good")
def clamp_as_good() -> str:
    hi = {d: as_good(tuned("exp-rational-clamped", d), "max_ulp")[-1] for d in DTYPES}
    return f"{hi['bf16']:g} (bf16), {hi['fp32']:.4g} (fp32) or {hi['fp16']:.4g} (fp16)"


@value("tune/clamp-does-nothing")
def clamp_does_nothing() -> str:
    """Claim: exp-rational and exp-rational-clamped have the same figures in every format (bar formula_ulp)."""
    skip = {"formula", "formula_ulp", "formula_exact", "formula_ulp_worst_x", "formula_err_worst_x",
            "formula_err_undecided", "max_formula_rel_err", "specials_wrong", "params", "implementation"}
    for src, d in (("mish", "fp16"), ("mish", "bf16"), ("exhaustive", "fp32")):  # the fp32 sample differs: its
        a, b = row(src, d, "exp-rational"), row(src, d, "exp-rational-clamped")  # inputs include the clamp's neighbours
        diff = [k for k in a if k not in skip and a[k] != b.get(k)]
        if diff:
            raise Stale(f"exp-rational and exp-rational-clamped differ in {d}: {diff}")
    return "the same figures in fp16, bf16 and exhaustive fp32"


@value("specials/exp-rational")
def specials_exp_rational() -> str:
    """Claim: at -inf exp-rational gives NaN, exp-rational-clamped -0; at NaN the clamped one gives -0."""
    def got(formula, x):
        for s in mish_frame().attrs["specials"].to_dict("records"):
            sx = float(s["x"]) if s["x"] is not None else math.nan
            if s["formula"] == formula and s["dtype"] == "fp16" and (sx == x or (math.isnan(x) and math.isnan(sx))):
                g = s["got"]
                return "nan" if g is None or (isinstance(g, float) and math.isnan(g)) else repr(float(g))
        return None

    found = (got("exp-rational", -math.inf), got("exp-rational-clamped", -math.inf), got("exp-rational-clamped", math.nan))
    if found != ("nan", "-0.0", "-0.0"):
        raise Stale(f"the specials of exp-rational(-clamped) at -inf and NaN changed: {found}")
    return "NaN at x = -inf (inf/inf) and the clamped form gives -0 there"


@value("tune/onednn-nonfinite-from")
def onednn_from() -> str:
    """The least x from which every bf16 output of onednn-jit is nonfinite (NaN events of the last node)."""
    e = event("bf16", "onednn-jit", "(* x (- w 1))", "overflow")
    if e["count"] != row("mish", "bf16", "onednn-jit")["nonfinite"] or len(e["intervals"]) != 1:
        raise Stale("onednn-jit's bf16 nonfinite outputs are no longer its x (w - 1) overflow")
    return f"{e['intervals'][0][0]:g}"


@value("tune/onednn-best")
def onednn_best() -> str:
    t = tuned("onednn-jit", "bf16")
    s = t["summary"]
    if s["best_value"] != min(r["value"] for r in t["rows"]):
        raise Stale("onednn-jit's best clamp is no longer the lowest tried")
    e = event("bf16", "onednn-jit", "(* x (- w 1))", "overflow", (f"clamp={s['best_value']:g}",))
    return (f"a clamp of {s['best_value']:g} first (the lowest tried): {s['best_nonfinite']:,} nonfinite outputs, "
            f"all for x >= {e['intervals'][0][0]:.3g}")


# ---- real inputs


@block("inputs-mae")
def inputs_mae() -> str:
    body = []
    for rng in RANGES:
        for d in ("fp16", "fp32"):
            rows = [r for r in source_rows(f"inputs-{rng}") if r["dtype"] == d]
            by = {r["formula"]: r for r in rows}
            er, erc = by["exp-rational"]["mean_abs_err"], by["exp-rational-clamped"]["mean_abs_err"]
            er_cell = f"{er:.3e}" if er == erc else f"{er:.3e} / {erc:.3e}"
            worst = max(rows, key=lambda r: r["mean_abs_err"])
            w = f"{worst['formula']} {worst['mean_abs_err']:.3e}"
            if worst["nonfinite"]:
                w += f" (and {worst['nonfinite']:,} nonfinite)"
            body.append([f"[-{rng}, {rng}]", d, f"{by['softplus-tanh']['mean_abs_err']:.3e}", er_cell,
                         f"{by['pytorch-75251']['mean_abs_err']:.3e}", f"{by['stable-softplus']['mean_abs_err']:.3e}", w])
    return md_table(["range", "format", "softplus-tanh MAE", "exp-rational(-clamped) MAE", "pytorch-75251 MAE",
                     "stable-softplus MAE", "worst MAE"], body)


@value("inputs/exp-rational-excess")
def exp_rational_excess() -> str:
    ratios = []
    for rng in RANGES:
        for d in ("fp16", "fp32"):
            a = row(f"inputs-{rng}", d, "exp-rational")["mean_abs_err"]
            b = row(f"inputs-{rng}", d, "softplus-tanh")["mean_abs_err"]
            ratios.append(a / b - 1)
    if min(ratios) <= 0:
        raise Stale("exp-rational's MAE is no longer higher than softplus-tanh's in every range and format")
    return f"{100 * min(ratios):.0f} to {100 * max(ratios):.0f} %"


@value("inputs/mean-rel-31.5-fp16")
def mean_rel() -> str:
    good = [r for r in source_rows("inputs-31.5") if r["dtype"] == "fp16" and r["max_ulp"] < 16 and not r["nonfinite"]]
    texts = {f"{r['mean_rel_err']:.3g}" for r in good}
    if len(texts) != 1:
        raise Stale(f"the good formulations' fp16 mean relative error over [-31.5, 31.5] differs: {sorted(texts)}")
    return texts.pop()


@value("mish-subnormal-below/fp16")
def mish_sub16() -> str:
    return mp_root("mish", -14, -12.0, 3)


@value("mish-zero-below/fp16")
def mish_zero16() -> str:
    return mp_root("mish", -25, -20.0, 3)


@value("coreml-knee-sigmoid")
def coreml_sigmoid() -> str:
    from mishaudit.formats import FP32

    knee = float(registry()["coreml-2359-workaround"].constant("knee", FP32))
    return f"{1 / (1 + math.exp(knee)):.0e}"


@value("inputs/coreml-fp32-0.9")
def coreml_fp32() -> str:
    r = row("inputs-0.9", "fp32", "coreml-2359-workaround")
    if r["max_ulp"] >= 2 ** 13:  # one fp16 ulp is 2^13 fp32 ulps
        raise Stale("coreml-2359-workaround's fp32 error on [-0.9, 0.9] is no longer below one fp16 ulp")
    return f"{r['max_ulp']:.0f}"


# ---------------------------------------------------------------------------------------------- render


def render_value(key: str) -> str:
    if key in VALUES:
        return VALUES[key]()
    if key.count("/") == 3:
        return query(key)
    raise KeyError(f"README.md asks for {key!r}: neither a value of scripts/readme.py nor SOURCE/DTYPE/FORMULA/COLUMN")


def render(text: str) -> tuple[str, list[str]]:
    """README.md with every marked figure rewritten; and the names of those that changed."""
    changed = []

    def blk(m):
        name = m.group("name")
        if name not in BLOCKS:
            raise KeyError(f"README.md marks a block {name!r} that scripts/readme.py does not write")
        new = BLOCKS[name]().rstrip("\n") + "\n"
        if new != m.group("body"):
            changed.append(name)
        return f"<!-- generated: {name} -->\n{new}<!-- end: {name} -->"

    def inl(m):
        key = m.group("key")
        new = render_value(key)
        if "\n" in new:
            raise ValueError(f"value {key!r} spans lines")
        if new != m.group("body"):
            changed.append(key)
        return f"<!-- g: {key} -->{new}<!-- /g -->"

    text = BLOCK.sub(blk, text)
    text = INLINE.sub(inl, text)
    return text, changed


# --------------------------------------------------------------------------------------------- measure


def measure() -> None:
    """reports/machine.json: the framework kernels and numpy's dispatch, as this machine runs them."""
    import mishaudit
    from mishaudit.eval.libm import numpy_dispatch

    t0 = time.time()
    df = mishaudit.compare(dtype=list(DTYPES), formulas=list(KERNELS))
    meta = df.attrs["meta"]
    rows = records(df)
    rows += records(mishaudit.compare(dtype=list(DTYPES), formulas=list(GRAD_KERNELS)))
    rows += records(mishaudit.compare(dtype="fp64", formulas=["onnxruntime:Mish"]))
    ident: dict = {}
    for k, d in (("torch:mish", "fp16"), ("torch:mish", "bf16"), ("torch:mish", "fp32"), ("onnxruntime:Mish", "fp16"),
                 ("onnxruntime:Mish", "fp64"), ("jax:mish", "fp16"), ("jax:mish", "bf16"), ("jax:mish", "fp32")):
        print(f"identify {k} {d}", file=sys.stderr, flush=True)
        rk = records(mishaudit.identify(k, dtype=d))
        # the first 20 candidates and every one that reproduces the kernel on every input
        keep = [c for i, c in enumerate(rk) if i < 20 or c["matches"] == c["inputs"]]
        ident.setdefault(k, {})[d] = {"candidates": len(rk), "ranking": keep}
    out = {
        "written_by": "scripts/readme.py --measure",
        "date": time.strftime("%Y-%m-%d"),
        "machine": meta.get("machine"),
        "cpu": cpu_model(),
        "numpy_dispatch": numpy_dispatch(),
        "frameworks": meta.get("frameworks", []),
        "compare": rows,
        "identify": ident,
        "dispatch": measure_dispatch(),
    }
    text = json.dumps(out, indent=1, default=lambda v: None if v is None else float(v)) + "\n"
    from mishaudit.files import atomic_write_bytes

    atomic_write_bytes(MACHINE, text.encode())
    MACHINE.chmod(0o644)
    print(f"wrote {MACHINE.relative_to(ROOT)} in {time.time() - t0:.0f} s", file=sys.stderr)


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def measure_dispatch() -> dict:
    """stable-softplus fp32 (the 2^16 sample) under both libm models, with numpy's SIMD dispatch as this CPU
    allows and with every dispatched target switched off (as .ci/run's second gate run)."""
    code = ("from numpy._core._multiarray_umath import __cpu_dispatch__ as d, __cpu_features__ as f;"
            "print(' '.join(t for t in d if f.get(t)))")
    targets = subprocess.run([sys.executable, "-c", code],
                             capture_output=True, text=True, check=True).stdout.strip()
    out = {"formula": "stable-softplus", "dtype": "fp32", "disabled": targets}
    for model in ("numpy", "cr"):
        for state, env in (("on", {}), ("off", {"NPY_DISABLE_CPU_FEATURES": targets})):
            p = subprocess.run([sys.executable, "-m", "mishaudit.cli", "compare", "--dtype", "fp32", "--formula",
                                "stable-softplus", "--libm", model, "--format", "json"],
                               capture_output=True, text=True, check=True, env={**os.environ, **env}, cwd=ROOT)
            r = json.loads(p.stdout)[0]
            out[f"{model}_{state}"] = {k: v for k, v in r.items() if k not in ("libm_detail",)}
    return out


# ------------------------------------------------------------------------------------------------ main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when README.md differs from what this writes")
    ap.add_argument("--measure", action="store_true", help="re-measure reports/machine.json first")
    a = ap.parse_args()
    if a.measure:
        measure()
    old = README.read_text()
    t0 = time.time()
    try:
        new, changed = render(old)
    except Stale as e:
        print(f"scripts/readme.py: a README sentence no longer holds: {e}", file=sys.stderr)
        return 2
    took = time.time() - t0
    if a.check:
        if new != old:
            print(f"README.md: {len(changed)} generated figure(s) differ ({', '.join(changed[:6])}"
                  f"{', ...' if len(changed) > 6 else ''}): run .venv/bin/python scripts/readme.py", file=sys.stderr)
            return 1
        print(f"README.md: every generated figure is current ({took:.0f} s)", file=sys.stderr)
        return 0
    if new != old:
        README.write_text(new)
    print(f"README.md: {len(changed)} generated figure(s) rewritten ({took:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
