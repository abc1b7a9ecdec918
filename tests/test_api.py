"""The Python API returns pandas DataFrames; the README's example runs; the CLI renders the same frames."""

import json
import re
from pathlib import Path

import mpmath
import pandas as pd
import pytest

import mishaudit
from mishaudit.output.frames import COMPARE_KEYS, records

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_api_example_runs():
    text = README.read_text()
    section = text[text.index("## Python API"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # the documented example, as a user pastes it
    df = scope["df"]
    assert isinstance(df, pd.DataFrame) and list(df.columns) == list(COMPARE_KEYS)
    assert set(df.dtype) == {"fp16", "bf16"} and len(df) == 6


def test_compare_frame_has_typed_columns_and_exact_values():
    df = mishaudit.compare(dtype="fp16", formulas=["softplus-tanh"])
    assert str(df["inputs"].dtype) == "Int64" and str(df["max_ulp"].dtype) == "Float64"
    assert str(df["formula_exact"].dtype) == "boolean"
    r = records(df)[0]
    # the worst case of softplus-tanh in fp16, by hand: exp(x) underflows to 0, mish(x) is 8.54 subnormal ulps
    assert r["worst_x"] == -17.34375
    with mpmath.workprec(200):
        x = mpmath.mpf(-17.34375)
        want = float(abs(x * mpmath.tanh(mpmath.log1p(mpmath.exp(x)))) / mpmath.mpf(2) ** -24)
    assert abs(r["max_ulp"] - want) < 1e-9
    assert isinstance(df.attrs["specials"], pd.DataFrame) and df.attrs["meta"]["libm"] == "cr"


def test_overflow_frames():
    events, culprits = mishaudit.overflow(dtype="fp16", formulas="exp-rational")
    row = events[(events.node == "e") & (events.event == "overflow")].iloc[0]
    assert row["intervals"] == [[11.09375, 65504.0]]  # exp overflows from 11.09375 (mpmath: ln 65520 = 11.0898)
    assert len(culprits) and set(culprits.formula) == {"exp-rational"}


def test_load_formulas_and_bad_input(tmp_path):
    (tmp_path / "m.fpcore").write_text("(FPCore mine (x) (* x (tanh (log1p (exp x)))))")
    reg = mishaudit.load_formulas(tmp_path)
    assert "mine" in reg and "softplus-tanh" in reg
    assert list(mishaudit.load_formulas(tmp_path, builtin=False)) == ["mine"]
    with pytest.raises(mishaudit.UserError, match="unknown formula 'nope'"):
        mishaudit.compare(formulas=["nope"])


def test_cli_json_is_rendered_from_the_api_frame(tmp_path):
    from click.testing import CliRunner

    from mishaudit.cli import main

    out = tmp_path / "r.json"
    r = CliRunner().invoke(main, ["compare", "--formula", "yashas2", "--format", "json", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = json.loads(out.read_text())
    df = mishaudit.compare(dtype="fp16", formulas=["yashas2"])
    assert rows == [{k: v for k, v in rec.items()} for rec in records(df)]
