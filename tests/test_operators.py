"""The operator table (lang/operators.py) and the libm models' table (eval/libm.py IMPLEMENTATIONS).

Walks both tables: every model implements every elementary operation, each implementation computes
its operation (against MPFR, which shares nothing with the models' kernels: the exact value at 200
bits, rounded by a gmpy2 context of the format), the reader takes every operation at its arities,
the enclosures hold the exact value, and the special values are MPFR's (IEEE 754-2019 9.2).
"""

from __future__ import annotations

import math

import gmpy2
import numpy as np
import pytest

from mishaudit.errors import UserError
from mishaudit.eval import libm
from mishaudit.eval.evaluate import Policy, evaluate
from mishaudit.eval.inputs import _op_bounds
from mishaudit.formats import BF16, FP16, FP32, FP64, all_finite, ordinal
from mishaudit.lang import fpcore as fc
from mishaudit.lang.operators import ELEMENTARY, NUMERIC, OPERATORS
from mishaudit.lang.registry import load_text
from mishaudit.reference.enclose import enclose_array, enclose_mpfr

UNARY = [op for op in ELEMENTARY if OPERATORS[op].arity == (1,)]
# the most any model's kernel is allowed to err here, in ulps of the format (numpy documents <= 4 ulp
# for its float32 kernels; glibc's float functions are below 1 ulp, torch's SLEEF ones below 1 ulp)
MODEL_ULPS = {"cr": 0.5, "glibc": 4.0, "numpy": 4.0, "torch": 4.0}


def _ctx(fmt):
    return gmpy2.context(precision=fmt.p, emin=fmt.emin - fmt.p + 2, emax=fmt.emax + 1, subnormalize=True,
                         round=gmpy2.RoundToNearest)


def _exact(op, xs):
    """op at each binary64 value, at 200 bits (MPFR's own function: the operator's `mpfr` method)."""
    ctx = gmpy2.context(precision=200, emin=gmpy2.get_emin_min(), emax=gmpy2.get_emax_max())
    f = getattr(ctx, OPERATORS[op].mpfr)
    return [f(gmpy2.mpfr(float(v), 53)) for v in xs]


def _inputs(op, fmt, n=3000):
    """Values of fmt inside op's audited domain: every one for 16-bit formats, else a spread sample."""
    lo, hi = _op_bounds(op, fmt) or (-fmt.max, fmt.max)
    if fmt.bits == 16:
        x = all_finite(fmt)
    else:
        rng = np.random.default_rng(7)
        with np.errstate(invalid="ignore"):  # NaN bit patterns, dropped below
            x = rng.integers(0, 2**32, 4 * n, dtype=np.uint64).astype(np.uint32).view(np.float32).astype(np.float64)
        x = np.concatenate([x, np.linspace(-30, 30, n)])
        x = np.unique(x[np.isfinite(x)].astype(np.float32).astype(np.float64))
    return x[(x >= lo) & (x <= hi)]


def _ulps(y, exact, fmt):
    """|y - r| / ulp(r) for the exact values r (mishaudit's definition, README)."""
    out = []
    for yi, r in zip(y, exact):
        if r == 0:
            out.append(0.0 if yi == 0 else math.inf)
            continue
        e = max(int(gmpy2.floor(gmpy2.log2(abs(r)))), fmt.emin)
        out.append(float(abs(gmpy2.mpfr(float(yi), 53) - r) / gmpy2.mpfr(2) ** (e - fmt.p + 1)))
    return np.array(out)


def test_every_model_implements_every_elementary_operation():
    assert set(libm.IMPLEMENTATIONS) == set(libm.MODELS) >= {"cr", "glibc", "numpy", "torch"}
    for model, table in libm.IMPLEMENTATIONS.items():
        assert set(table) == set(ELEMENTARY), model
    for op in ELEMENTARY:
        o = OPERATORS[op]
        assert o.kind == "libm" and o.mpfr is not None and o.nonzero is not None
        assert hasattr(gmpy2.context(), o.mpfr)


@pytest.mark.parametrize("model", sorted(libm.MODELS))
@pytest.mark.parametrize("fmt", [FP16, BF16, FP32], ids=lambda f: f.name)
@pytest.mark.parametrize("op", UNARY)
def test_each_implementation_computes_its_operation(model, fmt, op):
    """Every implementation, on inputs of its operation's domain, within MODEL_ULPS of MPFR's exact value;
    cr equal to MPFR's rounding to the format on every input."""
    x = _inputs(op, fmt)
    if fmt.bits == 16:  # every value under cr; a sample of them for the slow per-element MPFR check below
        x = x[:: max(1, len(x) // 3000)]
    y = libm.apply(model, op, [x], fmt)
    exact = _exact(op, x)
    u = _ulps(y, exact, fmt)
    assert np.all(np.isfinite(y)), (model, op, fmt.name, x[~np.isfinite(y)][:3])
    assert u.max() <= MODEL_ULPS[model], (model, op, fmt.name, float(x[np.argmax(u)]), u.max())
    if model == "cr":
        ctx = _ctx(fmt)
        want = np.array([float(ctx.plus(r)) for r in exact])
        assert np.array_equal(y, want)


@pytest.mark.parametrize("model", sorted(libm.MODELS))
def test_pow_in_every_model(model):
    a = np.array([0.5, 1.5, 3.0, 7.25, 10.0])
    for b in (2.0, 3.0, -2.5, 0.5):
        y = libm.apply(model, "pow", [a, np.full(5, b)], FP32)
        want = a ** b
        assert np.all(np.abs(y - want) <= 4 * np.spacing(want.astype(np.float32)).astype(np.float64)), (model, b)


def test_reader_takes_every_operation_at_its_arities_only():
    for name, o in OPERATORS.items():
        if name in fc.VARIADIC:
            continue
        for n in range(0, 4):
            args = " ".join(["x"] * n)
            text = f"(FPCore (x) ({name} {args}))" if o.kind != "bool" else f"(FPCore (x) (if ({name} {args}) x x))"
            if n in o.arity:
                fc.parse(text, "<t>")
            else:
                with pytest.raises(UserError, match="argument|operand|takes"):
                    fc.parse(text, "<t>")


@pytest.mark.parametrize("op", UNARY)
def test_enclosures_hold_the_exact_value(op):
    """enclose_array (binary64 with the libm bound) and enclose_mpfr (directed MPFR) of (op x) hold MPFR's value."""
    f = load_text(f"(FPCore t (x) :spec ({op} x) ({op} x))", "<t>", "t")
    x = _inputs(op, FP32, 300)
    exact = _exact(op, x)
    a = enclose_array(f, x, FP32)
    m = enclose_mpfr(f, x, FP32, 80)
    for i, r in enumerate(exact):
        assert not a.undecided[i] and a.lo[i] <= r <= a.hi[i], (op, x[i])
        assert not m.undecided[i] and m.lo[i] <= r <= m.hi[i], (op, x[i])
    dom = OPERATORS[op].domain
    if dom is not None:  # below the domain: undecided, never a wrong enclosure
        below = np.array([dom[0] - 1.0])
        assert enclose_array(f, below, FP32).undecided.all()


@pytest.mark.parametrize("op", UNARY)
def test_specials_are_ieee_values(op):
    """The table's values at +-0, +-inf are MPFR's (which follows IEEE 754-2019 9.2), NaN in, NaN out."""
    ctx = gmpy2.context(precision=53)
    f = getattr(ctx, OPERATORS[op].mpfr)
    for x in (0.0, -0.0, math.inf, -math.inf):
        want = float(f(gmpy2.mpfr(x)))
        got = OPERATORS[op].special(x)
        assert (math.isnan(want) and math.isnan(got)) or (got == want and math.copysign(1, got) == math.copysign(1, want)), (op, x)
    assert math.isnan(OPERATORS[op].special(math.nan))


def test_every_numeric_operation_evaluates_and_has_an_event_rule():
    """The evaluator computes every numeric operation of the table (under every model), and the overflow maps
    have a rule for each one whose exact result may underflow."""
    x = np.array([0.5, 1.5, 2.0])
    for name in sorted(NUMERIC):
        o = OPERATORS[name]
        n = max(o.arity)
        f = load_text(f"(FPCore t (x) ({name} {' '.join(['x'] * n)}))", "<t>", "t")
        for model in libm.MODELS:
            y = evaluate(f, x, Policy(FP32, libm=model)).y
            assert y.shape == x.shape and np.all(np.isfinite(y)), (name, model)
        if o.kind in ("arith", "libm"):
            assert o.nonzero is not None, name


def test_audited_domain_of_each_operation():
    """log: x > 0, log1p: x > -1, exp: up to ln(max + ulp/2), independently of the code's bisection."""
    for fmt in (FP16, BF16, FP32, FP64):
        lo, hi = _op_bounds("log", fmt)
        assert lo == fmt.min_subnormal and hi == fmt.max
        lo, _ = _op_bounds("log1p", fmt)
        assert lo == -1 + 2.0 ** -fmt.p  # the format value just above -1
        _, hi = _op_bounds("exp", fmt)
        c = gmpy2.context(precision=200)
        # max + ulp(max)/2 = 2^(emax+1) - 2^(emax-p): RN of anything from there on is inf
        limit = c.log(c.sub(c.exp2(fmt.emax + 1), c.exp2(fmt.emax - fmt.p)))
        nxt = np.nextafter(np.array(hi, dtype=fmt.dtype), np.array(np.inf, dtype=fmt.dtype)).astype(np.float64)
        assert hi < limit < float(nxt) or (hi < limit and not np.isfinite(nxt)), fmt.name
        assert int(ordinal(np.array([float(nxt)]), fmt)[0]) == int(ordinal(np.array([hi]), fmt)[0]) + 1
    assert _op_bounds("tanh", FP32) is None
