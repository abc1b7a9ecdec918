"""The command line: JSON contract, bad input (one line, exit 2, nothing written), list."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from mishaudit.cli import main
from mishaudit.output.tables import JSON_KEYS


def run(*args):
    """Run the real console entry in a subprocess (exit codes and stderr as a user sees them)."""
    p = subprocess.run([sys.executable, "-m", "mishaudit.cli", *args], capture_output=True, text=True,
                       env=os.environ.copy(), timeout=600)
    return p.returncode, p.stdout, p.stderr


def test_compare_json_contract_and_known_facts(tmp_path):
    out = tmp_path / "r.json"
    code, _, err = run("compare", "--dtype", "fp16", "--formula", "exp-rational", "--formula", "softplus-tanh",
                       "--formula", "exp-rational-clamped", "--format", "json", "--output", str(out))
    assert code == 0, err
    rows = json.loads(out.read_text())
    assert {r["formula"] for r in rows} == {"exp-rational", "softplus-tanh", "exp-rational-clamped"}
    for r in rows:
        assert set(JSON_KEYS) <= set(r)
        assert r["inputs"] == 63488 and r["strategy"] == "exhaustive" and r["dtype"] == "fp16"
        assert r["max_ulp"] >= r["p99_ulp"] >= r["median_ulp"] >= 0
        assert sum(r[k] for k in ("dulp_0", "dulp_1", "dulp_2", "dulp_3", "dulp_gt3")) == r["inputs"] - r["nonfinite"]
    by = {r["formula"]: r for r in rows}
    assert by["exp-rational"]["formula_exact"] and by["exp-rational"]["formula_ulp"] == 0.0  # an exact rewrite
    # the clamp at -100 changes the value, by 6e-35 ulp in fp16 (below the 2^-10 resolution)
    assert not by["exp-rational-clamped"]["formula_exact"] and by["exp-rational-clamped"]["formula_ulp"] == 0.0
    assert all(r["libm"] == "cr" for r in rows)


def test_specials_table_reports_nan_from_the_clamp():
    r = CliRunner().invoke(main, ["compare", "--formula", "exp-rational-clamped", "--format", "markdown"])
    assert r.exit_code == 0
    # fmax(NaN, -100) = -100 (C fmax ignores NaN), so mish(NaN) comes out as a number
    assert "| exp-rational-clamped | fp16 | nan | nan |" in r.output


@pytest.mark.parametrize("args, words", [
    (["compare", "--formula", "nope"], "unknown formula 'nope'"),
    (["compare", "--dtype", "fp8"], "unknown dtype 'fp8'"),
    (["compare", "--domain", "5:1"], "LO is greater than HI"),
    (["compare", "--domain", "nan:1"], "NaN"),
    (["compare", "--domain", "1:2:3"], "LO:HI"),
    (["compare", "--domain", "0.1:0.10003", "--dtype", "fp16"], "holds no finite fp16 value"),
    (["compare", "--output", "/nonexistent-dir/x.json"], "does not exist"),
    (["compare", "--sort", "bogus"], "unknown column"),
    (["compare", "--compute-dtype", "fp128"], "unknown dtype"),
    (["compare", "--exhaustive", "--dtype", "fp64"], "2^64 inputs"),
    (["compare", "--exhaustive", "--dtype", "fp32", "--jobs", "-1"], "--jobs -1"),
    (["compare", "--resume"], "add --exhaustive"),
    (["plot", "--out", "/nonexistent-dir/x.png"], "cannot write --out"),
    (["plot", "--out", "figure.txt"], "give a .png or .svg"),
    (["baseline", "--out", "/tmp/t.toml", "--margin", "2"], "--margin"),
    (["overflow", "--dtype", "fp8"], "unknown dtype"),
    (["overflow", "--exhaustive", "--dtype", "fp64"], "2^64 inputs"),
    (["overflow", "--resume"], "add --exhaustive"),
    (["overflow", "--exhaustive", "--dtype", "fp32", "--jobs", "-3"], "--jobs -3"),
    (["compare", "--seed", "-1", "--dtype", "fp32"], "--seed"),
    (["compare", "--exhaustive"], "--exhaustive streams every fp32 input"),
    (["compare", "--exhaustive", "--dtype", "fp32", "--dtype", "bf16"], "not bf16"),
    (["compare", "--dtype", "fp32", "--jobs", "2"], "add --exhaustive or drop --jobs"),
    (["compare", "--samples", "100"], "fp16 and bf16 use every input"),
    (["overflow", "--seed", "3", "--dtype", "bf16"], "fp16 and bf16 use every input"),
    (["plot", "--dtype", "fp16", "--dtype", "bf16", "--out", "/tmp/x.png"], "plot draws one format"),
    (["plot", "--kind", "cdf", "--overlay", "--out", "/tmp/x.png"], "drop --overlay"),
    (["check", "--format", "yaml"], "--format"),
    (["compare", "--samples", "0"], "--samples"),
    (["compare", "--libm", "musl"], "--libm"),
    (["overflow", "--seed", "-1", "--dtype", "fp32"], "--seed"),
])
def test_bad_input_is_one_line_exit_2(args, words):
    code, out, err = run(*args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], err
    assert "Traceback" not in err


def test_check_without_thresholds_says_where_it_looked(tmp_path):
    p = subprocess.run([sys.executable, "-m", "mishaudit.cli", "check"], capture_output=True, text=True,
                       env=os.environ.copy(), cwd=tmp_path, timeout=120)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    assert str(tmp_path / "reports" / "thresholds.toml") in p.stderr and "--thresholds" in p.stderr


def test_every_option_of_every_command_has_help():
    for name, cmd in main.commands.items():
        for param in cmd.params:
            if isinstance(param, __import__("click").Option):
                assert param.help, f"{name} {param.opts}"


@pytest.mark.parametrize("cmd", ["compare", "overflow", "list", "check"])
def test_output_and_out_and_the_same_formats_everywhere(cmd, tmp_path):
    import click

    opts = {o for p in main.commands[cmd].params for o in p.opts}
    assert {"--output", "--out", "--format"} <= opts
    fmt = next(p for p in main.commands[cmd].params if "--format" in p.opts)
    assert isinstance(fmt.type, click.Choice) and list(fmt.type.choices) == ["table", "markdown", "csv", "json"]
    for c in ("plot", "report", "baseline"):
        assert {"--output", "--out"} <= {o for p in main.commands[c].params for o in p.opts}


def _fpcore_ids(folder) -> set:
    """Formulation ids read from the FPCore files as text: `(FPCore id (x)`, else the file name."""
    import re
    from pathlib import Path

    out = set()
    for p in Path(folder).rglob("*.fpcore"):  # formulas/libm/ too
        m = re.search(r"\(FPCore\s+([^\s()]+)\s*\(", p.read_text())
        out.add(m.group(1) if m else p.stem)
    return out


FORMULAS_DIR = __import__("pathlib").Path(__file__).resolve().parent.parent / "formulas"


def test_list_and_check_in_every_format(tmp_path):
    """list names every formulation file in every format; check reports, in every format, yashas2's fp16
    max_ulp as compare measures it, the limit as written, ok = measured <= limit, and no tightening (8.54
    is within 10% of 9)."""
    th = tmp_path / "t.toml"
    th.write_text('version = 1\n[[limit]]\nformula = "yashas2"\ndtype = "fp16"\nmax_ulp = 9.0\n')
    r = CliRunner().invoke(main, ["compare", "--formula", "yashas2", "--format", "json"])
    measured = json.loads(r.output)[0]["max_ulp"]
    assert 0.9 * 9.0 < measured <= 9.0  # ok, and within 10% of the limit: nothing to tighten
    ids = _fpcore_ids(FORMULAS_DIR)
    for fmt in ("markdown", "csv", "json"):
        r = CliRunner().invoke(main, ["list", "--format", fmt])
        assert r.exit_code == 0 and all(i in r.output for i in ids), [i for i in ids if i not in r.output]
        out = tmp_path / f"check.{fmt}"
        r = CliRunner().invoke(main, ["check", "--thresholds", str(th), "--format", fmt, "--output", str(out)])
        text = out.read_text()
        shown = f"{measured:.6g}" if fmt == "markdown" else repr(measured)  # markdown: 6 significant digits
        assert r.exit_code == 0 and "max_ulp" in text and "yashas2" in text and shown in text, text
    (v,) = json.loads(out.read_text())
    assert (v["formula"], v["dtype"], v["measure"], v["measured"], v["limit"]) == ("yashas2", "fp16", "max_ulp",
                                                                                 measured, 9.0)
    assert v["ok"] is True and v["can_tighten"] is False


def test_malformed_fpcore_names_file_line_column(tmp_path):
    (tmp_path / "bad.fpcore").write_text("(FPCore bad (x)\n  :name \"b\"\n  (* x (tanh (log1p (exp x)))")
    code, _, err = run("compare", "--formulas", str(tmp_path), "--formula", "bad")
    assert code == 2 and "bad.fpcore:3:3:" in err and len(err.strip().splitlines()) == 1


def test_unwritable_output_leaves_nothing(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    try:
        if os.access(d, os.W_OK):  # running as root: permissions do not apply; use a file as parent
            target = tmp_path / "file" / "out.json"
            (tmp_path / "file").write_text("x")
        else:
            target = d / "out.json"
        code, _, err = run("compare", "--formula", "softplus-tanh", "--format", "json", "--output", str(target))
        assert code == 2 and "cannot write --output" in err
        assert not target.exists()
    finally:
        d.chmod(0o700)


def test_list_shows_every_formula_and_user_files(tmp_path):
    (tmp_path / "mine.fpcore").write_text('(FPCore my-mish (x) :description "mine" (* x (tanh (log1p (exp x)))))')
    r = CliRunner().invoke(main, ["list", "--formulas", str(tmp_path), "--format", "json"])
    assert r.exit_code == 0
    listed = {row["id"]: row for row in json.loads(r.output)}
    # every file of the registry folder (ids read from the files as text), the user's file, and no other
    # formulation (the rest are framework kernels, "framework:name")
    want = _fpcore_ids(FORMULAS_DIR) | {"my-mish"}
    assert want <= set(listed) and all(":" in i for i in set(listed) - want)
    for fid in ("softplus-tanh", "njuffa", "coreml-2359-workaround", "my-mish"):
        assert fid in listed
    r = CliRunner().invoke(main, ["list", "--formulas", str(tmp_path)])
    assert r.exit_code == 0 and all(i in r.output for i in want)


def test_exhaustive_cli_equals_enumeration_and_resumes(tmp_path):
    """On a domain small enough to enumerate, --exhaustive (streamed, 2 processes) prints what the
    enumerated run prints; a finished sweep resumes to the same rows."""
    dom = ["--dtype", "fp32", "--domain", "-1:-0.999", "--formula", "softplus-tanh", "--formula", "njuffa"]
    outs = {}
    for name, extra in (("plain", []), ("sweep", ["--exhaustive", "--jobs", "2"]),
                        ("resumed", ["--exhaustive", "--resume"])):
        out = tmp_path / f"{name}.json"
        code, _, err = run("compare", *dom, *extra, "--format", "json", "--output", str(out))
        assert code == 0, err
        outs[name] = {r["formula"]: r for r in json.loads(out.read_text())}
    keys = ("inputs", "nonfinite", "max_ulp", "worst_x", "dulp_0", "dulp_1", "dulp_gt3", "signed_zero_mismatch")
    for fid, r in outs["plain"].items():
        assert outs["sweep"][fid]["strategy"] == "exhaustive" and r["strategy"] == "exhaustive"
        assert {k: outs["sweep"][fid][k] for k in keys} == {k: r[k] for k in keys}
        assert outs["resumed"][fid] == outs["sweep"][fid]


def test_overflow_exhaustive_cli_equals_enumeration(tmp_path):
    args = ["overflow", "--dtype", "fp32", "--domain", "-88.8:-88.7", "--formula", "exp-rational", "--format", "json"]
    code, plain, err = run(*args)
    assert code == 0, err
    code, swept, err = run(*args, "--exhaustive", "--jobs", "1")
    assert code == 0, err
    a, b = json.loads(plain), json.loads(swept)
    assert a == b and any(e["kind"] == "event" for e in b)
    assert all(e["enumerated"] for e in b if e["kind"] == "event")


def test_unwritable_or_damaged_sweep_checkpoint_is_one_line_exit_2(tmp_path):
    args = ["compare", "--dtype", "fp32", "--exhaustive", "--domain", "1:1.001", "--format", "json"]
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = dict(os.environ, MISHAUDIT_CACHE_DIR=str(blocker))
    p = subprocess.run([sys.executable, "-m", "mishaudit.cli", *args], capture_output=True, text=True, env=env)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "MISHAUDIT_CACHE_DIR" in p.stderr
    env = dict(os.environ, MISHAUDIT_CACHE_DIR=str(tmp_path / "cache"))
    out = tmp_path / "r.json"
    p = subprocess.run([sys.executable, "-m", "mishaudit.cli", *args], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    for state in (tmp_path / "cache" / "sweeps").glob("*/state.npz"):
        state.write_bytes(b"not a zip")
    p = subprocess.run([sys.executable, "-m", "mishaudit.cli", *args, "--resume", "--output", str(out)],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 2 and "unreadable" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_samples_default_is_accepted_for_fp16():
    code, _, err = run("compare", "--formula", "softplus-tanh", "--dtype", "fp16", "--samples", "65536",
                       "--format", "csv")
    assert code == 0, err


@pytest.mark.parametrize("args, words", [
    (["compare", "--dtype", "fp32", "--samples", str(10**12)], "4,278,190,080"),
    (["compare", "--dtype", "fp64", "--samples", str(10**17)], "GB of memory"),
    (["plot", "--dtype", "fp32", "--exhaustive", "--out", "/tmp/x.png"], "narrow domain="),
])
def test_huge_samples_are_one_line_exit_2_naming_the_need(args, words):
    code, _, err = run(*args)
    assert code == 2 and len(err.strip().splitlines()) == 1 and words in err, err


def test_huge_jobs_runs_on_the_cores(tmp_path):
    code, _, err = run("compare", "--dtype", "fp32", "--formula", "softplus-tanh", "--exhaustive", "--domain",
                       "1:1.001", "--jobs", "100000", "--format", "json", "--out", str(tmp_path / "r.json"))
    assert code == 0, err
    assert json.loads((tmp_path / "r.json").read_text())[0]["inputs"] == 8389


@pytest.mark.parametrize("extra, inputs", [
    (["--dtype", "fp32", "--exhaustive", "--domain", "1:1.001"], 8389),  # fp32 values in [1, 1.001], by bits
    (["--dtype", "fp16", "--inputs", "linspace:-2:2:41"], 41),
])
def test_baseline_and_check_round_trip_exhaustive_and_inputs(tmp_path, extra, inputs):
    th = tmp_path / "thresholds.toml"
    code, _, err = run("baseline", "--formula", "softplus-tanh", *extra, "--out", str(th))
    assert code == 0, err
    text = th.read_text()
    assert ("exhaustive = true" in text) == ("--exhaustive" in extra) and ("inputs = " in text) == ("--inputs" in extra)
    assert "samples" not in text
    code, out, err = run("check", "--thresholds", str(th), "--format", "json")
    assert code == 0, err
    from mishaudit.gate.thresholds import read_thresholds

    assert [e.exhaustive for e in read_thresholds(th).entries] == ["--exhaustive" in extra]
    rows = json.loads(out)
    assert rows and all(r["ok"] for r in rows)


def test_baseline_inputs_file_is_relative_to_the_thresholds_file(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "gate").mkdir()
    (tmp_path / "data" / "x.txt").write_text("0.5 1.5 -2\n")
    th = tmp_path / "gate" / "t.toml"
    code, _, err = run("baseline", "--formula", "softplus-tanh", "--inputs", str(tmp_path / "data" / "x.txt"),
                       "--out", str(th))
    assert code == 0, err
    assert 'inputs = "../data/x.txt"' in th.read_text()
    p = subprocess.run([sys.executable, "-m", "mishaudit.cli", "check", "--thresholds", "gate/t.toml"],
                       capture_output=True, text=True, env=os.environ.copy(), cwd=tmp_path, timeout=300)
    assert p.returncode == 0, p.stderr


def test_check_finds_thresholds_toml_in_the_current_folder(tmp_path):
    p = subprocess.run([sys.executable, "-m", "mishaudit.cli", "check"], capture_output=True, text=True,
                       env=os.environ.copy(), cwd=tmp_path, timeout=120)
    assert p.returncode == 2 and str(tmp_path / "thresholds.toml") in p.stderr, p.stderr
    (tmp_path / "thresholds.toml").write_text('version = 1\n[[limit]]\nformula = "softplus-tanh"\ndtype = "fp16"\n'
                                              "max_ulp = 100\n")
    p = subprocess.run([sys.executable, "-m", "mishaudit.cli", "check"], capture_output=True, text=True,
                       env=os.environ.copy(), cwd=tmp_path, timeout=120)
    assert p.returncode == 0, p.stderr


def test_help_states_ranges_and_arity():
    from click.testing import CliRunner as R

    plot = R().invoke(main, ["plot", "--help"]).output
    assert "repeatable" not in plot.split("--dtype", 1)[1].split("--formula", 1)[0]
    for cmd in ("compare", "overflow"):
        assert "clamped" in R().invoke(main, [cmd, "--help"]).output
    assert "[0, 1)" in R().invoke(main, ["baseline", "--help"]).output
    ident = {p.name: p for p in main.commands["identify"].params}
    comp = {p.name: p for p in main.commands["compare"].params}
    assert ident["computes"].multiple == comp["compute_dtype"].multiple
    assert ident["models"].multiple == comp["model"].multiple
    for cmd in ("baseline", "plot", "report"):
        assert "exhaustive" in {p.name for p in main.commands[cmd].params}
    assert "inputs" in {p.name for p in main.commands["baseline"].params}


def test_resume_without_a_checkpoint_says_so_and_runs_everything(tmp_path, monkeypatch):
    """--resume with nothing to resume is not silent: one note, then the whole domain (the fp32 values of
    [1, 1.001] number 8389: (1.001 - 1) / 2^-23 rounded down, plus 1)."""
    monkeypatch.setenv("MISHAUDIT_CACHE_DIR", str(tmp_path / "fresh"))
    r = CliRunner().invoke(main, ["compare", "--dtype", "fp32", "--exhaustive", "--domain", "1:1.001", "--resume",
                                  "--formula", "softplus-tanh", "--format", "json"])
    assert r.exit_code == 0, r.stderr
    assert "found no checkpoint" in r.stderr and "starting from the first chunk" in r.stderr
    assert json.loads(r.stdout)[0]["inputs"] == int((1.001 - 1) / 2.0**-23) + 1 == 8389


def test_overflow_of_a_kernel_says_why_there_is_no_map():
    r = CliRunner().invoke(main, ["overflow", "--dtype", "fp16", "--formula", "torch:mish"])
    assert r.exit_code == 0, r.stderr
    assert "torch:mish (fp16): no overflow map" in r.stdout and "no intermediates" in r.stdout
    r = CliRunner().invoke(main, ["overflow", "--dtype", "fp16", "--formula", "torch:mish", "--format", "markdown"])
    assert "torch:mish (fp16): no overflow map" in r.stdout


def test_report_exhaustive_audits_every_fp32_value_of_the_domain(tmp_path):
    """report --exhaustive: the sample is every fp32 value of [1, 1.001] (8389 by bit patterns)."""
    import csv

    out = tmp_path / "rep"
    r = CliRunner().invoke(main, ["report", "--dtype", "fp32", "--exhaustive", "--domain", "1:1.001",
                                  "--formula", "softplus-tanh", "--out", str(out)])
    assert r.exit_code == 0, r.stderr
    row = next(csv.DictReader((out / "compare.csv").open()))
    lo, hi = np.float32(1.0).view(np.int32), np.float32(1.001).view(np.int32)
    n = int(hi - lo) + (float(np.float32(1.001)) <= 1.001)  # 1 up to the last binary32 <= 1.001 (in binary64)
    assert int(row["inputs"]) == n == 8389
