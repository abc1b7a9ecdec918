"""Exact evaluation of a formula: its value in real arithmetic, by interval arithmetic.

This separates a formulation's *approximation* error (a threshold, clamp or
blend that changes the value on purpose) from its rounding error:
  formula_rel_err(x) = |F(x) - mish(x)| / |mish(x)|, F evaluated exactly.
Constants are exact (20 is 20, 9.9 is 99/10); per-format constants take the
storage format's value.

Engine, in three steps, every step sound:
1. binary64 interval arithmetic on the whole input array (numpy; + - * / are
   correctly rounded and widened by one ulp, exp/log/... are widened by
   2^-40 relative plus one ulp, far beyond any libm's error). It yields each
   input's branch path (the outcome of every `if`, fmin and fmax) and, where
   the intervals stay tight, F(x) itself.
2. Each branch path is tested once for being an identity with mish: F and mish
   are evaluated in mpmath intervals at 256 bits at the (up to) 3 inputs of the
   path nearest 0; agreement to 2^-200 at all of them marks the path exact
   (deviation 0), the probabilistic identity test for analytic functions.
   Inputs on other paths keep their deviation from step 1.
3. Inputs whose step-1 intervals are not tight (overflow, underflow,
   cancellation, an undecided comparison) are evaluated one by one in mpmath
   intervals at 192 bits, unless step 1 already shows that their deviation
   cannot exceed the largest one; those still not tight (cancellation beyond
   192 bits, e.g. 1 + exp(-800)) are counted as undecided and left out, and
   so are inputs whose |mish(x)| is below 2^-1022 on paths that are not exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import mpmath
import numpy as np

from . import fpcore as fc
from .formats import Format
from .reference import mish_mpf

REL_SLACK = 2.0**-40
TIGHT = 2.0**-36  # an interval is tight when its relative width is below this
MP_PREC = 192  # precision of the per-input mpmath intervals (step 3)
GIVE_UP = 32  # undecided inputs in a row after which a run is abandoned (step 3)


class Undecided(Exception):
    pass


# ---------------------------------------------------------------- numpy binary64 intervals


def _dn(v):
    return np.nextafter(v, -np.inf)


def _up(v):
    return np.nextafter(v, np.inf)


class NumpyIv:
    """Interval arithmetic on arrays of binary64 bounds; `bad` marks elements that lost their way."""

    def __init__(self, n: int):
        self.n = n
        self.bad = np.zeros(n, dtype=bool)

    def const(self, v):
        if isinstance(v, float):  # INFINITY / NAN
            self.bad[:] = True
            return (np.full(self.n, v), np.full(self.n, v))
        f = float(v)
        lo = f if Fraction(f) <= v else float(_dn(f))
        hi = f if Fraction(f) >= v else float(_up(f))
        return (np.full(self.n, lo), np.full(self.n, hi))

    def point(self, x):
        return (x.copy(), x.copy())

    def _check(self, lo, hi):
        self.bad |= ~(np.isfinite(lo) & np.isfinite(hi))
        return lo, hi

    def add(self, a, b):
        return self._check(_dn(a[0] + b[0]), _up(a[1] + b[1]))

    def sub(self, a, b):
        return self._check(_dn(a[0] - b[1]), _up(a[1] - b[0]))

    def neg(self, a):
        return (-a[1], -a[0])

    def mul(self, a, b):
        p = np.stack([a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1]])
        self.bad |= np.isnan(p).any(axis=0)
        return self._check(_dn(np.nanmin(p, axis=0)), _up(np.nanmax(p, axis=0)))

    def div(self, a, b):
        zero = (b[0] <= 0) & (b[1] >= 0)
        self.bad |= zero
        with np.errstate(all="ignore"):
            p = np.stack([a[0] / b[0], a[0] / b[1], a[1] / b[0], a[1] / b[1]])
        p[:, zero] = 0.0
        self.bad |= np.isnan(p).any(axis=0)
        return self._check(_dn(np.nanmin(p, axis=0)), _up(np.nanmax(p, axis=0)))

    def mono(self, f, a, lo_ok=None):
        if lo_ok is not None:
            self.bad |= ~lo_ok(a[0])
        lo, hi = f(a[0]), f(a[1])
        return self._check(_dn(lo - np.abs(lo) * REL_SLACK), _up(hi + np.abs(hi) * REL_SLACK))

    def fabs(self, a):
        lo = np.where(a[0] >= 0, a[0], np.where(a[1] <= 0, -a[1], 0.0))
        hi = np.maximum(np.abs(a[0]), np.abs(a[1]))
        return (lo, hi)

    def fmax(self, a, b):
        return (np.maximum(a[0], b[0]), np.maximum(a[1], b[1]))

    def fmin(self, a, b):
        return (np.minimum(a[0], b[0]), np.minimum(a[1], b[1]))

    def square(self, a):
        return self._square(a)

    def _square(self, a):
        lo2, hi2 = a[0] * a[0], a[1] * a[1]
        lo = np.where(a[0] >= 0, lo2, np.where(a[1] <= 0, hi2, 0.0))
        hi = np.maximum(lo2, hi2)
        return self._check(_dn(lo), _up(hi))

    def less(self, a, b):
        """(decided value of a < b, elements where it is undecided)."""
        return a[1] < b[0], ~((a[1] < b[0]) | (a[0] >= b[1]))

    def less_eq(self, a, b):
        return a[1] <= b[0], ~((a[1] <= b[0]) | (a[0] > b[1]))

    def equal(self, a, b):
        eq = (a[0] == a[1]) & (b[0] == b[1]) & (a[0] == b[0])
        ne = (a[1] < b[0]) | (b[1] < a[0])
        return eq, ~(eq | ne)

    def where(self, c, t, o):
        return (np.where(c, t[0], o[0]), np.where(c, t[1], o[1]))

    def full_bool(self, v):
        return np.full(self.n, v)


_NP_FUNCS = {
    "exp": (np.exp, None), "expm1": (np.expm1, None), "tanh": (np.tanh, None),
    "log": (np.log, lambda lo: lo > 0), "log1p": (np.log1p, lambda lo: lo > -1),
    "sqrt": (np.sqrt, lambda lo: lo >= 0),
}


# ---------------------------------------------------------------- mpmath intervals (one input)


class MpIv:
    """Interval arithmetic on one input with mpmath at `prec` bits, directed rounding."""

    def __init__(self, prec: int):
        self.prec = prec
        self.n = 1

    def _r(self, f, a, b, mode):
        return f(a, b, prec=self.prec, rounding=mode)

    def const(self, v):
        if isinstance(v, float):
            raise Undecided("non-finite constant")
        return (mpmath.fdiv(v.numerator, v.denominator, prec=self.prec, rounding="f"),
                mpmath.fdiv(v.numerator, v.denominator, prec=self.prec, rounding="c"))

    def point(self, x):
        v = mpmath.mpf(float(x))
        return (v, v)

    def add(self, a, b):
        return (self._r(mpmath.fadd, a[0], b[0], "f"), self._r(mpmath.fadd, a[1], b[1], "c"))

    def sub(self, a, b):
        return (self._r(mpmath.fsub, a[0], b[1], "f"), self._r(mpmath.fsub, a[1], b[0], "c"))

    def neg(self, a):
        return (-a[1], -a[0])

    def mul(self, a, b):
        ps = [mpmath.fmul(p, q, exact=True) for p in a for q in b]
        return (mpmath.fadd(min(ps), 0, prec=self.prec, rounding="f"), mpmath.fadd(max(ps), 0, prec=self.prec, rounding="c"))

    def div(self, a, b):
        if b[0] <= 0 <= b[1]:
            raise Undecided("division by an interval holding 0")
        lo = min(self._r(mpmath.fdiv, p, q, "f") for p in a for q in b)
        hi = max(self._r(mpmath.fdiv, p, q, "c") for p in a for q in b)
        return (lo, hi)

    def mono(self, f, a, lo_ok=None):
        if lo_ok is not None and not lo_ok(a[0]):
            raise Undecided("argument outside the function's domain")
        with mpmath.workprec(self.prec + 20):
            lo, hi = f(a[0]), f(a[1])
            eps = mpmath.ldexp(1, -self.prec)
            tiny = mpmath.ldexp(1, -(1 << 40))
            return (lo - abs(lo) * eps - tiny * (lo == 0), hi + abs(hi) * eps + tiny * (hi == 0))

    def fabs(self, a):
        if a[0] >= 0:
            return a
        if a[1] <= 0:
            return (-a[1], -a[0])
        return (mpmath.mpf(0), max(-a[0], a[1]))

    def fmax(self, a, b):
        return (max(a[0], b[0]), max(a[1], b[1]))

    def fmin(self, a, b):
        return (min(a[0], b[0]), min(a[1], b[1]))

    def square(self, a):
        return self.mul(self.fabs(a), self.fabs(a))

    def less(self, a, b):
        return np.array([a[1] < b[0]]), np.array([not (a[1] < b[0] or a[0] >= b[1])])

    def less_eq(self, a, b):
        return np.array([a[1] <= b[0]]), np.array([not (a[1] <= b[0] or a[0] > b[1])])

    def equal(self, a, b):
        eq = a[0] == a[1] == b[0] == b[1]
        ne = a[1] < b[0] or b[1] < a[0]
        return np.array([eq]), np.array([not (eq or ne)])

    def where(self, c, t, o):
        return t if bool(c[0]) else o

    def full_bool(self, v):
        return np.array([v])


_MP_FUNCS = {
    "exp": (mpmath.exp, None), "expm1": (mpmath.expm1, None), "tanh": (mpmath.tanh, None),
    "log": (mpmath.log, lambda lo: lo > 0), "log1p": (mpmath.log1p, lambda lo: lo > -1),
    "sqrt": (mpmath.sqrt, lambda lo: lo >= 0),
}


# ---------------------------------------------------------------- the tree walk


class _Walk:
    def __init__(self, formula, storage: Format, B, funcs):
        self.B, self.funcs = B, funcs
        self.consts = formula.constant_values(storage)
        self.decisions: list[np.ndarray] = []  # branch outcomes, in evaluation order
        self.undecided = np.zeros(B.n, dtype=bool)

    def decide(self, val, und):
        if isinstance(self.B, MpIv) and bool(und[0]):
            raise Undecided("comparison not decided at this precision")
        self.undecided |= und
        self.decisions.append(val)
        return val

    def ev(self, e, env):
        B = self.B
        if isinstance(e, fc.Num):
            return B.const(e.value)
        if isinstance(e, fc.Const):
            if e.name in ("TRUE", "FALSE"):
                return B.full_bool(e.name == "TRUE")
            if e.name in ("INFINITY", "NAN"):
                return B.const(float("inf") if e.name == "INFINITY" else float("nan"))
            with mpmath.workprec(400):
                v = {"E": mpmath.e, "PI": mpmath.pi, "LN2": mpmath.ln2}[e.name]
                lo, hi = mpmath.mpf(v) * (1 - mpmath.ldexp(1, -380)), mpmath.mpf(v) * (1 + mpmath.ldexp(1, -380))
            if isinstance(B, MpIv):
                return (lo, hi)
            return (np.full(B.n, float(_dn(float(lo)))), np.full(B.n, float(_up(float(hi)))))
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
            if isinstance(B, MpIv):  # one input: evaluate the taken branch only
                return self.ev(e.then if bool(c[0]) else e.other, env)
            # both branches run on every element; trouble counts only where the branch is taken
            saved, B.bad = B.bad, np.zeros(B.n, dtype=bool)
            t = self.ev(e.then, env)
            bad_t, B.bad = B.bad, np.zeros(B.n, dtype=bool)
            o = self.ev(e.other, env)
            B.bad = saved | (c & bad_t) | (~c & B.bad)
            return B.where(c, t, o)
        return self.op(e.op, [self.ev(a, env) for a in e.args])

    def op(self, op, a):
        B = self.B
        if op in ("<", ">", "<=", ">="):
            out = None
            for p, q in zip(a, a[1:]):
                v, und = {"<": lambda: B.less(p, q), ">": lambda: B.less(q, p),
                          "<=": lambda: B.less_eq(p, q), ">=": lambda: B.less_eq(q, p)}[op]()
                self.undecided |= und
                if isinstance(B, MpIv) and bool(und[0]):
                    raise Undecided("comparison")
                out = v if out is None else out & v
            return out
        if op in ("==", "!="):
            v, und = B.equal(a[0], a[1])
            self.undecided |= und
            if isinstance(B, MpIv) and bool(und[0]):
                raise Undecided("comparison")
            return v if op == "==" else ~v
        if op == "and":
            return np.logical_and.reduce(a)
        if op == "or":
            return np.logical_or.reduce(a)
        if op == "not":
            return ~a[0]
        if op == "+":
            return B.add(*a)
        if op == "-":
            return B.neg(a[0]) if len(a) == 1 else B.sub(*a)
        if op == "*":
            return B.mul(*a)
        if op == "/":
            return B.div(*a)
        if op == "fma":
            return B.add(B.mul(a[0], a[1]), a[2])
        if op == "fabs":
            return B.fabs(a[0])
        if op in ("fmax", "fmin"):
            first, und = B.less_eq(a[1], a[0]) if op == "fmax" else B.less_eq(a[0], a[1])
            other, und2 = B.less(a[0], a[1]) if op == "fmax" else B.less(a[1], a[0])
            und = und & und2
            self.undecided |= und
            if isinstance(B, MpIv) and bool(und[0]):
                raise Undecided("fmin/fmax")
            self.decisions.append(first)
            return B.fmax(*a) if op == "fmax" else B.fmin(*a)
        if op == "pow":
            lo, hi = a[1]
            if np.all(np.asarray(lo == hi)) and np.all(np.asarray(lo == 2)):
                return B.square(a[0])
            raise Undecided("pow with an exponent other than 2 is not supported exactly")
        if op == "copysign":
            raise Undecided("copysign is not supported exactly")
        if op in self.funcs:
            f, ok = self.funcs[op]
            return B.mono(f, a[0], ok)
        raise Undecided(f"operator {op}")


def exact_numpy(formula, x: np.ndarray, storage: Format):
    """binary64-interval evaluation: (lo, hi, path ids, bad mask)."""
    B = NumpyIv(len(x))
    w = _Walk(formula, storage, B, _NP_FUNCS)
    with np.errstate(all="ignore"):
        lo, hi = w.ev(formula.body, {formula.arg: B.point(x)})
    bad = B.bad | w.undecided
    if w.decisions:
        bits = np.stack([np.asarray(d, dtype=bool) for d in w.decisions], axis=1)
        _, path = np.unique(bits, axis=0, return_inverse=True)
        path = path.ravel()
    else:
        path = np.zeros(len(x), dtype=np.int64)
    return lo, hi, path, bad


def exact_mp(formula, x: float, storage: Format, prec: int):
    """mpmath-interval evaluation of one input: (lo, hi) as mpf; raises Undecided."""
    B = MpIv(prec)
    w = _Walk(formula, storage, B, _MP_FUNCS)
    return w.ev(formula.body, {formula.arg: B.point(x)})


def exact_value(formula, x: float, storage: Format, prec: int = 300):
    """F(x) exactly, to about `prec` bits (the midpoint of a tight interval)."""
    lo, hi = exact_mp(formula, x, storage, prec)
    with mpmath.workprec(prec):
        return (lo + hi) / 2


def _mish_iv(x: float, prec: int):
    m = mish_mpf(x, prec)
    with mpmath.workprec(prec + 8):
        eps = abs(m) * mpmath.ldexp(1, 5 - prec)
        return (m - eps, m + eps)


def _dev_mp(formula, x: float, storage: Format, prec: int):
    """(deviation estimate, tight?) of F from mish at x with mpmath intervals at `prec` bits."""
    try:
        lo, hi = exact_mp(formula, x, storage, prec)
    except Undecided:
        return None, False
    mlo, mhi = _mish_iv(x, prec)
    with mpmath.workprec(prec):
        if x == 0:
            return (0.0 if lo == hi == 0 else float("inf")), lo == hi
        devlo = max(mpmath.mpf(0), max(lo - mhi, mlo - hi)) / max(abs(mlo), abs(mhi))
        devhi = max(abs(hi - mlo), abs(mhi - lo)) / min(abs(mlo), abs(mhi))
        tight = devhi - devlo <= max(devhi * 2**-20, mpmath.ldexp(1, 40 - prec))
        return float((devlo + devhi) / 2), bool(tight)


@dataclass
class FormulaError:
    max_rel: float  # max over decided inputs of |F - mish| / |mish|
    worst_x: float | None
    undecided: int  # inputs left out: intervals not tight even at 1024 bits
    exact_paths: int  # branch paths found identical to mish
    paths: int


def formula_error(formula, x: np.ndarray, storage: Format, r64: np.ndarray) -> FormulaError:
    """The formula's own deviation from mish over inputs `x` (see the module docstring).

    `r64` is mish(x) rounded to binary64 (from the reference), used in step 1.
    """
    x = np.asarray(x, dtype=np.float64)
    lo, hi, path, bad = exact_numpy(formula, x, storage)
    dev = np.full(len(x), np.nan)
    # step 1: deviation from binary64 intervals where F and mish are both tightly known
    with np.errstate(all="ignore"):
        mid = lo / 2 + hi / 2  # no overflow near the top of binary64
        width_ok = np.abs(hi - lo) <= TIGHT * np.abs(mid)
        m_ok = np.isfinite(r64) & (np.abs(r64) >= 2.0**-1000)
        ok1 = ~bad & width_ok & m_ok
        dev[ok1] = np.abs(mid[ok1] - r64[ok1]) / np.abs(r64[ok1])
        resolution = TIGHT * 4  # a step-1 deviation below this is not resolved: refine it
    # step 2: identity test per path
    exact_ids = []
    paths = np.unique(path)
    for pid in paths:
        members = np.flatnonzero(path == pid)
        cand = members[np.argsort(np.abs(x[members]), kind="stable")]
        cand = [i for i in cand if x[i] != 0][:3]
        same = bool(cand)
        for i in cand:
            d, tight = _dev_mp(formula, float(x[i]), storage, 256)
            if d is None or not tight or d > 2.0**-200:
                same = False
                break
        if same:
            exact_ids.append(pid)
            dev[members] = 0.0
    # step 3: an input needs mpmath only if its deviation could exceed the largest one
    # step 1 resolved (each step-1 value is within `resolution` of the truth)
    on_exact = np.isin(path, exact_ids)
    resolved = ~np.isnan(dev) & ~on_exact
    floor = float(np.max(dev[resolved]) - resolution) if resolved.any() else 0.0
    # inputs with |mish(x)| below binary64's normal range are left out (counted undecided):
    # there mish is under 2^-1022, far below what fp16/bf16/fp32 represent
    tiny = ~on_exact & ~m_ok & np.isnan(dev)
    dev[tiny] = np.nan
    todo = np.flatnonzero(~on_exact & ~tiny & (np.isnan(dev) | (resolved & (dev + resolution > floor) & (floor <= resolution))))
    undecided = int(tiny.sum())
    # walk each (path, sign) outward from 0; after GIVE_UP undecided inputs in a row the
    # rest of that run (larger |x|, deeper cancellation) is counted undecided unvisited
    order = todo[np.lexsort((np.abs(x[todo]), np.signbit(x[todo]), path[todo]))]
    run_key, misses = None, 0
    for i in order:
        key = (path[i], bool(np.signbit(x[i])))
        if key != run_key:
            run_key, misses = key, 0
        if misses >= GIVE_UP:
            dev[i] = np.nan
            undecided += 1
            continue
        d, tight = _dev_mp(formula, float(x[i]), storage, MP_PREC)
        if d is not None and tight:
            dev[i], misses = d, 0
        else:
            dev[i] = np.nan
            undecided += 1
            misses += 1
    known = ~np.isnan(dev)
    if not known.any():
        return FormulaError(float("nan"), None, undecided, len(exact_ids), len(paths))
    j = int(np.flatnonzero(known)[np.argmax(dev[known])])
    worst = float(x[j]) if dev[j] > 0 else None
    return FormulaError(float(dev[j]), worst, undecided, len(exact_ids), len(paths))


# ---------------------------------------------------------------- cache and parallel driver

FE_VERSION = 5


def _fe_key(formula, x: np.ndarray, storage: Format) -> str:
    import hashlib

    h = hashlib.sha256(np.ascontiguousarray(x, dtype=np.float64).tobytes()).hexdigest()[:16]
    return f"v{FE_VERSION}:{formula.id}:{formula.digest}:{storage.name}:{h}"


def _fe_job(args):
    formula, x, storage, r64 = args
    return formula_error(formula, x, storage, r64)


def formula_errors(formulas: list, x: np.ndarray, storage: Format, r64: np.ndarray, use_cache: bool = True) -> dict:
    """formula id -> FormulaError for every formula, from the disk cache or computed on all cores."""
    import json
    import os
    import sys
    from concurrent.futures import ProcessPoolExecutor
    from dataclasses import asdict

    from .iofiles import atomic_write_bytes
    from .reference import cache_dir

    path = cache_dir() / "formula-errors.json"
    cache: dict = {}
    if use_cache and path.exists():
        try:
            cache = json.loads(path.read_text())
            if not isinstance(cache, dict):
                raise ValueError
        except (ValueError, OSError):
            print(f"mishaudit: warning: cache {path} is corrupt; recomputing it", file=sys.stderr)
            cache = {}
    out, todo = {}, []
    for f in formulas:
        k = _fe_key(f, x, storage)
        if k in cache:
            out[f.id] = FormulaError(**cache[k])
        else:
            todo.append(f)
    if todo:
        jobs = [(f, x, storage, r64) for f in todo]
        workers = min(len(jobs), os.cpu_count() or 1)
        if workers > 1 and len(x) > 4096:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(_fe_job, jobs))
        else:
            results = [_fe_job(j) for j in jobs]
        for f, r in zip(todo, results):
            out[f.id] = r
            cache[_fe_key(f, x, storage)] = {k: (None if isinstance(v, float) and not np.isfinite(v) and k != "max_rel" else v)
                                            for k, v in asdict(r).items()}
        if use_cache:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(path, json.dumps(cache).encode())
            except OSError:
                pass
    return out
