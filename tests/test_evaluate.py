"""The evaluator against independent facts: exp overflow, fma double rounding, compute dtype, ftz."""

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest

from mishaudit.eval.evaluate import Policy, evaluate
from mishaudit.formats import BF16, FP16, FP32, FP64, all_finite, round_fraction
from mishaudit.lang.registry import load_registry, load_text


def formula(body: str):
    return load_text(f"(FPCore t (x) {body})", "t.fpcore", "t")


def test_first_fp16_input_where_exp_overflows():
    # independent: exp(x) rounds to fp16 inf once exp(x) >= 65504 + 16 (max + half an ulp)
    edge = mpmath.log(65520)
    xs = np.sort(all_finite(FP16))
    first = xs[np.argmax(xs >= float(edge))]
    assert first == 11.09375  # the figure CONTEXT.md quotes
    y = evaluate(formula("(exp x)"), xs, Policy(FP16)).y
    assert np.isinf(y[xs >= first]).all()
    assert np.isfinite(y[xs < first]).all()


def _rn(v: Fraction, prec: int) -> float:
    with mpmath.workprec(prec):
        return float(mpmath.mpf(v.numerator) / v.denominator)


@pytest.mark.parametrize("fmt, p", [(FP32, 24), (BF16, 8), (FP64, 53)], ids=["fp32", "bf16", "fp64"])
def test_fma_rounds_once_on_a_double_rounding_case(fmt, p):
    # a*b = 1.5 + 2^-(p-1) + 2^-p is a midpoint of the format; c = -2^-120 puts the exact sum
    # just below it, so RN is 1.5 + 2^-(p-1). Rounding a*b + c first to binary64 lands on the
    # midpoint and ties-to-even then gives 1.5 + 2^-(p-2): the double-rounding error.
    b = 1 + 2.0 ** -(p - 1)
    f = formula("(fma 1.5 x -0x1p-120)")
    exact = Fraction(3, 2) * Fraction(b) - Fraction(1, 2**120)
    want = _rn(exact, p)
    assert want == 1.5 + 2.0 ** -(p - 1)
    got = evaluate(f, np.array([b]), Policy(fmt)).y[0]
    assert got == want
    if fmt is not FP64:
        naive = float(np.float64(1.5) * b + -(2.0**-120))
        assert _rn(Fraction(naive), p) != want  # the naive way really is wrong here


def test_fma_random_fp32_against_exact_rationals():
    rng = np.random.default_rng(1)
    a, b, c = (rng.standard_normal(2000).astype(np.float32).astype(np.float64) for _ in range(3))
    c *= 2.0 ** rng.integers(-40, 5, 2000)
    c = c.astype(np.float32).astype(np.float64)
    f = load_text("(FPCore t (x) (fma x (! :precision binary32 0.0) 0))", "t", "t")  # parse check only
    assert f.id == "t"
    from mishaudit.eval.evaluate import fma_round_to_odd

    got = fma_round_to_odd(a, b, c, FP32)
    for i in range(2000):
        want = _rn(Fraction(a[i]) * Fraction(b[i]) + Fraction(c[i]), 24)
        assert got[i] == want


def _rn_of(f, v, fmt):
    """RN_fmt of mpmath function f at v (600 bits), by exact rational rounding."""
    with mpmath.workprec(600):
        r = f(mpmath.mpf(v))
        sign, man, exp, _ = r._mpf_
        return round_fraction((-1) ** sign * Fraction(int(man)) * Fraction(2) ** exp, fmt) if man else 0.0


def test_compute_dtype_rounds_each_op_in_compute_then_once_to_storage():
    reg = load_registry()
    f = reg["softplus-tanh"]
    x = np.sort(all_finite(FP16))
    x = x[(np.abs(x) < 60) & (x != 0)][::23]
    got = evaluate(f, x, Policy(FP16, FP32)).y
    # by hand with mpmath: every operation correctly rounded to binary32, the product too, then once
    # to binary16
    for xi, gi in zip(x.tolist(), got.tolist()):
        e = _rn_of(mpmath.exp, xi, FP32)
        s = _rn_of(mpmath.log1p, e, FP32)
        t = _rn_of(mpmath.tanh, s, FP32)
        y32 = round_fraction(Fraction(xi) * Fraction(t), FP32)
        assert gi == round_fraction(Fraction(y32), FP16), xi


def test_native_fp16_rounds_every_operation():
    x = np.array([0.1], dtype=np.float16).astype(np.float64)
    f = formula("(+ (* x x) 1)")
    got = evaluate(f, x, Policy(FP16)).y[0]
    xx = np.float16(np.float16(x[0]) * np.float16(x[0]))  # numpy float16 arithmetic rounds each op
    assert got == float(np.float16(xx + np.float16(1)))


def test_ftz_flushes_subnormal_results():
    tiny = 2.0**-20  # fp16 subnormal range is below 2^-14
    f = formula("(* x 0.5)")
    assert evaluate(f, np.array([tiny]), Policy(FP16)).y[0] == tiny / 2
    r = evaluate(f, np.array([tiny]), Policy(FP16, ftz=True)).y[0]
    assert r == 0 and not math.copysign(1, r) < 0
    r = evaluate(f, np.array([-(2.0**-14)]), Policy(FP16, ftz=True)).y[0]
    assert r == 0 and math.copysign(1, r) < 0  # -2^-15 is subnormal: flushed to -0
    r = evaluate(f, np.array([-(2.0**-13)]), Policy(FP16, ftz=True)).y[0]
    assert r == -(2.0**-14)  # the smallest normal stays


def test_records_carry_let_names_and_live_masks():
    f = load_registry()["softplus-threshold"]
    from mishaudit.eval.evaluate import Evaluator

    ev = Evaluator(f, Policy(FP32), record=True)
    out = ev.run(np.array([-1.0, 25.0]))
    labels = {r.label for r in ev.records}
    assert "sp" in labels
    log1p = next(r for r in ev.records if r.op == "log1p")
    assert log1p.live.tolist() == [True, False]  # not on the taken path for x = 25 > 20
    assert out.y[1] == 25.0  # 1 - tanh(25) = 2/(e^50 + 1) < 2^-25: tanh rounds to 1 in binary32


@pytest.mark.parametrize("model", ["cr", "numpy", "glibc"])
def test_binary32_program_equals_the_evaluator_bit_for_bit(model):
    from mishaudit.eval.program32 import binary32_program
    from mishaudit.formats import from_ordinal

    rng = np.random.default_rng(7)
    o = rng.integers(-(2**31 - 2**23), 2**31 - 2**23, 100_000)
    edges = [0, 1, -1, 2**31 - 2**23 - 1, -(2**31 - 2**23 - 1)]
    x = np.concatenate([from_ordinal(np.concatenate([o, edges]), FP32), [-0.0],
                        rng.uniform(-100, 100, 50_000).astype(np.float32)])
    x32 = x.astype(np.float32)
    for fid, f in load_registry().items():
        prog = binary32_program(f, Policy(FP32, libm=model))
        assert prog is not None, fid
        want = evaluate(f, x, Policy(FP32, libm=model)).y.astype(np.float32)
        assert np.array_equal(prog(x32).view(np.int32), want.view(np.int32)), fid


@pytest.mark.parametrize("model", ["cr", "glibc"])
def test_an_if_chain_runs_each_arm_on_its_inputs_only_with_the_same_bits(model):
    """program32 splits an if's inputs between its arms under cr and glibc: a chain of regimes (as
    synthesize writes) with lets above and inside the arms, a NaN-making arm where it is not taken, and
    arms that take no input of a block, equals the evaluator's select-after-both bit for bit."""
    from mishaudit.eval.program32 import binary32_program
    from mishaudit.lang.registry import load_text

    text = ("(FPCore chain (x) (let* ([e (exp x)]) (if (< x -20) (- 0) (if (< x -1) (* x (/ (* e (+ e 2)) "
            "(+ (* e (+ e 2)) 2))) (if (< x 0.5) (let* ([s (* x x)]) (fma x 0.6 (* s 0.3))) (if (< x 1e30) "
            "(* x (tanh (log1p e))) (log (- x))))))))")
    f = load_text(text, "chain.fpcore", "chain")
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(-40, 5, 40_000), [-20.0, -1.0, 0.5, -0.0, 0.0, 3e38]]).astype(np.float32)
    pol = Policy(FP32, libm=model)
    want = evaluate(f, x.astype(np.float64), pol).y.astype(np.float32)
    prog = binary32_program(f, pol)
    assert np.array_equal(prog(x).view(np.int32), want.view(np.int32))
    one_arm = x[x < -20]  # every input takes the first arm
    assert np.array_equal(prog(one_arm).view(np.int32),
                          evaluate(f, one_arm.astype(np.float64), pol).y.astype(np.float32).view(np.int32))


def test_binary32_program_declines_other_policies_and_precisions():
    from mishaudit.eval.program32 import binary32_program
    from mishaudit.lang.registry import load_text

    f = load_registry()["softplus-tanh"]
    assert binary32_program(f, Policy(FP16)) is None
    assert binary32_program(f, Policy(FP32, FP64)) is None
    assert binary32_program(f, Policy(FP32, None, True)) is None
    g = load_text("(FPCore g (x) (! :precision binary64 (* x (tanh (log1p (exp x))))))", "g.fpcore", "g")
    assert binary32_program(g, Policy(FP32)) is None


def test_shared_subexpressions_change_no_bit():
    from mishaudit.eval.program32 import binary32_program, shared_subexpressions
    from mishaudit.formats import from_ordinal

    forms = list(load_registry().values())
    shared = shared_subexpressions(forms)
    assert "(exp x)" in shared
    x = from_ordinal(np.random.default_rng(8).integers(-(2**31 - 2**23), 2**31 - 2**23, 50_000), FP32)
    memo: dict = {}
    for f in forms:
        got = binary32_program(f, Policy(FP32), shared)(x.astype(np.float32), memo)
        want = evaluate(f, x, Policy(FP32)).y.astype(np.float32)
        assert np.array_equal(got.view(np.int32), want.view(np.int32)), f.id
    assert memo  # something was shared


def test_a_policy_sent_to_a_worker_keeps_the_fast_path():
    """Formats pickle by name: identity checks (`fmt is FP32`) hold in worker processes."""
    import pickle

    from mishaudit.eval.program32 import binary32_program

    pol = pickle.loads(pickle.dumps(Policy(FP32)))
    assert pol.storage is FP32
    assert binary32_program(load_registry()["softplus-tanh"], pol) is not None


def test_fmax_fmin_ties_and_nans_do_not_depend_on_the_array():
    """fmax/fmin: the first operand unless the other is larger (smaller) or the first is NaN, for every
    array length (numpy's own fmax returns +0 in its SIMD loop and the first operand in its scalar one)."""
    from mishaudit.eval.evaluate import fmax, fmin

    pairs = [(-0.0, 0.0), (0.0, -0.0), (np.nan, 1.0), (1.0, np.nan), (2.0, 3.0), (3.0, 2.0), (-0.0, -0.0)]
    want_max = [-0.0, 0.0, 1.0, 1.0, 3.0, 3.0, -0.0]  # glibc's fmax on the same pairs
    want_min = [-0.0, 0.0, 1.0, 1.0, 2.0, 2.0, -0.0]
    for n in (1, 3, 17, 4096):
        for (a, b), wx, wn in zip(pairs, want_max, want_min):
            x = fmax(np.full(n, a), np.full(n, b))
            m = fmin(np.full(n, a), np.full(n, b))
            assert (x == wx).all() and (np.signbit(x) == np.signbit(wx)).all(), (n, a, b, x[:3])
            assert (m == wn).all() and (np.signbit(m) == np.signbit(wn)).all(), (n, a, b, m[:3])
