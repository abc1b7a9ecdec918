"""The row cache (analysis/row_cache.py): a rerun gives the same rows and special checks as the first
run, evaluating and enclosing only the formulations whose key missed (an edited file, a damaged cache
file); the key follows the policy; use_cache=False bypasses it."""

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from mishaudit.analysis import audit as audit_mod
from mishaudit.analysis import row_cache
from mishaudit.eval.evaluate import Policy
from mishaudit.eval.inputs import Domain, input_set
from mishaudit.formats import BF16, FP16, FP32
from mishaudit.lang.registry import load_registry

FORMULAS = Path(__file__).resolve().parents[1] / "formulas"
IDS = ("softplus-tanh", "njuffa")


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("MISHAUDIT_CACHE_DIR", str(d))
    return d


@pytest.fixture
def counted(monkeypatch):
    """Counts, per formula id, the evaluations (rows and special checks) and the enclosures run."""
    calls = {"evaluate": Counter(), "approx": Counter()}
    evaluate, approx_errors = audit_mod.evaluate, audit_mod.approx_errors

    def counting_evaluate(formula, x, policy, *a, **k):
        calls["evaluate"][formula.id] += 1
        return evaluate(formula, x, policy, *a, **k)

    def counting_approx(formulas, *a, **k):
        calls["approx"].update(f.id for f in formulas)
        return approx_errors(formulas, *a, **k)

    monkeypatch.setattr(audit_mod, "evaluate", counting_evaluate)
    monkeypatch.setattr(audit_mod, "approx_errors", counting_approx)
    return calls


def audit(formulas, fmts=(FP16, BF16), **kw):
    kw = {"compute": None, "ftz": False, "domain": Domain(), "samples": 1 << 10, "seed": 0, "progress": False, **kw}
    return audit_mod.run_audit(list(formulas), list(fmts), **kw)


def text(obj) -> str:
    """Rows or special checks as exact text (NaN, the sign of zero, bool against int all told apart)."""
    return json.dumps(row_cache.plain(obj), sort_keys=True)


def folder_of(tmp_path, ids) -> Path:
    d = tmp_path / "formulas"
    d.mkdir()
    for i in ids:
        shutil.copy(FORMULAS / f"{i}.fpcore", d)
    return d


def test_warm_equals_cold_and_evaluates_nothing(cache_dir, counted):
    reg = load_registry()
    forms = [reg[i] for i in IDS]
    cold = audit(forms)
    assert sum(counted["evaluate"].values()) and sorted(counted["approx"]) == sorted(IDS)
    assert len(list((cache_dir / "rows").glob("row-*.npz"))) == 4  # 2 formulations x fp16, bf16
    counted["evaluate"].clear(), counted["approx"].clear()
    warm = audit(forms)
    assert not counted["evaluate"] and not counted["approx"]
    assert text(warm.rows) == text(cold.rows) and len(cold.rows) == 4
    assert text(warm.specials) == text(cold.specials)
    assert warm.meta["reference"] == {k: {**v, "computed_now": 0, "mpfr_fallback": 0}
                                      for k, v in cold.meta["reference"].items()}
    fresh = audit(forms, use_cache=False)  # the cache bypassed: every row evaluated again, the same rows
    assert set(counted["evaluate"]) == set(IDS)
    assert text(fresh.rows) == text(cold.rows)


def test_editing_a_file_recomputes_its_row_only(tmp_path, cache_dir, counted):
    d = folder_of(tmp_path, IDS)
    cold = audit(load_registry((str(d),), builtin=False).values())
    assert set(counted["evaluate"]) == set(IDS)
    counted["evaluate"].clear(), counted["approx"].clear()
    path = d / "njuffa.fpcore"
    path.write_text(path.read_text().replace("(FPCore", "; edited\n(FPCore", 1))
    warm = audit(load_registry((str(d),), builtin=False).values())
    assert set(counted["evaluate"]) == {"njuffa"} and set(counted["approx"]) == {"njuffa"}
    assert counted["approx"]["njuffa"] == 2  # once per format
    assert text(warm.rows) == text(cold.rows)  # a comment changes no bits
    counted["evaluate"].clear()
    audit(load_registry((str(d),), builtin=False).values())
    assert not counted["evaluate"]  # the edited row is cached again
    assert len(list((cache_dir / "rows").glob("row-*.npz"))) == 4  # overwritten in place, not beside


def test_damaged_file_is_reported_and_recomputed(cache_dir, counted, capsys):
    reg = load_registry()
    forms = [reg[i] for i in IDS]
    cold = audit(forms, fmts=(FP16,))
    capsys.readouterr()
    target, _ = row_cache.place(reg["njuffa"], Policy(FP16), Domain(), 1 << 10, 0,
                                input_set(FP16, Domain(), 1 << 10, 0), True)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    counted["evaluate"].clear()
    warm = audit(forms, fmts=(FP16,))
    err = capsys.readouterr().err
    assert "row cache" in err and "corrupt" in err and str(target) in err and len(err.strip().splitlines()) == 1
    assert set(counted["evaluate"]) == {"njuffa"}
    assert text(warm.rows) == text(cold.rows) and text(warm.specials) == text(cold.specials)
    counted["evaluate"].clear()
    audit(forms, fmts=(FP16,))
    assert not counted["evaluate"] and not capsys.readouterr().err  # rewritten intact


def test_key_follows_the_policy_and_the_inputs():
    f = load_registry()["softplus-tanh"]
    inputs = input_set(FP16, Domain(), 1 << 10, 0)

    def key(policy=Policy(FP16), domain=Domain(), inp=inputs, with_formula_error=True):
        return row_cache.place(f, policy, domain, 1 << 10, 0, inp, with_formula_error)

    base = key()
    assert key() == base
    for other in (key(Policy(FP16, libm="numpy")), key(Policy(FP16, ftz="after")), key(Policy(FP16, compute=FP32)),
                  key(domain=Domain(-4.0, 4.0)), key(with_formula_error=False)):
        assert other[1] != base[1] and other[0] != base[0]
    numpy_key = key(Policy(FP16, libm="numpy"))[1]
    assert numpy_key["libm"] == "numpy" and numpy_key["libm_build"] and base[1]["libm_build"] is None
    fewer = type(inputs)(inputs.x[::2], inputs.strategy, FP16)
    assert key(inp=fewer)[1]["input_digest"] != base[1]["input_digest"]
    assert base[1]["source"] == row_cache.source_digest() and base[1]["digest"] == f.digest


def test_not_cached_when_errors_are_kept(cache_dir, counted):
    forms = [load_registry()["njuffa"]]
    audit(forms, fmts=(FP16,))
    counted["evaluate"].clear()
    kept = audit(forms, fmts=(FP16,), keep_errors=True)
    assert counted["evaluate"]["njuffa"] and ("njuffa", "fp16") in kept.errors
