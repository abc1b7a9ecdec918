"""Evaluate a formula tree on a numpy array of inputs, in a floating-point format.

Semantics (DESIGN.md):
- native: every operation's result is rounded to the working format, round to
  nearest even; constants are rounded to the working format.
  + - * / and sqrt in fp16/bf16 are computed in binary64 and rounded once
  (binary64 has p = 53 >= 2p'+2, so the double rounding is innocuous and the
  result is the correctly rounded one); binary32/binary64 use numpy's IEEE
  operations. Elementary functions (exp, expm1, log, log1p, tanh, pow) follow the
  policy's libm model (libm.py): `cr`, correctly rounded in the working format
  (the default), or `numpy`, numpy's own kernels.
- compute dtype C: inputs are storage-format values, every operation is rounded
  to C, the result is rounded once to the storage format.
- ftz: subnormal inputs and results are flushed to zero of the same sign.
- fma rounds once: a*b is exact in binary64 for formats up to binary32, the sum
  is formed exactly (TwoSum) and rounded to odd, then rounded to the format
  (round-to-odd then RN is correct when 53 >= p + 2); binary64 uses MPFR's fma.
- `(! :precision F e)` evaluates e in F; its operands are rounded into F.

Values travel as float64 arrays holding exact values of their format. Every
operation node can be recorded with its operands, its result and the mask of
inputs for which it lies on the taken branch (`live`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import mpmath
import numpy as np

from . import fpcore as fc
from . import libm
from .errors import UserError
from .formats import FP16, FP32, FP64, BF16, Format, flush_subnormals, get_format, round_fraction, round_to
from .registry import Formula


@dataclass(frozen=True)
class Policy:
    """How to evaluate: storage format, compute format (None = storage), flush to zero, and the libm
    model of the elementary functions ("cr" or "numpy", libm.py)."""

    storage: Format
    compute: Format | None = None
    ftz: bool = False
    libm: str = "cr"

    @property
    def work(self) -> Format:
        return self.compute or self.storage

    def describe(self) -> str:
        s = self.storage.name
        if self.compute and self.compute != self.storage:
            s += f" (computed in {self.compute.name})"
        return s + (" ftz" if self.ftz else "") + f", libm {self.libm}"


@dataclass
class Record:
    """One evaluated operation node."""

    node: fc.Expr
    label: str  # the let name bound to it, else its FPCore text
    op: str
    fmt: Format
    operands: list  # float64 arrays (or bool arrays for boolean operands)
    values: np.ndarray  # the rounded result (float64, or bool for conditions)
    live: np.ndarray  # bool: inputs for which this node is on the taken path


@dataclass
class Evaluation:
    y: np.ndarray  # the final result, storage-format values as float64
    records: list = field(default_factory=list)


def _const_value(name: str) -> Fraction | float:
    if name == "INFINITY":
        return np.inf
    if name == "NAN":
        return np.nan
    with mpmath.workprec(300):
        v = {"E": mpmath.e, "PI": mpmath.pi, "LN2": mpmath.ln2}[name]
        v = mpmath.mpf(v)
    man, exp = v.man_exp
    return Fraction(man) * Fraction(2) ** exp


def _round_exact(v, fmt: Format) -> float:
    return v if isinstance(v, float) else round_fraction(v, fmt)


def _fma_rto(a: np.ndarray, b: np.ndarray, c: np.ndarray, fmt: Format) -> np.ndarray:
    """RN_fmt(a*b + c) for operands of a format with p <= 24, via binary64 round-to-odd."""
    p = a * b  # exact: at most 48 significant bits, no overflow for p <= 24 formats
    s = p + c
    bb = s - p  # TwoSum: s + t == p + c exactly
    t = (p - (s - bb)) + (c - bb)
    # round to odd: an inexact s with an even significand moves one step towards p + c (its
    # encoding +-1; s != 0 when inexact). An exact zero sum keeps RN's sign, as s has it.
    bits = s.view(np.int64)
    bump = np.isfinite(s) & (t != 0) & ((bits & 1) == 0)
    step = np.where((t > 0) == (s > 0), 1, -1) * bump
    return round_to((bits + step).view(np.float64), fmt)


class Evaluator:
    """Evaluates one formula under one policy; `record=True` keeps every operation node."""

    def __init__(self, formula: Formula, policy: Policy, record: bool = False, constants_of: Format | None = None):
        self.formula = formula
        self.policy = policy
        self.record = record
        self.records: list[Record] = []
        # per-format constants follow the storage format (or `constants_of`, for a wider proxy run)
        self.consts = formula.constant_values(constants_of or policy.storage)

    # -- rounding helpers
    def _fix(self, v: np.ndarray, fmt: Format) -> np.ndarray:
        return flush_subnormals(v, fmt) if self.policy.ftz else v

    def _round(self, v: np.ndarray, fmt: Format) -> np.ndarray:
        return self._fix(round_to(v, fmt), fmt)

    def _in_fmt(self, v: np.ndarray, src: Format, dst: Format) -> np.ndarray:
        """Convert values of `src` into `dst` (rounding when dst is narrower)."""
        if src == dst or not isinstance(v, np.ndarray) or v.dtype == bool:
            return v
        return self._round(v, dst)

    def apply_op(self, op: str, args: list, fmt: Format) -> np.ndarray:
        """op applied once to operands `args` (values of fmt), rounded as the policy says."""
        if op in ("<", ">", "<=", ">=", "==", "!="):
            f = {"<": np.less, ">": np.greater, "<=": np.less_equal, ">=": np.greater_equal, "==": np.equal, "!=": np.not_equal}[op]
            out = np.ones(args[0].shape, dtype=bool)
            if op == "!=":  # FPCore: all pairwise distinct
                for i in range(len(args)):
                    for j in range(i + 1, len(args)):
                        out &= f(args[i], args[j])
                return out
            for a, b in zip(args, args[1:]):
                out &= f(a, b)
            return out
        if op == "and":
            return np.logical_and.reduce(args)
        if op == "or":
            return np.logical_or.reduce(args)
        if op == "not":
            return ~args[0]
        if op == "-" and len(args) == 1:
            return -args[0]
        if op == "fabs":
            return np.abs(args[0])
        if op == "copysign":
            return np.copysign(args[0], args[1])
        if op == "fmax":
            return np.fmax(args[0], args[1])
        if op == "fmin":
            return np.fmin(args[0], args[1])
        if op == "fma":
            a, b, c = args
            if fmt.p <= 24:
                return self._fix(_fma_rto(a, b, c, fmt), fmt)
            return self._fix(libm.fma(a, b, c, fmt), fmt)
        if op in ("+", "-", "*", "/", "sqrt"):
            f = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "sqrt": np.sqrt}[op]
            if fmt == FP32:  # binary32 arithmetic is correctly rounded in numpy
                return self._fix(f(*[a.astype(np.float32) for a in args]).astype(np.float64), fmt)
            return self._round(f(*args), fmt)  # binary64 (exact for fp64) then one rounding
        if op in libm.ELEMENTARY:
            return self._fix(libm.apply(self.policy.libm, op, args, fmt), fmt)
        raise UserError(f"operator {op!r} is not supported by the evaluator")

    # -- the tree walk; returns (values, format of the values)
    def walk(self, e: fc.Expr, env: dict, fmt: Format, live: np.ndarray, label: str | None = None):
        n = live.shape[0]
        if isinstance(e, fc.Num):
            return np.full(n, _round_exact(e.value, fmt)), fmt
        if isinstance(e, fc.Const):
            if e.name in ("TRUE", "FALSE"):
                return np.full(n, e.name == "TRUE"), fmt
            return np.full(n, _round_exact(_const_value(e.name), fmt)), fmt
        if isinstance(e, fc.Var):
            if e.name in env:
                v, vf = env[e.name]
                return self._in_fmt(v, vf, fmt), fmt
            return np.full(n, round_fraction(self.consts[e.name], fmt)), fmt
        if isinstance(e, fc.Let):
            inner = dict(env)
            for name, sub in e.bindings:
                v, vf = self.walk(sub, inner if e.sequential else env, fmt, live, label=name)
                inner[name] = (v, vf)
            return self.walk(e.body, inner, fmt, live, label)
        if isinstance(e, fc.If):
            c, _ = self.walk(e.cond, env, fmt, live)
            t, tf = self.walk(e.then, env, fmt, live & c, label)
            o, of = self.walk(e.other, env, fmt, live & ~c, label)
            v = np.where(c, self._in_fmt(t, tf, fmt), self._in_fmt(o, of, fmt))
            self._keep(e, label, "if", fmt, [c, t, o], v, live)
            return v, fmt
        if isinstance(e, fc.Annot):
            prec = dict(e.props).get(":precision")
            sub_fmt = fmt if prec is None else get_format(getattr(prec, "name", str(prec)))
            v, vf = self.walk(e.body, env, sub_fmt, live, label)
            return self._in_fmt(v, vf, fmt), fmt
        if isinstance(e, fc.Op):
            args = [self._in_fmt(*self.walk(a, env, fmt, live), fmt) for a in e.args]
            v = self.apply_op(e.op, args, fmt)
            self._keep(e, label, e.op, fmt, args, v, live)
            return v, fmt
        raise TypeError(e)

    def _keep(self, node, label, op, fmt, operands, values, live):
        if self.record:
            self.records.append(Record(node, label or fc.to_text(node), op, fmt, operands, values, live))

    def run(self, x: np.ndarray) -> Evaluation:
        x = np.asarray(x, dtype=np.float64)
        pol = self.policy
        work = pol.work
        xin = self._fix(x, pol.storage)
        xin = self._in_fmt(xin, pol.storage, work)
        live = np.ones(x.shape[0], dtype=bool)
        with np.errstate(all="ignore"):
            v, vf = self.walk(self.formula.body, {self.formula.arg: (xin, work)}, work, live)
            v = self._in_fmt(v, vf, work)
            y = self._round(v, pol.storage) if work != pol.storage else v
        return Evaluation(y, self.records)


def evaluate(formula: Formula, x: np.ndarray, policy: Policy, record: bool = False) -> Evaluation:
    """Evaluate `formula` on storage-format inputs `x` (float64) under `policy`."""
    return Evaluator(formula, policy, record).run(x)


__all__ = ["Policy", "Record", "Evaluation", "evaluate", "FP16", "BF16", "FP32", "FP64"]


# ---------------------------------------------------------------- binary32 fast path

_F32_BINARY = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide,
               "copysign": np.copysign, "fmax": np.fmax, "fmin": np.fmin}
_F32_UNARY = {"sqrt": np.sqrt, "fabs": np.abs}
_CMP = {"<": np.less, ">": np.greater, "<=": np.less_equal, ">=": np.greater_equal, "==": np.equal,
        "!=": np.not_equal}


class _Unsupported(Exception):
    pass


@dataclass
class _Prog32:
    consts: dict  # per-format constant name -> np.float32
    cache: dict  # id(node) -> canonical key, for the nodes shared through `memo`
    libm: str


def binary32_program(formula: Formula, policy: Policy, shared: frozenset = frozenset()):
    """A function from binary32 inputs (a float32 array) to the formula's outputs (float32), equal
    bit for bit to `evaluate(formula, x, policy).y` with fewer passes: values stay float32 arrays,
    + - * / sqrt are numpy's binary32 operations (correctly rounded), the elementary functions
    follow the policy's libm model. None unless the policy is plain binary32 (no compute format, no
    FTZ) and the tree has no precision annotation but binary32.

    `run(x, memo)`: subexpressions whose canonical key (see `subexpression_keys`) is in `shared`
    are stored in / taken from the dict `memo`, so formulations evaluated on the same inputs
    compute a common subexpression such as exp(x) once (same operations, same bits)."""
    if policy.storage is not FP32 or policy.compute not in (None, FP32) or policy.ftz:
        return None
    try:
        _check32(formula.body)
    except _Unsupported:
        return None
    consts = {k: np.float32(round_fraction(v, FP32)) for k, v in formula.constant_values(FP32).items()}
    keys = subexpression_keys(formula)
    prog = _Prog32(consts, {i: k for i, k in keys.items() if k in shared}, policy.libm)

    def run(x: np.ndarray, memo: dict | None = None) -> np.ndarray:
        with np.errstate(all="ignore"):
            y = _walk32(formula.body, {formula.arg: x}, prog, {} if memo is None else memo)
        return np.broadcast_to(y, x.shape).astype(np.float32)

    return run


def subexpression_keys(formula: Formula) -> dict:
    """id(operation node) -> a canonical text of what it computes from x in binary32 (let names
    replaced by their definitions, constants by their binary32 values)."""
    consts = formula.constant_values(FP32)
    out: dict = {}

    def key(e, env) -> str:
        if isinstance(e, fc.Num):
            return float(_round_exact(e.value, FP32)).hex()
        if isinstance(e, fc.Const):
            return e.name
        if isinstance(e, fc.Var):
            return env[e.name] if e.name in env else "c" + float(round_fraction(consts[e.name], FP32)).hex()
        if isinstance(e, fc.Let):
            inner = dict(env)
            for name, sub in e.bindings:
                inner[name] = key(sub, inner if e.sequential else env)
            return key(e.body, inner)
        if isinstance(e, fc.Annot):
            return key(e.body, env)
        if isinstance(e, fc.If):
            k = f"(if {key(e.cond, env)} {key(e.then, env)} {key(e.other, env)})"
        else:
            k = f"({e.op} {' '.join(key(a, env) for a in e.args)})"
        out[id(e)] = k  # by identity: equal-looking nodes may sit in different scopes
        return k

    key(formula.body, {formula.arg: "x"})
    return out


def shared_subexpressions(formulas: list) -> frozenset:
    """Canonical keys of operation nodes that occur in two or more of `formulas`."""
    from collections import Counter

    seen = Counter(k for f in formulas for k in set(subexpression_keys(f).values()))
    return frozenset(k for k, c in seen.items() if c > 1)


def _check32(e: fc.Expr) -> None:
    if isinstance(e, fc.Annot):
        prec = dict(e.props).get(":precision")
        if prec is not None and getattr(prec, "name", str(prec)) not in ("binary32", "fp32"):
            raise _Unsupported
    if isinstance(e, fc.Op) and e.op not in _F32_BINARY and e.op not in _F32_UNARY and e.op not in _CMP \
            and e.op not in libm.ELEMENTARY and e.op not in ("and", "or", "not", "fma", "-"):
        raise _Unsupported
    for sub in _children(e):
        _check32(sub)


def _children(e: fc.Expr) -> list:
    if isinstance(e, fc.Op):
        return list(e.args)
    if isinstance(e, fc.Let):
        return [s for _, s in e.bindings] + [e.body]
    if isinstance(e, fc.If):
        return [e.cond, e.then, e.other]
    if isinstance(e, fc.Annot):
        return [e.body]
    return []


def _walk32(e: fc.Expr, env: dict, prog: _Prog32, memo: dict):
    """Value of `e` as a float32 array or scalar (bool for conditions); nodes with a key in
    `prog.cache` (node id -> canonical key) go through `memo`."""
    k = prog.cache.get(id(e))
    if k is not None:
        if k not in memo:
            memo[k] = _eval32(e, env, prog, memo)
        return memo[k]
    return _eval32(e, env, prog, memo)


def _eval32(e: fc.Expr, env: dict, prog: _Prog32, memo: dict):
    if isinstance(e, fc.Num):
        return np.float32(_round_exact(e.value, FP32))
    if isinstance(e, fc.Const):
        if e.name in ("TRUE", "FALSE"):
            return np.bool_(e.name == "TRUE")
        return np.float32(_round_exact(_const_value(e.name), FP32))
    if isinstance(e, fc.Var):
        return env[e.name] if e.name in env else prog.consts[e.name]
    if isinstance(e, fc.Let):
        inner = dict(env)
        for name, sub in e.bindings:
            inner[name] = _walk32(sub, inner if e.sequential else env, prog, memo)
        return _walk32(e.body, inner, prog, memo)
    if isinstance(e, fc.If):
        return np.where(_walk32(e.cond, env, prog, memo), _walk32(e.then, env, prog, memo),
                        _walk32(e.other, env, prog, memo))
    if isinstance(e, fc.Annot):
        return _walk32(e.body, env, prog, memo)
    args = [_walk32(a, env, prog, memo) for a in e.args]
    op = e.op
    if op in _CMP:
        f = _CMP[op]
        if op == "!=":  # FPCore: all pairwise distinct
            pairs = [(args[i], args[j]) for i in range(len(args)) for j in range(i + 1, len(args))]
        else:
            pairs = list(zip(args, args[1:]))
        return np.logical_and.reduce([f(a, b) for a, b in pairs]) if len(pairs) > 1 else f(*pairs[0])
    if op == "and":
        return np.logical_and.reduce(args)
    if op == "or":
        return np.logical_or.reduce(args)
    if op == "not":
        return np.logical_not(args[0])
    if op == "-" and len(args) == 1:
        return np.negative(args[0])
    if op == "fma":
        a, b, c = (np.asarray(v, dtype=np.float64) for v in args)
        return _fma_rto(a, b, c, FP32).astype(np.float32)
    if op in _F32_UNARY:
        return _F32_UNARY[op](args[0])
    if op in libm.ELEMENTARY:
        if prog.libm == "cr":
            return libm.correctly_rounded(op, [np.asarray(a, dtype=np.float64) for a in args], FP32).astype(np.float32)
        if op == "pow":  # numpy turns a scalar exponent 2 into a square: keep the general kernel
            return np.power(*(np.ascontiguousarray(a) for a in np.broadcast_arrays(*args)))
        return libm.NUMPY_UFUNCS[op](args[0])
    return _F32_BINARY[op](args[0], args[1])
