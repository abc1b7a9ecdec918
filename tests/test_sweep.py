"""The exhaustive sweep: equal to the enumerated compare (mpmath-checked reference, numpy metrics) in
every region of the fast reference, interruptible and resumable, refuses foreign or damaged checkpoints."""

import math

import numpy as np
import pytest
from conftest import stop_after

from mishaudit.analysis.audit import run_audit
from mishaudit.analysis.sweep import Sweep, run_sweep, values
from mishaudit.errors import UserError
from mishaudit.eval.evaluate import Policy
from mishaudit.eval.inputs import Domain
from mishaudit.formats import FP16, FP32, from_ordinal
from mishaudit.lang.registry import load_registry, load_text
from mishaudit.measure.metrics import errors, summarize
from mishaudit.measure.summary import Acc, BlockStats, hist_upper, summary_row
from mishaudit.reference.fastref import fast_reference
from mishaudit.reference.table import Reference

REG = load_registry()
DOM = Domain(-3.0, -3.0 + 6000 * 2.0**-22)  # 6001 consecutive fp32 values
IDS = ["softplus-tanh", "pytorch-75251", "onednn-jit"]


def sweep(formulas=None, chunk=1000):
    return Sweep(formulas or [REG[i] for i in IDS], Policy(FP32), DOM, chunk=chunk)


ULP149 = 2.0**-149
# one domain per region of the fast reference and per kind of output (NaN, inf, signed zeros, huge dULP)
DOMAINS = [
    DOM,  # exp path, x < 0
    Domain(-3000 * ULP149, 3000 * ULP149),  # subnormals, -0 and +0 (series)
    Domain(-(2.0**-30) * (1 + 3000 * 2.0**-23), -(2.0**-30) * (1 - 3000 * 2.0**-24)),  # series / exp edge
    Domain(349.9, 350.1),  # exp path / x > 350; onednn-jit is NaN here
    Domain(-200.01, -199.99),  # exp path / scaled, RN = -0
    Domain(-1020.05, -1019.95),  # scaled / beyond
    Domain(-104.0, -103.99),  # RN(mish) subnormal, near the worst case of softplus-tanh
    Domain(3.402e38, 3.4028234663852886e38),  # overflowing intermediates, the largest inputs
]
FORMULAS = ["softplus-tanh", "pytorch-75251", "onednn-jit", "njuffa", "exp-rational", "darknet-cpu"]


@pytest.mark.parametrize("dom", DOMAINS, ids=lambda d: f"{d.lo:.3g}:{d.hi:.3g}")
def test_sweep_equals_the_enumerated_compare(dom):
    forms = [REG[i] for i in FORMULAS]
    merged = run_sweep(Sweep(forms, Policy(FP32), dom, chunk=1 << 12), jobs=1).accs
    audit = run_audit(forms, [FP32], None, False, dom, 1 << 16, 0, with_formula_error=False)
    for r in audit.rows:
        assert r["strategy"] == "exhaustive"
        s = summary_row(merged[r["formula"]])
        for k in ("inputs", "nonfinite", "dulp_0", "dulp_1", "dulp_2", "dulp_3", "dulp_gt3", "signed_zero_mismatch",
                  "worst_x", "worst_y"):
            assert s[k] == r[k], (r["formula"], k, s[k], r[k])
        for k in ("max_ulp", "mean_ulp", "cr_frac", "faithful_frac", "max_abs_err", "max_rel_err", "mean_bits",
                  "max_bits"):
            if r[k] is None:
                assert s[k] is None, (r["formula"], k)
            else:
                assert math.isclose(s[k], r[k], rel_tol=1e-12, abs_tol=1e-300), (r["formula"], k, s[k], r[k])
        # histogram percentiles are upper bounds within one bin (2^-11 relative) of the exact ones, never
        # above the maximum, and labelled as bounds (the enumerated ones as exact)
        assert r["percentiles"] == "exact" and s["percentiles"] == "bound"
        for k in ("median_ulp", "p99_ulp"):
            if r[k] is not None:
                assert r[k] <= s[k] <= min(max(r[k] * (1 + 2.0**-10), 2.0**-30 if r[k] > 0 else 0.0), s["max_ulp"]), \
                    (r["formula"], k, s[k], r[k])
        if s["max_ulp"] is not None:
            assert s["median_ulp"] <= s["p99_ulp"] <= s["max_ulp"]


def test_fold_equals_the_numpy_metrics_on_crafted_outputs():
    """Outputs moved off RN(r) by random ordinal steps (1 to 2^20), NaN, inf and flipped zeros."""
    rng = np.random.default_rng(3)
    for lo in (-2000, -(2**31 - 2**23 - 1), 1_060_000_000, -1_100_000_000):
        x32 = values(lo, lo + 4095)
        x = x32.astype(np.float64)
        rn, d, E, r64, ok = fast_reference(x, FP32)
        x, x32, rn, d, E, r64 = x[ok], x32[ok], rn[ok], d[ok], E[ok], r64[ok]
        o = np.where(rn == 0, 0, np.sign(rn) * (rn.astype(np.float32).view(np.int32) & 0x7FFFFFFF)).astype(np.int64)
        step = np.where(rng.random(len(x)) < 0.5, 0, rng.integers(-4, 5, len(x)))
        step[rng.random(len(x)) < 0.05] = rng.integers(-(2**20), 2**20, len(x))[:1]
        y = from_ordinal(np.clip(o + step, -(2**31 - 2**23 - 1), 2**31 - 2**23 - 1), FP32)
        y[rng.random(len(x)) < 0.02] = np.nan
        y[rng.random(len(x)) < 0.01] = np.inf
        y = np.where((y == 0) & (rng.random(len(x)) < 0.5), -y, y)
        acc = Acc()
        for a in range(0, len(x), 1000):  # several blocks, merged
            b = slice(a, a + 1000)
            acc.add_block(y[b].astype(np.float32), x[b], rn[b], d[b], E[b], r64[b])
        got = summary_row(acc)
        ref = Reference(x, rn, d, E, r64)
        want = summarize(errors(y, ref, FP32), ref)
        for k in ("inputs", "nonfinite", "dulp_0", "dulp_1", "dulp_2", "dulp_3", "dulp_gt3", "signed_zero_mismatch",
                  "worst_x", "worst_y", "worst_ref"):
            assert got[k] == want[k], (lo, k, got[k], want[k])
        for k in ("max_ulp", "mean_ulp", "cr_frac", "faithful_frac", "max_abs_err", "max_rel_err", "mean_bits",
                  "max_bits"):
            if want[k] is None:  # relative error beyond range (y != 0 where mish is below 2^-640)
                assert got[k] is None, (lo, k, got[k])
            else:
                assert math.isclose(got[k], want[k], rel_tol=1e-12, abs_tol=1e-300), (lo, k, got[k], want[k])


def test_values_are_the_ordinals_in_order_with_both_zeros():
    for lo, hi in ((-5, 5), (-7, -1), (0, 3), (0, 0), (-1, 0), (0, 1), (-1, -1), (3, 2), (2**31 - 2**23 - 4, 2**31 - 2**23 - 1),
                   (-(2**31 - 2**23 - 1), -(2**31 - 2**23 - 3))):
        want = from_ordinal(np.arange(lo, hi + 1), FP32)
        if lo <= 0 <= hi:
            want = np.insert(want, -lo, -0.0)
        got = values(lo, hi).astype(np.float64)
        assert np.array_equal(got, want) and np.array_equal(np.signbit(got), np.signbit(want))
        assert np.all(got[1:] >= got[:-1])


def test_merge_order_does_not_matter():
    x32 = values(-3000, 3000)
    x = x32.astype(np.float64)
    rn, d, E, r64, _ = fast_reference(x, FP32)
    y = from_ordinal(np.arange(-3000, 3001) // 2, FP32).astype(np.float32)
    parts = []
    for a in range(0, len(x), 1500):
        acc = Acc()
        b = slice(a, a + 1500)
        acc.add_block(y[b], x[b], rn[b], d[b], E[b], r64[b])
        parts.append(acc.state())
    fwd, back = Acc(), Acc()
    for p in parts:
        fwd.merge(*p)
    for p in reversed(parts):
        back.merge(*p)
    assert summary_row(fwd) == summary_row(back)
    assert fwd.sum_ulp == back.sum_ulp and np.array_equal(fwd.hist, back.hist)


def test_interrupted_then_resumed_equals_uninterrupted():
    full = run_sweep(sweep(), jobs=1).accs
    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep(), jobs=1, on_chunk=stop_after(3, []))
    seen = []
    resumed = run_sweep(sweep(), jobs=1, resume=True, on_chunk=seen.append).accs
    assert len(seen) == sweep().nchunks - 3  # only the missing chunks ran again
    assert {k: summary_row(v) for k, v in resumed.items()} == {k: summary_row(v) for k, v in full.items()}


def test_parallel_equals_serial():
    a = run_sweep(sweep(), jobs=1).accs
    b = run_sweep(sweep(), jobs=2).accs
    assert {k: summary_row(v) for k, v in a.items()} == {k: summary_row(v) for k, v in b.items()}


def test_damaged_checkpoint_is_refused():
    import os

    sw = sweep()
    with pytest.raises(KeyboardInterrupt):
        run_sweep(sw, jobs=1, on_chunk=lambda i: (_ for _ in ()).throw(KeyboardInterrupt()))
    path = os.path.join(sw.folder(), "state.npz")
    with open(path, "r+b") as fh:
        fh.truncate(100)
    with pytest.raises(UserError, match="unreadable"):
        run_sweep(sw, jobs=1, resume=True)


def test_checkpoint_of_a_changed_formula_is_refused():
    text = "(FPCore softplus-tanh (x) (* x (tanh (log1p (exp x)))))"
    f1 = load_text(text, "a.fpcore", "a")
    f2 = load_text(text.replace("log1p (exp x)", "log (+ 1 (exp x))"), "a.fpcore", "a")
    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep([f1]), jobs=1, on_chunk=lambda i: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(UserError, match="different run"):
        run_sweep(sweep([f2]), jobs=1, resume=True)


def _interrupted(sw):
    with pytest.raises(KeyboardInterrupt):
        run_sweep(sw, jobs=1, on_chunk=stop_after(2, []))


@pytest.mark.parametrize("then, now, what", [
    (Policy(FP32), Policy(FP32, libm="numpy"), r"libm \(cr then, numpy now\)"),
    (Policy(FP32, libm="numpy"), Policy(FP32), r"libm \(numpy then, cr now\)"),
    (Policy(FP32), Policy(FP32, device="cuda"), r"device \(cpu then, cuda now\)"),
], ids=["cr-then-numpy", "numpy-then-cr", "device"])
def test_checkpoint_under_another_libm_model_or_device_is_refused(then, now, what):
    """Like a changed formula: the libm model and the device decide the bits, so a checkpoint made
    under other ones is refused (not silently restarted in another folder, nor mixed in)."""
    forms = [REG["softplus-tanh"]]
    _interrupted(Sweep(forms, then, DOM, chunk=1000))
    with pytest.raises(UserError, match="different run.*" + what):
        run_sweep(Sweep(forms, now, DOM, chunk=1000), jobs=1, resume=True)


def test_checkpoint_under_another_numpy_dispatch_is_refused(monkeypatch):
    """libm numpy: the bits depend on numpy's SIMD dispatch (what outputs call numpy_dispatch); a
    checkpoint made on another dispatch is refused, one made on this one resumes."""
    from mishaudit.eval import libm

    sw = Sweep([REG["softplus-tanh"]], Policy(FP32, libm="numpy"), DOM, chunk=1000)
    _interrupted(sw)
    here = libm.numpy_dispatch()
    with monkeypatch.context() as m:  # as on a CPU without numpy's dispatch targets
        m.setattr(libm, "numpy_dispatch", lambda: here.split(", dispatch")[0] + ", dispatch none")
        with pytest.raises(UserError, match="different run.*numpy's SIMD dispatch"):
            run_sweep(sw, jobs=1, resume=True)
    seen = []
    run_sweep(sw, jobs=1, resume=True, on_chunk=seen.append)
    assert len(seen) == sw.nchunks - 2  # the checkpoint was kept, and resumed where it stopped


def test_only_fp32():
    with pytest.raises(UserError, match="binary32 only"):
        Sweep([REG["njuffa"]], Policy(FP16))


def test_histogram_bins_bound_their_values():
    """The keys the compiled fold writes (the production path) bound each ulp error from above,
    within 2^-11 relative: outputs y = RN(r) + k ulps with d = 0 have ulp error exactly |k|."""
    from mishaudit.measure.fold import fold

    rng = np.random.default_rng(5)
    k = np.concatenate([rng.integers(-2**22, 2**22, 3000), [0, 1, -1, 2, 1000, 2**22]])
    rn = np.full(len(k), 1.5)  # binade 0 of binary32: ulp 2^-23, every rn + k ulp stays finite
    y = (rn + k * 2.0**-23).astype(np.float32)
    keys = np.empty(len(k), dtype=np.int64)
    fold(y, rn, np.zeros(len(k)), np.zeros(len(k), dtype=np.int64), np.zeros(10, dtype=np.int64),
         np.empty(0, dtype=np.int64), np.empty(7), keys)
    for v, key in zip(np.abs(k).astype(float), keys):
        assert v <= hist_upper(int(key)) <= max(v * (1 + 2.0**-10), 2.0**-30)


def test_exact_block_shortcut_equals_the_full_fold():
    for lo in (-3000, 1_060_000_000, -(2**31 - 2**23 - 1)):
        x32 = values(lo, lo + 4000)
        x = x32.astype(np.float64)
        rn, d, E, r64, ok = fast_reference(x, FP32)
        assert ok.all()
        full, short = Acc(), Acc()
        full.add_block(rn.astype(np.float32), x, rn, d, E, r64)
        short.add_stats(BlockStats.of(x, rn.astype(np.float32), rn, d, E, r64))
        assert summary_row(full) == summary_row(short)
        assert np.array_equal(full.hist, short.hist) and full.sum_ulp == short.sum_ulp


def test_worst_case_of_softplus_tanh_against_mpmath():
    """The exhaustive fp32 worst case quoted in the README: 52.01 ulp at x = -103.97207641601562,
    where exp(x) rounds up to 2^-149 (twice its value). Recomputed here with mpmath at 300 bits."""
    import mpmath

    f = REG["softplus-tanh"]
    s = summary_row(run_sweep(Sweep([f], Policy(FP32), Domain(-103.98, -103.96)), jobs=1).accs[f.id])
    assert s["worst_x"] == -103.97207641601562
    with mpmath.workprec(300):
        x = mpmath.mpf(s["worst_x"])
        r = x * mpmath.tanh(mpmath.log1p(mpmath.exp(x)))
        ulp = mpmath.mpf(2) ** -149  # r is a binary32 subnormal
        want = abs(mpmath.mpf(s["worst_y"]) - r) / ulp
    assert abs(s["max_ulp"] - float(want)) < 1e-9 and 52 < s["max_ulp"] < 52.02
    assert np.float32(np.exp(np.float32(s["worst_x"]))) == np.float32(2.0**-149)
