"""The fused binary32 pass: every formulation of a sweep evaluated in one compiled loop per block.

From the formulas' FPCore trees and the operator table, one Python function is generated and
compiled by numba: for each input of a block it evaluates every formulation in turn, as scalars,
with the operations the evaluator (evaluate.py) uses in binary32, so its outputs equal
`evaluate(f, x, Policy(FP32, libm=...)).y` bit for bit (a NaN is a NaN: IEEE 754 fixes neither its
sign nor its payload, and every summary counts it as nonfinite alike):
  + - * / sqrt      binary32 IEEE operations (numba without fastmath: no contraction, no reassociation)
  neg fabs copysign sign-bit operations; fmax/fmin: the first operand unless the second is larger
                    (smaller) or the first is NaN (evaluate.fmax, fmin)
  fma               round to odd in binary64, then one rounding (evaluate.fma_round_to_odd)
  < > <= >= == !=   binary32 comparisons (NaN compares false; != true), chains pairwise
  and or not if let as in the evaluator (an if computes its taken arm only: no side effects)
  exp ... pow       the libm model: cr, crkernel.one on the host's binary64 function (its address
                    passed at run time) where it decides, else the input is flagged for the
                    evaluator (MPFR); pow(a, 2) = RN(a*a); glibc: the C library's float function
Subexpressions common to several formulations (canonical keys of program32.subexpression_keys:
exp(x), log1p(exp(x)), ...) are computed once per input when an earlier formulation computes them
unconditionally; each elementary call site also repeats its previous answer when its argument
repeats (crkernel's shortcut). Under cr, a call site is skipped, its argument's computation too,
on a block where it is proven constant (directions.py: its argument is one value over the block,
or monotone in x with nonzero values of one sign at the block's smallest and largest input whose
answers are the same; a site proven constant holds its argument's direction at 0, and an if whose
monotone condition is proven constant takes its arm's, the other arm reached by no input). That
makes the long runs of saturated inputs (exp at 0, 1 or inf, tanh at 1, the threshold arms of
darknet and PyTorch's softplus) cheap.

The generated text holds only names of our own (t0, t1, ...), binary32 constants as hex literals
and operations from the fixed table below: nothing of a formula file is executed. It is written to
the cache folder (cache.py), named by its own digest, and numba caches its compiled code there.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import math
import os
import sys
import tempfile

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from mishaudit.eval import crkernel, directions, elem64
from mishaudit.eval.clib_loops import _c1d, _c1f, _c2f  # noqa: F401 - the generated modules import _c1f, _c2f from here
from mishaudit.eval.directions import (
    ELEMENTARY,
    MONOTONE_TESTS,
    SIGNS,
    UNKNOWN,
    Dirs,
    bare,
    literal_value,
)
from mishaudit.formats import FP32, round_fraction
from mishaudit.lang import fpcore as fc

GEN_VERSION = 4
_BINARY = {"+": "+", "-": "-", "*": "*", "/": "/"}
_CMP = {"<": "<", ">": ">", "<=": "<=", ">=": ">=", "==": "==", "!=": "!="}
_EXACT = {"fabs": "abs({0})", "copysign": "_copysign({0}, {1})", "fmax": "_fmax({0}, {1})",
          "fmin": "_fmin({0}, {1})", "sqrt": "_sqrt({0})"}
_SHORTCUT = {"exp": crkernel.EXP, "expm1": crkernel.EXPM1, "log": crkernel.LOG, "log1p": crkernel.LOG1P,
             "tanh": crkernel.TANH}
MODELS = ("cr", "glibc")
LOOPS = frozenset({"probe", "main", "fast"})  # the loops of a generated function (_function)


# ---------------------------------------------------------------- scalar operations (compiled)

@intrinsic
def _fma(typingctx, a, b, c):  # pragma: no cover - compiled
    """RN_binary32(a*b + c), one rounding: LLVM's llvm.fma.f32, whose semantics are C's fmaf (never
    unfused; the FMA instruction where the CPU has one, else the C library's correctly rounded fmaf),
    the value evaluate.fma_round_to_odd computes (tests/test_fused32.py compares them)."""
    sig = types.float32(types.float32, types.float32, types.float32)

    def codegen(context, builder, signature, args):
        f = ir.FloatType()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(f, [f, f, f]), "llvm.fma.f32")
        return builder.call(fn, [context.cast(builder, v, t, types.float32) for v, t in zip(args, signature.args)])

    return sig, codegen


@numba.njit(cache=True, nogil=True)
def _copysign(a, b):  # pragma: no cover - compiled
    ua = np.float32(a).view(np.uint32) & np.uint32(0x7FFFFFFF)
    ub = np.float32(b).view(np.uint32) & np.uint32(0x80000000)
    return np.uint32(ua | ub).view(np.float32)


@numba.njit(cache=True, nogil=True)
def _same(a, b):  # pragma: no cover - compiled
    """Whether two binary32 values have the same encoding (a call site's repeated argument)."""
    return np.float32(a).view(np.uint32) == np.float32(b).view(np.uint32)


@numba.njit(cache=True, nogil=True)
def _fmax(a, b):  # pragma: no cover - compiled
    return b if (b > a or a != a) else a


@numba.njit(cache=True, nogil=True)
def _fmin(a, b):  # pragma: no cover - compiled
    return b if (b < a or a != a) else a


@numba.njit(cache=True, nogil=True)
def _sqrt(a):  # pragma: no cover - compiled
    return np.float32(np.sqrt(a))


@numba.njit(cache=True, nogil=True)
def _cr(op, addr, nargs, a, b):  # pragma: no cover - compiled
    """(RN_binary32(f(a[, b])), flag) under the cr model: crkernel.one's decision (flag 1: MPFR must decide),
    the answer read as the hardware's RN of the binary64 value, which is crkernel.rounded's for
    p = 24 wherever `undecided` is 0 (both round to nearest; they differ only on ties, undecided),
    one conversion on the path from argument to answer instead of rounded's integer steps. The
    operations elem64 computes have their own entry points below (the code knows its operation)."""
    v = np.float64(a)
    hit, res = crkernel.shortcut(op, v, _C32)
    if hit:
        return np.float32(res), 0
    return _decide(elem64.value(op, addr, nargs, v, np.float64(b)), elem64.covered(op, v))


@numba.njit(cache=True, nogil=True, inline="always")
def _decide(y, own):  # pragma: no cover - compiled
    return np.float32(y), crkernel.undecided(y, own, _C32)


@numba.njit(cache=True, nogil=True)
def _cr1(op, addr, a):  # pragma: no cover - compiled
    """_cr for a unary operation elem64 computes, compiled for each `op` (a literal: its branches
    fold away): the shortcuts, small enough for LLVM to inline at the call site, else _cr1v."""
    numba.literally(op)
    v = np.float64(a)
    hit, res = crkernel.shortcut(op, v, _C32)
    if hit:
        return np.float32(res), 0
    return _cr1v(op, addr, v)


@numba.njit(cache=True, nogil=True)
def _cr1v(op, addr, v):  # pragma: no cover - compiled
    numba.literally(op)
    if elem64.covered(op, v):
        return _decide(elem64.ours(op, v), True)
    return _decide(_c1d(addr, v), False)




@numba.njit(cache=True, nogil=True)
def _square(a):  # pragma: no cover - compiled
    """pow(a, 2) under cr: a*a is exact in binary64, rounded once."""
    return np.float32(np.float64(a) * np.float64(a))


@numba.njit(cache=True, nogil=True)
def _extremes(x):  # pragma: no cover - compiled
    """The indices of a smallest and a largest value of x (n >= 1), or (-1, -1) when x holds a
    NaN: 0 and n - 1 where x ascends (a sweep's blocks; checked by a loop the compiler vectorises,
    which counts a NaN as out of order), else the first of equals, found one by one."""
    n = len(x)
    out = 0
    for i in range(n - 1):
        out += not (x[i] <= x[i + 1])
    if out == 0 and x[0] == x[0]:
        return 0, n - 1
    lo = hi = 0
    for i in range(len(x)):
        v = x[i]
        if v != v:
            return -1, -1
        if v < x[lo]:
            lo = i
        if v > x[hi]:
            hi = i
    return lo, hi


def _margins():
    from mishaudit.eval import libm

    return libm._M, libm._REL


_M, _REL = _margins()
_C32 = crkernel.constants(24, -126, 127, _M, _REL)  # binary32's decision constants (a global: frozen)


# ---------------------------------------------------------------- code generation

class Unsupported(Exception):
    """A formula (or policy) the fused pass does not compile: the sweep evaluates it as before."""


def supported(formula, policy) -> bool:
    """Whether `formula` runs in the fused pass under `policy` (plain binary32, libm cr or glibc)."""
    if formula.kernel or policy.storage is not FP32 or policy.compute not in (None, FP32) or policy.ftz:
        return False
    if policy.libm not in MODELS:
        return False
    try:
        _check(formula.body)
    except Unsupported:
        return False
    return True


def _check(e) -> None:
    from mishaudit.eval import libm

    if isinstance(e, fc.Annot):
        prec = dict(e.props).get(":precision")
        if prec is not None and getattr(prec, "name", str(prec)) not in ("binary32", "fp32"):
            raise Unsupported
    if isinstance(e, fc.Const) and e.name not in ("TRUE", "FALSE", "INFINITY", "NAN", "E", "PI", "LN2"):
        raise Unsupported
    if isinstance(e, fc.Op):
        ok = (e.op in _BINARY or e.op in _CMP or e.op in _EXACT or e.op in ("and", "or", "not", "fma")
              or e.op in libm.ELEMENTARY)
        if not ok:
            raise Unsupported
    for sub in fc.children(e):
        _check(sub)


class _Gen:
    """Writes the loop body: one statement list, temporaries t0, t1, ..."""

    def __init__(self, model: str):
        self.model = model
        self.lines: list[tuple[frozenset, str]] = []  # (the loops holding it: LOOPS, text)
        self.nofast = 0  # > 0 while writing what a site constant over the block skips (no "fast" loop)
        self.outer: list[int] = []  # the sites that may be constant and lie in no other such site's argument
        self.n = 0
        self.sites: list[tuple[str, int]] = []  # (op, nargs) per elementary call site
        self.capable: list[bool] = []  # per call site: whether a block may show it constant (_constancy)
        self.arm: list[int] = []  # per call site: the arm of a condition holding it (_constancy's ENC)
        self.conds: list[int] = []  # per condition a block may show constant: the arm holding it (COND)
        self.arms: list[int] = []  # the arms being written (2 j + 1: condition j's first, 2 j: its second)
        self.program = None  # (rows, literals, SARG, COND operand rows): the direction program (_walker)
        self.addr_ops: list[str] = []  # the functions whose addresses the run passes, by index
        self.consts: dict[str, str] = {}  # hex text -> the module-level name of a binary32 constant
        self.slots: dict[str, int] = {}  # canonical key of an elementary call node -> local slot

    def const(self, v) -> str:
        """A binary32 value as a global of the generated module (numba freezes globals)."""
        v = float(v)
        if math.isnan(v):
            return "_NAN"
        if math.isinf(v):
            return "_INF" if v > 0 else "_NINF"
        return self.consts.setdefault(v.hex(), f"K{len(self.consts)}")

    def tmp(self) -> str:
        self.n += 1
        return f"t{self.n}"

    def emit(self, depth: int, text: str, loops=None) -> None:
        loops = LOOPS if loops is None else frozenset(loops)
        self.lines.append((loops - {"fast"} if self.nofast else loops, "    " * depth + text))

    def body(self, loop: str) -> list[str]:
        """The statements of one loop (LOOPS)."""
        return [text for which, text in self.lines if loop in which]

    def site(self, op: str, nargs: int, capable: bool) -> int:
        """A new elementary call site (whether it may be found constant over a block); its index."""
        self.sites.append((op, nargs))
        self.capable.append(capable)
        self.arm.append(self.arms[-1] if self.arms else -1)
        return len(self.sites) - 1

    def cond(self) -> int:
        """A new condition a block may show constant; its index."""
        self.conds.append(self.arms[-1] if self.arms else -1)
        return len(self.conds) - 1

    def addr(self, op: str) -> int:
        if op not in self.addr_ops:
            self.addr_ops.append(op)
        return self.addr_ops.index(op)




def _walker(g: _Gen, f, keys: dict):
    """The statement writer of formulation f's expressions: walk(e, env, depth) emits the statements
    computing e and returns the name holding its value.

    Every elementary call node is a memo slot: the run's slot table (rows of M, H, Q; local slot s
    is row sm[s]) holds its value for input i in M[row, i], H[row, i] whether it is computed yet
    and Q[row, i] whether an undecided cr call lies in its computation (a formulation reusing it
    is flagged too). Formulations with the same canonical key share the row, so exp(x) is
    computed once per input for all of them."""
    from mishaudit.eval.evaluate import const_value, round_exact

    consts = {k: round_fraction(v, FP32) for k, v in f.constant_values(FP32).items()}
    flag = "fv"
    open_slots: list[int] = []  # slots whose computation encloses the node being written
    tdef: dict = {}  # a temporary holding a let-bound value -> (its expression, the scope it is read in)
    site_of: dict = {}  # id of an elementary call node -> its site
    cond_of: dict = {}  # id of an if node whose condition a block may show constant -> the condition
    at_site: list = []  # per site: (its node, the scope it is read in)
    at_cond: list = []  # per condition: (its operands, the scope)

    literal = functools.partial(literal_value, consts=consts)

    def plain(env: dict) -> frozenset:
        """The name of the input where it is not shadowed (Dirs.node's `plain`)."""
        return frozenset((f.arg,) if env.get(f.arg) == "xv" else ())

    def rows(b: Dirs, env: dict) -> dict:
        """The rows in program b of the names bound in env (a let-bound value's rows written once)."""
        return {n: temp_row(b, t) for n, t in env.items()}

    def temp_row(b: Dirs, t: str) -> int:
        if t == "xv":
            return b.input
        memo = b.__dict__.setdefault("temps", {})
        if t not in memo:
            sub, scope = tdef[t]
            memo[t] = b.node(sub, rows(b, scope), plain(scope))
        return memo[t]

    def program() -> tuple:
        """The direction program of every site and condition written: (rows, literals, the row of
        each site's argument, the rows of each condition's operands)."""
        b = Dirs(literal, site_of, cond_of)
        sarg = [b.site(e, rows(b, env), plain(env)) for e, env in at_site]
        ops = [[b.node(a, rows(b, env), plain(env)) for a in args] for args, env in at_cond]
        return (*b.arrays(), sarg, ops)

    def raise_flag(depth: int, fv: str) -> None:
        """An undecided call flags the innermost slot being computed (which passes it outward when
        it is read), else the formulation."""
        if g.model == "cr":
            g.emit(depth, f"{f'q{open_slots[-1]}' if open_slots else flag} |= {fv}")

    def walk(e, env: dict, depth: int) -> str:
        if isinstance(e, fc.Op) and e.op in ELEMENTARY:
            k = keys[id(e)]
            s = g.slots.setdefault(k, len(g.slots))
            t = g.tmp()
            site, capable = plan(e, env)
            outer = capable and not g.nofast
            if outer:  # the fast loop takes its value and nothing of the memo or of its argument
                g.outer.append(site)
                g.emit(depth, f"{t} = v{site}", ("fast",))
                g.nofast += 1
            g.emit(depth, f"if r{s} < 0 or H[r{s}, i] == 0:", ("main", "fast"))  # not shared in this run, or
            g.emit(depth, "if True:", ("probe",))  # not computed yet; a probe computes every site (_function)
            g.emit(depth + 1, f"q{s} = 0")
            open_slots.append(s)
            v = node(e, env, depth + 1)
            open_slots.pop()
            g.emit(depth + 1, f"{t} = {v}")
            g.emit(depth + 1, f"if r{s} >= 0:")
            g.emit(depth + 2, f"M[r{s}, i] = {t}")
            g.emit(depth + 2, f"H[r{s}, i] = 1")
            if g.model == "cr":
                g.emit(depth + 2, f"Q[r{s}, i] = q{s}")
            g.emit(depth, "else:")
            g.emit(depth + 1, f"{t} = M[r{s}, i]")
            if g.model == "cr":
                g.emit(depth + 1, f"q{s} = Q[r{s}, i]")
            raise_flag(depth, f"q{s}")
            if outer:
                g.nofast -= 1
            return t
        return node(e, env, depth)

    def node(e, env: dict, depth: int) -> str:
        if isinstance(e, fc.Num):
            return g.const(round_exact(e.value, FP32))
        if isinstance(e, fc.Const):
            if e.name in ("TRUE", "FALSE"):
                return str(e.name == "TRUE")
            return g.const(round_exact(const_value(e.name), FP32))
        if isinstance(e, fc.Var):
            return env[e.name] if e.name in env else g.const(consts[e.name])
        if isinstance(e, fc.Annot):
            return walk(e.body, env, depth)
        if isinstance(e, fc.Let):
            inner = dict(env)
            for name, sub in e.bindings:
                scope = inner if e.sequential else env
                v = walk(sub, scope, depth)
                t = g.tmp()
                g.emit(depth, f"{t} = {v}")
                tdef[t] = (sub, dict(scope))  # as it stands here: a sequential let goes on binding in it
                inner[name] = t
            return walk(e.body, inner, depth)
        if isinstance(e, fc.If):
            return branch(e, env, depth)
        if e.op in ELEMENTARY:
            return call_site(e, env, depth)
        args = [walk(a, env, depth) for a in e.args]
        t = g.tmp()
        op = e.op
        if op in _CMP:
            pairs = ([(args[a], args[b]) for a in range(len(args)) for b in range(a + 1, len(args))] if op == "!="
                     else list(zip(args, args[1:])))
            g.emit(depth, f"{t} = " + " and ".join(f"({a} {_CMP[op]} {b})" for a, b in pairs))
        elif op in ("and", "or"):
            g.emit(depth, f"{t} = " + f" {op} ".join(f"({a})" for a in args))
        elif op == "not":
            g.emit(depth, f"{t} = not ({args[0]})")
        elif op == "-" and len(args) == 1:
            g.emit(depth, f"{t} = -{args[0]}")
        elif op in _BINARY:
            g.emit(depth, f"{t} = np.float32({args[0]} {_BINARY[op]} {args[1]})")
        elif op in _EXACT:
            g.emit(depth, f"{t} = " + _EXACT[op].format(*args))
        elif op == "fma":
            g.emit(depth, f"{t} = _fma({args[0]}, {args[1]}, {args[2]})")
        return t

    def branch(e, env: dict, depth: int) -> str:
        """An if; under cr, a monotone comparison as its condition is one a block may show constant:
        the probes record its operands and value (crec[j], _constancy), and the sites of each arm
        know the arm (a constant condition's other arm is reached by no input of the block)."""
        cond = bare(e.cond)
        j = None
        if g.model == "cr" and isinstance(cond, fc.Op) and cond.op in MONOTONE_TESTS and len(cond.args) == 2:
            j = g.cond()
            cond_of[id(e)] = j
            at_cond.append((cond.args, env))
            a, b = (walk(arg, env, depth) for arg in cond.args)
            c = g.tmp()
            g.emit(depth, f"{c} = {a} {_CMP[cond.op]} {b}")
            g.emit(depth, f"crec[{j}, p] = {a}", ("probe",))
            g.emit(depth, f"crec[{j}, 2 + p] = {b}", ("probe",))
            g.emit(depth, f"crec[{j}, 4 + p] = 1.0 if {c} else 0.0", ("probe",))
        else:
            c = walk(e.cond, env, depth)
        t = g.tmp()
        g.emit(depth, f"if {c}:")
        for arm, sub in ((1, e.then), (0, e.other)):
            if j is not None:
                g.arms.append(2 * j + arm)
            if arm == 0:
                g.emit(depth, "else:")
            g.emit(depth + 1, f"{t} = {walk(sub, env, depth + 1)}")
            if j is not None:
                g.arms.pop()
        return t

    planned: dict = {}  # id of an elementary node -> its site, while its memo slot is written

    def plan(e, env: dict) -> tuple[int, bool]:
        """Elementary node e's call site (a new one) and whether some block may show it constant:
        under cr, where its argument has a direction once every site in it is constant and either
        arm of every if is taken (Dirs' optimistic program)."""
        capable = False
        if g.model == "cr":
            b = Dirs(literal, optimistic=True)
            row = b.site(e, rows(b, env), plain(env))
            capable = any(int(b.directions(sign)[row]) != UNKNOWN for sign in SIGNS)
        s = g.site(e.op, len(e.args), capable)
        site_of[id(e)] = s
        at_site.append((e, env))
        planned[id(e)] = s
        return s, capable

    def call_site(e, env: dict, depth: int) -> str:
        """An elementary function: the libm model, with the call site's repeat shortcut; a site that
        may be constant (plan) is skipped, its arguments too, where the block shows it constant
        (k{s}: its value v{s}, _constancy)."""
        s = planned.pop(id(e))
        capable = g.capable[s]
        t = g.tmp()
        if capable:
            g.emit(depth, f"if k{s}:")
            g.emit(depth + 1, f"{t} = v{s}")
            g.emit(depth, "else:")
            depth += 1
        args = [walk(a, env, depth) for a in e.args]
        fv = _call(g, s, e.op, args, t, depth)
        if fv:
            raise_flag(depth, fv)
        return t

    return walk, program


def _formula_code(g: _Gen, f, keys: dict, depth: int) -> None:
    """Statements computing formulation f's output into y[i] and its flag into fl[i]; the direction
    program of its sites and conditions into g.program."""
    walk, program = _walker(g, f, keys)
    g.emit(depth, "fv = 0")
    y = walk(f.body, {f.arg: "xv"}, depth)
    g.emit(depth, f"y[i] = {y}")
    if g.model == "cr":
        g.emit(depth, "fl[i] = fv")
        g.emit(depth, "nfl |= fv")
    g.program = program()


def _call(g: _Gen, s: int, op: str, args: list, t: str, depth: int):
    """Elementary call site s: `t` = its value; returns the name of its flag (None: always decided).
    A probe records the argument and the value of a site that may be found constant (rec[s]:
    _constancy)."""
    a, b = args[0], (args[1] if len(args) == 2 else args[0])
    same = f"_same({a}, la{s})"
    if len(args) == 2:
        same += f" and _same({b}, lb{s})"
    fv = None
    g.emit(depth, f"if {same}:")
    g.emit(depth + 1, f"{t} = lr{s}")
    if g.model == "cr":
        fv = f"g{t}"
        g.emit(depth + 1, f"{fv} = lg{s}")
    g.emit(depth, "else:")
    d = depth + 1
    if g.model == "glibc":
        fn = "_c1f" if len(args) == 1 else "_c2f"
        g.emit(d, f"{t} = {fn}(addrs[{g.addr(op)}], {', '.join(args)})")
    else:
        code = _SHORTCUT.get(op, -1)
        if op == "pow":
            g.emit(d, f"if {b} == 2.0:")
            g.emit(d + 1, f"{t} = _square({a})")
            g.emit(d + 1, f"{fv} = 0")
            g.emit(d, "else:")
            g.emit(d + 1, f"{t}, {fv} = _cr({code}, addrs[{g.addr(op)}], 2, {a}, {b})")
        else:
            call = (f"_cr1({code}, addrs[{g.addr(op)}], {a})" if op in elem64.OPS
                    else f"_cr({code}, addrs[{g.addr(op)}], {len(args)}, {a}, {b})")
            g.emit(d, f"{t}, {fv} = {call}")
        g.emit(d, f"lg{s} = {fv}")
    g.emit(d, f"la{s} = {a}")
    if len(args) == 2:
        g.emit(d, f"lb{s} = {b}")
    g.emit(d, f"lr{s} = {t}")
    if g.capable[s]:
        g.emit(depth, f"rec[{s}, p] = {a}", ("probe",))
        g.emit(depth, f"rec[{s}, 2 + p] = {t}", ("probe",))
    return fv


def _function(g: _Gen, name: str, params: str) -> list:
    """The lines of one compiled function of the module from g's current statements (the loop body)
    and call sites. Under cr, two probes come first: the body at the block's smallest and largest
    input (_extremes), computing every site (no memo, no constant site) and recording the argument
    and value of each site that may be found constant (g.capable); _constancy then tells which sites
    are constant over the block, and the loop over the block takes their values (k{s}, v{s})
    without computing them or their arguments. Where every outer such site (g.outer: in no other's
    argument) is constant, a loop written without them and their arguments runs instead (the
    "fast" loop: no branch on k{s}, so the compiler may vectorise it). It returns the number of
    constant sites and whether some output of the block is flagged (the OR of fl)."""
    lines = ["", "@numba.njit(cache=True, nogil=True, error_model='numpy')", f"def {name}({params}):"]
    lines += [f"    r{s} = sm[{s}]" for s in sorted(g.slots.values())]  # the rows of the slots, read once
    for s, (_op, nargs) in enumerate(g.sites):  # no previous call: NaN, whose answer is NaN for every f
        lines.append(f"    la{s} = _NAN")
        lines.append(f"    lr{s} = _NAN")
        if nargs == 2:
            lines.append(f"    lb{s} = _NAN")
        if g.model == "cr":
            lines.append(f"    lg{s} = 0")
    capable = [s for s, c in enumerate(g.capable) if c]
    if g.model != "cr":
        lines += ["    for i in range(len(x)):", "        xv = x[i]"] + g.body("main") + ["    return 0, 0"]
    else:
        lines += ["    n = len(x)", "    nfl = 0", "    if n == 0:", "        return 0, 0", "    imin, imax = _extremes(x)",
                  f"    rec = np.full(({max(len(g.sites), 1)}, 4), _NAN)",
                  f"    crec = np.full(({max(len(g.conds), 1)}, 6), _NAN)"]
        lines += [f"    k{s} = False\n    v{s} = np.float32(0.0)" for s in capable]
        lines += ["    for p in range(2 if imin >= 0 else 0):", "        i = imin if p == 0 else imax",
                  "        xv = x[i]"] + g.body("probe")
        lines += ["    sign = 0 if imin < 0 else (-1 if x[imax] < 0 else (1 if x[imin] > 0 else 0))  # SIGNS",
                  "    kc, kv, kd = _constancy(rec, crec, DP, DL, SARG, COND, ENC, "
                  "imin < 0 or fl[imin] != 0 or fl[imax] != 0, sign)", "    nfl = 0"]
        lines += [f"    k{s} = kc[{s}] != 0\n    v{s} = kv[{s}]" for s in capable]
        if capable:  # every outer site that may be constant is, or no input reaches it: the loop without them
            lines += ["    if " + " and ".join(f"(k{s} or kd[{s}] != 0)" for s in g.outer) + ":",
                      "        for i in range(n):",
                      "            xv = x[i]"] + ["    " + t for t in g.body("fast")] + ["    else:"]
        lines += ["    " * bool(capable) + t for t in ["    for i in range(n):", "        xv = x[i]"] + g.body("main")]
        lines += ["    return " + (" + ".join(f"int(k{s})" for s in capable) if capable else "0") + ", nfl"]
    g.lines, g.sites, g.capable, g.outer = [], [], [], []
    return lines


def generate(formula, model: str) -> tuple[str, list, list]:
    """(module source, its slot keys in local order, the libm functions whose addresses `run` takes,
    in order) for one formulation: `run(x, y, fl, addrs, M, H, Q, sm)`, the formulation's loop (it
    returns the number of its call sites constant over the block and the OR of its flags: _function). The
    source depends on the formula and the model only, so its compiled code serves every run that
    holds the formulation."""
    from mishaudit.eval.program32 import subexpression_keys

    g = _Gen(model)
    _formula_code(g, formula, subexpression_keys(formula), 2)
    P, L, sarg, ops = g.program
    cond = [[*ops[j], g.conds[j]] for j in range(len(g.conds))]
    tables = [f"DP = np.array({P.tolist()}, dtype=np.int64).reshape({len(P)}, 4)",
              "DL = np.array([" + ", ".join(f"float.fromhex('{float(v).hex()}')" for v in L) + "], dtype=np.float64)",
              f"SARG = np.array({sarg}, dtype=np.int64)", f"ENC = np.array({g.arm}, dtype=np.int64)",
              f"COND = np.array({cond}, dtype=np.int64).reshape({len(cond)}, 3)"]
    funcs = _function(g, "run", "x, y, fl, addrs, M, H, Q, sm")
    head = ["# generated by mishaudit.eval.fused32 (GEN_VERSION %d): do not edit" % GEN_VERSION,
            "import numba", "import numpy as np",
            "from mishaudit.eval.fused32 import _copysign, _cr, _same, _fma, _fmax, _fmin, _sqrt, _square, _c1f, _c2f, "
            "_cr1, _extremes",
            "from mishaudit.eval.directions import _constancy",
            *tables,
            "_NAN = np.float32(np.nan)", "_INF = np.float32(np.inf)", "_NINF = np.float32(-np.inf)",
            *[f"{name} = np.float32(float.fromhex('{h}'))" for h, name in g.consts.items()]]
    return "\n".join(head + funcs) + "\n", sorted(g.slots, key=g.slots.get), list(g.addr_ops)


_LOADED: dict = {}


def code_digest(source: str) -> str:
    """The name of a generated module's file and compiled code: its text, numba's version and the
    modules it calls (_deps_digest)."""
    return hashlib.sha256((source + numba.__version__ + _deps_digest()).encode()).hexdigest()[:20]


@functools.lru_cache(maxsize=1)
def _deps_digest() -> str:
    """A digest of the modules whose compiled functions the generated code calls. numba's cache
    checks only the generated file itself, so a change to one of these must change its name."""
    from mishaudit.eval import clib_loops

    h = hashlib.sha256()
    for mod in (sys.modules[__name__], crkernel, clib_loops, elem64, directions):
        with open(mod.__file__, "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()


def _folders() -> list:
    """Where generated modules and their compiled code may live, in order: $MISHAUDIT_CODE_DIR, else the
    cache folder's fused/, then a temporary folder."""
    from mishaudit import cache

    code = os.environ.get("MISHAUDIT_CODE_DIR")
    return ([code] if code else []) + [str(cache.cache_dir() / "fused"),
                                       os.path.join(tempfile.gettempdir(), "mishaudit-fused")]


def _load(source: str):
    """The generated module (its `run` compiled (numba's cache beside the file), from the first folder of
    _folders() that can be written; UserError when none can."""
    digest = code_digest(source)
    if digest in _LOADED:
        return _LOADED[digest]
    from mishaudit.errors import UserError
    from mishaudit.files import atomic_write_bytes

    tried = []
    for folder in _folders():
        path = os.path.join(folder, f"fused_{digest}.py")
        try:
            os.makedirs(folder, exist_ok=True)
            try:
                with open(path, "rb") as fh:
                    intact = fh.read() == source.encode()
            except OSError:
                intact = False
            if not intact:  # absent, or changed since it was written: only text generated here is ever run
                atomic_write_bytes(path, source.encode())
            break
        except OSError as e:
            tried.append(f"{folder} ({e.strerror or e})")
    else:
        raise UserError(f"cannot write the sweep's compiled code in {'; '.join(tried)}: set MISHAUDIT_CODE_DIR "
                        "to a writable folder")
    name = f"mishaudit_fused_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    _LOADED[digest] = mod
    return mod


class Fused:
    """The fused pass of `formulas` (each `supported`) under `policy`: `self(x32)` -> (ys, flags),
    ys float32 [len(formulas), n] the outputs, flags uint8 of the same shape (1: the evaluator must
    redo that output, an undecided cr call on its path). Each formulation is one compiled loop over
    the block; they share the memo slots of equal subexpressions (the rows of M, H, Q).
    `self.constant`: per formulation, its call sites found constant over the last block (_function);
    `self.flagged`: the formulations with a flagged output there."""

    def __init__(self, formulas: list, policy):
        self.formulas = list(formulas)
        self.model = policy.libm
        self.parts = [generate(f, self.model) for f in self.formulas]
        from collections import Counter

        uses = Counter(k for _, keys, _ in self.parts for k in keys)
        table: dict = {}  # a row of M, H, Q per key that two or more formulations compute; -1: none
        self._maps = [np.array([table.setdefault(k, len(table)) if uses[k] > 1 else -1 for k in keys] or [-1],
                               dtype=np.int64) for _, keys, _ in self.parts]
        self.slots = max(len(table), 1)
        self.shared = bool(table)
        self._runs = None

    def _ready(self):
        if self._runs is None:
            from mishaudit.eval import clib, libm

            if self.model == "cr":
                libm.verify_host_libm()

            def address(op):
                return libm._host_address(op) if self.model == "cr" else clib.function(
                    libm.IMPLEMENTATIONS["glibc"][op][0])

            self._addrs = [np.array([address(op) for op in ops] or [0], dtype=np.int64) for _, _, ops in self.parts]
            self._runs = [_load(src).run for src, _, _ in self.parts]
        return self._runs

    def __call__(self, x32: np.ndarray):
        runs = self._ready()
        x32 = np.ascontiguousarray(x32, dtype=np.float32)
        n = len(x32)
        ys = np.empty((len(self.formulas), n), dtype=np.float32)
        # under cr every loop writes every flag (the probes theirs first); glibc's write none
        fl = (np.empty if self.model == "cr" else np.zeros)((len(self.formulas), n), dtype=np.uint8)
        w = n if self.shared else 1  # no shared row: the slot table is never read (every row -1)
        M = np.empty((self.slots, w), dtype=np.float32)
        H = np.zeros((self.slots, w), dtype=np.uint8)
        Q = np.zeros((self.slots, w), dtype=np.uint8)
        got = [run(x32, ys[j], fl[j], self._addrs[j], M, H, Q, self._maps[j]) for j, run in enumerate(runs)]
        self.constant = [c for c, _ in got]
        self.flagged = [j for j, (_, f) in enumerate(got) if f]
        return ys, fl


def fused_outputs(fused: Fused, x32: np.ndarray, policy) -> np.ndarray:
    """The outputs of every formulation of `fused` on x32 (float32 [formulas, n]), the flagged ones
    redone by the evaluator: bit for bit the evaluator's outputs."""
    from mishaudit.eval.evaluate import evaluate

    ys, fl = fused(x32)
    for j in fused.flagged:
        idx = np.flatnonzero(fl[j])
        ys[j, idx] = evaluate(fused.formulas[j], x32[idx].astype(np.float64), policy).y.astype(np.float32)
    return ys
