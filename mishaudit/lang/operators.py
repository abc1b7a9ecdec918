"""The operator table: every FPCore operation mishaudit reads, and what it means in real arithmetic.

One entry per operation, read by everything that handles one: the reader (arity), the evaluator
(its kind), the enclosures and the spec references (its real meaning), error attribution and the
overflow maps (its kind, when its exact value is nonzero), and the references of a spec that is a
single operation (its values at the special inputs). How each libm model computes an elementary
function in a format is eval/libm.py's table, one line per operation per model: the split of
Herbie's src/syntax (real operators) and src/platforms (their implementations).

Fields of an Operator:
  name      the FPCore name
  arity     the operand counts it accepts
  kind      "arith": an IEEE 754 basic operation, correctly rounded in the working format (+ - * /
            sqrt fma); "exact": the result is an operand, its negation or absolute value (neg, fabs,
            copysign, fmax, fmin), no rounding; "libm": an elementary function, whose value in a
            format is the libm model's (eval/libm.py); "primitive": one operation of a runtime with
            no C library counterpart (MIL's softplus, ONNX's fused Mish kept whole by
            `mishaudit import --keep-fused`), correctly rounded in the working format under every
            libm model (eval/primitives.py); "bool": comparisons and connectives
  mpfr      the gmpy2 context method that computes it with one rounding: its real meaning (None:
            not a real function, or enclosed by its own rule in reference/enclose.py)
  monotone  "increasing" where an enclosure of op(a) is op at the ends of a's (reference/enclose.py)
  domain    (lo, closed) for an increasing function: a real argument needs a >= lo (closed) or
            a > lo; an enclosure reaching below is undecided (log(0) = -inf counts as real: the
            extended reals of reference/enclose.py)
  range     the closed hull of its range, which enclosures are clipped to
  nonzero   when is the exact value of op(a) nonzero, for finite operand arrays a (the overflow
            maps' underflow event); None: never asked (exact operations, booleans)
  specials  its values at +0, -0, +inf, -inf (IEEE 754-2019 9.2): the reference of a spec that
            is this operation of x at the special inputs
  meaning   for a primitive: its real value as an FPCore expression of the operand `a` (what the
            enclosures evaluate, and what eval/primitives.py rounds once)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

INF = math.inf
NAN = math.nan


@dataclass(frozen=True)
class Operator:
    name: str
    arity: tuple
    kind: str  # "arith" | "exact" | "libm" | "bool"
    mpfr: str | None = None
    monotone: str | None = None  # "increasing"
    domain: tuple | None = None  # (lo, closed)
    range: tuple = (-INF, INF)
    nonzero: object = None  # operand arrays -> bool array
    specials: dict = field(default_factory=dict)  # {+0.0 as "+0", "-0", "inf", "-inf"} -> value
    meaning: str | None = None  # a primitive's real value, an FPCore expression of `a`

    def special(self, x: float) -> float | None:
        """op(x) at a special input x (+-0, +-inf, NaN), or None where the entry does not say."""
        if math.isnan(x):
            return NAN
        key = ("-0" if math.copysign(1, x) < 0 else "+0") if x == 0 else ("inf" if x > 0 else "-inf")
        return self.specials.get(key) if math.isinf(x) or x == 0 else None


def _op(name, arity, kind, **kw) -> Operator:
    return Operator(name, arity if isinstance(arity, tuple) else (arity,), kind, **kw)


_TABLE = [
    _op("+", 2, "arith", mpfr="add", nonzero=lambda a: a[0] != -a[1]),
    _op("-", (1, 2), "arith", mpfr="sub", nonzero=lambda a: a[0] != a[1]),  # unary - is exact
    _op("*", 2, "arith", mpfr="mul", nonzero=lambda a: (a[0] != 0) & (a[1] != 0)),
    _op("/", 2, "arith", mpfr="div", nonzero=lambda a: (a[0] != 0) & np.isfinite(a[1])),
    _op("sqrt", 1, "arith", mpfr="sqrt", monotone="increasing", domain=(0.0, True), range=(0.0, INF),
        nonzero=lambda a: a[0] != 0, specials={"+0": 0.0, "-0": -0.0, "inf": INF, "-inf": NAN}),
    _op("fma", 3, "arith", mpfr="fma", nonzero=lambda a: (a[0] * a[1] + a[2]) != 0),
    _op("fabs", 1, "exact"),
    _op("copysign", 2, "exact"),
    _op("fmax", 2, "exact"),
    _op("fmin", 2, "exact"),
    # elementary functions: their value in a format is the libm model's (eval/libm.py)
    _op("exp", 1, "libm", mpfr="exp", monotone="increasing", range=(0.0, INF), nonzero=lambda a: np.isfinite(a[0]),
        specials={"+0": 1.0, "-0": 1.0, "inf": INF, "-inf": 0.0}),
    _op("exp2", 1, "libm", mpfr="exp2", monotone="increasing", range=(0.0, INF),
        nonzero=lambda a: np.isfinite(a[0]), specials={"+0": 1.0, "-0": 1.0, "inf": INF, "-inf": 0.0}),
    _op("expm1", 1, "libm", mpfr="expm1", monotone="increasing", range=(-1.0, INF), nonzero=lambda a: a[0] != 0,
        specials={"+0": 0.0, "-0": -0.0, "inf": INF, "-inf": -1.0}),
    _op("log", 1, "libm", mpfr="log", monotone="increasing", domain=(0.0, True), nonzero=lambda a: a[0] != 1,
        specials={"+0": -INF, "-0": -INF, "inf": INF, "-inf": NAN}),
    _op("log1p", 1, "libm", mpfr="log1p", monotone="increasing", domain=(-1.0, False),
        nonzero=lambda a: a[0] != 0, specials={"+0": 0.0, "-0": -0.0, "inf": INF, "-inf": NAN}),
    _op("tanh", 1, "libm", mpfr="tanh", monotone="increasing", range=(-1.0, 1.0), nonzero=lambda a: a[0] != 0,
        specials={"+0": 0.0, "-0": -0.0, "inf": 1.0, "-inf": -1.0}),
    _op("pow", 2, "libm", mpfr="pow", nonzero=lambda a: a[0] != 0),
    # runtime primitives: one correctly rounded operation each (eval/primitives.py)
    _op("softplus", 1, "primitive", monotone="increasing", range=(0.0, INF), nonzero=lambda a: a[0] > -INF,
        specials={"inf": INF, "-inf": 0.0}, meaning="(log1p (exp a))"),
    _op("mish", 1, "primitive", nonzero=lambda a: a[0] != 0, specials={"+0": 0.0, "-0": -0.0, "inf": INF, "-inf": -0.0},
        meaning="(* a (tanh (log1p (exp a))))"),
    # booleans (comparisons take two or more operands)
    *[_op(c, (2,), "bool") for c in ("<", ">", "<=", ">=", "==", "!=", "and", "or")],
    _op("not", 1, "bool"),
]

OPERATORS: dict[str, Operator] = {o.name: o for o in _TABLE}
ELEMENTARY = tuple(o.name for o in _TABLE if o.kind == "libm")  # the libm model's operations
PRIMITIVE = tuple(o.name for o in _TABLE if o.kind == "primitive")  # correctly rounded everywhere
NUMERIC = frozenset(o.name for o in _TABLE if o.kind != "bool")  # operations with a numeric result
INCREASING = frozenset(o.name for o in _TABLE if o.monotone == "increasing" and o.kind != "primitive")


def operator(name: str) -> Operator:
    return OPERATORS[name]
