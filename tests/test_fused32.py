"""The fused binary32 pass (eval/fused32.py) equals the evaluator bit for bit, and the sweep built on
it folds the same summaries as the block-by-block path it replaces.

The oracle is `evaluate` (numpy arrays through the libm model's array kernels, both arms of every
`if`), a different program from the generated scalar loop; the sweep's oracle is one add_block per
formulation on the evaluator's outputs (no shared folds)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import fpcore_trees
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mishaudit.analysis.sweep import BLOCK, Sweep, programs, summarize_block, values
from mishaudit.eval import crkernel, directions, fused32, libm
from mishaudit.eval.evaluate import Policy, evaluate
from mishaudit.formats import BF16, FP16, FP32, all_finite
from mishaudit.lang.registry import load_registry, load_text
from mishaudit.measure.summary import Acc, BlockStats, summary_row
from mishaudit.reference.table import reference_arrays

REG = load_registry()


def fused_formulas(model: str) -> list:
    pol = Policy(FP32, libm=model)
    return [f for f in REG.values() if f.supports(FP32) and f.spec.key in ("mish", "mish'") and fused32.supported(f, pol)]


def all_values(fmt) -> np.ndarray:
    """Every finite value of a 16-bit format, as binary32 (exact): every binade of binary32's range
    up to fp16's or bf16's, coarsely."""
    return all_finite(fmt).astype(np.float32)


def around(v: float, n: int = 2048) -> np.ndarray:
    """2n consecutive binary32 values around v."""
    b = np.float32(v).view(np.int32)
    o = int(b) if b >= 0 else -int(b & 0x7FFFFFFF)
    return values(o - n, o + n)


EDGES = [0.0, 2.0**-149, 2.0**-126, 2.0**-30, -2.0**-30, 2.0**-12, -0.6, -1.1924, 1.0, -20.0, 20.0, 15.0, -15.0,
         88.72, -87.33, -103.97, -104.0, 350.0, -200.0, 1020.0, -1020.0, 3.4e38, -3.4e38]


def hard_inputs() -> np.ndarray:
    """Binary32 inputs whose exp, log1p(exp) or tanh(log1p(exp)) the cr model's fast pass leaves to
    MPFR (crkernel flags them): the fused pass must flag them too and take the evaluator's answer."""
    x = np.linspace(-30, 30, 1 << 24).astype(np.float32).astype(np.float64)
    found = []
    a = x
    for op in ("exp", "log1p", "tanh"):
        out, flag = np.empty(len(a)), np.empty(len(a), dtype=np.uint8)
        crkernel.kernel(libm.SHORTCUTS[op], libm._host_address(op), 1, a, a, 24, -126, 127, libm._M, libm._REL,
                        out, flag)
        found.append(x[flag == 1])
        a = libm.correctly_rounded(op, [a], FP32)
    hard = np.concatenate(found).astype(np.float32)
    assert len(hard) > 0
    return hard


def check_equal(formulas, x32: np.ndarray, model: str) -> None:
    pol = Policy(FP32, libm=model)
    fz = fused32.Fused(formulas, pol)
    ys = fused32.fused_outputs(fz, x32, pol)
    for j, f in enumerate(formulas):
        want = evaluate(f, x32.astype(np.float64), pol).y.astype(np.float32)
        bad = np.flatnonzero((want.view(np.uint32) != ys[j].view(np.uint32)) & ~(np.isnan(want) & np.isnan(ys[j])))
        assert not len(bad), (f.id, model, x32[bad[:5]], want[bad[:5]], ys[j][bad[:5]])


@pytest.mark.parametrize("model", ["cr", "glibc"])
def test_every_fp16_and_bf16_value_and_every_region(model):
    x = np.concatenate([all_values(FP16), all_values(BF16), *[around(v) for v in EDGES],
                        np.array([np.inf, -np.inf, np.nan], dtype=np.float32)])
    check_equal(fused_formulas(model), x, model)


def test_undecided_cr_calls_are_flagged_and_redone():
    pol = Policy(FP32)
    x = hard_inputs()
    fs = fused_formulas("cr")
    fz = fused32.Fused(fs, pol)
    _, fl = fz(x)
    j = [f.id for f in fs].index("softplus-tanh")
    assert fl[j].all()  # each input needs MPFR for one of its three calls
    check_equal(fs, x, "cr")


def test_each_formulation_alone_equals_the_run_with_shared_subexpressions():
    """A formulation compiled alone (no memo rows shared) gives the bits it gives beside the others."""
    pol = Policy(FP32)
    fs = fused_formulas("cr")
    x = np.concatenate([around(-0.7, 4096), around(3.0, 4096), around(-90.0, 1024)])
    together = fused32.fused_outputs(fused32.Fused(fs, pol), x, pol)
    for j, f in enumerate(fs):
        alone = fused32.fused_outputs(fused32.Fused([f], pol), x, pol)[0]
        assert np.array_equal(alone.view(np.uint32), together[j].view(np.uint32)) or np.array_equal(
            alone, together[j], equal_nan=True), f.id


def test_shared_rows_are_the_subexpressions_several_formulations_compute():
    from collections import Counter

    fs = [REG["softplus-tanh"], REG["log-exp-plus-one"], REG["softplus-threshold"], REG["yashas"]]
    fz = fused32.Fused(fs, Policy(FP32))
    uses = Counter(k for _, ks, _ in fz.parts for k in ks)
    assert uses["(exp x)"] == 4 and uses["(log1p (exp x))"] == 2 and uses["(tanh (log1p (exp x)))"] == 1
    for (_, ks, _), rows in zip(fz.parts, fz._maps):
        for k, r in zip(ks, rows):
            assert (r >= 0) == (uses[k] > 1), k
    assert len({int(r) for rows in fz._maps for r in rows if r >= 0}) == sum(c > 1 for c in uses.values())
    alone = fused32.Fused([REG["softplus-tanh"]], Policy(FP32))
    assert (alone._maps[0] == -1).all()  # nothing to share


def test_generated_code_holds_no_text_of_the_formula():
    """Names, comments and property strings of a formula file never reach the generated source."""
    f = load_text('(FPCore evil (x) :name "__import__(\'os\').system(\'x\')" '
                  '(let* ([os (exp x)] [system (+ os 1)]) (* x (tanh (log1p system)))))', "<evil>", "evil")
    src, keys, ops = fused32.generate(f, "cr")
    assert "__import__" not in src and "system" not in src and "os" not in src.replace("ops", "")
    names = set(re.findall(r"[A-Za-z_][A-Za-z_0-9]*", re.sub(r"'[^']*'", "", src)))
    ours = {n for n in names if re.fullmatch(r"(t|K|la|lb|lr|lg|gt|q|r|k|v)\d+", n)}
    assert names - ours <= {"generated", "by", "mishaudit", "eval", "fused32", "GEN_VERSION", "do", "not", "edit",
                            "import", "numba", "numpy", "as", "np", "from", "_copysign", "_cr", "_cr1", "_same", "_fma",
                            "_fmax", "_fmin", "_sqrt", "_square", "_c1f", "_c2f", "_NAN", "_INF", "_NINF", "float32",
                            "nan", "inf", "float", "fromhex", "njit", "cache", "True", "nogil", "error_model", "def",
                            "run", "x", "y", "fl", "addrs", "M", "H", "Q", "sm", "for", "i", "in", "range", "len", "xv",
                            "fv", "if", "else", "or", "and", "p", "e", "_extremes", "_constancy", "array", "directions",
                            "dtype", "int64", "n", "return", "imin", "imax", "rec", "full", "False", "it", "probe",
                            "continue", "kc", "kv", "kd", "reshape", "nk", "int", "SIGNS", "sign", "DP", "DL", "SARG",
                            "ENC", "COND", "crec", "float64", "nfl"}
    check_equal([f], around(1.5), "cr")


CONSTS = ["0", "1", "-1", "2", "0.5", "-0.6", "3", "20", "1/3", "1e-3", "-7.625", "100", "1e5", "-1e-7", "E", "LN2"]


trees = fpcore_trees(CONSTS, ['exp', 'expm1', 'log1p', 'log', 'tanh', '-', 'fabs', 'sqrt'],
                     ['+', '-', '*', '/', 'fmax', 'fmin', 'copysign', 'pow'], ['binary32'])


PROPERTY_X = np.concatenate([all_values(BF16)[::7], around(0.0, 64), around(-1.5, 64),
                             np.array([np.inf, -np.inf, np.nan], dtype=np.float32)])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(trees(), min_size=4, max_size=4), st.sampled_from(["cr", "glibc"]))
def test_random_trees_equal_the_evaluator(bodies, model):
    """Random trees over every operation the pass compiles, sharing subexpressions between them."""
    forms = [load_text(f"(FPCore h{i} (x) {b})", f"<tree {i}>", f"h{i}") for i, b in enumerate(bodies)]
    check_equal(forms, PROPERTY_X, model)


@pytest.mark.parametrize("model", ["cr", "glibc"])
def test_sweep_blocks_fold_as_one_add_block_per_formulation(model):
    pol = Policy(FP32, libm=model)
    fs = [f for f in REG.values() if f.supports(FP32) and f.spec.key in ("mish", "mish'")]
    sw = Sweep(fs, pol, chunk=BLOCK)
    picks = np.linspace(0, sw.nchunks - 1, 6).astype(int)
    blocks = [next(sw.blocks(int(i))) for i in picks] + [around(-0.75, BLOCK // 2), around(2.5, BLOCK // 2)]
    new, old = {f.id: Acc() for f in fs}, {f.id: Acc() for f in fs}
    progs = programs(fs, pol)
    for b in blocks:
        summarize_block(b, fs, progs, pol, new)
        x = b.astype(np.float64)
        for spec in dict.fromkeys(f.spec for f in fs):
            a = reference_arrays(x, FP32, spec=spec)
            for f in (f for f in fs if f.spec == spec):
                old[f.id].add_block(evaluate(f, x, pol).y.astype(np.float32), x, a["rn"], a["d"], a["E"], a["r64"])
    for f in fs:
        assert summary_row(new[f.id]) == summary_row(old[f.id]), f.id
        assert np.array_equal(new[f.id].hist, old[f.id].hist) and new[f.id].sum_ulp == old[f.id].sum_ulp, f.id


def test_block_stats_equal_add_block_on_any_outputs():
    """Shared folds hold for outputs with large errors, nonfinite values and wide histogram spans."""
    x32 = around(-50.0, 2048)
    x = x32.astype(np.float64)
    a = reference_arrays(x, FP32)
    rng = np.random.default_rng(3)
    y = a["rn"].astype(np.float32)
    y[rng.choice(len(y), 300, replace=False)] = rng.standard_normal(300).astype(np.float32) * 1e30
    y[:5] = np.inf
    y[5] = np.nan
    for ys in (y, np.full(len(y), np.inf, dtype=np.float32)):
        full, shared = Acc(), Acc()
        full.add_block(ys, x, a["rn"], a["d"], a["E"], a["r64"])
        shared.add_stats(BlockStats.of(x, ys, a["rn"], a["d"], a["E"], a["r64"]))
        assert summary_row(full) == summary_row(shared)
        assert np.array_equal(full.hist, shared.hist) and full.sum_ulp == shared.sum_ulp


def test_a_changed_generated_file_is_rewritten_before_it_runs(tmp_path, monkeypatch):
    """Only text generated here runs: a module file edited in the code folder is replaced, not imported."""
    monkeypatch.setenv("MISHAUDIT_CODE_DIR", str(tmp_path))
    f = load_text("(FPCore t1 (x) (* x (tanh (log1p (exp (* x 1.0001))))))", "<t1>", "t1")
    src, _, _ = fused32.generate(f, "cr")
    path = tmp_path / f"fused_{fused32.code_digest(src)}.py"
    path.write_text("raise SystemExit('tampered')\n")
    check_equal([f], around(0.5), "cr")
    assert path.read_text() == src


def test_an_unwritable_code_folder_falls_back(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("MISHAUDIT_CODE_DIR", str(blocker / "code"))
    f = load_text("(FPCore t2 (x) (* x (tanh (log1p (exp (* x 0.9999))))))", "<t2>", "t2")
    check_equal([f], around(-2.0), "cr")
    from pathlib import Path

    src, _, _ = fused32.generate(f, "cr")
    assert any(p.read_text() == src for p in Path(fused32._folders()[1]).glob("fused_*.py"))  # the cache folder's


def test_compiled_fma_is_the_evaluators_round_to_odd_fma():
    """The fused pass's fma (llvm.fma.f32) equals evaluate.fma_round_to_odd on binary32 operands,
    among them sums placed at and around ties of binary32 (c = -RN(a b) (1 + k 2^-24..2^-30))."""
    import numba

    from mishaudit.eval.evaluate import fma_round_to_odd

    @numba.njit
    def run(a, b, c, out):
        for i in range(len(a)):
            out[i] = fused32._fma(a[i], b[i], c[i])

    rng = np.random.default_rng(3)
    n = 1 << 18
    a = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32)
    b = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32)
    with np.errstate(all="ignore"):
        p = a.astype(np.float64) * b.astype(np.float64)
        near = (-p * (1 + rng.integers(-4, 5, n) * 2.0 ** -rng.integers(24, 31, n))).astype(np.float32)
    c = np.where(rng.random(n) < 0.5, near, rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32))
    got = np.empty(n, np.float32)
    run(a, b, c, got)
    with np.errstate(all="ignore"):
        want = fma_round_to_odd(a.astype(np.float64), b.astype(np.float64), c.astype(np.float64), FP32).astype(np.float32)
    same = (got.view(np.uint32) == want.view(np.uint32)) | (np.isnan(got) & np.isnan(want))
    assert same.all(), (a[~same][:3], b[~same][:3], c[~same][:3])
    with np.errstate(all="ignore"):  # the test can fail: one rounding differs from two on some inputs
        assert np.count_nonzero(got != (a * b + c)) > 0


# ---------------------------------------------------------------- call sites constant over a block

@st.composite
def monotone_trees(draw, depth: int = 4) -> str:
    """Bodies built mostly by direction()'s rules (so that most have a direction), with a few
    operations outside them."""
    kind = draw(st.sampled_from(["x", "const", "f", "f", "neg", "add", "sub", "scale", "scale", "clamp", "other"]
                                if depth else ["x", "x", "const"]))
    if kind == "x":
        return "x"
    if kind == "const":
        return draw(st.sampled_from(CONSTS + ["0", "-0", "INFINITY"]))
    sub = monotone_trees(depth - 1)
    if kind == "f":
        return f"({draw(st.sampled_from(['exp', 'expm1', 'log1p', 'log', 'tanh']))} {draw(sub)})"
    if kind == "neg":
        return f"(- {draw(sub)})"
    if kind in ("add", "sub"):
        return f"({'+' if kind == 'add' else '-'} {draw(sub)} {draw(sub)})"
    c = draw(st.sampled_from(CONSTS + ["0", "INFINITY"]))
    if kind == "scale":
        op = draw(st.sampled_from(["*", "/"]))
        return f"({op} {draw(sub)} {c})" if op == "/" or draw(st.booleans()) else f"(* {c} {draw(sub)})"
    if kind == "clamp":
        a = "x" if draw(st.booleans()) else draw(sub)
        return f"({draw(st.sampled_from(['fmax', 'fmin']))} {a} {c})" if draw(st.booleans()) else f"(fmax {c} {a})"
    return f"({draw(st.sampled_from(['fabs', 'fabs', 'sqrt']))} {'x' if draw(st.booleans()) else draw(sub)})"



@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.one_of(trees(), monotone_trees()), st.floats(-140, 127), st.booleans(), st.sampled_from(directions.SIGNS))
def test_a_direction_is_the_evaluators(body, scale, negative, sign):
    """direction()'s claim, checked on the evaluator's values over sorted binary32 inputs (of one
    sign where `sign` says so): +1 nondecreasing, -1 nonincreasing, 0 one value, and NaN somewhere
    only where NaN at an end."""
    from mishaudit.lang import fpcore as fc

    f = load_text(f"(FPCore h (x) {body})", "<tree>", "h")
    consts = {k: float(v) for k, v in f.constant_values(FP32).items()}
    d = directions.direction(f.body, {"x": 1}, lambda e: directions.literal_value(e, consts), ("x",), sign)
    if d == directions.UNKNOWN or isinstance(f.body, fc.If):
        return
    x = np.sort(np.concatenate([around((-1.0 if negative else 1.0) * 2.0**scale, 64),
                                np.linspace(-30, 30, 64, dtype=np.float32)]))
    if sign:
        x = x[x * sign > 0]
    y = evaluate(f, x.astype(np.float64), Policy(FP32)).y
    if not np.isnan(y[0]) and not np.isnan(y[-1]):
        assert not np.isnan(y).any(), (body, x[np.isnan(y)][:3])
    v = y[~np.isnan(y)]
    if d == 0:
        assert len(np.unique(v.astype(np.float32).view(np.uint32))) <= 1, body
    else:
        assert ((v[1:] >= v[:-1]) if d == 1 else (v[1:] <= v[:-1])).all(), (body, d)


@st.composite
def armed_trees(draw) -> str:
    """Bodies that bind an if of a monotone comparison and compute on with it (darknet's shape):
    (let* ([s (if (OP a c) A B)]) (f (* s k))), a, A, B mostly monotone."""
    op = draw(st.sampled_from(["<", ">", "<=", ">="]))
    a = "x" if draw(st.booleans()) else draw(monotone_trees(2))
    c = draw(st.sampled_from(CONSTS + ["0", "INFINITY", "NAN"]))
    cmp = f"({op} {a} {c})" if draw(st.booleans()) else f"({op} {c} {a})"
    arm = st.one_of(st.just("x"), monotone_trees(2))
    f = draw(st.sampled_from(["exp", "tanh", "log1p", "expm1"]))
    k = draw(st.sampled_from(["1", "-2", "0.5", "-1e-3"]))
    return f"(let* ([s (if {cmp} {draw(arm)} {draw(arm)})]) (* x ({f} (* s {k}))))"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(monotone_trees(), st.sampled_from(CONSTS + ["0", "-0", "INFINITY", "NAN"]), st.sampled_from(["<", ">", "<=", ">="]),
       st.booleans(), st.floats(-140, 127), st.booleans(), st.sampled_from(directions.SIGNS))
def test_a_steady_condition_is_the_evaluators(body, c, op, left, scale, negative, sign):
    """_constancy's rule for a condition (OP a c), checked on the evaluator's values of a over sorted
    binary32 inputs: where the rule, given a's direction and its values at the two ends, says the
    comparison is constant, it is the same at every input."""
    f = load_text(f"(FPCore h (x) {body})", "<tree>", "h")
    consts = {k: float(v) for k, v in f.constant_values(FP32).items()}
    d = directions.direction(f.body, {"x": 1}, lambda e: directions.literal_value(e, consts), ("x",), sign)
    x = np.sort(np.concatenate([around((-1.0 if negative else 1.0) * 2.0**scale, 64),
                                np.linspace(-30, 30, 64, dtype=np.float32)]))
    if sign:
        x = x[x * sign > 0]
    a = evaluate(f, x.astype(np.float64), Policy(FP32)).y.astype(np.float32)
    cv = np.float32(directions.literal_value(load_text(f"(FPCore k (x) {c})", "<c>", "k").body, {}))
    tests = {"<": np.less, ">": np.greater, "<=": np.less_equal, ">=": np.greater_equal}
    with np.errstate(invalid="ignore"):
        got = tests[op](a, cv) if left else tests[op](cv, a)
    lo, hi = (a[0], a[-1])
    cr = np.array([lo, hi, cv, cv, got[0], got[-1]] if left else [cv, cv, lo, hi, got[0], got[-1]], dtype=np.float32)
    if directions._steady(cr, d, 0) if left else directions._steady(cr, 0, d):
        assert (got == got[0]).all(), (body, op, c, d)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(armed_trees(), min_size=3, max_size=3), st.floats(-140, 127), st.booleans())
def test_ifs_constant_over_a_block_keep_the_evaluators_bits(bodies, scale, negative):
    """On blocks of consecutive inputs, where a condition may be shown constant (its arm's sites and
    what follows skipped, the other arm's never reached), random ifs still give the evaluator's bits."""
    forms = [load_text(f"(FPCore a{i} (x) {b})", f"<tree {i}>", f"a{i}") for i, b in enumerate(bodies)]
    check_equal(forms, around((-1.0 if negative else 1.0) * 2.0**scale, 256), "cr")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(trees(), min_size=3, max_size=3), st.floats(-140, 127), st.booleans())
def test_random_trees_on_consecutive_inputs_equal_the_evaluator(bodies, scale, negative):
    """On a block of consecutive inputs (where call sites are found constant and skipped), random
    trees still give the evaluator's bits."""
    forms = [load_text(f"(FPCore c{i} (x) {b})", f"<tree {i}>", f"c{i}") for i, b in enumerate(bodies)]
    check_equal(forms, around((-1.0 if negative else 1.0) * 2.0**scale, 256), "cr")


@pytest.mark.parametrize("v, fid, want", [
    (-200.0, "softplus-tanh", 3), (-1e30, "softplus-tanh", 3), (1020.0, "softplus-tanh", 3),
    (3e38, "softplus-tanh", 3), (2.0**-40, "softplus-tanh", 3), (-2.0**-40, "softplus-tanh", 3),
    (12.0, "softplus-tanh", 1), (-0.75, "softplus-tanh", 0), (0.0, "softplus-tanh", 2),
    (-200.0, "exp-rational-clamped", 1), (40.0, "exp-rational", 0), (100.0, "exp-rational", 1),
    (-3e38, "coreml-2359-workaround", 3), (-200.0, "stable-softplus", 3), (-1e30, "coreml-2725", 3),
    (1e30, "stable-softplus", 3), (200.0, "darknet-cpu", 1), (-200.0, "darknet-cpu", 2),
    (1e30, "softplus-threshold", 1), (-1e30, "tf-softplus", 3), (-0.75, "tf-softplus", 1)])
def test_sites_constant_over_a_block_are_found_and_keep_the_bits(v, fid, want):
    """The sites a saturated block holds constant (exp's 0, inf or 1, and what follows from them;
    tanh's 1 beyond 9.01; around 0, log1p(1) and tanh of it, not exp, whose argument changes sign
    there; exp(-|x|) on blocks of one sign, then log1p of its 0 and tanh of fmax(x, 0) + 0, whose
    argument is one value (+0) on negative blocks and x + 0 on positive ones; the threshold ifs of
    darknet, softplus-threshold and TensorFlow taking one arm over the block: exp(-2x) = 0 beyond
    20, or exp(x) = 0 below -20 and exp(-2 * 0) = 1; tf-softplus's log(eps), an argument of
    constants, everywhere) are found, and the outputs stay the evaluator's."""
    pol = Policy(FP32)
    fz = fused32.Fused([REG[fid]], pol)
    x = around(v, 4096)
    ys = fused32.fused_outputs(fz, x, pol)
    assert fz.constant == [want]
    want_y = evaluate(REG[fid], x.astype(np.float64), pol).y.astype(np.float32)
    assert np.array_equal(ys[0].view(np.uint32), want_y.view(np.uint32))


def _program(rows):
    return np.array(rows, dtype=np.int64).reshape(-1, 4), np.zeros(len(rows))


def test_constancy_rules():
    """_constancy on hand-made probes and programs: rule (b) needs both arguments nonzero, of one
    sign, not NaN, and equal values; a site whose argument x reaches only through constant sites
    has direction 0 (rule (a)), those sites numbered before it or after; a flagged probe turns
    every site off."""
    dr = directions
    nan = np.nan
    one = np.float32(1.0)
    # rows: 0 a constant, 1 x, 2 no direction, 3 -x, 4 site 2's value, 5 site 0's, 6 site 3's, 7 an
    # operation of 5 and 6 with no direction (fma, say)
    P, L = _program([(dr.CONST, -1, -1, -1), (dr.INPUT, -1, -1, -1), (dr.FIXED, -1, -1, dr.UNKNOWN),
                     (dr.NEG, 1, -1, -1), (dr.SITE, 1, -1, 2), (dr.SITE, 4, -1, 0), (dr.SITE, 3, -1, 3),
                     (dr.OTHER, 5, 6, -1)])
    none = np.zeros((0, 3), dtype=np.int64)
    crec = np.full((1, 6), np.nan, dtype=np.float32)

    def run(rec, sarg=(1, 1, 1, 3, 2), off=False):
        kc, kv, dead = dr._constancy(np.array(rec, dtype=np.float32), crec, P, L, np.array(sarg, dtype=np.int64),
                                     none, np.full(len(sarg), -1, dtype=np.int64), off, 0)
        assert not dead.any()
        return list(kc)

    same = [-5.0, -4.0, 1.0, 1.0]
    assert run([same] * 5) == [1, 1, 1, 1, 0]  # no direction: never by (b)
    assert run([[-5.0, 0.0, 1.0, 1.0], [-0.0, 4.0, 1.0, 1.0], [-1.0, 4.0, 1.0, 1.0], [nan, 4.0, 1.0, 1.0],
                same]) == [0, 0, 0, 0, 0]
    assert run([[-5.0, -4.0, 1.0, np.nextafter(one, np.float32(2))], [-5.0, -4.0, 0.0, -0.0],
                [-5.0, -4.0, nan, nan], same, same]) == [0, 0, 0, 1, 0]
    assert run([same] * 5, off=True) == [0, 0, 0, 0, 0]
    # site 0's argument is site 2's value; site 4's, an operation of sites 0 and 3
    chain = (4, 1, 1, 3, 7)
    odd = [-1.0, 4.0, 7.0, 7.0]  # (b) fails: the arguments change sign
    assert run([odd, odd, same, same, odd], chain) == [1, 0, 1, 1, 1]
    assert run([odd, odd, odd, same, odd], chain) == [0, 0, 0, 1, 0]


def test_constant_conditions_choose_an_arm():
    """A condition x < c is constant where both probes give one value and x is not NaN at either:
    then an if of it has its arm's direction, and the other arm's sites are reached by no input;
    a condition that changes over the block, or whose varying operand is NaN at an end, is not."""
    dr = directions
    nan = np.nan
    # (if (< x c) (exp x) (log x)) as site 2's argument: sites 0 and 1 in the arms of condition 0
    P, L = _program([(dr.CONST, -1, -1, -1), (dr.INPUT, -1, -1, -1), (dr.SITE, 1, -1, 0), (dr.SITE, 1, -1, 1),
                     (dr.IF, 2, 3, 0)])
    cond = np.array([[1, 0, -1]], dtype=np.int64)
    enc = np.array([1, 0, -1], dtype=np.int64)
    sarg = np.array([1, 1, 4], dtype=np.int64)
    reached = [[-5.0, -4.0, 0.5, 0.5], [nan] * 4, [0.5, -0.5, 0.7, 0.7]]  # site 2's arguments change sign

    def run(cr, rec=reached, off=False):
        kc, kv, dead = dr._constancy(np.array(rec, dtype=np.float32), np.array([cr], dtype=np.float32), P, L, sarg,
                                     cond, enc, off, 0)
        return list(kc), list(dead)

    assert run([-5.0, -4.0, 3.0, 3.0, 1.0, 1.0]) == ([1, 0, 1], [0, 1, 0])
    assert run([-5.0, -4.0, 3.0, 3.0, 0.0, 0.0], [[nan] * 4, [-5.0, -4.0, 0.5, 0.5], [0.5, -0.5, 0.7, 0.7]]) == (
        [0, 1, 1], [1, 0, 0])
    assert run([-5.0, 4.0, 3.0, 3.0, 1.0, 0.0]) == ([1, 0, 0], [0, 0, 0])  # it changes: site 2 has no direction
    assert run([nan, -4.0, 3.0, 3.0, 1.0, 1.0]) == ([1, 0, 0], [0, 0, 0])  # NaN at one end: not shown constant
    assert run([-5.0, -4.0, 3.0, 3.0, 1.0, 1.0], off=True) == ([0, 0, 0], [0, 0, 0])


@pytest.mark.parametrize("model", ["cr", "glibc"])
def test_a_first_argument_that_is_the_quiet_nan_gets_its_own_answer(model):
    """A call site's repeat shortcut starts with no previous call. The log of a negative x is a quiet
    NaN whose sign depends on the host's libm (and -log(x) or |log(x)| then carries the other sign or
    none): one of these arguments is the NaN 0x7fc00000, the shortcut's starting argument, and exp of
    it is NaN, not the starting answer (it was 0.0, and every later input repeated it)."""
    x = around(-2.0, 64)
    pol = Policy(FP32, libm=model)
    hit = []
    for arg in ("(- (log x))", "(log x)", "(fabs (log x))"):
        a = evaluate(load_text(f"(FPCore a (x) {arg})", "<arg>", "a"), x[:1].astype(np.float64), pol).y
        with np.errstate(invalid="ignore"):
            hit.append(int(a.astype(np.float32).view(np.uint32)[0]) == 0x7FC00000)
        f = load_text(f"(FPCore h (x) (* x (tanh (exp {arg}))))", "<nan>", "h")
        assert np.isnan(fused32.fused_outputs(fused32.Fused([f], pol), x, pol)[0]).all(), arg
        check_equal([f], x, model)
    assert any(hit)  # the case this test is for arose, on this host


def test_a_sum_of_two_varying_operands_has_no_direction():
    """inf + -inf at one interior input only: a sum of two operands that both vary is never taken
    as monotone (else tanh(exp(a + b) + 10) reads 1 at both ends of this block and would be skipped
    where the evaluator gives NaN, at x = 2^28)."""
    f = load_text("(FPCore h (x) (tanh (+ (exp (+ (* x 1267650600228229401496703205376) "
                  "(log (- (fmax x 268435456) 268435456)))) 10)))", "<sum>", "h")
    pol = Policy(FP32)
    fz = fused32.Fused([f], pol)
    x = around(2.0**28, 8)
    ys = fused32.fused_outputs(fz, x, pol)
    assert fz.constant == [0]
    assert np.isnan(ys[0][x == 2.0**28]).all()
    check_equal([f], x, "cr")
    assert directions.direction(load_text("(FPCore g (x) (+ x (exp x)))", "<g>", "g").body, {"x": 1},
                                lambda e: None, ("x",)) == directions.UNKNOWN


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=40), st.booleans(), st.booleans())
def test_extremes_are_a_smallest_and_a_largest_value(xs, ascending, nan):
    """_extremes: indices of a smallest and a largest value, ascending or not; (-1, -1) with a NaN."""
    x = np.array(sorted(xs) if ascending else xs, dtype=np.float32)
    if nan:
        x[len(x) // 2] = np.nan
        assert fused32._extremes(x) == (-1, -1)
        return
    lo, hi = fused32._extremes(x)
    assert x[lo] == x.min() and x[hi] == x.max()
