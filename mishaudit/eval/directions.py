"""How the fused pass's values move with the input over a block: direction programs, and the proof
that a call site or a condition is constant there (_constancy).

A direction is +1 (nondecreasing in x), -1 (nonincreasing), 0 (one value for every input of the
block) or UNKNOWN (not shown monotone), of a value as the evaluator computes it (every operation
rounded as it rounds it). The rules are read off the FPCore tree (`_Dirs` writes them as a small
program, one row per node, children first; `_dirs` runs it):
  x                 +1; a literal or a formula constant: 0
  -a                a's reversed
  RN(a + c), RN(a - c)   a's (reversed for c - a), for an operand c of direction 0; a sum of two
                    operands that both vary is UNKNOWN: a + b with a reaching +inf at the x where b
                    leaves -inf is NaN there alone
  RN(a*c), RN(a/c)  a's for a literal c > 0, reversed for c < 0 (c finite and nonzero: no 0*inf,
                    0/0 or inf/inf)
  RN(f(a))          a's for f in INCREASING (nondecreasing on the reals: so is RN of it); 0 where the
                    call site is proven constant over the block
  fmax(x, c), fmin(x, c)  (either order; x the input itself, c a literal, not NaN) +1: they hide a NaN
                    operand, so only the input, never NaN in a probed block, is taken; where every
                    input has the sign `sign`: c (0) for x < 0 <= c (fmax), c <= 0 < x (fmin), and
                    fabs(x) is `sign`
  (if c a b)        a's or b's where the condition is proven constant over the block (_steady),
                    taking that arm; else UNKNOWN
  any other operation   0 where every operand is 0, else UNKNOWN.
Every NaN of a node with a direction holds from some x to an end of the block (an operand outside
an operation's domain, or infinite against c, stays so towards one end; a constant site or arm is
one value): so a node that is not NaN at both ends is NaN nowhere.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from mishaudit.formats import FP32
from mishaudit.lang import fpcore as fc
from mishaudit.lang.operators import ELEMENTARY

INCREASING = ("exp", "exp2", "expm1", "log", "log1p", "tanh")  # nondecreasing on the reals: so is RN of them
MONOTONE_TESTS = ("<", ">", "<=", ">=")  # comparisons whose value is monotone in a monotone operand
UNKNOWN = 2  # a direction: not shown monotone
SIGNS = (0, -1, 1)  # the sign of every input of a block, 0: not known

# the kinds of a program's rows (kind, a, b, c) and what they read: a, b rows, c as said
CONST, INPUT, FIXED, NEG, ADD, SUB, SCALE, SITE, FMAX, FMIN, FABS, IF, OTHER, ANY = range(14)
# FIXED: c the direction; SCALE: a by the row's literal; SITE: a its argument (OTHER of them where
# the function is not in INCREASING), c the site (-1: none); FMAX, FMIN: x against the literal;
# IF: a and b the arms, c the condition; OTHER: 0 where a and b (-1: none) are 0; ANY: a, else b
# where a is UNKNOWN (capability only: some block may take either arm)


def bare(e):
    """e without its annotations."""
    while isinstance(e, fc.Annot):
        e = e.body
    return e


def literal_value(e, consts: dict):
    """A literal's binary32 value (a number, a named constant, a formula constant of `consts`: name
    -> its binary32 value), else None."""
    from mishaudit.eval.evaluate import const_value, round_exact

    e = bare(e)
    if isinstance(e, fc.Num):
        return float(round_exact(e.value, FP32))
    if isinstance(e, fc.Const) and e.name not in ("TRUE", "FALSE"):
        return float(round_exact(const_value(e.name), FP32))
    if isinstance(e, fc.Var) and e.name in consts:
        return float(consts[e.name])
    return None


class Dirs:
    """A direction program under construction: `node(e, names, plain)` adds the rows of e and returns
    its row. `site_of` (id of an elementary node -> its call site) and `cond_of` (id of an if node ->
    its condition) name what the block may prove constant; `optimistic`: every call site taken as
    constant and either arm of every if as possible (whether some block may show a site constant)."""

    def __init__(self, literal, site_of=None, cond_of=None, optimistic: bool = False):
        self.literal = literal
        self.site_of = site_of or {}
        self.cond_of = cond_of or {}
        self.optimistic = optimistic
        self.rows: list = []
        self.lits: list = []
        self.const = self.add(CONST)
        self.input = self.add(INPUT)

    def add(self, kind: int, a: int = -1, b: int = -1, c: int = -1, lit: float = 0.0) -> int:
        self.rows.append((kind, a, b, c))
        self.lits.append(lit)
        return len(self.rows) - 1

    def other(self, parts: list) -> int:
        parts = [p for p in parts if p != self.const]
        if not parts:
            return self.const
        r = self.add(OTHER, parts[0])
        for p in parts[1:]:
            r = self.add(OTHER, r, p)
        return r

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows int64 [n, 4], literals float64 [n])."""
        return np.array(self.rows, dtype=np.int64).reshape(-1, 4), np.array(self.lits, dtype=np.float64)

    def directions(self, sign: int = 0) -> np.ndarray:
        """Every row's direction with nothing proven constant."""
        P, L = self.arrays()
        none = np.zeros(0, dtype=np.uint8)
        return _dirs(P, L, none, none, none, sign)

    def site(self, e, names: dict, plain: frozenset) -> int:
        """The row of elementary node e's argument, as its site's rule reads it: the argument of a
        function in INCREASING, else OTHER of the arguments (0 or UNKNOWN)."""
        args = [self.node(a, names, plain) for a in e.args]
        return args[0] if e.op in INCREASING and len(args) == 1 else self.other(args)

    def node(self, e, names: dict, plain: frozenset) -> int:
        """e's row; `names` maps a bound name to its row, `plain` names the input where unshadowed."""
        if isinstance(e, (fc.Num, fc.Const)):
            return self.const
        if isinstance(e, fc.Var):
            return names.get(e.name, self.const)  # a formula constant when not bound
        if isinstance(e, fc.Annot):
            return self.node(e.body, names, plain)
        if isinstance(e, fc.Let):
            inner, after = dict(names), plain
            for name, sub in e.bindings:
                inner[name] = self.node(sub, inner, after) if e.sequential else self.node(sub, names, plain)
                after = after - {name}
            return self.node(e.body, inner, after)
        if isinstance(e, fc.If):
            c, a, b = (self.node(p, names, plain) for p in (e.cond, e.then, e.other))
            if self.optimistic:
                return self.add(ANY, a, b)
            if id(e) in self.cond_of:
                return self.add(IF, a, b, self.cond_of[id(e)])
            return self.other([c, a, b])
        if not isinstance(e, fc.Op):
            return self.add(FIXED, c=UNKNOWN)
        op = e.op
        if op in ELEMENTARY:
            if self.optimistic:
                return self.const
            return self.add(SITE, self.site(e, names, plain), c=self.site_of.get(id(e), -1))
        args = [self.node(a, names, plain) for a in e.args]

        def lit(a):  # a bound name is no literal, even one named as a formula constant
            return None if isinstance(bare(a), fc.Var) and bare(a).name in names else self.literal(a)

        def is_x(a) -> bool:
            return isinstance(bare(a), fc.Var) and bare(a).name in plain

        if op == "-" and len(args) == 1:
            return self.add(NEG, args[0])
        if op in ("+", "-") and len(args) == 2:
            return self.add(ADD if op == "+" else SUB, args[0], args[1])
        if op in ("*", "/") and len(args) == 2:
            for i in (1, 0) if op == "*" else (1,):  # the literal operand
                c = lit(e.args[i])
                if c is not None:
                    return self.add(SCALE, args[1 - i], lit=c)
        if op in ("fmax", "fmin") and len(args) == 2:
            for i in (0, 1):
                c = lit(e.args[1 - i])
                if is_x(e.args[i]) and c is not None and not math.isnan(c):
                    return self.add(FMAX if op == "fmax" else FMIN, lit=c)
        if op == "fabs" and len(args) == 1 and is_x(e.args[0]):
            return self.add(FABS)
        return self.other(args)


def direction(e, names: dict, literal, plain=(), sign: int = 0) -> int:
    """e's direction (module docstring) with nothing proven constant: `names` maps a bound name to
    its direction (x: +1), `literal(e)` is a constant's binary32 value or None, `plain` names the
    input, `sign` the sign of every input of the block (SIGNS)."""
    b = Dirs(literal)
    rows = {n: b.input if n in plain else b.add(FIXED, c=d) for n, d in names.items()}
    root = b.node(e, rows, frozenset(plain))
    return int(b.directions(sign)[root])


@numba.njit(cache=True, nogil=True, inline="always")
def _both(a, b):  # pragma: no cover - compiled
    """A sum's direction: one operand of direction 0 (module docstring)."""
    if a == UNKNOWN or b == UNKNOWN:
        return UNKNOWN
    return b if a == 0 else (a if b == 0 else UNKNOWN)


@numba.njit(cache=True, nogil=True)
def _dirs(P, L, kc, kcond, vcond, sign):  # pragma: no cover - compiled
    """Every row's direction (module docstring), given the sites proven constant (kc[s] = 1) and the
    conditions (kcond[j] = 1, their value vcond[j]), on a block whose inputs have the sign `sign`."""
    n = P.shape[0]
    d = np.empty(n, dtype=np.int64)
    for i in range(n):
        k, a, b, c = P[i, 0], P[i, 1], P[i, 2], P[i, 3]
        if k == CONST:
            r = 0
        elif k == INPUT:
            r = 1
        elif k == FIXED:
            r = c
        elif k == NEG:
            r = UNKNOWN if d[a] == UNKNOWN else -d[a]
        elif k == ADD:
            r = _both(d[a], d[b])
        elif k == SUB:
            r = _both(d[a], UNKNOWN if d[b] == UNKNOWN else -d[b])
        elif k == SCALE:
            v = L[i]
            if d[a] == 0:
                r = 0
            elif d[a] == UNKNOWN or not np.isfinite(v) or v == 0:
                r = UNKNOWN
            else:
                r = d[a] if v > 0 else -d[a]
        elif k == SITE:
            r = 0 if c >= 0 and kc[c] != 0 else d[a]
        elif k == FMAX:
            r = 0 if sign < 0 and L[i] >= 0 else 1
        elif k == FMIN:
            r = 0 if sign > 0 and L[i] <= 0 else 1
        elif k == FABS:
            r = sign if sign != 0 else UNKNOWN
        elif k == IF:
            r = (d[a] if vcond[c] != 0 else d[b]) if kcond[c] != 0 else UNKNOWN
        elif k == OTHER:
            r = 0 if d[a] == 0 and (b < 0 or d[b] == 0) else UNKNOWN
        else:  # ANY
            r = d[a] if d[a] != UNKNOWN else d[b]
        d[i] = r
    return d


@numba.njit(cache=True, nogil=True)
def _constancy(rec, crec, P, L, SARG, COND, ENC, off, sign):  # pragma: no cover - compiled
    """(kc, kv, dead): per call site, whether it is constant over the block (1), its value there,
    and whether no input of the block reaches it (an arm a constant condition never takes), from
    the probes at the block's smallest and largest input x0 <= x1: rec[s] = site s's argument at
    x0 and x1, its value at x0 and x1; crec[j] = condition j's operands at x0 and x1 (left, then
    right) and its value at x0 and x1 (1.0 true, 0.0 false); NaN where a probe did not reach it.
    P, L: the direction program; SARG[s]: the row of site s's argument; COND[j]: the rows of
    condition j's operands and the arm holding it (2 j' + 1 for the first arm of condition j',
    2 j' for the second, -1 none); ENC[s]: the arm holding site s. All 0 when `off` (a probe
    flagged for MPFR: its values are not proven). Rules, run until none adds a site or a
    condition (each proven constant changes directions: _dirs):

    A condition (a monotone comparison, MONOTONE_TESTS) is constant, its value that of both probes,
    where both probes reached it with one value and either both operands have direction 0 (each is
    one value) or one has direction +-1, is not NaN at x0 nor x1, and the other has direction 0.
    Proof: the varying operand is NaN nowhere (module docstring) and monotone, the other one value
    c; {x : a(x) < c} (or >, <=, >=) is then an interval holding one end of the block, or empty,
    so the comparison changes at most once over the block: its equal values at the two ends hold
    throughout (c NaN: false everywhere).

    Site s is constant, its value v0, where v0 and v1 are equal encodings, not NaN, and its
    argument's direction d is (a) 0: the argument is one value for every input of the block, a0,
    and the value RN(f(a0)); or (b) +-1 with a0, a1 neither NaN nor zero and of one sign. Proof of
    (b): A(x) is monotone, so it lies between A(x0) and A(x1) for every input x of the block: not
    zero, not NaN (module docstring), of their sign. f is nondecreasing, so RN(f(A(x))) lies
    between the two equal values: it is that value; a zero value keeps its sign, as f's exact value
    has one sign there (f is zero at a nonzero argument only as log(1) = +0)."""
    ns = len(SARG)
    nc = COND.shape[0]
    kc = np.zeros(ns, dtype=np.uint8)
    kv = np.zeros(ns, dtype=np.float32)
    dead = np.zeros(ns, dtype=np.uint8)
    if off:
        return kc, kv, dead
    kcond = np.zeros(nc, dtype=np.uint8)
    vcond = np.zeros(nc, dtype=np.uint8)
    changed = True
    while changed:  # until no site or condition is added
        changed = False
        d = _dirs(P, L, kc, kcond, vcond, sign)
        for j in range(nc):
            if kcond[j] == 0 and _steady(crec[j], d[COND[j, 0]], d[COND[j, 1]]):
                kcond[j] = 1
                vcond[j] = crec[j, 4] != 0
                changed = True
        for s in range(ns):
            if kc[s] == 0 and _constant(rec[s], d[SARG[s]]):
                kc[s] = 1
                kv[s] = rec[s, 2]
                changed = True
    deadc = np.zeros(nc, dtype=np.uint8)
    for j in range(nc):  # a condition's arm is numbered before the conditions inside it
        deadc[j] = _untaken(COND[j, 2], deadc, kcond, vcond)
    for s in range(ns):
        dead[s] = _untaken(ENC[s], deadc, kcond, vcond)
    return kc, kv, dead


@numba.njit(cache=True, nogil=True, inline="always")
def _untaken(arm, deadc, kcond, vcond):  # pragma: no cover - compiled
    """Whether no input of the block reaches `arm` (2 j + 1: condition j's first arm, 2 j: its
    second, -1: none): its condition is in such an arm, or constant and taking the other."""
    if arm < 0:
        return 0
    j = arm >> 1
    return 1 if deadc[j] != 0 or (kcond[j] != 0 and vcond[j] != (arm & 1)) else 0


@numba.njit(cache=True, nogil=True, inline="always")
def _steady(cr, dl, dr):  # pragma: no cover - compiled
    """_constancy's rule for a condition: probe record cr, its operands' directions dl, dr."""
    if cr[4] != cr[4] or cr[5] != cr[5] or cr[4] != cr[5]:
        return False
    if dl == 0 and dr == 0:
        return True
    if (dl == 1 or dl == -1) and dr == 0:
        return cr[0] == cr[0] and cr[1] == cr[1]
    if (dr == 1 or dr == -1) and dl == 0:
        return cr[2] == cr[2] and cr[3] == cr[3]
    return False


@numba.njit(cache=True, nogil=True, inline="always")
def _constant(r, d):  # pragma: no cover - compiled
    """_constancy's rules (a) and (b) for a site: probe record r, its argument's direction d."""
    a0, a1, v0, v1 = r[0], r[1], r[2], r[3]
    if v0 != v0 or np.float32(v0).view(np.uint32) != np.float32(v1).view(np.uint32):
        return False
    if d == 0:  # (a)
        return True
    return (d == 1 or d == -1) and a0 == a0 and a1 == a1 and a0 != 0 and a1 != 0 and (a0 < 0) == (a1 < 0)  # (b)
