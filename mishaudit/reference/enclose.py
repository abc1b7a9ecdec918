"""Enclosures of the exact value of a formula, and of each of its operations, in real arithmetic.

F(x) is the formula read as real arithmetic: constants exact (9.9 is 99/10), no rounding,
precision annotations ignored; per-format constants take the storage format's value. An
enclosure is an interval [lo, hi] certain to hold the exact value. Two engines:

- `enclose_array`: binary64 intervals over a whole input array (numpy). + - * / are rounded
  and then widened outward by one binary64 ulp; exp, expm1, log, log1p, tanh and pow use
  the host's binary64 libm widened by SLACK = 2^-40 relative plus 2^-1060 absolute (16 times
  the bound libm.B that `libm.verify_host_libm` checks). Endpoints may be infinite: an exact
  value beyond binary64's range is enclosed by [max, inf]; an endpoint product 0 * inf counts
  as 0. Inputs whose value is not enclosed (division by an interval holding 0, a logarithm of
  an interval reaching 0, a comparison the intervals do not decide, a non-finite constant)
  are marked `undecided`; their path and bounds mean nothing.
  Values below the engines' range (exp(-3e38) is below binary64's and even MPFR's) are enclosed
  by [0, tiny]; so that they stay usable, F is read in the extended reals: a divisor enclosed by
  [0, c] counts as positive (a/0 = +-inf, as for IEEE's +0) and log(0) = -inf. Only a divisor
  enclosure with 0 strictly inside, or exactly [0, 0], is undecided.
- `enclose_mpfr`: MPFR intervals at a chosen precision over an array of inputs (gmpy2 on numpy
  object arrays; directed rounding: every operation, the elementary functions included, is
  rounded outward exactly once, so the enclosure is sound by MPFR's correct rounding).

Both evaluate both branches of every `if` on every input (trouble counts only where a branch is
taken), record the enclosure of every node on request (`nodes`: id(node) -> (lo, hi)), and
give each input's branch path: the outcomes of every `if`, fmin and fmax, in evaluation order,
numbered.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from mishaudit.eval.evaluate import truth
from mishaudit.eval.libm import host, increasing_bounds, mpfr_array
from mishaudit.formats import Format
from mishaudit.lang import fpcore as fc
from mishaudit.lang.operators import INCREASING, OPERATORS

SLACK = 2.0**-40
ABS_SLACK = 2.0**-1060
_MAX = np.finfo(np.float64).max


# ---------------------------------------------------------------- binary64 intervals over arrays


def _dn(v):
    """The next binary64 value down: a lower bound for a rounded (to nearest) result. A +0 result
    stays: a rounded product, quotient or sum of sign-known operands is +0 only when the exact
    value is >= 0 (sums that cancel are exact; underflow keeps the sign)."""
    return np.where((v == 0) & ~np.signbit(v), 0.0, np.nextafter(v, -np.inf))


def _up(v):
    """The next binary64 value up; a -0 result stays (as for _dn)."""
    return np.where((v == 0) & np.signbit(v), -0.0, np.nextafter(v, np.inf))


def _fix_lo(lo):
    """A lower bound that overflowed to +inf stands for 'above max'."""
    return np.where(lo == np.inf, _MAX, lo)


def _fix_hi(hi):
    return np.where(hi == -np.inf, -_MAX, hi)


def _wide(lo, hi):
    """Widen computed endpoints of a libm call by SLACK (relative) and ABS_SLACK (absolute)."""
    with np.errstate(all="ignore"):
        lo2 = np.where(np.isinf(lo), lo, lo - np.abs(lo) * SLACK - ABS_SLACK)
        hi2 = np.where(np.isinf(hi), hi, hi + np.abs(hi) * SLACK + ABS_SLACK)
    return _fix_lo(lo2), _fix_hi(hi2)


def _corners(p: list):
    """min and max of endpoint products/quotients, NaN (0 * inf, inf / inf at irrelevant corners) ignored."""
    s = np.stack(p)
    s = np.where(np.isnan(s), 0.0, s)
    return s.min(axis=0), s.max(axis=0)


class ArrayIv:
    """Interval arithmetic on arrays of binary64 bounds (lo <= exact <= hi, lo < inf, hi > -inf)."""

    _neg = staticmethod(np.negative)  # exact negation and absolute value of bounds
    _abs = staticmethod(np.abs)
    zero = 0.0

    def __init__(self, n: int):
        self.n = n
        self.undecided = np.zeros(n, dtype=bool)

    def const(self, v):
        if isinstance(v, float):  # INFINITY, NAN: not real numbers
            self.undecided[:] = True
            return (np.zeros(self.n), np.zeros(self.n))
        f = float(v) if abs(v) <= Fraction(_MAX) else (_MAX if v > 0 else -_MAX)
        lo = f if Fraction(f) <= v else float(_dn(f))
        hi = f if Fraction(f) >= v else float(_up(f))
        if abs(v) > Fraction(_MAX):
            lo, hi = (_MAX, np.inf) if v > 0 else (-np.inf, -_MAX)
        return (np.full(self.n, lo), np.full(self.n, hi))

    def point(self, x):
        return (x.copy(), x.copy())

    def add(self, a, b):
        return (_fix_lo(_dn(a[0] + b[0])), _fix_hi(_up(a[1] + b[1])))

    def sub(self, a, b):
        return (_fix_lo(_dn(a[0] - b[1])), _fix_hi(_up(a[1] - b[0])))

    def neg(self, a):
        return (self._neg(a[1]), self._neg(a[0]))

    def mul(self, a, b):
        lo, hi = _corners([a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1]])
        return (_fix_lo(_dn(lo)), _fix_hi(_up(hi)))

    def div(self, a, b):
        """A divisor touching 0 from one side counts as signed zero there (module docstring)."""
        bad = ((b[0] < 0) & (b[1] > 0)) | ((b[0] == 0) & (b[1] == 0))
        self.undecided |= bad
        b0 = np.where(b[0] == 0, 0.0, b[0])  # +0: a divisor in [0, c] is positive
        b1 = np.where(b[1] == 0, -0.0, b[1])  # -0: a divisor in [-c, 0] is negative
        lo, hi = _corners([a[0] / b0, a[0] / b1, a[1] / b0, a[1] / b1])
        return (_fix_lo(_dn(np.where(bad, 0.0, lo))), _fix_hi(_up(np.where(bad, 0.0, hi))))

    def in_domain(self, op, a):
        """Mark undecided the inputs whose enclosure reaches below op's domain (lang/operators.py)."""
        dom = OPERATORS[op].domain
        if dom is not None:
            ok = (a[0] >= dom[0]) if dom[1] else (a[0] > dom[0])
            self.undecided |= ~np.asarray(ok, dtype=bool)

    def mono(self, op, a):
        """An increasing function (lang/operators.py): its values at the ends, clipped to its range;
        its domain is checked on the lower end."""
        self.in_domain(op, a)
        if op == "sqrt":
            lo, hi = np.sqrt(np.maximum(a[0], 0.0)), np.sqrt(np.maximum(a[1], 0.0))
            return (_fix_lo(_dn(lo)), _fix_hi(_up(hi)))  # sqrt is correctly rounded
        lo, hi = increasing_bounds(op, a[0], a[1], SLACK)
        floor, ceil = OPERATORS[op].range  # exp > 0, |tanh| <= 1, expm1 > -1
        return (np.maximum(lo, floor), np.minimum(hi, ceil))

    def pow(self, a, b):
        """a^b: b a point integer (any a), or a > 0 (then monotone in a and in b: corners)."""
        n = b[0]
        intpow = (b[0] == b[1]) & (np.floor(n) == n) & (np.abs(n) <= 64)
        pos = a[0] > 0
        self.undecided |= ~(intpow | pos)
        pw = functools.partial(host, "pow")
        cl, ch = _corners([pw(a[0], b[0]), pw(a[0], b[1]), pw(np.abs(a[1]), b[0]), pw(np.abs(a[1]), b[1])])
        # integer powers of intervals that may hold 0 or negatives: by parity, through |a|
        m = np.where(a[0] > 0, a[0], np.where(a[1] < 0, -a[1], 0.0))  # min |a|
        M = np.maximum(np.abs(a[0]), np.abs(a[1]))  # max |a|
        even = np.mod(n, 2) == 0
        pm, pM = pw(m, n), pw(M, n)
        # |a|^n over [m, M] is increasing for n >= 0, decreasing for n < 0 (then 0 is excluded)
        mag_lo, mag_hi = np.where(n >= 0, pm, pM), np.where(n >= 0, pM, pm)
        odd_lo = np.where(n >= 0, pw(a[0], n), pw(a[1], n))
        odd_hi = np.where(n >= 0, pw(a[1], n), pw(a[0], n))
        il = np.where(even, mag_lo, odd_lo)
        ih = np.where(even, mag_hi, odd_hi)
        holds0 = (a[0] <= 0) & (a[1] >= 0)
        self.undecided |= intpow & ~pos & (n < 0) & holds0
        lo = np.where(pos, cl, il)
        hi = np.where(pos, ch, ih)
        return _wide(lo, hi)

    def fabs(self, a):
        lo = np.where(a[0] >= 0, a[0], np.where(a[1] <= 0, self._neg(a[1]), self.zero))
        return (lo, np.maximum(self._abs(a[0]), self._abs(a[1])))

    def copysign(self, a, b):
        """|a| with b's sign: decided only where b's enclosure excludes 0 (an exact zero has no sign)."""
        m = self.fabs(a)
        self.undecided |= ~((b[0] > 0) | (b[1] < 0)).astype(bool)
        neg = (b[1] < 0).astype(bool)
        return (np.where(neg, self._neg(m[1]), m[0]), np.where(neg, self._neg(m[0]), m[1]))

    def fmax(self, a, b):
        return (np.maximum(a[0], b[0]), np.maximum(a[1], b[1]))

    def fmin(self, a, b):
        return (np.minimum(a[0], b[0]), np.minimum(a[1], b[1]))

    def less(self, a, b):
        """(a < b where decided, undecided mask)."""
        yes, no = a[1] < b[0], a[0] >= b[1]
        return yes, ~(yes | no)

    def less_eq(self, a, b):
        yes, no = a[1] <= b[0], a[0] > b[1]
        return yes, ~(yes | no)

    def equal(self, a, b):
        yes = (a[0] == a[1]) & (b[0] == b[1]) & (a[0] == b[0])
        no = (a[1] < b[0]) | (b[1] < a[0])
        return yes, ~(yes | no)

    def where(self, c, t, o):
        return (np.where(c, t[0], o[0]), np.where(c, t[1], o[1]))

    def truth(self, v):
        return np.full(self.n, v)

    def fresh_flags(self):
        saved, self.undecided = self.undecided, np.zeros(self.n, dtype=bool)
        return saved

    def restore_flags(self, saved, c, flags_then, flags_else):
        self.undecided = saved | np.where(c, flags_then, flags_else)


# ---------------------------------------------------------------- MPFR intervals over arrays


@functools.lru_cache(maxsize=None)
def mpfr_contexts(prec: int):
    """(round-down, round-up) MPFR contexts at `prec` bits with MPFR's widest exponent range."""
    import gmpy2

    kw = dict(precision=prec, emax=gmpy2.get_emax_max(), emin=gmpy2.get_emin_min())
    return gmpy2.context(round=gmpy2.RoundDown, **kw), gmpy2.context(round=gmpy2.RoundUp, **kw)


@functools.lru_cache(maxsize=None)
def _ufuncs(prec: int):
    """numpy ufuncs over object arrays applying each context method (down, up) element by element."""
    d, u = mpfr_contexts(prec)
    ops = [o for o in OPERATORS.values() if o.mpfr and o.name != "fma"]  # fma: enclosed as a*b + c
    return {o.mpfr: (np.frompyfunc(getattr(d, o.mpfr), max(o.arity), 1),
                     np.frompyfunc(getattr(u, o.mpfr), max(o.arity), 1)) for o in ops}


@functools.lru_cache(maxsize=1)
def _helpers():
    import gmpy2

    return (mpfr_array, np.frompyfunc(gmpy2.is_nan, 1, 1), gmpy2.mpfr(0), -gmpy2.mpfr(0))


class MpfrIv(ArrayIv):
    """The same interval arithmetic on object arrays of MPFR numbers at `prec` bits: every bound is
    one correctly rounded MPFR operation in the outward direction (no slack needed)."""

    def __init__(self, n: int, prec: int):
        super().__init__(n)
        self.prec = prec
        self.d, self.u = mpfr_contexts(prec)
        self.f = _ufuncs(prec)
        _, self.isnan, self.pzero, self.nzero = _helpers()
        self.zero = self.pzero
        # never Python's operators on MPFR numbers: they round to gmpy2's global 53-bit context
        self._neg = np.frompyfunc(self.d.minus, 1, 1)  # exact at prec >= the operands' precision
        self._abs = np.frompyfunc(self.d.abs, 1, 1)
        self.one = self._full(self.d.add(self.pzero, 1))

    def _nan0(self, v):
        return np.where(self.isnan(v).astype(bool), self.pzero, v)

    def _full(self, v):
        out = np.empty(self.n, dtype=object)
        out[:] = [v] * self.n
        return out

    def const(self, v):
        if isinstance(v, float):
            self.undecided[:] = True
            return (self._full(self.pzero), self._full(self.pzero))
        import gmpy2

        num, den = gmpy2.mpz(v.numerator), gmpy2.mpz(v.denominator)
        return (self._full(self.d.div(num, den)), self._full(self.u.div(num, den)))

    def named(self, name: str):
        d, u = self.d, self.u
        lo, hi = {"PI": (d.const_pi, u.const_pi), "LN2": (d.const_log2, u.const_log2)}.get(
            name, (lambda: d.exp(1), lambda: u.exp(1)))
        return (self._full(lo()), self._full(hi()))

    def point(self, x):
        v = mpfr_array(x)
        return (v, v)

    def add(self, a, b):
        fd, fu = self.f["add"]
        return (fd(a[0], b[0]), fu(a[1], b[1]))

    def sub(self, a, b):
        fd, fu = self.f["sub"]
        return (fd(a[0], b[1]), fu(a[1], b[0]))

    def _corners(self, name, a, b):
        fd, fu = self.f[name]
        lo = [self._nan0(fd(p, q)) for p in a for q in b]
        hi = [self._nan0(fu(p, q)) for p in a for q in b]
        return (np.minimum.reduce(lo), np.maximum.reduce(hi))

    def mul(self, a, b):
        return self._corners("mul", a, b)

    def div(self, a, b):
        bad = ((b[0] < 0) & (b[1] > 0)) | ((b[0] == 0) & (b[1] == 0))
        self.undecided |= bad.astype(bool)
        b0 = np.where(b[0] == 0, self.pzero, b[0])
        b1 = np.where(b[1] == 0, self.nzero, b[1])
        b0, b1 = np.where(bad, self.one, b0), np.where(bad, self.one, b1)
        return self._corners("div", a, (b0, b1))

    def mono(self, op, a):
        fd, fu = self.f[OPERATORS[op].mpfr]
        self.in_domain(op, a)
        return (fd(a[0]), fu(a[1]))

    def pow(self, a, b):
        """As ArrayIv.pow, each bound one directed MPFR pow."""
        fd, fu = self.f["pow"]
        n = b[0]
        point = (b[0] == b[1]).astype(bool)
        nf = np.array([float(v) for v in n])
        intpow = point & (np.floor(nf) == nf) & (np.abs(nf) <= 64)
        pos = (a[0] > 0).astype(bool)
        holds0 = ((a[0] <= 0) & (a[1] >= 0)).astype(bool)
        self.undecided |= ~(intpow | pos) | (intpow & ~pos & (nf < 0) & holds0)
        one = self.one
        ap = (np.where(pos, a[0], one), np.where(pos, a[1], one))
        cl, ch = self._corners("pow", ap, b)
        m, M = self.fabs(a)
        even = np.mod(nf, 2) == 0
        up_n = nf >= 0
        nn = np.where(intpow, n, one)
        lo_e = np.where(up_n, fd(m, nn), fd(M, nn))
        hi_e = np.where(up_n, fu(M, nn), fu(m, nn))
        lo_o = np.where(up_n, fd(a[0], nn), fd(a[1], nn))
        hi_o = np.where(up_n, fu(a[1], nn), fu(a[0], nn))
        return (np.where(pos, cl, np.where(even, lo_e, lo_o)), np.where(pos, ch, np.where(even, hi_e, hi_o)))

    def less(self, a, b):
        yes, no = (a[1] < b[0]).astype(bool), (a[0] >= b[1]).astype(bool)
        return yes, ~(yes | no)

    def less_eq(self, a, b):
        yes, no = (a[1] <= b[0]).astype(bool), (a[0] > b[1]).astype(bool)
        return yes, ~(yes | no)

    def equal(self, a, b):
        yes = ((a[0] == a[1]) & (b[0] == b[1]) & (a[0] == b[0])).astype(bool)
        no = ((a[1] < b[0]) | (b[1] < a[0])).astype(bool)
        return yes, ~(yes | no)


# ---------------------------------------------------------------- the walk


@dataclass
class Enclosure:
    lo: object  # float64 arrays (enclose_array) or object arrays of MPFR numbers (enclose_mpfr)
    hi: object
    nodes: dict = field(default_factory=dict)  # id(operation node) -> (lo, hi), when recorded
    path: np.ndarray | None = None  # branch path id per input (enclose_array)
    undecided: np.ndarray | None = None  # bool per input (enclose_array)


_METHODS = {"+": "add", "*": "mul", "/": "div", "fabs": "fabs", "copysign": "copysign", "pow": "pow"}


class _Walk:
    def __init__(self, formula, storage: Format, B, record: bool):
        self.B = B
        self.record = record
        self.consts = formula.constant_values(storage)
        self.decisions: list = []
        self.nodes: dict = {}

    def cond(self, val, und):
        """A truth value; where the enclosures do not decide it, the input is undecided."""
        self.B.undecided |= und
        return val

    def ev(self, e, env):
        B = self.B
        if isinstance(e, fc.Num):
            return B.const(e.value)
        if isinstance(e, fc.Const):
            if e.name in ("TRUE", "FALSE"):
                return B.truth(e.name == "TRUE")
            if e.name in ("INFINITY", "NAN"):
                return B.const(float("inf"))
            return self._named(e.name)
        if isinstance(e, fc.Var):
            return env[e.name] if e.name in env else B.const(self.consts[e.name])
        if isinstance(e, fc.Let):
            inner = dict(env)
            for name, sub in e.bindings:
                inner[name] = self.ev(sub, inner if e.sequential else env)
            return self.ev(e.body, inner)
        if isinstance(e, fc.Annot):
            return self.ev(e.body, env)  # exact: precision annotations do not apply
        if isinstance(e, fc.If):
            c = self.ev(e.cond, env)
            self.decisions.append(c)
            # both branches on every input; trouble counts only where the branch is taken
            saved = B.fresh_flags()
            t = self.ev(e.then, env)
            ft = B.fresh_flags()
            o = self.ev(e.other, env)
            B.restore_flags(saved, c, ft, B.undecided)
            v = B.where(c, t, o)
            if self.record:
                self.nodes[id(e)] = v
            return v
        args = []
        for a in e.args:
            v = self.ev(a, env)
            if self.record and not isinstance(a, (fc.Op, fc.If)):  # leaves: x, let names, constants
                self.nodes[id(a)] = v
            args.append(v)
        v = self.op(e.op, args)
        if self.record and e.op not in fc.COMPARISONS and e.op not in ("and", "or", "not"):
            self.nodes[id(e)] = v
        return v

    def compare(self, op: str, p, q):
        """p op q where the enclosures decide it; an input where they do not is marked undecided."""
        B = self.B
        if op in ("<", ">"):
            v, und = B.less(p, q) if op == "<" else B.less(q, p)
        elif op in ("<=", ">="):
            v, und = B.less_eq(p, q) if op == "<=" else B.less_eq(q, p)
        else:
            v, und = B.equal(p, q)
            v = v if op == "==" else ~v
        return self.cond(v, und)

    def _named(self, name: str):
        if isinstance(self.B, MpfrIv):
            return self.B.named(name)
        import mpmath

        with mpmath.workprec(200):
            v = {"E": mpmath.e, "PI": mpmath.pi, "LN2": mpmath.ln2}[name]
            man, exp = mpmath.mpf(v).man_exp
        exact = Fraction(man) * Fraction(2) ** exp  # within 2^-190 of the constant
        lo, hi = self.B.const(exact)
        return (_dn(lo), _up(hi))

    def op(self, op, a):
        B = self.B
        if op in fc.BOOLEAN_OPS:
            return truth(op, a, {k: functools.partial(self.compare, k) for k in fc.COMPARISONS})
        if op in _METHODS:
            return getattr(B, _METHODS[op])(*a)
        if op == "-":
            return B.neg(a[0]) if len(a) == 1 else B.sub(*a)
        if op == "fma":
            return B.add(B.mul(a[0], a[1]), a[2])
        if op in ("fmax", "fmin"):
            # which operand is taken is a branch: decided when the intervals do not overlap (or
            # are the same point)
            first, und1 = B.less_eq(a[1], a[0]) if op == "fmax" else B.less_eq(a[0], a[1])
            _, und2 = B.less(a[0], a[1]) if op == "fmax" else B.less(a[1], a[0])
            self.decisions.append(self.cond(first, und1 & und2))
            return B.fmax(*a) if op == "fmax" else B.fmin(*a)
        if op in INCREASING:
            return B.mono(op, a[0])
        if OPERATORS[op].kind == "primitive":  # its real meaning, an expression of the operand
            arg, body = fc.meaning(op)
            return self.ev(body, {arg: a[0]})
        raise ValueError(f"no enclosure rule for {op!r} in lang/operators.py")


def enclose_array(formula, x: np.ndarray, storage: Format, record: bool = False) -> Enclosure:
    """binary64 enclosures of F(x) for every input (module docstring)."""
    x = np.asarray(x, dtype=np.float64)
    B = ArrayIv(len(x))
    w = _Walk(formula, storage, B, record)
    with np.errstate(all="ignore"):
        lo, hi = w.ev(formula.body, {formula.arg: B.point(x)})
        und = B.undecided | np.isnan(lo) | np.isnan(hi)
    return Enclosure(lo, hi, w.nodes, _paths(w.decisions, len(x)), und)


def _paths(decisions: list, n: int) -> np.ndarray:
    """Each input's branch path, numbered: the decisions as the bits of a number (rows of packed
    bits beyond 62 decisions), renumbered 0, 1, ..."""
    rows = [np.broadcast_to(np.asarray(d, dtype=bool), (n,)) for d in decisions]
    if len(rows) <= 62:
        key = np.zeros(n, dtype=np.int64)
        for k, r in enumerate(rows):
            key |= r.astype(np.int64) << k
        return np.unique(key, return_inverse=True)[1].ravel()
    return np.unique(np.packbits(np.stack(rows, axis=1), axis=1), axis=0, return_inverse=True)[1].ravel()


def enclose_mpfr(formula, x: np.ndarray, storage: Format, prec: int, record: bool = False) -> Enclosure:
    """MPFR enclosures of F(x) at `prec` bits for every input (object arrays of MPFR numbers)."""
    x = np.asarray(x, dtype=np.float64)
    B = MpfrIv(len(x), prec)
    w = _Walk(formula, storage, B, record)
    with np.errstate(all="ignore"):  # object loops over MPFR numbers; numpy's flags mean nothing here
        lo, hi = w.ev(formula.body, {formula.arg: B.point(x)})
        und = B.undecided | B.isnan(lo).astype(bool) | B.isnan(hi).astype(bool)
    return Enclosure(lo, hi, w.nodes, None, und)
