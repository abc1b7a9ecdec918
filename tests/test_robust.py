"""No tracebacks: every operator the reader accepts works in every command, type errors are refused
at load, an internal error is one line and exit 3 (distinct from 1, a broken gate limit)."""

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

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


@pytest.mark.parametrize("args", [
    ["compare", "--dtype", "fp16", "--dtype", "fp32", "--samples", "4096", "--format", "json"],
    ["compare", "--dtype", "bf16", "--libm", "numpy", "--compute-dtype", "fp32", "--format", "csv"],
    ["compare", "--dtype", "fp32", "--exhaustive", "--domain", "-3:-2.99", "--format", "json"],
    ["overflow", "--dtype", "fp16", "--format", "json"],
    ["overflow", "--dtype", "fp32", "--samples", "2048", "--ftz"],
    ["overflow", "--dtype", "fp32", "--exhaustive", "--domain", "1:1.001", "--format", "json"],
])
def test_every_operator_in_every_command(every_op, args):
    code, out, err = run(*args, "--formulas", str(every_op), "--formula", "every-op")
    assert code == 0, err
    assert "Traceback" not in err


def test_every_operator_in_plot_report_baseline_check(every_op, tmp_path):
    common = ["--formulas", str(every_op), "--formula", "every-op", "--dtype", "fp16", "--domain", "-4:4"]
    assert run("plot", *common, "--out", str(tmp_path / "e.png"))[0] == 0
    code, _, err = run("report", *common, "--out", str(tmp_path / "rep"))
    assert code == 0, err
    code, _, err = run("baseline", *common, "--out", str(tmp_path / "t.toml"))
    assert code == 0, err
    code, out, err = run("check", "--formulas", str(every_op), "--thresholds", str(tmp_path / "t.toml"))
    assert code == 0, out + err


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
