"""A formulation lowered to straight-line operations, each rounded once: what every emitter prints.

The walk is eval/evaluate.py's, step for step (Evaluator.walk and apply_op): a number or named
constant is rounded to the working format where it stands (round_exact, const_value; a named
parameter by round_fraction, its value for the *storage* format), a variable bound in another format
is converted into the working one (rounded where narrower, exact where wider), `let` binds in order
(`let*` sequentially), `if` computes both branches' values in their own blocks and selects,
`(! :precision F e)` evaluates e in F and converts the result back, and every operation node becomes
one statement in its format. Nothing is folded or reordered, so the emitted code performs exactly the
evaluator's operations.

The result is a Lowered: the argument `x` (the formula's own argument name is not copied), a list of
statements and the value returned. Names are generated (t0, t1, ...): no text of the formula file
reaches the emitted code. A value is a Val: its generated name and its format (None: a truth value).

Statements (tuples):
  ("const", dst, value)                  value: a float, exactly a value of dst.fmt (inf and NaN too)
  ("bool", dst, truth)                   TRUE / FALSE
  ("op", dst, op, args)                  an arithmetic, exact or elementary operation, args in dst.fmt
  ("cmp", dst, op, pairs)                a comparison: pairs of Vals (eval/evaluate.py comparison_pairs)
  ("logic", dst, op, args)               and, or, not
  ("convert", dst, src)                  src's value rounded into dst.fmt (src.fmt != dst.fmt)
  ("if", dst, cond, then, tv, other, ov) then / other: lists of statements computing tv / ov

Refused (UserError, one line naming the construct): framework kernels, the runtime primitives of
lang/operators.py (softplus, mish: one correctly rounded operation each, which no C library or
framework function computes), and any operator the evaluator does not know.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mishaudit.errors import UserError
from mishaudit.eval.evaluate import comparison_pairs, const_value, round_exact
from mishaudit.formats import Format, get_format, round_fraction
from mishaudit.lang import fpcore as fc
from mishaudit.lang.operators import OPERATORS, PRIMITIVE

ARITH = ("+", "-", "*", "/", "sqrt", "fma")  # correctly rounded in the working format
EXACT = ("neg", "fabs", "copysign", "fmax", "fmin")  # the result is an operand, its negation or |.|
LIBM = tuple(op for op, o in OPERATORS.items() if o.kind == "libm")  # the libm model's functions
LOGIC = ("and", "or", "not")


@dataclass(frozen=True)
class Val:
    name: str
    fmt: Format | None  # None: a truth value


@dataclass
class Lowered:
    arg: Val
    body: list
    result: Val
    fmt: Format  # the storage (= working) format
    ops: set = field(default_factory=set)  # (operation, format) of every op statement, for headers
    formats: set = field(default_factory=set)  # formats of all real values
    conversions: set = field(default_factory=set)  # (src, dst) format pairs converted


class _Lowerer:
    def __init__(self, formula, fmt: Format):
        self.fmt = fmt
        self.consts = formula.constant_values(fmt)  # per-format constants follow the storage format
        self.n = 0

    def new(self, fmt) -> Val:
        v = Val(f"t{self.n}", fmt)
        self.n += 1
        if fmt is not None:
            self.lowered.formats.add(fmt)
        return v

    def const(self, value: float, fmt: Format, out: list) -> Val:
        v = self.new(fmt)
        out.append(("const", v, float(value)))
        return v

    def into(self, v: Val, fmt: Format, out: list) -> Val:
        """v in format fmt (evaluate.py _in_fmt): itself when it is a truth value or already in fmt."""
        if v.fmt is None or v.fmt == fmt:
            return v
        d = self.new(fmt)
        out.append(("convert", d, v))
        self.lowered.conversions.add((v.fmt, fmt))
        return d

    def walk(self, e, env: dict, fmt: Format, out: list) -> Val:
        if isinstance(e, fc.Num):
            return self.const(round_exact(e.value, fmt), fmt, out)
        if isinstance(e, fc.Const):
            if e.name in ("TRUE", "FALSE"):
                v = self.new(None)
                out.append(("bool", v, e.name == "TRUE"))
                return v
            return self.const(round_exact(const_value(e.name), fmt), fmt, out)
        if isinstance(e, fc.Var):
            if e.name in env:
                return self.into(env[e.name], fmt, out)
            return self.const(round_fraction(self.consts[e.name], fmt), fmt, out)
        if isinstance(e, fc.Let):
            inner = dict(env)
            for name, sub in e.bindings:
                inner[name] = self.walk(sub, inner if e.sequential else env, fmt, out)
            return self.walk(e.body, inner, fmt, out)
        if isinstance(e, fc.If):
            c = self.walk(e.cond, env, fmt, out)
            then, other = [], []
            t = self.into(self.walk(e.then, env, fmt, then), fmt, then)
            o = self.into(self.walk(e.other, env, fmt, other), fmt, other)
            v = self.new(t.fmt)
            out.append(("if", v, c, then, t, other, o))
            return v
        if isinstance(e, fc.Annot):
            prec = dict(e.props).get(":precision")
            sub = fmt if prec is None else _precision(prec)
            return self.into(self.walk(e.body, env, sub, out), fmt, out)
        if isinstance(e, fc.Op):
            return self.op(e, env, fmt, out)
        raise TypeError(e)

    def op(self, e: fc.Op, env: dict, fmt: Format, out: list) -> Val:
        op = e.op
        if op in PRIMITIVE:
            raise UserError(f"operation {op!r} is a runtime primitive (one correctly rounded {op}, "
                            "eval/primitives.py) that no C library or framework function computes: emit cannot "
                            f"reproduce it bit for bit; write its decomposition {OPERATORS[op].meaning} "
                            "(with a = its operand) instead")
        if op not in OPERATORS:
            raise UserError(f"operator {op!r} is not supported by emit")
        args = [self.into(self.walk(a, env, fmt, out), fmt, out) for a in e.args]
        if op in fc.COMPARISONS:
            v = self.new(None)
            out.append(("cmp", v, op, comparison_pairs(op, args)))
            return v
        if op in LOGIC:
            v = self.new(None)
            out.append(("logic", v, op, args))
            return v
        name = "neg" if op == "-" and len(args) == 1 else op
        if name not in ARITH + EXACT + LIBM:
            raise UserError(f"operator {op!r} is not supported by emit")
        v = self.new(fmt)
        out.append(("op", v, name, args))
        self.lowered.ops.add((name, fmt))
        return v

    def run(self, formula) -> Lowered:
        x = Val("x", self.fmt)
        self.lowered = Lowered(x, [], x, self.fmt, formats={self.fmt})
        body: list = []
        r = self.into(self.walk(formula.body, {formula.arg: x}, self.fmt, body), self.fmt, body)
        if r.fmt is None:
            raise UserError("the formula's body is a truth value, not a number: emit needs a number")
        self.lowered.body, self.lowered.result = body, r
        return self.lowered


def _precision(prec) -> Format:
    name = getattr(prec, "name", str(prec))
    try:
        return get_format(name)
    except UserError:
        raise UserError(f"(! :precision {fc.abbreviate(name)} ...) names no format emit knows: use binary16, "
                        "bfloat16, binary32 or binary64") from None


def lower(formula, fmt: Format) -> Lowered:
    """The formulation `formula` in storage format `fmt` as statements (module docstring); UserError
    for a kernel, a primitive or an unknown operator."""
    if getattr(formula, "kernel", False):
        raise UserError(f"{formula.id} is a framework kernel, run as a black box: emit writes FPCore "
                        "formulations only (e.g. --formula softplus-tanh)")
    return _Lowerer(formula, fmt).run(formula)


def walk_statements(body: list):
    """Every statement of `body`, those inside if blocks included, in order."""
    for s in body:
        yield s
        if s[0] == "if":
            yield from walk_statements(s[3])
            yield from walk_statements(s[5])


def expression(r, s: tuple) -> str:
    """The right-hand side of a straight-line statement (every kind but "if") in renderer r's language:
    r.literal(value, fmt), r.truth(bool), r.op(op, args, fmt), r.compare(op, pairs), r.logic(op, args),
    r.convert(src, fmt) say how (c.py and python.py)."""
    kind, dst = s[0], s[1]
    if kind == "const":
        return r.literal(s[2], dst.fmt)
    if kind == "bool":
        return r.truth(s[2])
    if kind == "op":
        return r.op(s[2], s[3], dst.fmt)
    if kind == "cmp":
        return r.compare(s[2], s[3])
    if kind == "logic":
        return r.logic(s[2], s[3])
    if kind == "convert":
        return r.convert(s[2], dst.fmt)
    raise AssertionError(kind)
