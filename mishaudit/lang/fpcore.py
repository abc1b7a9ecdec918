"""A reader and printer for the FPCore subset activation formulas need.

FPCore is the FPBench interchange format (also read and written by Herbie,
FPTaylor and Daisy). Supported: `(FPCore [id] (x ...) props... body)`;
properties `:name :description :cite :pre :precision :spec` and `:mishaudit-*`
(`:spec` is read as an expression);
`let`, `let*`, `if`; `+ - * /` (unary `-`), `fabs fmax fmin copysign sqrt
exp expm1 log log1p tanh pow fma`; `< > <= >= == !=`, `and or not`; numbers
(decimal, rational `p/q`, hexadecimal `0x1.8p3`), `INFINITY NAN E PI LN2
TRUE FALSE`; the `!` annotation `(! :precision binary32 expr)`.

Text is parsed into a tree of frozen dataclasses, never evaluated as code.
Numbers are kept exactly as Fractions. Errors name the file, line and column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Union

from mishaudit.errors import UserError

# ---------------------------------------------------------------- the tree

Pos = tuple  # (line, column), 1-based; not part of a node's identity


@dataclass(frozen=True)
class _Node:
    """Every expression node carries where it was read (keyword-only, outside equality)."""

    pos: Pos = field(default=(0, 0), compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class Num(_Node):
    value: Fraction


@dataclass(frozen=True)
class Const(_Node):
    name: str  # INFINITY NAN E PI LN2 TRUE FALSE


@dataclass(frozen=True)
class Var(_Node):
    name: str


@dataclass(frozen=True)
class Op(_Node):
    op: str
    args: tuple


@dataclass(frozen=True)
class If(_Node):
    cond: "Expr"
    then: "Expr"
    other: "Expr"


@dataclass(frozen=True)
class Let(_Node):
    bindings: tuple  # ((name, Expr), ...)
    body: "Expr"
    sequential: bool  # let* when True


@dataclass(frozen=True)
class Annot(_Node):
    props: tuple  # ((":key", value), ...)
    body: "Expr"


Expr = Union[Num, Const, Var, Op, If, Let, Annot]


@dataclass(frozen=True)
class Symbol:
    """A bare symbol inside a property value (e.g. binary32)."""

    name: str


@dataclass(frozen=True)
class FPCore:
    ident: str | None
    args: tuple  # argument names
    props: tuple  # ((":key", value), ...) in file order
    body: Expr

    def prop(self, key: str, default=None):
        for k, v in self.props:
            if k == key:
                return v
        return default


CONSTANTS = {"INFINITY", "NAN", "E", "PI", "LN2", "TRUE", "FALSE"}
ARITY = {
    "+": (2,), "-": (1, 2), "*": (2,), "/": (2,),
    "fabs": (1,), "sqrt": (1,), "exp": (1,), "expm1": (1,), "log": (1,), "log1p": (1,), "tanh": (1,),
    "fmax": (2,), "fmin": (2,), "copysign": (2,), "pow": (2,), "fma": (3,),
    "not": (1,),
}
VARIADIC = {"<", ">", "<=", ">=", "==", "!=", "and", "or"}  # two or more operands
COMPARISONS = {"<", ">", "<=", ">=", "==", "!="}
BOOLEAN_OPS = COMPARISONS | {"and", "or", "not"}
OPERATORS = set(ARITY) | VARIADIC

# ---------------------------------------------------------------- reading


class FPCoreError(UserError):
    pass


@dataclass
class _Tok:
    kind: str  # "(" ")" "str" "atom"
    text: str
    line: int
    col: int


_TOKEN = re.compile(r'\s+|;[^\n]*|[()\[\]]|"(?:[^"\\]|\\.)*"|[^\s()\[\]";]+')


def _tokenize(text: str, src: str) -> list[_Tok]:
    toks, pos, line, col = [], 0, 1, 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:  # an unterminated string
            raise FPCoreError(f"{src}:{line}:{col}: unterminated string: close it with a double quote")
        s = m.group(0)
        if s in "([":
            toks.append(_Tok("(", s, line, col))
        elif s in ")]":
            toks.append(_Tok(")", s, line, col))
        elif s.startswith('"'):
            toks.append(_Tok("str", re.sub(r"\\(.)", r"\1", s[1:-1]), line, col))
        elif not s[0].isspace() and not s.startswith(";"):
            toks.append(_Tok("atom", s, line, col))
        nl = s.count("\n")
        if nl:
            line += nl
            col = len(s) - s.rfind("\n")
        else:
            col += len(s)
        pos = m.end()
    return toks


@dataclass
class _List:
    items: list
    line: int
    col: int
    bracket: str


def _read_sexps(toks: list[_Tok], src: str) -> list:
    stack: list[_List] = [_List([], 1, 1, "")]
    for t in toks:
        if t.kind == "(":
            stack.append(_List([], t.line, t.col, t.text))
        elif t.kind == ")":
            if len(stack) == 1:
                raise FPCoreError(f"{src}:{t.line}:{t.col}: unexpected '{t.text}': remove it or add the matching opening bracket")
            lst = stack.pop()
            if {"(": ")", "[": "]"}[lst.bracket] != t.text:
                raise FPCoreError(f"{src}:{t.line}:{t.col}: '{t.text}' closes '{lst.bracket}' opened at {lst.line}:{lst.col}: use matching brackets")
            stack[-1].items.append(lst)
        else:
            stack[-1].items.append(t)
    if len(stack) > 1:
        lst = stack[-1]
        raise FPCoreError(f"{src}:{lst.line}:{lst.col}: '{lst.bracket}' is never closed: add the missing ')'")
    return stack[0].items


_DEC = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_RAT = re.compile(r"[+-]?\d+/\d*[1-9]\d*$")
_HEX = re.compile(r"([+-]?)0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?(?:[pP]([+-]?\d+))?$")


def parse_number(s: str) -> Fraction | None:
    """The exact value of an FPCore number literal, or None if `s` is not one."""
    if _DEC.match(s):
        return Fraction(s)
    if _RAT.match(s):
        n, d = s.split("/")
        return Fraction(int(n), int(d))
    m = _HEX.match(s)
    if m and (m.group(2) or m.group(3)):
        sign, ip, fp, ex = m.group(1), m.group(2) or "0", m.group(3) or "", m.group(4) or "0"
        v = Fraction(int(ip + fp, 16), 16 ** len(fp)) * Fraction(2) ** int(ex)
        return -v if sign == "-" else v
    return None


_SYMBOL = re.compile(r"[A-Za-z~!@$%^&*_\-+=<>.?/:][A-Za-z0-9~!@$%^&*_\-+=<>.?/:]*$")


class _Reader:
    def __init__(self, src: str):
        self.src = src

    def err(self, node, msg: str) -> FPCoreError:
        line, col = (node.line, node.col) if node is not None else (1, 1)
        return FPCoreError(f"{self.src}:{line}:{col}: {msg}")

    def symbol(self, node) -> str:
        if not isinstance(node, _Tok) or node.kind != "atom" or parse_number(node.text) is not None or not _SYMBOL.match(node.text):
            raise self.err(node, "expected a symbol here")
        return node.text

    def prop_value(self, node):
        if isinstance(node, _List):
            return tuple(self.prop_value(n) for n in node.items)
        if node.kind == "str":
            return node.text
        num = parse_number(node.text)
        return num if num is not None else Symbol(node.text)

    def props(self, items: list, i: int, what: str):
        """Read `:key value` pairs from items[i:] while they start with ':'; return (props, next index)."""
        out = []
        while i < len(items) and isinstance(items[i], _Tok) and items[i].kind == "atom" and items[i].text.startswith(":"):
            if i + 1 >= len(items):
                raise self.err(items[i], f"property {items[i].text} has no value: give it one or remove it")
            key = items[i].text
            # :spec is an expression (FPBench: the exact function approximated): read as one
            out.append((key, self.expr(items[i + 1]) if key == ":spec" else self.prop_value(items[i + 1])))
            i += 2
        return tuple(out), i

    def expr(self, node) -> Expr:
        if isinstance(node, _Tok):
            pos = (node.line, node.col)
            if node.kind == "str":
                raise self.err(node, "a string is not an expression: use a number or a variable")
            num = parse_number(node.text)
            if num is not None:
                return Num(num, pos=pos)
            if node.text in CONSTANTS:
                return Const(node.text, pos=pos)
            if node.text in OPERATORS or node.text in ("if", "let", "let*", "!"):
                raise self.err(node, f"operator {node.text!r} used as a value: write ({node.text} ...)")
            return Var(self.symbol(node), pos=pos)
        items, pos = node.items, (node.line, node.col)
        if not items:
            raise self.err(node, "empty expression (): write an operation or a value")
        head = items[0]
        if not isinstance(head, _Tok) or head.kind != "atom":
            raise self.err(node, "an operation must start with an operator name")
        op = head.text
        if op == "if":
            if len(items) != 4:
                raise self.err(node, "if takes three parts: (if condition then else)")
            return If(self.expr(items[1]), self.expr(items[2]), self.expr(items[3]), pos=pos)
        if op in ("let", "let*"):
            if len(items) != 3 or not isinstance(items[1], _List):
                raise self.err(node, f"{op} is written ({op} ([name expr] ...) body)")
            binds = []
            for b in items[1].items:
                if not isinstance(b, _List) or len(b.items) != 2:
                    raise self.err(b if isinstance(b, _List) else b, "a binding is written [name expr]")
                binds.append((self.symbol(b.items[0]), self.expr(b.items[1])))
            return Let(tuple(binds), self.expr(items[2]), op == "let*", pos=pos)
        if op == "!":
            props, i = self.props(items, 1, "!")
            if i != len(items) - 1:
                raise self.err(node, "! is written (! :precision binary32 expr): properties, then one expression")
            return Annot(props, self.expr(items[i]), pos=pos)
        args = tuple(self.expr(a) for a in items[1:])
        if op in VARIADIC:
            if len(args) < 2:
                raise self.err(head, f"{op} takes two or more operands")
        elif op in ARITY:
            if len(args) not in ARITY[op]:
                n = " or ".join(map(str, ARITY[op]))
                raise self.err(head, f"{op} takes {n} operand(s), got {len(args)}")
        else:
            raise self.err(head, f"unknown operator {op!r}: supported are {', '.join(sorted(OPERATORS))}, if, let, let*, !")
        return Op(op, args, pos=pos)


def parse(text: str, src: str = "<string>") -> FPCore:
    """Parse the one FPCore form in `text`; `src` names the file in error messages."""
    r = _Reader(src)
    sexps = _read_sexps(_tokenize(text, src), src)
    if len(sexps) != 1:
        where = sexps[1] if len(sexps) > 1 else None
        raise r.err(where, f"expected exactly one (FPCore ...) form, found {len(sexps)}")
    top = sexps[0]
    if not isinstance(top, _List) or not top.items or not isinstance(top.items[0], _Tok) or top.items[0].text != "FPCore":
        raise r.err(top if isinstance(top, _List) else top, "the file must hold one (FPCore ...) form")
    items, i = top.items, 1
    ident = None
    if i < len(items) and isinstance(items[i], _Tok):
        ident = r.symbol(items[i])
        i += 1
    if i >= len(items) or not isinstance(items[i], _List):
        raise r.err(top, "FPCore needs an argument list, e.g. (FPCore name (x) ... body)")
    args = tuple(r.symbol(a) for a in items[i].items)
    if len(set(args)) != len(args):
        raise r.err(items[i], "argument names must be distinct")
    props, i = r.props(items, i + 1, "FPCore")
    if i != len(items) - 1:
        where = items[i] if i < len(items) else top
        raise r.err(where, "FPCore takes properties then exactly one body expression")
    return FPCore(ident, args, props, r.expr(items[i]))


# ---------------------------------------------------------------- printing


def format_number(v: Fraction) -> str:
    """Exact text for a number: an integer, a finite decimal, or p/q."""
    if v.denominator == 1:
        return str(v.numerator)
    d, twos, fives = v.denominator, 0, 0
    while d % 2 == 0:
        d //= 2
        twos += 1
    while d % 5 == 0:
        d //= 5
        fives += 1
    if d != 1:
        return f"{v.numerator}/{v.denominator}"
    k = max(twos, fives)
    scaled = v * 10**k  # an integer
    n = abs(scaled.numerator)
    s = str(n).rjust(k + 1, "0")
    out = s[:-k] + "." + s[-k:]
    return ("-" if v < 0 else "") + out


def _fmt_value(v) -> str:
    if isinstance(v, (Num, Const, Var, Op, If, Let, Annot)):
        return to_text(v)
    if isinstance(v, tuple):
        return "(" + " ".join(_fmt_value(x) for x in v) + ")"
    if isinstance(v, Fraction):
        return format_number(v)
    if isinstance(v, Symbol):
        return v.name
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_text(e: Expr) -> str:
    """FPCore text of an expression (the inverse of parsing, up to spacing)."""
    if isinstance(e, Num):
        return format_number(e.value)
    if isinstance(e, (Const, Var)):
        return e.name
    if isinstance(e, Op):
        return "(" + " ".join([e.op, *(to_text(a) for a in e.args)]) + ")"
    if isinstance(e, If):
        return f"(if {to_text(e.cond)} {to_text(e.then)} {to_text(e.other)})"
    if isinstance(e, Let):
        b = " ".join(f"[{n} {to_text(v)}]" for n, v in e.bindings)
        return f"({'let*' if e.sequential else 'let'} ({b}) {to_text(e.body)})"
    if isinstance(e, Annot):
        p = " ".join(f"{k} {_fmt_value(v)}" for k, v in e.props)
        return f"(! {p} {to_text(e.body)})"
    raise TypeError(f"not an FPCore expression: {e!r}")


def core_to_text(core: FPCore) -> str:
    """FPCore text of a whole FPCore form, one property per line."""
    head = "(FPCore " + (core.ident + " " if core.ident else "") + "(" + " ".join(core.args) + ")"
    lines = [head] + [f"  {k} {_fmt_value(v)}" for k, v in core.props] + ["  " + to_text(core.body) + ")"]
    return "\n".join(lines)


def children(e: Expr) -> tuple:
    """Direct sub-expressions of `e`, in evaluation order."""
    if isinstance(e, Op):
        return e.args
    if isinstance(e, If):
        return (e.cond, e.then, e.other)
    if isinstance(e, Let):
        return tuple(v for _, v in e.bindings) + (e.body,)
    if isinstance(e, Annot):
        return (e.body,)
    return ()


def free_names(e: Expr, bound: frozenset = frozenset()) -> set[str]:
    """Names used in `e` that no enclosing let binds."""
    if isinstance(e, Var):
        return set() if e.name in bound else {e.name}
    if isinstance(e, Let):
        out, inner = set(), set(bound)
        for n, v in e.bindings:
            out |= free_names(v, frozenset(inner) if e.sequential else bound)
            if e.sequential:
                inner.add(n)
        return out | free_names(e.body, bound | {n for n, _ in e.bindings})
    out = set()
    for c in children(e):
        out |= free_names(c, bound)
    return out
