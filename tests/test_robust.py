"""No tracebacks: every operator the reader accepts works in every command, type errors are refused
at load, an internal error is one line and exit 3 (distinct from 1, a broken gate limit)."""

import csv
import functools
import json
import os
import re
import subprocess
import sys
import tomllib
from xml.etree import ElementTree as ET

import gmpy2
import mpmath
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import png_size

from mishaudit.cli import main
from mishaudit.errors import UserError
from mishaudit.lang.registry import load_text

# every operator and form the reader accepts, in one (odd but valid) formulation
ALL_OPS = """(FPCore every-op (x)
  :name "all operators"
  (let* ([e (exp (fmin x 30))]
         [a (copysign (pow (fabs x) 1.5) x)]
         [b (fma (sqrt (fabs x)) (expm1 (fmax x -3)) (log (+ 2 (tanh x))))]
         [c (if (and (< x 0) (not (== x -1)) (or (<= x -2) (>= x -1.5) (!= x -1.25)))
                (log1p e)
                (! :precision binary64 (/ (* x PI) (+ E LN2))))])
    (- (+ a (* b 1/3)) (- c (pow 0x1p-3 2)))))"""


def run(*args, env=None):
    p = subprocess.run([sys.executable, "-m", "mishaudit.cli", *args], capture_output=True, text=True,
                       env=env or os.environ.copy(), timeout=600)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture(scope="module")
def every_op(tmp_path_factory):
    d = tmp_path_factory.mktemp("f")
    (d / "every-op.fpcore").write_text(ALL_OPS)
    return d


# ---------------------------------------------------------------- what every-op's output must say, by hand
#
# every-op's nodes evaluated by MPFR, each rounded once to binary16 (the cr libm, native fp16), on the few
# inputs where an edge lies; the edges from mpmath and the formats' rounding rules.

_HI = gmpy2.context(precision=200, emin=-(1 << 24), emax=1 << 24)
_C16 = gmpy2.context(precision=11, emin=-23, emax=16, subnormalize=True, round=gmpy2.RoundToNearest)
DESIGN_JSON_KEYS = ("formula", "dtype", "compute_dtype", "ftz", "strategy", "inputs", "max_ulp", "mean_ulp",
                    "median_ulp", "p99_ulp", "worst_x", "worst_y", "worst_ref", "cr_frac", "faithful_frac",
                    "max_abs_err", "max_rel_err", "mean_bits", "max_bits", "nonfinite", "signed_zero_mismatch",
                    "max_formula_rel_err")


def fp16_values(lo: float, hi: float) -> np.ndarray:
    """The binary16 values in [lo, hi], increasing (from the bit patterns)."""
    v = np.concatenate([np.arange(0xFBFF, 0x7FFF, -1, dtype=np.uint16), np.arange(0, 0x7C00, dtype=np.uint16)])
    v = v.view(np.float16).astype(np.float64)
    return v[(v >= lo) & (v <= hi)]


def fp32_count(lo: float, hi: float) -> int:
    """The number of binary32 values in [lo, hi] (0 < lo <= hi or lo <= hi < 0), from the bit patterns."""
    a, b = sorted((abs(lo), abs(hi)))
    first, last = np.float32(a), np.float32(b)
    first = first if float(first) >= a else np.nextafter(first, np.float32(np.inf))  # compared in binary64
    last = last if float(last) <= b else np.nextafter(last, np.float32(0))
    return int(last.view(np.int32)) - int(first.view(np.int32)) + 1


def _b16(x: float):
    """RN16 of every-op's b = fma(sqrt|x|, expm1(fmax(x, -3)), log(2 + tanh x)) at x."""
    v = gmpy2.mpfr(x)
    lg = _C16.log(_C16.add(2, _C16.tanh(v)))
    return _C16.fma(_C16.sqrt(abs(v)), _C16.expm1(max(v, gmpy2.mpfr(-3))), lg)


@functools.lru_cache(maxsize=1)
def every_op_fp16_edges() -> dict:
    """exp: RN16(e^x) = inf iff e^x >= 65520 (max + half an ulp); expm1 likewise iff e^x >= 65521, the same
    fp16 input; pow: the first x with RN16(x^1.5) = inf; b: the first x where the fma overflows (x e^x
    with sqrt(x) ~ 3.2 reaches 65520 before e^x does)."""
    with mpmath.workprec(200):
        exp_at = float(next(v for v in fp16_values(11, 12) if mpmath.exp(v) >= 65520))
        assert exp_at == float(next(v for v in fp16_values(11, 12) if mpmath.exp(v) >= 65521))
    pow_at = float(next(v for v in fp16_values(1024, 2048) if gmpy2.is_infinite(_C16.pow(gmpy2.mpfr(v), 1.5))))
    b_at = float(next(v for v in fp16_values(8, 12) if gmpy2.is_infinite(_b16(v))))
    return {"exp": exp_at, "pow": pow_at, "b": b_at}


def _rows(out, err):
    return json.loads(out)


def _check_compare_fp16_fp32(out, err):
    """fp16: every input; nonfinite exactly where b (x >= b's edge: +inf, the rest finite) or a = |x|^1.5
    (x <= -pow's edge: -inf, b finite there) overflow: 18,605 of 63,488."""
    rows = {r["dtype"]: r for r in json.loads(out)}
    assert set(rows) == {"fp16", "fp32"} and {r["formula"] for r in rows.values()} == {"every-op"}
    e = every_op_fp16_edges()
    assert e == {"exp": 11.09375, "pow": 1626.0, "b": 9.9453125}
    want = len(fp16_values(e["b"], 65504)) + len(fp16_values(-65504, -e["pow"]))
    assert rows["fp16"]["inputs"] == 63488 and rows["fp16"]["strategy"] == "exhaustive"
    assert rows["fp16"]["nonfinite"] == want == 18605
    assert rows["fp32"]["strategy"] == "sampled" and rows["fp32"]["inputs"] >= 4096


def _check_bf16_numpy_csv(out, err):
    lines = out.strip().splitlines()
    assert len(lines) == 2
    row = dict(zip(lines[0].split(","), lines[1].split(",")))
    assert set(DESIGN_JSON_KEYS) <= set(row)
    assert (row["formula"], row["dtype"], row["compute_dtype"], row["libm"], row["inputs"], row["strategy"]) == \
        ("every-op", "bf16", "fp32", "numpy", "65280", "exhaustive")


def _check_fp32_domain_json(out, err):
    """Every binary32 input of [-3, -2.99] (41,944), none nonfinite (every node is finite there)."""
    (row,) = json.loads(out)
    assert row["inputs"] == fp32_count(-3.0, -2.99) == 41944
    assert row["strategy"] == "exhaustive" and row["nonfinite"] == 0 and -3.0 <= row["worst_x"] <= -2.99


def _check_overflow_fp16_json(out, err):
    """The overflow edges derived above, each harmful (the output is then nonfinite); b stops where e^x
    itself is inf (then its operand is infinite: no overflow event)."""
    e = every_op_fp16_edges()
    ev = {(o["node"], o["event"]): o for o in json.loads(out) if o["kind"] == "event"}
    want = {"e": [[e["exp"], 65504.0]], "(expm1 (fmax x -3))": [[e["exp"], 65504.0]],
            "(pow (fabs x) 1.5)": [[-65504.0, -e["pow"]], [e["pow"], 65504.0]],
            "b": [[e["b"], float(fp16_values(0, e["exp"])[-2])]]}
    for node, iv in want.items():
        o = ev[(node, "overflow")]
        assert o["intervals"] == iv and o["harmful"], (node, o)
        assert o["count"] == sum(len(fp16_values(lo, hi)) for lo, hi in iv)
    assert {n for n, k in ev if k == "overflow"} == set(want)


def _check_overflow_fp32_ftz_table(out, err):
    """--ftz: exp's underflow reaches up to where RN32(e^x) is subnormal (then flushed): the last x with
    e^x < 2^-126 - 2^-150, -87.3365478515625, not -103.97 (e^x below half the least subnormal); expm1
    overflows from 88.72283935546875 (e^x >= 2^128 - 2^103); no subnormal results are left."""
    with mpmath.workprec(200):
        t = mpmath.log(mpmath.mpf(2) ** -126 - mpmath.mpf(2) ** -150)
        up = lambda v: mpmath.mpf(float(v))  # noqa: E731  (a binary32 value, exactly)
        under = np.float32(float(t))
        under = under if up(under) <= t else np.nextafter(under, np.float32(-np.inf))
        assert up(under) <= t < up(np.nextafter(under, np.float32(0)))
        o = mpmath.log(mpmath.mpf(2) ** 128 - mpmath.mpf(2) ** 103)
        over = np.float32(float(o))
        over = over if up(over) >= o else np.nextafter(over, np.float32(np.inf))
        assert up(np.nextafter(over, np.float32(0))) < o <= up(over)
    assert float(under) == -87.3365478515625 and float(over) == 88.72283935546875
    text = " ".join(out.split())
    assert repr(float(under)) in text and repr(float(over)) in text and "-103.97" not in text
    rows = [ln for ln in out.splitlines() if ln.startswith("│")]
    assert rows and not any("subnormal" in ln for ln in rows)


def _check_overflow_fp32_enumerated_json(out, err):
    """On [1, 1.001] no node overflows, turns NaN, underflows, goes subnormal or absorbs; every output is
    far from mish (every-op(1) = 1.02, mish(1) = 0.865): bad inputs = every binary32 input there, 8,389."""
    objs = json.loads(out)
    assert not [o for o in objs if o["kind"] == "event"]
    (att,) = [o for o in objs if o["kind"] == "attribution"]
    assert att["bad_inputs"] == fp32_count(1.0, 1.001) == 8389


@pytest.mark.parametrize("args, check", [
    (["compare", "--dtype", "fp16", "--dtype", "fp32", "--samples", "4096", "--format", "json"],
     _check_compare_fp16_fp32),
    (["compare", "--dtype", "bf16", "--libm", "numpy", "--compute-dtype", "fp32", "--format", "csv"],
     _check_bf16_numpy_csv),
    (["compare", "--dtype", "fp32", "--exhaustive", "--domain", "-3:-2.99", "--format", "json"], _check_fp32_domain_json),
    (["overflow", "--dtype", "fp16", "--format", "json"], _check_overflow_fp16_json),
    (["overflow", "--dtype", "fp32", "--samples", "2048", "--ftz"], _check_overflow_fp32_ftz_table),
    (["overflow", "--dtype", "fp32", "--exhaustive", "--domain", "1:1.001", "--format", "json"],
     _check_overflow_fp32_enumerated_json),
], ids=["compare-json", "compare-csv", "compare-exhaustive", "overflow-json", "overflow-ftz-table",
        "overflow-exhaustive"])
def test_every_operator_in_every_command(every_op, args, check):
    code, out, err = run(*args, "--formulas", str(every_op), "--formula", "every-op")
    assert code == 0, err
    assert "Traceback" not in err
    check(out, err)


def test_every_operator_in_plot_report_baseline_check(every_op, tmp_path):
    """plot: an SVG with one panel per formulation, titled with its id; report: the compare table holds
    every fp16 input of [-4, 4] (34,818: both zeros), and its four figures are decodable PNGs; baseline: each
    limit the measured value times (1 + margin 0.05), rounded up to 3 digits; check passes on it and fails
    (exit 1) once max_ulp is set below the measured value."""
    common = ["--formulas", str(every_op), "--formula", "every-op", "--dtype", "fp16", "--domain", "-4:4"]
    assert run("plot", *common, "--formula", "softplus-tanh", "--out", str(tmp_path / "e.svg"))[0] == 0
    svg = (tmp_path / "e.svg").read_text()
    ET.fromstring(svg)
    axes = re.findall(r'<g id="axes_\d+"', svg)
    assert len(axes) == 2 and svg.count("<!-- every-op -->") == 1 and svg.count("<!-- softplus-tanh -->") == 1
    code, _, err = run("report", *common, "--out", str(tmp_path / "rep"))
    assert code == 0, err
    with open(tmp_path / "rep" / "compare.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["formula"] == "every-op" and int(row["inputs"]) == len(fp16_values(-4, 4)) == 34818
    assert float(row["nonfinite"]) == 0  # no overflow below the edges derived above (all beyond 4)
    pngs = sorted((tmp_path / "rep" / "figures").glob("*.png"))
    assert {p.stem for p in pngs} == {"error-fp16", "cdf-fp16", "cost-fp16", "overflow-fp16-every-op"}
    for p in pngs:
        w, h = png_size(p.read_bytes())
        assert w > 100 and h > 100
    assert "every-op" in (tmp_path / "rep" / "index.md").read_text()
    code, _, err = run("baseline", *common, "--out", str(tmp_path / "t.toml"))
    assert code == 0, err
    (lim,) = tomllib.loads((tmp_path / "t.toml").read_text())["limit"]
    assert (lim["formula"], lim["dtype"], lim["domain"]) == ("every-op", "fp16", [-4.0, 4.0])
    measured = float(row["max_ulp"])
    assert measured * 1.05 <= lim["max_ulp"] <= measured * 1.05 * (1 + 1e-2)
    assert lim["nonfinite"] == 0
    code, out, err = run("check", "--formulas", str(every_op), "--thresholds", str(tmp_path / "t.toml"))
    assert code == 0, out + err
    tight = (tmp_path / "t.toml").read_text().replace(f"max_ulp = {lim['max_ulp']!r}", f"max_ulp = {measured * 0.99!r}")
    (tmp_path / "t.toml").write_text(tight)
    code, out, err = run("check", "--formulas", str(every_op), "--thresholds", str(tmp_path / "t.toml"))
    assert code == 1 and "max_ulp" in err + out and "Traceback" not in err, out + err


@pytest.mark.parametrize("body, words", [
    ("(+ (< x 1) 2)", "a truth value where a number"),
    ("(if x 1 2)", "a number where a truth value"),
    ("(and x 1)", "a number where a truth value"),
    ("(< x 1)", "the body must be a number"),
])
def test_type_errors_are_refused_at_load(body, words):
    with pytest.raises(UserError, match=words):
        load_text(f"(FPCore t (x) {body})", "t.fpcore", "t")


def test_an_internal_error_is_one_line_and_exit_3(monkeypatch):
    import mishaudit.analysis.audit

    def boom(*a, **k):
        raise ZeroDivisionError("simulated bug")

    monkeypatch.setattr(mishaudit.analysis.audit, "run_audit", boom)
    r = CliRunner().invoke(main, ["compare", "--formula", "softplus-tanh"])
    assert r.exit_code == 3
    lines = [ln for ln in r.output.strip().splitlines() if ln]
    assert len(lines) == 1 and "internal error: ZeroDivisionError: simulated bug" in lines[0]
    assert "please report" in lines[0] and "Traceback" not in r.output


def test_a_broken_limit_is_exit_1_not_3(tmp_path):
    th = tmp_path / "t.toml"
    th.write_text('version = 1\n[[limit]]\nformula = "log-exp-plus-one"\ndtype = "fp16"\nmax_ulp = 1.0\n')
    code, out, err = run("check", "--thresholds", str(th))
    assert code == 1 and "max_ulp" in err and "Traceback" not in err
