"""An exported model's elementwise operations as terms, the Mish among them, and their FPCore text.

The readers (graphs/onnx_model.py, graphs/coreml_model.py) turn a model into a `Graph`: for every tensor an
elementwise node produces, a `Term`, the node's operation (an FPCore operation of
lang/operators.py, a conversion, or a constant) on the terms of its operands, in the precision of
the node's output tensor. A tensor made by anything else (a convolution, a graph input) is a
source: a leaf of the terms that read it.

A Mish of the graph is a term t with a subterm a (a source, or an elementwise result: mish of
x + b is found as mish of that sum) such that t, every other leaf a constant, equals mish(a): checked
in binary64 at fixed points against mpmath (any spelling of the decomposition is found: the fused
node, softplus written as log(exp(x) + 1) or log1p, tanh written out), and not inside a larger such
term.

Its FPCore text keeps the graph's rounding: each operation is evaluated in the precision its output
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


MAX_OPS = 40  # the deepest term kept: its FPCore, one annotation per operation at most, nests within fc.MAX_DEPTH
CUT = (f"a chain of more than {MAX_OPS} elementwise operations is read as a source where it gets deeper "
       f"(an FPCore expression nests at most {fc.MAX_DEPTH} brackets)")


def capped(t: Term, depth: dict) -> tuple[Term, bool]:
    """(t, False), or (a source in t's place, True) when t is more than MAX_OPS operations deep;
    `depth` remembers each kept term's depth by id (the readers keep every term they make)."""
    d = 1 + max((depth.get(id(a), 0) for a in t.args), default=0) if t.args else 0
    if d > MAX_OPS:
        src = Term("source", precision=t.precision, tensor=t.tensor, node=t.node)
        depth[id(src)] = 0
        return src, True
    depth[id(t)] = d
    return t, False


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


def _value(t: Term, x: float, arg: Term) -> float:
    """t in binary64 with the term `arg` at value x (a plain check value, no rounding model: finding, not
    auditing); NaN where t depends on another source."""
    if t is arg:
        return x
    if t.op == "source":
        return math.nan
    if t.op == "const":
        return float(t.value) if t.value is not None else float(t.node)  # an infinite constant: node "inf", "-inf"
    v = [_value(a, x, arg) for a in t.args]
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


def _inside(t: Term, stop: Term | None = None) -> list:
    """The distinct terms t is made of (t first), not looking inside `stop`."""
    out, seen = [], set()

    def walk(u):
        if id(u) in seen:
            return
        seen.add(id(u))
        out.append(u)
        if u is not stop:
            for a in u.args:
                walk(a)

    walk(t)
    return out


def _mish_values() -> list:
    import mpmath

    return [float(x * mpmath.tanh(mpmath.log1p(mpmath.exp(x)))) for x in _POINTS]


_MISH = []
_TRANSCENDENTAL = frozenset({"exp", "exp2", "expm1", "log", "log1p", "tanh", "softplus", "mish", "pow"})


def is_mish(t: Term, arg: Term) -> bool:
    """t, as a function of its subterm `arg` (every other leaf a constant), equals mish at the check
    points (relative 1e-2: an fp16 graph's rounding passes, any other function fails by far)."""
    if not _MISH:
        _MISH.extend(_mish_values())
    for x, want in zip(_POINTS, _MISH):
        if not abs(_value(t, x, arg) - want) <= 1e-2 * abs(want):
            return False
    return True


def argument(t: Term) -> Term | None:
    """The subterm a of t with t = mish(a) (module docstring); None if there is none. Of several (a
    conversion of a, and a), the innermost: the Mish keeps the graph's conversion of its input."""
    if t.op in ("source", "const") or not any(u.op in _TRANSCENDENTAL for u in _inside(t)):
        return None
    found, within = None, t
    while True:
        nxt = next((a for a in _inside(within)[1:] if a.op != "const" and is_mish(t, a)), None)
        if nxt is None:
            return found
        found = within = nxt


def find_mish(g: Graph, order: list) -> list[Found]:
    """Every Mish of the graph (module docstring), in graph order; `order` lists the tensors in the
    order their nodes appear."""
    hits = []
    for name in order:
        t = g.terms.get(name)
        a = argument(t) if t is not None else None
        if a is not None:
            hits.append((t, a))
    inner = {id(s) for h, a in hits for s in _inside(h, a)[1:] if s is not a}  # mish(mish(x)): two
    rank = {t: i for i, t in enumerate(order)}
    out = []
    for h, a in hits:
        if id(h) in inner:
            continue
        parts = [p for p in _inside(h, a) if p is not a]
        names = []
        for n in (p.node for p in parts if p.op not in ("source", "const") and p.node):
            if n not in names:
                names.append(n)
        names.sort(key=lambda n: min((rank.get(p.tensor, 0) for p in parts if p.node == n), default=0))
        precs = []
        for p in parts:
            if p.op not in ("source", "const", "cast") and p.precision and p.precision not in precs:
                precs.append(p.precision)
        out.append(Found(h, a, tuple(names), tuple(precs)))
    return out


# ---------------------------------------------------------------- FPCore


def body(t: Term, ctx: str, source: Term, arg: str = "x") -> fc.Expr:
    """t as an FPCore expression of `source` (the variable `arg`) evaluated in precision `ctx` (module
    docstring)."""
    if t is source:
        return fc.Var(arg)
    if t.op == "source":  # not reached for a Found (its term has no other source)
        raise ValueError(f"tensor {t.tensor!r} is another source")
    if t.op == "const" and t.value is None:  # an infinite constant
        return fc.Const("INFINITY") if t.node == "inf" else fc.Op("-", (fc.Const("INFINITY"),))
    if t.op == "const":
        return fc.Num(t.value)
    prec = t.precision or ctx
    if t.op == "cast":
        inner = body(t.args[0], prec, source, arg)
    else:
        inner = fc.Op(t.op, tuple(body(a, prec, source, arg) for a in t.args))
    if prec == ctx:
        return inner
    return fc.Annot(((":precision", fc.Symbol(prec)),), inner)


def fpcore_text(found: Found, ident: str, name: str, source: str, semantics: str) -> str:
    """The FPCore file of a Mish found in a graph."""
    prec = found.source.precision or "binary32"
    e = body(found.term, prec, found.source)
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
