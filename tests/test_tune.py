"""Parameters (:mishaudit-params, --set) and `tune`, checked against independent computations."""

from __future__ import annotations

import json
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from mishaudit import api
from mishaudit.cli import main
from mishaudit.errors import UserError
from mishaudit.eval.evaluate import Policy, evaluate
from mishaudit.eval.inputs import enumerate_all
from mishaudit.formats import BF16, FP16, FP32
from mishaudit.lang import fpcore
from mishaudit.lang.registry import (
    builtin_files,
    load_registry,
    load_text,
    parse_settings,
)

REG = load_registry()


def test_every_shipped_constant_is_a_parameter_with_its_source_value():
    want = {"softplus-threshold": "threshold=20", "exp-rational-clamped": "clamp=-100", "onednn-jit": "clamp=44.3614159",
            "tf-softplus": "offset=2", "coreml-2359-workaround": "knee=10.39", "darknet-cpu": "threshold=20",
            "opencv-cpu": "cutoff=-36.73", "yashas": "low=-18; mid=-5", "yashas2": "split=-0.6",
            "mish-cuda-grad": "threshold=20", "darknet-cpu-grad": "threshold=20", "darknet-gpu-grad": "threshold=20"}
    for fid, text in want.items():
        assert REG[fid].param_defaults() == text, fid
    assert REG["openvino-gpu"].params == ("B",)
    assert REG["openvino-gpu"].constant("B", FP16) == Fraction(475, 100)
    # no number left in a transcribed body is a threshold, clamp or knee: every comparison, fmin and fmax
    # tests x against a parameter (or 0); the synthesized mishaudit-* are the search's output, their
    # branch points single format values it chose (tests/test_synthesize.py reproduces them)
    for text, src, stem in builtin_files():
        core = fpcore.parse(text, src)
        if str(core.prop(":mishaudit-source", "")).startswith("mishaudit synthesize"):
            continue
        for e in _nodes(core.body):
            if isinstance(e, fpcore.Op) and e.op in ("<", ">", "<=", ">=", "fmin", "fmax"):
                lits = [a for a in e.args if isinstance(a, fpcore.Num) and a.value != 0]
                assert not lits, f"{stem}: literal {lits[0].value} in {fpcore.to_text(e)}"


def _nodes(e):
    yield e
    for c in fpcore.children(e):
        yield from _nodes(c)


@pytest.mark.parametrize("fmt", [FP16, BF16])
def test_set_equals_the_literal_written_into_the_file(fmt):
    """--set threshold=2.5 gives the bits of a file with 2.5 written in place of the parameter."""
    f = REG["softplus-threshold"]
    literal = load_text("(FPCore lit (x) (let ([sp (if (> x 2.5) x (log1p (exp x)))]) (* x (tanh sp))))", "lit", "lit")
    x = enumerate_all(fmt).x
    a = evaluate(f.with_values({"threshold": Fraction(5, 2)}), x, Policy(fmt)).y
    b = evaluate(literal, x, Policy(fmt)).y
    assert np.array_equal(a.view(np.uint64), b.view(np.uint64))
    c = evaluate(f, x, Policy(fmt)).y  # and it does change something: 20 is not 2.5
    assert not np.array_equal(a.view(np.uint64), c.view(np.uint64))


def test_set_changes_the_digest_not_the_id():
    f = REG["softplus-threshold"]
    g = f.with_values({"threshold": Fraction(15)})
    assert g.id == f.id and g.digest != f.digest and g.param_text() == "threshold=15"
    assert f.with_values({"threshold": Fraction(20)}).digest != f.digest  # an override is recorded as one


@given(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True),
       st.fractions(min_value=-1000, max_value=1000, max_denominator=1 << 12))
@settings(max_examples=150, deadline=None)
def test_set_parses_exact_values(name, value):
    text = fpcore.format_number(value)
    assert parse_settings([f"{name}={text}"]) == {name: value}
    hexa = float(value).hex() if float(value) == value else None
    if hexa:
        assert parse_settings([f"{name}={hexa}"]) == {name: value}


@pytest.mark.parametrize("bad", ["threshold", "=3", "threshold=", "threshold=1e", "threshold=abc", "t=1/0"])
def test_malformed_set_is_a_user_error(bad):
    with pytest.raises(UserError, match="--set"):
        parse_settings([bad])


def test_set_errors_on_the_command_line():
    r = CliRunner().invoke(main, ["compare", "--formula", "softplus-tanh", "--set", "threshold=3"])
    assert r.exit_code == 2 and "no selected formulation has a parameter 'threshold'" in r.output
    r = CliRunner().invoke(main, ["compare", "--formula", "softplus-threshold", "--set", "thresh=3"])
    assert r.exit_code == 2 and "theirs: threshold" in r.output
    r = CliRunner().invoke(main, ["compare", "--formula", "softplus-threshold", "--set", "threshold=3", "--set",
                                  "threshold=4"])
    assert r.exit_code == 2 and "twice" in r.output


def test_set_shows_in_rows_and_tables():
    df = api.compare("fp16", ["softplus-threshold", "softplus-tanh"], settings=["threshold=3"])
    by = {r.formula: r for r in df.itertuples()}
    assert by["softplus-threshold"].params == "threshold=3"
    assert by["softplus-tanh"].params is pd_na()
    r = CliRunner().invoke(main, ["compare", "--formula", "softplus-threshold", "--set", "threshold=3"])
    assert r.exit_code == 0 and "softplus-threshold [threshold=3]" in r.output


def pd_na():
    import pandas as pd

    return pd.NA


@pytest.mark.parametrize("text, msg", [
    ("(FPCore f (x) :mishaudit-params ([t 1]) x)", "never uses"),
    ("(FPCore f (x) :mishaudit-params ([t 1] [t 2]) (+ x t))", "named twice"),
    ("(FPCore f (x) :mishaudit-params ([x 1]) x)", "named twice"),
    ("(FPCore f (x) :mishaudit-params ([t]) (+ x t))", "must look like"),
    ("(FPCore f (x) :mishaudit-params ([t \"1\"]) (+ x t))", "must look like"),
    ("(FPCore f (x) :mishaudit-params ([t (binary8 1)]) (+ x t))", "unknown format"),
    ("(FPCore f (x) :mishaudit-params ([t (binary16 1)]) (+ x t))", None),  # loads; fp32 has no value
])
def test_bad_params_property(text, msg):
    if msg is None:
        f = load_text(text, "f.fpcore", "f")
        with pytest.raises(UserError, match="no value for fp32"):
            f.constant("t", FP32)
        return
    with pytest.raises(UserError, match=msg):
        load_text(text, "f.fpcore", "f")


# ---------------------------------------------------------------- tune against an independent scan


def _rn16(v):
    """RN to binary16 of an mpf far from the subnormals (11 bits, ties to even; >= 65520 overflows)."""
    with mpmath.workprec(11):
        r = +v
    return mpmath.inf if abs(r) > 65504 else r


def _ulp_err16(y, r):
    e = int(mpmath.floor(mpmath.log(abs(r), 2)))
    return float(abs(y - r) / mpmath.mpf(2) ** (e - 10))


def test_tune_softplus_threshold_fp16_matches_an_independent_scan():
    """softplus-threshold's output is x*tanh(x) above the threshold t and the log1p(exp) chain at or below
    it. Both branches are simulated per input in mpmath (every operation rounded to binary16, as the
    cr libm does) and their ulp errors against mpmath's mish; the max error of threshold t is then
    max(max over x <= t of the chain's, max over x > t of the branch's), a prefix/suffix scan."""
    lo, hi = 0.5, 60.0
    x = enumerate_all(FP16).x
    x = x[(x >= lo) & (x <= hi)]
    chain, branch = [], []
    with mpmath.workprec(200):
        for v in x:
            xv = mpmath.mpf(float(v))
            r = xv * mpmath.tanh(mpmath.log1p(mpmath.exp(xv)))
            e = _rn16(mpmath.exp(xv))
            sp = mpmath.inf if e == mpmath.inf else _rn16(mpmath.log1p(e))
            t = mpmath.mpf(1) if sp == mpmath.inf else _rn16(mpmath.tanh(sp))
            chain.append(_ulp_err16(_rn16(xv * t), r))
            branch.append(_ulp_err16(_rn16(xv * _rn16(mpmath.tanh(xv))), r))
    chain, branch = np.array(chain), np.array(branch)
    pre = np.maximum.accumulate(chain)  # max over x[0..i]
    suf = np.append(np.maximum.accumulate(branch[::-1])[::-1], 0.0)  # max over x[i..]
    df = api.tune("softplus-threshold", "threshold", "1:12", dtype="fp16", domain=f"{lo}:{hi}")
    assert df.value.is_monotonic_increasing and len(df) == 3 * 1024 + 512 + 1 + 1  # fp16 values in [1, 12], and 20
    for row in df.itertuples():
        k = int(np.searchsorted(x, row.value, side="right"))  # x[:k] <= t take the chain
        want = max(pre[k - 1] if k else 0.0, suf[k])
        assert row.max_ulp == pytest.approx(want, rel=1e-9, abs=1e-12), row.value
    tried = [t for t in df.value if 1 <= t <= 12]  # only values inside the range compete (the default 20 is apart)
    best = min(max(pre[np.searchsorted(x, t, side="right") - 1], suf[np.searchsorted(x, t, side="right")])
               for t in tried)
    scan_good = sorted(float(t) for t in tried
                       if max(pre[np.searchsorted(x, t, side="right") - 1],
                              suf[np.searchsorted(x, t, side="right")]) == pytest.approx(best, rel=1e-12))
    assert sorted(df.value[df.as_good]) == scan_good
    s = df.attrs["summary"].iloc[0]
    assert s.best_value in scan_good and s.default_value == 20.0
    assert s.best_max_ulp == pytest.approx(best, rel=1e-9)
    assert s.as_good_lo == scan_good[0] and s.as_good_hi == scan_good[-1]
    assert scan_good[0] > 1.0  # small thresholds do cost accuracy: the scan is not flat


def test_tune_rows_equal_compare_with_set():
    """A tuned value's row is compare's row with --set (same inputs: fp16 takes every input)."""
    df = api.tune("exp-rational-clamped", "clamp", "-20:-10", dtype="bf16", steps=5)
    assert df.default.sum() == 1 and df[df.default].value.iloc[0] == -100.0
    for row in df.itertuples():
        c = api.compare("bf16", ["exp-rational-clamped"], settings=[f"clamp={float(row.value)!r}"]).iloc[0]
        assert (row.max_ulp, row.mean_ulp, row.cr_frac, row.nonfinite) == (c.max_ulp, c.mean_ulp, c.cr_frac,
                                                                            c.nonfinite)


def test_tune_exhaustive_fp32_equals_compare_exhaustive_with_set():
    dom = "5:5.5"
    df = api.tune("softplus-threshold", "threshold", "5.1:5.3", dtype="fp32", steps=3, exhaustive=True, domain=dom,
                  jobs=1)
    assert len(df) == 4
    for row in df.itertuples():
        c = api.compare("fp32", ["softplus-threshold"], settings=[f"threshold={float(row.value)!r}"], exhaustive=True,
                        domain=dom, jobs=1).iloc[0]
        assert c.strategy == "exhaustive" and row.inputs == c.inputs
        assert (row.max_ulp, row.mean_ulp, row.cr_frac) == (c.max_ulp, c.mean_ulp, c.cr_frac)


@pytest.mark.parametrize("by", ["max_ulp", "mean_ulp", "cr_frac"])
def test_best_value_is_best_by_its_criterion(by):
    df = api.tune("yashas2", "split", "-2:0", dtype="bf16", by=by)
    key = (lambda r: (r.nonfinite, -r.cr_frac)) if by == "cr_frac" else (lambda r: (r.nonfinite, getattr(r, by)))
    rows = list(df.itertuples())
    top = min(key(r) for r in rows)
    assert {r.value for r in rows if r.as_good} == {r.value for r in rows if key(r) == top}
    assert sum(df.best) == 1 and bool(df[df.best].as_good.iloc[0])


def test_tune_cli_table_csv_and_plot(tmp_path):
    png = tmp_path / "t.png"
    r = CliRunner().invoke(main, ["tune", "--formula", "softplus-threshold", "--param", "threshold", "--range", "1:4",
                                  "--dtype", "bf16", "--plot", str(png), "--format", "markdown"])
    assert r.exit_code == 0, r.output
    assert "| bf16 |" in r.output and "tried all" in r.output and png.read_bytes()[:4] == b"\x89PNG"
    r = CliRunner().invoke(main, ["tune", "--formula", "softplus-threshold", "--param", "threshold", "--range", "1:4",
                                  "--dtype", "bf16", "--format", "json"])
    rows = json.loads(r.output)
    assert len(rows) == 128 + 128 + 1 + 1  # bf16 steps 2^-7 in [1, 2), 2^-6 in [2, 4); 4; and the default 20


@pytest.mark.parametrize("args, msg", [
    (["--formula", "softplus-tanh", "--param", "threshold", "--range", "1:2"], "no parameter 'threshold'"),
    (["--formula", "softplus-threshold", "--param", "threshold", "--range", "2:1"], "LO is greater"),
    (["--formula", "softplus-threshold", "--param", "threshold", "--range", "a:1"], "LO:HI"),
    (["--formula", "softplus-threshold", "--param", "threshold", "--range", "1:2", "--plot", "x.pdf"], ".png or .svg"),
    (["--formula", "torch:mish", "--param", "threshold", "--range", "1:2"], None),
    (["--formula", "softplus-threshold", "--param", "threshold", "--range", "1:2", "--dtype", "fp16",
      "--exhaustive"], "--exhaustive"),
])
def test_tune_bad_input_is_one_line(args, msg):
    r = CliRunner().invoke(main, ["tune", *args])
    assert r.exit_code == 2, r.output
    assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output
    if msg:
        assert msg in r.output


def test_baseline_records_set_and_check_applies_it(tmp_path):
    th = tmp_path / "t.toml"
    r = CliRunner().invoke(main, ["baseline", "--dtype", "bf16", "--formula", "softplus-threshold", "--formula",
                                  "softplus-tanh", "--set", "threshold=1.5", "--out", str(th), "--margin", "0"])
    assert r.exit_code == 0, r.output
    text = th.read_text()
    assert text.count('set = { threshold = "1.5" }') == 1  # softplus-tanh has no such parameter
    assert CliRunner().invoke(main, ["check", "--thresholds", str(th)]).exit_code == 0
    # without the setting the file's threshold (20) is more accurate on the mean (bf16 max ulp is the same):
    # the measured mean differs, so the setting did reach the check
    plain = text.replace('set = { threshold = "1.5" }\n', "")
    th.write_text(plain)
    r1 = CliRunner().invoke(main, ["check", "--thresholds", str(th), "--format", "json"])
    th.write_text(text)
    r2 = CliRunner().invoke(main, ["check", "--thresholds", str(th), "--format", "json"])
    m1 = {(v["formula"], v["measure"]): v["measured"] for v in json.loads(r1.output)}
    m2 = {(v["formula"], v["measure"]): v["measured"] for v in json.loads(r2.output)}
    assert m1[("softplus-threshold", "mean_ulp")] < m2[("softplus-threshold", "mean_ulp")]
    assert m1[("softplus-tanh", "mean_ulp")] == m2[("softplus-tanh", "mean_ulp")]


@pytest.mark.parametrize("line, msg", [('set = { threshold = 15 }', "as strings"),
                                       ('set = { threshold = "x" }', "NAME=VALUE")])
def test_bad_set_in_thresholds(tmp_path, line, msg):
    th = tmp_path / "t.toml"
    th.write_text(f'version = 1\n[[limit]]\nformula = "softplus-threshold"\ndtype = "fp16"\n{line}\nmax_ulp = 9\n')
    r = CliRunner().invoke(main, ["check", "--thresholds", str(th)])
    assert r.exit_code == 2 and msg in r.output and ":5:" in r.output


def test_tune_is_part_of_the_package_api():
    import mishaudit

    assert mishaudit.tune is api.tune and "tune" in mishaudit.__all__
