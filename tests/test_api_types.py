"""The API takes Python values (tuples, arrays, dicts, bit widths) and refuses bad ones with one-line
UserErrors in API terms; the CLI maps its flags onto it (issue 21, items 1, 3 and 6)."""

import math
import os

import numpy as np
import pytest

import mishaudit
from mishaudit import UserError


def _fp32_count(lo: float, hi: float) -> int:
    """fp32 values in [lo, hi] for 0 < lo <= hi, by bit patterns (independent of mishaudit)."""
    a = np.array([lo], dtype=np.float32).view(np.uint32)[0]
    b = np.array([hi], dtype=np.float32).view(np.uint32)[0]
    if float(np.array([a], dtype=np.uint32).view(np.float32)[0]) < lo:
        a += 1
    if float(np.array([b], dtype=np.uint32).view(np.float32)[0]) > hi:
        b -= 1
    return int(b) - int(a) + 1


def test_fp32_count_by_bit_patterns():
    assert _fp32_count(1.0, 1.001) == 8389  # 1 + k * 2^-23 <= 1.001: k <= 8388.6


def test_tuple_domain_and_int_dtype():
    df = mishaudit.compare(dtype=32, formulas="softplus-tanh", domain=(1, 1.001), samples=1 << 16)
    assert df["dtype"].tolist() == ["fp32"] and df["inputs"].tolist() == [_fp32_count(1.0, 1.001)]
    assert df["strategy"].tolist() == ["exhaustive"]  # the sample holds the whole domain
    assert mishaudit.compare(dtype=[16, "bf16"], formulas="softplus-tanh", domain=[-1.0, None]).dtype.tolist() == \
        ["fp16", "bf16"]


def test_array_inputs():
    x = np.linspace(-3, 3, 101)
    df = mishaudit.compare(dtype="fp16", formulas="softplus-tanh", inputs=x)
    assert df["inputs"].tolist() == [101]
    same = mishaudit.compare(dtype="fp16", formulas="softplus-tanh", inputs="linspace:-3:3:101")
    assert df["max_ulp"].tolist() == same["max_ulp"].tolist()
    assert mishaudit.compare(dtype="fp16", formulas="softplus-tanh", inputs=[0.5, 0.5, 2.0])["inputs"].tolist() == [3]


def test_dict_settings():
    a = mishaudit.compare(formulas="softplus-threshold", settings={"threshold": 15})
    b = mishaudit.compare(formulas="softplus-threshold", settings="threshold=15")
    assert a["params"].tolist() == b["params"].tolist() and "threshold=15" in a["params"].iloc[0]
    assert a["max_ulp"].tolist() == b["max_ulp"].tolist()


@pytest.mark.parametrize("kw, words", [
    ({"domain": object()}, "domain="),
    ({"domain": (5, 1)}, "domain="),
    ({"domain": (1, 2, 3)}, "domain="),
    ({"domain": (math.nan, 1)}, "NaN"),
    ({"dtype": 3.5}, "dtype="),
    ({"dtype": 8}, "dtype="),
    ({"formulas": 42}, "formulas="),
    ({"dtype": "fp32", "samples": 1.5}, "samples="),
    ({"dtype": "fp32", "samples": "100"}, "samples="),
    ({"dtype": "fp32", "samples": True}, "samples="),
    ({"dtype": "fp32", "seed": -1}, "seed="),
    ({"settings": 15}, "settings="),
    ({"settings": {"threshold": "x"}}, "settings="),
    ({"settings": {"threshold": math.inf}}, "settings="),
    ({"inputs": {"a": 1}}, "inputs="),
    ({"inputs": np.array(["a", "b"])}, "inputs="),
    ({"inputs": "linspace:0:1:3", "dtype": "fp32", "samples": 10}, "samples="),
    ({"exhaustive": "yes", "dtype": "fp32"}, "exhaustive="),
    ({"jobs": 1.5, "dtype": "fp32", "exhaustive": True}, "jobs="),
    ({"libm": 3}, "libm="),
    ({"compute_dtype": 7}, "compute_dtype="),
])
def test_wrong_values_and_types_are_one_line_user_errors_in_api_terms(kw, words):
    with pytest.raises(UserError) as exc:
        mishaudit.compare(**{"formulas": "softplus-tanh", **kw})
    msg = str(exc.value)
    assert words in msg and "\n" not in msg


def test_other_functions_take_python_values():
    events, _ = mishaudit.overflow(dtype=16, formulas=["exp-rational"], domain=(-20, 20))
    assert len(events)
    df = mishaudit.tune("softplus-threshold", "threshold", (10, 12), dtype=16, steps=2, domain=(5.0, 15.0))
    assert {10.0, 12.0} <= set(df["value"].tolist())  # the two ends (and the default, 20, beside them)
    with pytest.raises(UserError, match="value_range="):
        mishaudit.tune("softplus-threshold", "threshold", 10, dtype=16)
    with pytest.raises(UserError, match="formula_dirs="):
        mishaudit.load_formulas(3)
    with pytest.raises(UserError, match="kernel="):
        mishaudit.identify(3)


def test_huge_samples_say_what_they_need_before_allocating():
    with pytest.raises(UserError, match="4,278,190,080"):
        mishaudit.compare(dtype="fp32", formulas="softplus-tanh", samples=10**12)
    with pytest.raises(UserError, match="GB of memory"):
        mishaudit.compare(dtype="fp64", formulas="softplus-tanh", samples=10**17)


def test_jobs_are_clamped_to_the_cores(monkeypatch):
    import mishaudit.pool as pool

    seen, real = [], pool.workers_for
    monkeypatch.setattr(pool, "workers_for", lambda items, jobs=0: seen.append(jobs) or real(items, jobs))
    df = mishaudit.compare(dtype="fp32", formulas="softplus-tanh", domain=(1, 1.001), exhaustive=True, jobs=100000)
    assert df["inputs"].tolist() == [8389]
    assert seen and max(seen) <= (os.cpu_count() or 1)


def test_check_default_looks_in_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as exc:
        mishaudit.check()
    msg = str(exc.value)
    assert str(tmp_path / "reports" / "thresholds.toml") in msg and str(tmp_path / "thresholds.toml") in msg
    (tmp_path / "thresholds.toml").write_text('version = 1\n[[limit]]\nformula = "softplus-tanh"\ndtype = "fp16"\n'
                                              "max_ulp = 100\n")
    df = mishaudit.check()
    assert df["ok"].tolist() == [True] and df.attrs["path"] == "thresholds.toml"

