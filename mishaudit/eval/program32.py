"""Binary32 programs: a formula as a function of float32 arrays, for the exhaustive fp32 sweep.

The same operations as the evaluator (evaluate.py), bit for bit, with fewer passes: values stay
float32 arrays, + - * / sqrt are numpy's binary32 operations (correctly rounded), the elementary
functions follow the policy's libm model, and subexpressions common to several formulations
(exp(x), log1p(exp(x)), ...) can be computed once per block.

An `if` whose condition differs across the block evaluates each arm only on the inputs that take it
(the evaluator computes both arms everywhere and selects), under the libm models whose result for
an element does not depend on the others in its array: cr (a function of the value alone) and glibc
(one C call per element). Under numpy and torch, whose SIMD loops treat an array's tail apart, both
arms run on the whole block as in the evaluator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from mishaudit.eval import libm
from mishaudit.eval.evaluate import (
    COMPARE,
    Policy,
    const_value,
    fma_round_to_odd,
    fmax,
    fmin,
    round_exact,
    truth,
)
from mishaudit.formats import FP32, round_fraction
from mishaudit.lang import fpcore as fc
from mishaudit.lang.registry import Formula

_F32_BINARY = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide,
               "copysign": np.copysign, "fmax": fmax, "fmin": fmin}
_F32_UNARY = {"sqrt": np.sqrt, "fabs": np.abs}


class _Unsupported(Exception):
    pass


@dataclass
class _Prog32:
    consts: dict  # per-format constant name -> np.float32
    cache: dict  # id(node) -> canonical key, for the nodes shared through `memo`
    libm: str

    @property
    def split_arms(self) -> bool:
        """Whether an if's arms may run on the inputs taking them only (module docstring)."""
        return self.libm in ELEMENTWISE_MODELS


ELEMENTWISE_MODELS = ("cr", "glibc")


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
    if formula.kernel:  # the framework's own function on float32 arrays
        return lambda x, memo=None: formula.run32(x, policy.device)
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
            return float(round_exact(e.value, FP32)).hex()
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

    seen = Counter(k for f in formulas if not f.kernel for k in set(subexpression_keys(f).values()))
    return frozenset(k for k, c in seen.items() if c > 1)


def _check32(e: fc.Expr) -> None:
    if isinstance(e, fc.Annot):
        prec = dict(e.props).get(":precision")
        if prec is not None and getattr(prec, "name", str(prec)) not in ("binary32", "fp32"):
            raise _Unsupported
    if isinstance(e, fc.Op) and e.op not in _F32_BINARY and e.op not in _F32_UNARY and e.op not in fc.COMPARISONS \
            and e.op not in libm.ELEMENTARY and e.op not in ("and", "or", "not", "fma", "-"):
        raise _Unsupported
    for sub in fc.children(e):
        _check32(sub)


def _walk32(e: fc.Expr, env: dict, prog: _Prog32, memo: dict):
    """Value of `e` as a float32 array or scalar (bool for conditions); nodes with a key in
    `prog.cache` (node id -> canonical key) go through `memo`."""
    k = prog.cache.get(id(e))
    if k is not None:
        if k not in memo:
            memo[k] = _eval32(e, env, prog, memo)
        return memo[k]
    return _eval32(e, env, prog, memo)


def _split_if(e: fc.If, cond: np.ndarray, env: dict, prog: _Prog32) -> np.ndarray:
    """An if over a block: each arm on the inputs taking it (its own memo: the shared block values do
    not apply to a subset), the results put back in place."""
    n = len(cond)
    out = np.empty(n, dtype=np.float32)
    for arm, idx in ((e.then, np.flatnonzero(cond)), (e.other, np.flatnonzero(~cond))):
        sub = {k: (v[idx] if np.ndim(v) == 1 and len(v) == n else v) for k, v in env.items()}
        out[idx] = _walk32(arm, sub, prog, {})
    return out


@numba.njit(cache=True, nogil=True)
def _fma32(a, b, c, out):  # pragma: no cover - compiled
    """out = RN_binary32(a*b + c) for binary32 values: evaluate.fma_round_to_odd's steps per element
    (a*b exact in binary64, TwoSum, round to odd, then one rounding to binary32)."""
    for i in range(len(a)):
        p = a[i] * b[i]
        s = p + c[i]
        bb = s - p
        t = (p - (s - bb)) + (c[i] - bb)
        if t != 0.0 and s - s == 0.0:  # inexact and finite
            bits = np.float64(s).view(np.int64)
            if (bits & 1) == 0:
                bits += 1 if (t > 0) == (s > 0) else -1
                s = np.int64(bits).view(np.float64)
        out[i] = np.float32(s)


def _eval32(e: fc.Expr, env: dict, prog: _Prog32, memo: dict):
    if isinstance(e, fc.Num):
        return np.float32(round_exact(e.value, FP32))
    if isinstance(e, fc.Const):
        if e.name in ("TRUE", "FALSE"):
            return np.bool_(e.name == "TRUE")
        return np.float32(round_exact(const_value(e.name), FP32))
    if isinstance(e, fc.Var):
        return env[e.name] if e.name in env else prog.consts[e.name]
    if isinstance(e, fc.Let):
        inner = dict(env)
        for name, sub in e.bindings:
            inner[name] = _walk32(sub, inner if e.sequential else env, prog, memo)
        return _walk32(e.body, inner, prog, memo)
    if isinstance(e, fc.If):
        cond = _walk32(e.cond, env, prog, memo)
        if prog.split_arms and np.ndim(cond) == 1 and len(cond) > 1:
            if cond.all():  # the block takes one arm: the other is not computed
                return np.broadcast_to(_walk32(e.then, env, prog, memo), cond.shape)
            if not cond.any():
                return np.broadcast_to(_walk32(e.other, env, prog, memo), cond.shape)
            return _split_if(e, cond, env, prog)
        return np.where(cond, _walk32(e.then, env, prog, memo), _walk32(e.other, env, prog, memo))
    if isinstance(e, fc.Annot):
        return _walk32(e.body, env, prog, memo)
    args = [_walk32(a, env, prog, memo) for a in e.args]
    op = e.op
    if op in fc.BOOLEAN_OPS:
        return truth(op, args, COMPARE)
    if op == "-" and len(args) == 1:
        return np.negative(args[0])
    if op == "fma":
        a, b, c = (np.ascontiguousarray(v, dtype=np.float64) for v in np.broadcast_arrays(*args))
        if a.ndim != 1:
            return fma_round_to_odd(a, b, c, FP32).astype(np.float32)
        out = np.empty(len(a), dtype=np.float32)
        _fma32(a, b, c, out)
        return out
    if op in _F32_UNARY:
        return _F32_UNARY[op](args[0])
    if op in libm.ELEMENTARY:
        if prog.libm != "numpy":  # one call over the block, through the model
            wide = [np.asarray(a, dtype=np.float64) for a in np.broadcast_arrays(*args)]
            return libm.apply(prog.libm, op, wide, FP32).astype(np.float32)
        if op == "pow":  # numpy turns a scalar exponent 2 into a square: keep the general kernel
            return np.power(*(np.ascontiguousarray(a) for a in np.broadcast_arrays(*args)))
        return libm.NUMPY_UFUNCS[op](args[0])
    return _F32_BINARY[op](args[0], args[1])
