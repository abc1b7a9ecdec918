"""Evaluate a formula tree on a numpy array of inputs, in a floating-point format.

Semantics (README, "What it measures" and the libm model):
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
- ftz (eval/ftz.py, "after" or "before"): subnormal inputs and constants are read as zeros
  (DAZ), and every result that is tiny, by the tininess rule of the mode applied to its exact
  value, is a zero of its sign (FTZ).
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

import numpy as np

from mishaudit.errors import UserError
from mishaudit.eval import ftz as ftz_model
from mishaudit.eval import libm, primitives
from mishaudit.formats import (
    FORMATS,
    FP32,
    Format,
    get_format,
    round_fraction,
    round_to,
)
from mishaudit.lang import fpcore as fc
from mishaudit.lang.operators import PRIMITIVE
from mishaudit.lang.registry import Formula


@dataclass(frozen=True)
class Policy:
    """How to evaluate: storage format, compute format (None = storage), flush to zero (False, or
    eval/ftz.py's "after" / "before"; True means "after"), and the libm model of the elementary
    functions ("cr" or "numpy", libm.py)."""

    storage: Format
    compute: Format | None = None
    ftz: bool | str = False
    libm: str = "cr"
    device: str = "cpu"  # where a framework kernel runs (eval/kernels.py); formulations run on numpy

    def __post_init__(self):
        object.__setattr__(self, "ftz", ftz_model.mode_of(self.ftz))

    @property
    def work(self) -> Format:
        return self.compute or self.storage

    def describe(self) -> str:
        s = self.storage.name
        if self.compute and self.compute != self.storage:
            s += f" (computed in {self.compute.name})"
        return s + (f" ftz={self.ftz}" if self.ftz else "") + f", libm {self.libm}"


def check_compute_dtype(storage: Format, compute: Format | None, option: str = "--compute-dtype") -> None:
    """UserError unless the compute format holds every value of the storage format (p, the exponent
    range: p_c >= p_s, emin_c <= emin_s, emax_c >= emax_s): a narrower one is not "computing in a
    wider type" but a different storage. None and the storage format itself mean native."""
    if compute is None or compute == storage:
        return
    short = [what for what, ok in (("precision", compute.p >= storage.p),
                                   ("exponent range", compute.emin <= storage.emin and compute.emax >= storage.emax))
             if not ok]
    if short:
        wider = [f.name for f in FORMATS if f.p >= storage.p and f.emin <= storage.emin and f.emax >= storage.emax
                 and f != storage]
        raise UserError(f"{option} {compute.name} cannot hold every {storage.name} value (its {' and '.join(short)}: "
                        f"p {compute.p} vs {storage.p}, exponents {compute.emin}..{compute.emax} vs "
                        f"{storage.emin}..{storage.emax}): give a compute dtype at least as wide as {storage.name} "
                        f"({', '.join(wider)}) or drop {option}")


def policy_for(fmt: Format, compute: Format | None, ftz, model: str, device: str = "cpu") -> Policy:
    """The evaluation policy of storage format fmt: compute format (refused where narrower, see
    check_compute_dtype; equal to fmt means native), ftz (False, "after" or "before"; True means
    "after"), libm model and device."""
    check_compute_dtype(fmt, compute)
    return Policy(fmt, compute if compute and compute != fmt else None, ftz, model, device)


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


def const_value(name: str) -> Fraction | float:
    if name == "INFINITY":
        return np.inf
    if name == "NAN":
        return np.nan
    import mpmath  # a named constant to 300 bits (far beyond any format's rounding of it)

    with mpmath.workprec(300):
        v = {"E": mpmath.e, "PI": mpmath.pi, "LN2": mpmath.ln2}[name]
        v = mpmath.mpf(v)
    man, exp = v.man_exp
    return Fraction(man) * Fraction(2) ** exp


def round_exact(v, fmt: Format) -> float:
    return v if isinstance(v, float) else round_fraction(v, fmt)


def fmax(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """fmax: the first operand unless the second is larger or the first is NaN (C's fmax as glibc
    computes it; on equal operands, +0 and -0, the first). numpy's fmax leaves that tie to its code
    path: its SIMD loop returns +0 and its scalar loop the first operand, so its bits would depend
    on the array's length and the CPU."""
    return np.where((b > a) | np.isnan(a), b, a)


def fmin(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """fmin: the first operand unless the second is smaller or the first is NaN (fmax's rule)."""
    return np.where((b < a) | np.isnan(a), b, a)


def fma_round_to_odd(a: np.ndarray, b: np.ndarray, c: np.ndarray, fmt: Format) -> np.ndarray:
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


COMPARE = {"<": np.less, ">": np.greater, "<=": np.less_equal, ">=": np.greater_equal, "==": np.equal,
           "!=": np.not_equal}


def comparison_pairs(op: str, args: list) -> list:
    """The operand pairs a variadic FPCore comparison tests: every pair for != (all distinct), else
    neighbours (a < b < c)."""
    if op == "!=":
        return [(args[i], args[j]) for i in range(len(args)) for j in range(i + 1, len(args))]
    return list(zip(args, args[1:]))


def truth(op: str, args: list, compare: dict):
    """A comparison (with the pairwise tests in `compare`, op -> function) or and/or/not, as bool arrays."""
    if op == "and":
        return np.logical_and.reduce(args)
    if op == "or":
        return np.logical_or.reduce(args)
    if op == "not":
        return np.logical_not(args[0])
    return np.logical_and.reduce([np.asarray(compare[op](a, b)) for a, b in comparison_pairs(op, args)])


class Evaluator:
    """Evaluates one formula under one policy; `record=True` keeps every operation node."""

    def __init__(self, formula: Formula, policy: Policy, record: bool = False, constants_of: Format | None = None):
        self.formula = formula
        self.policy = policy
        self.record = record
        self.records: list[Record] = []
        # per-format constants follow the storage format (or `constants_of`, for a wider proxy run)
        self.consts = formula.constant_values(constants_of or policy.storage)

    # -- rounding helpers (ftz: eval/ftz.py)
    def _daz(self, v: np.ndarray, fmt: Format) -> np.ndarray:
        """An operand as read: a subnormal input or constant is a zero of its sign under ftz."""
        return ftz_model.daz(v, fmt) if self.policy.ftz else v

    def _fix(self, y: np.ndarray, fmt: Format, below) -> np.ndarray:
        """A result y = RN_fmt(r) flushed where r is tiny (`below`: eval/ftz.py's exact test of r)."""
        return ftz_model.flush(y, fmt, self.policy.ftz, below) if self.policy.ftz else y

    def _round(self, v: np.ndarray, fmt: Format) -> np.ndarray:
        """A conversion into fmt: the exact value v rounded (and flushed under ftz)."""
        return self._fix(round_to(v, fmt), fmt, ftz_model.exact_below("convert", [v]))

    def _in_fmt(self, v: np.ndarray, src: Format, dst: Format) -> np.ndarray:
        """Convert values of `src` into `dst` (rounding when dst is narrower)."""
        if src == dst or not isinstance(v, np.ndarray) or v.dtype == bool:
            return v
        return self._round(v, dst)

    def apply_op(self, op: str, args: list, fmt: Format) -> np.ndarray:
        """op applied once to operands `args` (values of fmt), rounded as the policy says."""
        if op in fc.BOOLEAN_OPS:
            return truth(op, args, COMPARE)
        if op == "-" and len(args) == 1:
            return -args[0]
        if op == "fabs":
            return np.abs(args[0])
        if op == "copysign":
            return np.copysign(args[0], args[1])
        if op == "fmax":
            return fmax(args[0], args[1])
        if op == "fmin":
            return fmin(args[0], args[1])
        if op == "fma":
            a, b, c = args
            y = fma_round_to_odd(a, b, c, fmt) if fmt.p <= 24 else libm.fma(a, b, c, fmt)
            return self._fix(y, fmt, ftz_model.exact_below("fma", args))
        if op in ("+", "-", "*", "/", "sqrt"):
            f = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "sqrt": np.sqrt}[op]
            if fmt == FP32:  # binary32 arithmetic is correctly rounded in numpy
                y = f(*[a.astype(np.float32) for a in args]).astype(np.float64)
            else:
                y = round_to(f(*args), fmt)  # binary64 (exact for fp64) then one rounding
            return self._fix(y, fmt, ftz_model.exact_below(op, args))
        if op in libm.ELEMENTARY:
            below = ftz_model.libm_below(op, args, fmt) if self.policy.libm == "cr" else None
            return self._fix(libm.apply(self.policy.libm, op, args, fmt), fmt, below)
        if op in PRIMITIVE:  # one correctly rounded operation under every libm model
            return self._fix(primitives.correctly_rounded(op, args, fmt), fmt, None)
        raise UserError(f"operator {op!r} is not supported by the evaluator")

    # -- the tree walk; returns (values, format of the values)
    def walk(self, e: fc.Expr, env: dict, fmt: Format, live: np.ndarray, label: str | None = None):
        n = live.shape[0]
        if isinstance(e, fc.Num):
            return self._daz(np.full(n, round_exact(e.value, fmt)), fmt), fmt
        if isinstance(e, fc.Const):
            if e.name in ("TRUE", "FALSE"):
                return np.full(n, e.name == "TRUE"), fmt
            return self._daz(np.full(n, round_exact(const_value(e.name), fmt)), fmt), fmt
        if isinstance(e, fc.Var):
            if e.name in env:
                v, vf = env[e.name]
                return self._in_fmt(v, vf, fmt), fmt
            return self._daz(np.full(n, round_fraction(self.consts[e.name], fmt)), fmt), fmt
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
        xin = self._daz(x, pol.storage)
        xin = self._in_fmt(xin, pol.storage, work)
        live = np.ones(x.shape[0], dtype=bool)
        with np.errstate(all="ignore"):
            v, vf = self.walk(self.formula.body, {self.formula.arg: (xin, work)}, work, live)
            v = self._in_fmt(v, vf, work)
            y = self._round(v, pol.storage) if work != pol.storage else v
        return Evaluation(y, self.records)


def evaluate(formula: Formula, x: np.ndarray, policy: Policy, record: bool = False) -> Evaluation:
    """Evaluate `formula` on storage-format inputs `x` (float64) under `policy`; a framework kernel
    (eval/kernels.py) runs as its framework computes it, with no intermediates to record."""
    if formula.kernel:
        return Evaluation(formula.run(np.asarray(x, dtype=np.float64), policy.storage, policy.device))
    return Evaluator(formula, policy, record).run(x)
