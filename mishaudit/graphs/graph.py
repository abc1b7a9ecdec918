"""An exported model's elementwise operations as terms, the Mish among them, and their FPCore text.

The readers (graphs/onnx_model.py, graphs/coreml_model.py) turn a model into a `Graph`: for every tensor an
elementwise node produces, a `Term`, the node's operation (an FPCore operation of
lang/operators.py, a conversion, or a constant) on the terms of its operands, in the precision of
the node's output tensor. A tensor made by anything else (a convolution, a graph input) is a
source: a leaf of the terms that read it.

A Mish of the graph is a term of one source whose value is mish of it: checked in binary64 at
fixed points against mpmath (any spelling of the decomposition is found: the fused node, softplus
written as log(exp(x) + 1) or log1p, tanh written out), and not inside a larger such term. Its
FPCore text keeps the graph's rounding: each operation is evaluated in the precision its output
tensor has, a conversion is a change of precision, `(! :precision P e)` wherever P differs from
the precision around it, the core's own precision that of the source tensor (audit it in that
format: `--dtype` of the source)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from fractions import Fraction

from mishaudit.lang import fpcore as fc

PRECISIONS = ("binary16", "bfloat16", "binary32", "binary64")


@dataclass(frozen=True)
class Term:
    op: str  # an FPCore operation, "source", "const" or "cast" (a conversion into `precision`)
    args: tuple = ()
    precision: str | None = None  # the output tensor's format (FPCore name); None: not a float format
    value: Fraction | None = None  # a constant's exact value (None for an infinite one: node "inf" or "-inf")
    tensor: str = ""  # the tensor it computes
    node: str = ""  # the graph node that computes it (its name or a made-up one)


@dataclass
class Graph:
    """What a reader found: terms by tensor name, and what the file says about itself."""

    path: str  # the model file, as the user named it
    kind: str  # "ONNX" or "Core ML"
    version: str  # opset(s) or deployment target
    terms: dict = field(default_factory=dict)  # tensor name -> Term
    semantics: list = field(default_factory=list)  # sentences: what the reader chose (expansions, primitives)
    skipped: dict = field(default_factory=dict)  # op type -> count of nodes not elementwise (sources)


@dataclass(frozen=True)
class Found:
    """A Mish of a graph."""

    term: Term
    source: Term
    nodes: tuple  # names of the nodes it spans, in graph order
    precisions: tuple  # the formats its operations compute in


# ---------------------------------------------------------------- finding them

_POINTS = (-9.0, -4.0, -1.75, -1.0, -0.4, 0.3, 0.9, 1.6, 3.0, 6.0)


def _value(t: Term, x: float) -> float:
    """t in binary64 at source value x (a plain check value, no rounding model: finding, not auditing)."""
    if t.op == "source":
        return x
    if t.op == "const":
        return float(t.value) if t.value is not None else float(t.node)  # an infinite constant: node "inf", "-inf"
    v = [_value(a, x) for a in t.args]
    try:
        if t.op == "cast":
            return v[0]
        if t.op in ("+", "-", "*", "/") and len(v) == 2:
            a, b = v
            return a + b if t.op == "+" else a - b if t.op == "-" else a * b if t.op == "*" else a / b
        if t.op == "-":
            return -v[0]
        one = {"exp": math.exp, "exp2": lambda a: 2.0**a, "expm1": math.expm1, "log": math.log, "log1p": math.log1p,
               "tanh": math.tanh, "sqrt": math.sqrt, "fabs": abs,
               "softplus": lambda a: a + math.log1p(math.exp(-a)) if a > 0 else math.log1p(math.exp(a)),
               "mish": lambda a: a * math.tanh(math.log1p(math.exp(a)))}
        if t.op in one:
            return one[t.op](v[0])
        two = {"fmax": max, "fmin": min, "pow": math.pow, "copysign": math.copysign}
        if t.op in two:
            return two[t.op](*v)
        if t.op == "fma":
            return v[0] * v[1] + v[2]
    except (ValueError, OverflowError, ZeroDivisionError):
        return math.nan
    return math.nan


def _sources(t: Term) -> set:
    if t.op == "source":
        return {t.tensor}
    out: set = set()
    for a in t.args:
        out |= _sources(a)
    return out


def _inside(t: Term) -> list:
    """The terms t is made of, t first."""
    out = [t]
    for a in t.args:
        out += _inside(a)
    return out


def is_mish(t: Term) -> bool:
    """t is a term of one source, with an operation, equal to mish at the check points (relative
    1e-2: an fp16 graph's rounding passes, any other function fails by far)."""
    import mpmath

    if t.op in ("source", "const") or len(_sources(t)) != 1:
        return False
    for x in _POINTS:
        want = float(x * mpmath.tanh(mpmath.log1p(mpmath.exp(x))))
        got = _value(t, x)
        if not abs(got - want) <= 1e-2 * abs(want):
            return False
    return True


def find_mish(g: Graph, order: list) -> list[Found]:
    """Every Mish of the graph (module docstring), in graph order; `order` lists the tensors in the
    order their nodes appear."""
    hits = [g.terms[t] for t in order if t in g.terms and is_mish(g.terms[t])]
    inner = {id(s) for h in hits for s in _inside(h)[1:]}
    out = []
    for h in hits:
        if id(h) in inner:
            continue
        parts = _inside(h)
        names = []
        for n in (p.node for p in parts if p.op not in ("source", "const") and p.node):
            if n not in names:
                names.append(n)
        rank = {t: i for i, t in enumerate(order)}
        names.sort(key=lambda n: min((rank.get(p.tensor, 0) for p in parts if p.node == n), default=0))
        src = next(p for p in parts if p.op == "source")
        precs = []
        for p in parts:
            if p.op not in ("source", "const", "cast") and p.precision and p.precision not in precs:
                precs.append(p.precision)
        out.append(Found(h, src, tuple(names), tuple(precs)))
    return out


# ---------------------------------------------------------------- FPCore


def body(t: Term, ctx: str, arg: str = "x") -> fc.Expr:
    """t as an FPCore expression evaluated in precision `ctx` (module docstring)."""
    if t.op == "source":
        return fc.Var(arg)
    if t.op == "const" and t.value is None:  # an infinite constant
        return fc.Const("INFINITY") if t.node == "inf" else fc.Op("-", (fc.Const("INFINITY"),))
    if t.op == "const":
        return fc.Num(t.value)
    prec = t.precision or ctx
    if t.op == "cast":
        inner = body(t.args[0], prec, arg)
    else:
        inner = fc.Op(t.op, tuple(body(a, prec, arg) for a in t.args))
    if prec == ctx:
        return inner
    return fc.Annot(((":precision", fc.Symbol(prec)),), inner)


def fpcore_text(found: Found, ident: str, name: str, source: str, semantics: str) -> str:
    """The FPCore file of a Mish found in a graph."""
    prec = found.source.precision or "binary32"
    e = body(found.term, prec)
    lines = [f"; imported by mishaudit import: {semantics}",
             f"(FPCore {ident} (x)",
             f"  :name {_string(name)}",
             f"  :description {_string('Mish as ' + source)}",
             f"  :precision {prec}",
             f"  :mishaudit-source {_string(source)}",
             f"  :mishaudit-used-by {_string('the model ' + source.split(':')[0])}",
             f"  {fc.to_text(e)})"]
    return "\n".join(lines) + "\n"


def _string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def identifier(stem: str, i: int, n: int) -> str:
    """An FPCore identifier for the i-th of n Mish of a model file named `stem`."""
    base = re.sub(r"[^A-Za-z0-9]+", "-", stem).strip("-").lower() or "model"
    if not base[0].isalpha():
        base = "m-" + base
    return base if n == 1 else f"{base}-{i + 1}"


# ---------------------------------------------------------------- structure


def normal(e: fc.Expr, env: dict | None = None, consts: dict | None = None) -> str:
    """A canonical text of what e computes: lets and named constants substituted, the operands of
    + and * (and of fmax, fmin) in a fixed order, precision annotations kept."""
    env = env or {}
    consts = consts or {}
    if isinstance(e, fc.Num):
        return fc.format_number(Fraction(e.value))
    if isinstance(e, fc.Var):
        if e.name in env:
            return env[e.name]
        if e.name in consts:
            return fc.format_number(Fraction(consts[e.name]))
        return "x"
    if isinstance(e, fc.Const):
        return e.name
    if isinstance(e, fc.Let):
        inner = dict(env)
        for n, sub in e.bindings:
            inner[n] = normal(sub, inner if e.sequential else env, consts)
        return normal(e.body, inner, consts)
    if isinstance(e, fc.Annot):
        prec = dict(e.props).get(":precision")
        return f"(! {getattr(prec, 'name', prec)} {normal(e.body, env, consts)})"
    if isinstance(e, fc.If):
        return f"(if {normal(e.cond, env, consts)} {normal(e.then, env, consts)} {normal(e.other, env, consts)})"
    args = [normal(a, env, consts) for a in e.args]
    if e.op in ("+", "*", "fmax", "fmin"):
        args.sort()
    return f"({e.op} {' '.join(args)})"
