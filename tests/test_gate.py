"""The CI gate: a degraded formula fails, malformed files exit 2 naming the line, JUnit, baseline -> check."""

import math
import os
import subprocess
import sys
from xml.etree import ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

GOOD = '(FPCore my-mish (x) :description "mine" (* x (tanh (log1p (exp x)))))'
DEGRADED = '(FPCore my-mish (x) :description "mine" (* x (tanh (log (+ 1 (exp x))))))'


def run(*args, cwd=None):
    p = subprocess.run([sys.executable, "-m", "mishaudit.cli", *args], capture_output=True, text=True,
                       env=os.environ.copy(), timeout=600, cwd=cwd)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture()
def adopted(tmp_path):
    """A project that adopted the gate with `baseline` on its own formula."""
    fdir = tmp_path / "formulas"
    fdir.mkdir()
    (fdir / "mine.fpcore").write_text(GOOD)
    th = tmp_path / "thresholds.toml"
    code, _, err = run("baseline", "--dtype", "fp16", "--formulas", str(fdir), "--formula", "my-mish",
                       "--formula", "exp-rational", "--out", str(th))
    assert code == 0, err
    return fdir, th


def test_baseline_then_check_passes(adopted, tmp_path):
    fdir, th = adopted
    junit = tmp_path / "j.xml"
    code, out, err = run("check", "--thresholds", str(th), "--formulas", str(fdir), "--junit", str(junit))
    assert code == 0, out + err
    root = ET.parse(junit).getroot()
    cases = root.findall(".//testcase")
    # 2 formulas x (3 ulp statistics, nonfinite, ulp_overflow, cr_frac, 5 buckets) = 22 limits, none failed
    assert len(cases) == 22
    assert not root.findall(".//failure")
    assert root.find("testsuite").get("failures") == "0"


def test_degraded_formula_fails_naming_everything(adopted, tmp_path):
    fdir, th = adopted
    (fdir / "mine.fpcore").write_text(DEGRADED)  # log1p(exp(x)) -> log(1 + exp(x))
    junit = tmp_path / "j.xml"
    code, out, err = run("check", "--thresholds", str(th), "--formulas", str(fdir), "--junit", str(junit),
                         "--format", "json")
    assert code == 1
    failed = [ln for ln in err.splitlines() if ln.startswith("mishaudit: check failed:")]
    assert failed, err
    assert any("my-mish fp16: max_ulp = " in ln and "(limit <= " in ln for ln in failed), failed
    assert all("exp-rational" not in ln for ln in failed)  # the untouched formula still passes
    root = ET.parse(junit).getroot()
    assert len(root.findall(".//testcase")) == 22
    assert int(root.find("testsuite").get("failures")) == len(failed)
    import json

    rows = json.loads(out)
    bad = [r for r in rows if not r["ok"]]
    assert {r["formula"] for r in bad} == {"my-mish"}
    for r in bad:
        assert r["measured"] > r["limit"] or r["measure"] in ("cr_frac", "dulp_0")


@pytest.mark.parametrize("text, line, words", [
    ('version = 1\n\n[[limit]]\nformula = "softplus-tanh"\ndtype = "fp16"\nmax_ulps = 3\n', 6, "unknown key 'max_ulps'"),
    ('version = 1\n[[limit]]\nformula = "nope"\ndtype = "fp16"\nmax_ulp = 3\n', 3, "unknown formula 'nope'"),
    ('version = 1\n[[limit]]\nformula = "njuffa"\ndtype = "fp12"\nmax_ulp = 3\n', 4, "unknown dtype 'fp12'"),
    ('version = 1\n[[limit]]\nformula = "njuffa"\ndtype = "fp16"\nmax_ulp = -3\n', 5, "non-negative"),
    ('version = 1\n[[limit]]\nformula = "njuffa"\ndtype = "fp16"\ndomain = [3, 1]\nmax_ulp = 3\n', 5, "lo <= hi"),
])
def test_malformed_thresholds_exit_2_naming_the_line(tmp_path, text, line, words):
    th = tmp_path / "t.toml"
    th.write_text(text)
    code, _, err = run("check", "--thresholds", str(th))
    assert code == 2
    assert f"t.toml:{line}:" in err and words in err, err
    assert len(err.strip().splitlines()) == 1


def test_unreadable_or_invalid_toml(tmp_path):
    code, _, err = run("check", "--thresholds", str(tmp_path / "missing.toml"))
    assert code == 2 and "cannot read thresholds file" in err
    (tmp_path / "x.toml").write_text("[[limit]\nformula=")
    code, _, err = run("check", "--thresholds", str(tmp_path / "x.toml"))
    assert code == 2 and "not valid TOML" in err and "Traceback" not in err


def test_committed_thresholds_are_valid():
    from pathlib import Path

    from mishaudit.gate.thresholds import read_thresholds
    from mishaudit.lang.registry import load_registry

    path = Path(__file__).resolve().parent.parent / "reports" / "thresholds.toml"
    th = read_thresholds(path, set(load_registry()))
    assert {e.dtype for e in th.entries} == {"fp16", "bf16", "fp32"}
    # every shipped formulation of mish is gated (the -grad files are not: mishaudit baseline's default selection)
    assert {e.formula for e in th.entries} == {f.id for f in load_registry().values() if f.spec.key == "mish"}


@given(st.floats(min_value=1e-300, max_value=1e300, allow_nan=False, allow_infinity=False))
@settings(max_examples=400, deadline=None)
def test_limits_round_outward_to_few_digits(v):
    """A written limit never falls on the wrong side of the measured value (margin 0 included), and
    it has the promised number of significant digits, one step of them away at most."""
    from mishaudit.gate.thresholds import _round_down, _round_up

    up, down = _round_up(v), _round_down(v)
    assert down <= v <= up
    assert len(f"{up:.3g}".replace(".", "").lstrip("0").split("e")[0].rstrip("0")) <= 3 or up == math.nextafter(v, math.inf)
    assert up <= v * (1 + 2.1e-2) and down >= v * (1 - 2.1e-3)


def test_limit_just_above_a_round_value():
    from mishaudit.gate.thresholds import _round_up

    v = 1.4000000000000057  # p99 of softplus-tanh in bf16: 1.4 plus 4 ulp of binary64
    assert _round_up(v) == 1.41 and _round_up(1.4) == 1.4
