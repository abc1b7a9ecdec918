"""A reader and printer for the FPCore subset activation formulas need.

FPCore is the FPBench interchange format (also read and written by Herbie,
FPTaylor and Daisy). Supported: `(FPCore [id] (x ...) props... body)`;
properties `:name :description :cite :pre :precision :spec` and `:mishaudit-*`
(`:spec` is read as an expression);
`let`, `let*`, `if`; the operations of lang/operators.py's table (`+ - * /`, unary `-`,
`fabs fmax fmin copysign sqrt exp exp2 expm1 log log1p tanh pow fma`); `< > <= >= == !=`, `and or not`; numbers
(decimal, rational `p/q`, hexadecimal `0x1.8p3`), `INFINITY NAN E PI LN2
TRUE FALSE`; the `!` annotation `(! :precision binary32 expr)`.

Text is parsed into a tree of frozen dataclasses, never evaluated as code.
Numbers are kept exactly as Fractions. Errors name the file, line and column.

Every input is bounded before work starts (FPCoreError otherwise, naming the limit):
a text holds at most MAX_CHARS characters; brackets nest at most MAX_DEPTH levels,
the (FPCore ...) form itself counted (Mish formulas nest fewer than 20; the deepest walk
of the pipeline, pickling a tree for worker processes, takes 4 frames a level: about
400 of Python's 1000 at MAX_DEPTH, tested in tests/test_bounds.py); a number
literal has at most MAX_DIGITS significant digits (in each of p and q of p/q) and, unless
0, an order of magnitude within +-MAX_EXP10 (decimal: 1e-10000 <= |v| < 1e10001) or
+-MAX_EXP2 (hexadecimal: 0x1p-40000 <= |v| < 0x1p40001). Inside these limits a literal
is exact whatever its size (beyond a format's range it rounds to inf or 0 there), and
the printer writes every value the reader accepts as text the reader reads back.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Union

from mishaudit.errors import UserError
from mishaudit.lang.operators import OPERATORS as OPERATORS_TABLE

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
VARIADIC = {"<", ">", "<=", ">=", "==", "!=", "and", "or"}  # two or more operands
ARITY = {name: o.arity for name, o in OPERATORS_TABLE.items() if name not in VARIADIC}
COMPARISONS = {"<", ">", "<=", ">=", "==", "!="}
BOOLEAN_OPS = COMPARISONS | {"and", "or", "not"}
OPERATORS = set(ARITY) | VARIADIC

# ---------------------------------------------------------------- reading


class FPCoreError(UserError):
    pass


@dataclass(slots=True)
class _Tok:
    kind: str  # "(" ")" "str" "atom"
    text: str
    line: int
    col: int


MAX_CHARS = 200_000  # characters of one FPCore text (the shipped formula files hold under 1,200)
MAX_DEPTH = 100  # levels of nested brackets, (FPCore ...) included
MAX_DIGITS = 4000  # significant digits of a number literal (of p and of q in p/q)
MAX_EXP10 = 10_000  # |E| of a decimal literal's value d.ddd * 10^E
MAX_EXP2 = 40_000  # |P| of a hexadecimal literal's value 0x1.xxx * 2^P

# one match per token; runs of spaces and comments are one match; a '"' without its closing quote
# matches only the last alternative (the string alternatives are unrolled loops: linear, no backtracking)
_TOKEN = re.compile(r'(?P<skip>(?:\s+|;[^\n]*)+)|(?P<open>[(\[])|(?P<close>[)\]])'
                    r'|(?P<str>"[^"\\]*(?:\\.[^"\\]*)*")|(?P<atom>[^\s()\[\]";]+)|(?P<bad>")', re.S)
_ESCAPE = re.compile(r"\\(.)", re.S)


def _tokenize(text: str, src: str):
    """The tokens of `text`, in order (a generator: a reader's error stops it early); FPCoreError for
    an unterminated string. Linear in len(text)."""
    line, start = 1, 0  # start: index of the first character of the current line
    for m in _TOKEN.finditer(text):
        kind, s = m.lastgroup, m.group()
        if kind == "skip" or kind == "str":
            if kind == "str":
                yield _Tok("str", _ESCAPE.sub(r"\1", s[1:-1]), line, m.start() - start + 1)
            nl = s.count("\n")
            if nl:
                line += nl
                start = m.start() + s.rindex("\n") + 1
        elif kind == "atom":
            yield _Tok("atom", s, line, m.start() - start + 1)
        elif kind == "bad":
            raise FPCoreError(f"{src}:{line}:{m.start() - start + 1}: unterminated string: close it with a double quote")
        else:
            yield _Tok("(" if kind == "open" else ")", s, line, m.start() - start + 1)


@dataclass(slots=True)
class _List:
    items: list
    line: int
    col: int
    bracket: str


def _read_sexps(toks, src: str) -> list:
    """The bracketed lists of tokens `toks`; FPCoreError for unbalanced brackets or nesting beyond MAX_DEPTH."""
    stack: list[_List] = [_List([], 1, 1, "")]
    for t in toks:
        if t.kind == "(":
            if len(stack) > MAX_DEPTH:
                raise FPCoreError(f"{src}:{t.line}:{t.col}: brackets nested deeper than {MAX_DEPTH} levels: "
                                  "flatten the expression, e.g. name its parts with let*")
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


# unambiguous patterns (no two ways to match a text): linear even on a long atom that fails them
_DEC = re.compile(r"[+-]?([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([+-]?[0-9]+))?")
_RAT = re.compile(r"[+-]?([0-9]+)/([0-9]+)")  # q = 0 is not a number
_HEX = re.compile(r"([+-]?)0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?(?:[pP]([+-]?[0-9]+))?")


class NumberTooLarge(FPCoreError):
    """A number literal outside the reader's limits, found before any big number is built.

    `limit` names the limit broken, `within` the magnitudes allowed (None for too many digits);
    the message (no position) proposes a fix; callers with a position or an option prepend it."""

    def __init__(self, literal: str, limit: str, within: str | None):
        self.literal, self.limit, self.within = literal, limit, within
        fix = ("write INFINITY or 0, or a number in that range" if within else
               f"round it to at most {MAX_DIGITS} significant digits (17 pin down a binary64 value)")
        super().__init__(f"number {abbreviate(literal)} is beyond the reader's limits ({limit}): {fix}")


def abbreviate(s: str, keep: int = 20) -> str:
    """`s`, or its first and last `keep` characters around '...' and its length (for messages)."""
    return s if len(s) <= 2 * keep + 20 else f"{s[:keep]}...{s[-keep:]} ({len(s)} characters)"


_DEC_RANGE = f"1e-{MAX_EXP10} <= |x| < 1e{MAX_EXP10 + 1}"
_HEX_RANGE = f"0x1p-{MAX_EXP2} <= |x| < 0x1p{MAX_EXP2 + 1}"


def _significant(digits: str, s: str, what: str = "significant digits") -> str:
    """`digits` without its leading zeros; NumberTooLarge when more than MAX_DIGITS remain."""
    sig = digits.lstrip("0")
    if len(sig) > MAX_DIGITS:
        raise NumberTooLarge(s, f"at most {MAX_DIGITS} {what}, not {len(sig)}", None)
    return sig


def _order(lead: int, ex: str | None, limit: int, s: str, within: str) -> int:
    """lead + the exponent `ex` (text, None for 0), the literal's order of magnitude; NumberTooLarge when
    beyond +-limit (an exponent of more than 7 digits is, whatever the digits; int() never sees it)."""
    e = ex.lstrip("+-").lstrip("0") if ex else ""
    order = lead + (0 if not e or len(e) > 7 else int(ex))
    if len(e) > 7 or abs(order) > limit:
        raise NumberTooLarge(s, f"magnitude {within}", within)
    return order


def parse_number(s: str) -> Fraction | None:
    """The exact value of an FPCore number literal, or None if `s` is not one (ASCII digits only).

    NumberTooLarge (an FPCoreError) beyond the limits, judged on the text before any big number is
    built: at most MAX_DIGITS significant digits (leading zeros not counted; in each of p and q of
    p/q), and a non-zero value's order of magnitude, E in d.ddd * 10^E (decimal) or P in 1.xxx * 2^P
    (hexadecimal), within +-MAX_EXP10 and +-MAX_EXP2 (0 may have any exponent)."""
    if not s or s[0] not in "0123456789+-.":  # a name: most atoms
        return None
    m = _DEC.fullmatch(s)
    if m:
        ip, _, fp = m.group(1).partition(".")
        sig = _significant(ip + fp, s)
        if not sig:
            return Fraction(0)
        # the leading digit stands at 10^(len(sig) - len(fp) - 1) before the exponent
        order = _order(len(sig) - len(fp) - 1, m.group(2), MAX_EXP10, s, _DEC_RANGE)
        k = order - len(sig) + 1  # value = int(sig) * 10^k
        v = Fraction(int(sig) * 10**k) if k >= 0 else Fraction(int(sig), 10**-k)
        return -v if s.startswith("-") else v
    m = _RAT.fullmatch(s)
    if m and m.group(2).strip("0"):
        what = "significant digits in each of p and q of p/q"
        v = Fraction(int(_significant(m.group(1), s, what) or "0"), int(_significant(m.group(2), s, what)))
        return -v if s.startswith("-") else v
    m = _HEX.fullmatch(s)
    if m and (m.group(2) or m.group(3)):
        sign, ip, fp = m.group(1), m.group(2) or "", m.group(3) or ""
        sig = _significant(ip + fp, s, "significant hexadecimal digits")
        if not sig:
            return Fraction(0)
        n = int(sig, 16)
        order = _order(n.bit_length() - 1 - 4 * len(fp), m.group(4), MAX_EXP2, s, _HEX_RANGE)
        k = order - n.bit_length() + 1  # value = n * 2^k
        v = Fraction(n << k) if k >= 0 else Fraction(n, 1 << -k)
        return -v if sign == "-" else v
    return None


def parse_real(s: str) -> float | None:
    """The binary64 value nearest to number literal `s` (correctly rounded; +-inf beyond binary64's
    range), None if `s` is not one; NumberTooLarge outside the limits (parse_number)."""
    q = parse_number(s)
    if q is None:
        return None
    try:
        return float(q)
    except OverflowError:
        return math.inf if q > 0 else -math.inf


_SYMBOL = re.compile(r"[A-Za-z~!@$%^&*_\-+=<>.?/:][A-Za-z0-9~!@$%^&*_\-+=<>.?/:]*")


def is_symbol(s: str) -> bool:
    """Whether `s` is an FPCore symbol (a name): not a number, symbol characters only."""
    try:
        return parse_number(s) is None and _SYMBOL.fullmatch(s) is not None
    except NumberTooLarge:
        return False


class _Reader:
    def __init__(self, src: str):
        self.src = src

    def err(self, node, msg: str) -> FPCoreError:
        line, col = (node.line, node.col) if node is not None else (1, 1)
        return FPCoreError(f"{self.src}:{line}:{col}: {msg}")

    def number(self, node: _Tok) -> Fraction | None:
        """parse_number of an atom, a literal beyond the limits located at the atom."""
        try:
            return parse_number(node.text)
        except NumberTooLarge as exc:
            raise self.err(node, str(exc)) from None

    def symbol(self, node) -> str:
        if not isinstance(node, _Tok) or node.kind != "atom" or self.number(node) is not None or not _SYMBOL.fullmatch(node.text):
            raise self.err(node, "expected a symbol here")
        return node.text

    def prop_value(self, node):
        if isinstance(node, _List):
            return tuple(self.prop_value(n) for n in node.items)
        if node.kind == "str":
            return node.text
        num = self.number(node)
        return num if num is not None else Symbol(node.text)

    def props(self, items: list, i: int, what: str):
        """Read `:key value` pairs from items[i:] while they start with ':'; return (props, next index)."""
        out = []
        while i < len(items) and isinstance(items[i], _Tok) and items[i].kind == "atom" and items[i].text.startswith(":"):
            if i + 1 >= len(items):
                raise self.err(items[i], f"property {abbreviate(items[i].text)} has no value: give it one or remove it")
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
            num = self.number(node)
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
        n_args = len(items) - 1  # checked before the operands are read: a long list fails at once
        if op in VARIADIC:
            if n_args < 2:
                raise self.err(head, f"{op} takes two or more operands")
        elif op in ARITY:
            if n_args not in ARITY[op]:
                n = " or ".join(map(str, ARITY[op]))
                raise self.err(head, f"{op} takes {n} operand(s), got {n_args}")
        else:
            raise self.err(head, f"unknown operator {abbreviate(repr(op))}: supported are {', '.join(sorted(OPERATORS))}, if, let, "
                                 "let*, !")
        return Op(op, tuple(self.expr(a) for a in items[1:]), pos=pos)


def parse(text: str, src: str = "<string>") -> FPCore:
    """Parse the one FPCore form in `text`; `src` names the file in error messages."""
    r = _Reader(src)
    if len(text) > MAX_CHARS:
        raise FPCoreError(f"{src}: {len(text)} characters, more than the {MAX_CHARS} an FPCore text may hold: "
                          "give one formula per file (a formula file is about 1,000 characters)")
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

_CHUNK = 10**1000  # str() of an int stops at 4300 digits (sys.int_info.str_digits_check_threshold)


def _digits_of(n: int) -> str:
    """str(n) for an int n >= 0 of any size (str() of halves)."""
    if n < _CHUNK:
        return str(n)
    k = n.bit_length() * 3 // 20  # about half its digits
    hi, lo = divmod(n, 10**k)
    return _digits_of(hi) + _digits_of(lo).rjust(k, "0")


def fraction_text(v: Fraction) -> str:
    """str(v) ('n' or 'n/d') for a Fraction of any size (str() stops at 4300 digits)."""
    sign = "-" if v < 0 else ""
    n = _digits_of(abs(v.numerator))
    return f"{sign}{n}" if v.denominator == 1 else f"{sign}{n}/{_digits_of(v.denominator)}"


def _about(n: int) -> int:
    """The number of decimal digits of n >= 0, give or take one (from its bit length: no conversion)."""
    return n.bit_length() * 30103 // 100000 + 1


def _fives(n: int, cap: int) -> int:
    """The largest z <= cap with 5^z dividing n > 0 (a binary search: a few big divisions, not z)."""
    lo, hi = 0, cap
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if n % 5**mid == 0:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _twos_fives(d: int) -> tuple:
    """(a, b, rest): d = 2^a 5^b rest, rest prime to 10, d > 0."""
    twos = (d & -d).bit_length() - 1
    d >>= twos
    fives = _fives(d, d.bit_length() // 2)
    return twos, fives, d // 5**fives


def _tens(m: int) -> int:
    """The number of trailing decimal zeros of m > 0."""
    return _fives(m, (m & -m).bit_length() - 1)


def _plain(v: Fraction) -> str | None:
    """v as an integer, a finite decimal or p/q, None where that has more than about MAX_DIGITS characters."""
    sign, a = ("-" if v < 0 else ""), abs(v)
    twos, fives, rest = _twos_fives(a.denominator)
    if rest != 1:
        if _about(a.numerator) + _about(a.denominator) > MAX_DIGITS + 2:
            return None
        return f"{sign}{_digits_of(a.numerator)}/{_digits_of(a.denominator)}"
    k = max(twos, fives)
    n = a.numerator * (a.denominator and 10**k // a.denominator)  # a * 10^k, an integer
    if max(_about(n), k + 1) > MAX_DIGITS + 2:
        return None
    t = _digits_of(n)
    if k == 0:
        return sign + t
    t = t.rjust(k + 1, "0")
    return f"{sign}{t[:-k]}.{t[-k:]}"


def _compact(v: Fraction) -> list[str]:
    """Exact texts of v != 0 with at most about MAX_DIGITS digits: m e k (v a finite decimal),
    0x m p k (v dyadic), p/q."""
    sign, a = ("-" if v < 0 else ""), abs(v)
    twos, fives, rest = _twos_fives(a.denominator)
    out = []
    if rest == 1:  # a finite decimal: m * 10^e, m without trailing zeros
        k = max(twos, fives)
        m = a.numerator * (10**k // a.denominator)
        z = _tens(m)
        m //= 10**z
        if _about(m) <= MAX_DIGITS + 2:
            out.append(f"{sign}{_digits_of(m)}e{z - k}")
    if fives == 0 and rest == 1:  # a dyadic: m * 2^e, m odd
        m = a.numerator
        tz = (m & -m).bit_length() - 1
        out.append(f"{sign}0x{m >> tz:x}p{tz - twos}")
    if _about(a.numerator) + _about(a.denominator) <= MAX_DIGITS + 2:
        out.append(f"{sign}{_digits_of(a.numerator)}/{_digits_of(a.denominator)}")
    return out


def format_number(v: Fraction) -> str:
    """Exact text for a number: an integer, a finite decimal, or p/q; where that would be longer than
    about MAX_DIGITS characters, the shortest of m e k, 0x m p k and p/q the reader accepts. The reader
    reads any value it accepts back from this text (parse_number(format_number(v)) == v)."""
    plain = _plain(v)
    if plain is not None and len(plain) <= MAX_DIGITS:
        return plain
    texts = sorted(_compact(v), key=len)
    for t in texts:
        try:
            if parse_number(t) is not None:
                return t
        except NumberTooLarge:
            pass
    if texts:
        return texts[0]
    return ("-" if v < 0 else "") + f"{_digits_of(abs(v.numerator))}/{_digits_of(v.denominator)}"  # any size


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


@functools.lru_cache(maxsize=None)
def meaning(op: str) -> tuple:
    """(parameter name, expression): the real value of a primitive of the operator table as an
    FPCore expression of its operand (lang/operators.py `meaning`)."""
    core = parse(f"(FPCore (a) {OPERATORS_TABLE[op].meaning})", f"<meaning of {op}>")
    return core.args[0], core.body
