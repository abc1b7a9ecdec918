"""The exhaustive sweep: equal to the enumerated compare, interruptible and resumable, refuses foreign checkpoints."""

import math

import numpy as np
import pytest

from mishaudit.audit import run_audit
from mishaudit.errors import UserError
from mishaudit.evaluate import Policy
from mishaudit.formats import FP16, FP32
from mishaudit.inputs import Domain
from mishaudit.registry import load_registry, load_text
from mishaudit.sweep import Sweep, hist_keys, hist_upper, merge, run_sweep, summary_row

REG = load_registry()
DOM = Domain(-3.0, -3.0 + 6000 * 2.0**-22)  # 6001 consecutive fp32 values
IDS = ["softplus-tanh", "pytorch-75251", "onednn-jit"]


def sweep(formulas=None, chunk=1000):
    return Sweep(formulas or [REG[i] for i in IDS], Policy(FP32), DOM, chunk=chunk)


def test_sweep_equals_the_enumerated_compare():
    merged, _ = run_sweep(sweep(), jobs=1)
    audit = run_audit([REG[i] for i in IDS], [FP32], None, False, DOM, 1 << 16, 0, with_formula_error=False)
    for r in audit.rows:
        assert r["strategy"] == "exhaustive" and r["inputs"] == 6001
        s = summary_row(merged[r["formula"]])
        for k in ("inputs", "nonfinite", "dulp_0", "dulp_1", "dulp_2", "dulp_3", "dulp_gt3", "signed_zero_mismatch",
                  "worst_x", "worst_y"):
            assert s[k] == r[k], (r["formula"], k)
        for k in ("max_ulp", "mean_ulp", "cr_frac", "faithful_frac", "max_abs_err", "max_rel_err", "mean_bits", "max_bits"):
            assert math.isclose(s[k], r[k], rel_tol=1e-12), (r["formula"], k)
        # histogram percentiles are upper bounds within one bin (2^-11 relative) of the exact ones
        for k in ("median_ulp", "p99_ulp"):
            assert r[k] <= s[k] <= max(r[k] * (1 + 2.0**-10), 2.0**-30), (r["formula"], k, s[k], r[k])


def test_interrupted_then_resumed_equals_uninterrupted():
    full, _ = run_sweep(sweep(), jobs=1)
    calls = []

    def stop_after_three(i):
        calls.append(i)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep(), jobs=1, on_chunk=stop_after_three)
    seen = []
    resumed, _ = run_sweep(sweep(), jobs=1, resume=True, on_chunk=seen.append)
    assert len(seen) == sweep().nchunks - 3  # only the missing chunks ran again
    assert {k: summary_row(v) for k, v in resumed.items()} == {k: summary_row(v) for k, v in full.items()}


def test_parallel_equals_serial():
    a, _ = run_sweep(sweep(), jobs=1)
    b, _ = run_sweep(sweep(), jobs=2)
    assert {k: summary_row(v) for k, v in a.items()} == {k: summary_row(v) for k, v in b.items()}


def test_checkpoint_of_a_changed_formula_is_refused():
    text = "(FPCore softplus-tanh (x) (* x (tanh (log1p (exp x)))))"
    f1 = load_text(text, "a.fpcore", "a")
    f2 = load_text(text.replace("log1p (exp x)", "log (+ 1 (exp x))"), "a.fpcore", "a")
    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep([f1]), jobs=1, on_chunk=lambda i: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(UserError, match="different run"):
        run_sweep(sweep([f2]), jobs=1, resume=True)


def test_only_fp32():
    with pytest.raises(UserError, match="binary32 only"):
        Sweep([REG["njuffa"]], Policy(FP16))


def test_histogram_bins_bound_their_values():
    rng = np.random.default_rng(5)
    u = np.concatenate([10 ** rng.uniform(-12, 8, 5000), [0.0, 2.0**-31, 0.5, 1.0]])
    for v, k in zip(u, hist_keys(u)):
        assert v <= hist_upper(int(k)) <= max(v * (1 + 2.0**-10), 2.0**-30)


def test_merge_is_associative_on_counts_and_maxima():
    a = {"n": 2, "nonfinite": 0, "cr": 1, "faithful": 2, "signed_zero": 0, "dulp_0": 1, "dulp_1": 1, "dulp_2": 0,
         "dulp_3": 0, "dulp_gt3": 0, "sum_ulp": [1.5], "sum_bits": [1.0], "max_ulp": 1.2, "worst": (1.0, 2.0, 2.1),
         "max_abs": 0.1, "max_rel": 0.01, "max_bits": 1.0, "hist": {5: 1, 7: 1}}
    b = dict(a, max_ulp=3.0, worst=(5.0, 6.0, 6.5), hist={7: 2})
    c = dict(a, nonfinite=1, max_ulp=None, worst=None, max_abs=None, max_rel=None, max_bits=None, hist={})
    left, right = merge(merge(a, b), c), merge(a, merge(b, c))
    assert left == right and left["n"] == 6 and left["worst"] == (5.0, 6.0, 6.5) and left["hist"] == {5: 1, 7: 3}
