"""A formulation's approximation error: how far its exact value F(x) is from its spec (mish(x) unless
the file's :spec says otherwise; "mish" below stands for the spec).

F is the formula read in real arithmetic (enclose.py): it differs from mish only where a
threshold, clamp or blend changes the value on purpose. With ulp(r) the storage format's
ulp of r = mish(x) (measure/metrics.py's definition):
  formula_ulp(x) = |F(x) - mish(x)| / ulp(mish(x))
  formula_rel(x) = |F(x) - mish(x)| / |mish(x)|, only over inputs whose RN(mish(x)) is a
                   normal number of the storage format (below, a relative deviation says
                   nothing at the format's resolution)
Reported: the maxima over the input set, an input attaining each, and whether every branch
path of the formula is an identity with mish (`exact`). The figures are exact to 2^-60
relative, down to the resolution TAU = 2^-10 ulp (TAU 2^-p relative): a maximum below it
reads 0, and a formulation that is not exact but stays below it is `below` TAU. This splits
a formulation's error in two: approximation (formula_ulp) and rounding (the rest).

Algorithm (every printed number comes from MPFR, so it is the same on every machine):
1. `enclose_array` gives every input's branch path and a binary64 enclosure of F(x).
2. A path is an identity when F and mish agree to 2^-200 relative at (up to) its 3 inputs
   nearest 0, in MPFR intervals at 256 bits (the probabilistic identity test for analytic
   functions); its inputs have deviation 0.
3. Elsewhere the binary64 enclosures of F and of mish (the reference's RN(r) and d, within
   2^-42 |r| + 2^-999 ulp of r) bound each deviation from above and below. An input is a
   candidate when its upper bound reaches TAU and the largest lower bound: every input whose
   true deviation is at least TAU is one, on every machine.
4. The candidates are enclosed in MPFR at p + 40 bits (64 at least), then at up to 1024 (skipping to the
   precision at which the width just achieved would meet its target), dropping
   those whose upper bound falls below TAU or below another's lower bound, until each deviation
   is known to 2^-60 relative. A candidate that would need more than 1024 bits is counted
   `undecided` and left out (binary64 darknet-cpu below x = -745, where 2/(1 + exp(-2s)) - 1
   cancels to s = exp(x) < 2^-1074). The largest value (ties: the smaller x) is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mishaudit.formats import Format
from mishaudit.reference.enclose import enclose_array, enclose_mpfr, mpfr_contexts

TAU = 2.0**-10  # resolution of formula_ulp, in ulps
IDENTITY_PREC = 256
IDENTITY_TOL = 2.0**-200
PRECISIONS = (64, 96, 128, 256, 512, 1024)
REL_TOL = 2.0**-60
REF_REL = 2.0**-42  # relative error bound of the reference's r64 (fastref.py, mpfrref.py, specref.py)
REF_ABS = 2.0**-999  # ulps: the stand-in d = -2^-1000 of |d| below any resolution
REF_D = 2.0**-20  # ulps: the resolution of d the mish' reference guarantees (gradref.py)


@dataclass
class ApproxError:
    max_ulp: float  # max formula_ulp (0 when below TAU)
    worst_x: float | None  # an input attaining it (None when 0)
    max_rel: float | None  # max formula_rel over normal results (0 below TAU 2^-p; None: no such input)
    rel_worst_x: float | None
    exact: bool  # every path of the formula is an identity with mish
    undecided: int  # candidates whose deviation MPFR could not pin down at 1024 bits
    exact_paths: int  # branch paths found identical to mish
    paths: int


def _identity(formula, x: np.ndarray, fmt: Format) -> np.ndarray:
    """Per input: F and mish agree to IDENTITY_TOL relative (MPFR at IDENTITY_PREC bits)."""
    F = enclose_mpfr(formula, x, fmt, IDENTITY_PREC)
    M = enclose_mpfr(formula.spec, x, fmt, IDENTITY_PREC)
    d, u = mpfr_contexts(IDENTITY_PREC + 8)  # (Python's operators on MPFR numbers would round to 53 bits)
    ab, sub = np.frompyfunc(u.abs, 1, 1), np.frompyfunc(u.sub, 2, 1)
    mul = np.frompyfunc(d.mul, 2, 1)
    scale = np.maximum(ab(M.lo), ab(M.hi))
    gap = np.maximum(ab(sub(F.hi, M.lo)), ab(sub(M.hi, F.lo)))
    return ~F.undecided & ~M.undecided & (gap <= mul(scale, IDENTITY_TOL)).astype(bool)


def _mpfr_bounds(formula, x: np.ndarray, fmt: Format, q: np.ndarray, prec: int, rel: bool):
    """(lo, hi, undecided) of formula_ulp (rel: formula_rel) at x, MPFR at `prec` bits, as object
    arrays of MPFR numbers."""
    F = enclose_mpfr(formula, x, fmt, prec)
    M = enclose_mpfr(formula.spec, x, fmt, prec)
    d, u = mpfr_contexts(prec)
    sub_d, sub_u = np.frompyfunc(d.sub, 2, 1), np.frompyfunc(u.sub, 2, 1)
    neg_ = np.frompyfunc(d.minus, 1, 1)  # exact (Python's unary minus would round to 53 bits)
    lo, hi = sub_d(F.lo, M.hi), sub_u(F.hi, M.lo)  # F - mish
    zero = np.frompyfunc(d.mul, 2, 1)(lo, 0)
    pos, neg = (lo >= 0).astype(bool), (hi <= 0).astype(bool)
    a = np.where(pos, lo, np.where(neg, neg_(hi), zero))
    b = np.where(pos, hi, np.where(neg, neg_(lo), np.maximum(neg_(lo), hi)))
    und = F.undecided | M.undecided
    if rel:  # divide by |mish|
        mlo = np.where((M.lo > 0).astype(bool), M.lo, np.where((M.hi < 0).astype(bool), neg_(M.hi), zero))
        mhi = np.maximum(neg_(M.lo), M.hi)
        und = und | (mlo == 0).astype(bool)
        mlo = np.where(mlo == 0, mhi, mlo)
        div_d, div_u = np.frompyfunc(d.div, 2, 1), np.frompyfunc(u.div, 2, 1)
        return div_d(a, mhi), div_u(b, mlo), und
    qs = [int(v) for v in q]
    scale_d = np.frompyfunc(d.mul_2exp, 2, 1)
    scale_u = np.frompyfunc(u.mul_2exp, 2, 1)
    neg_q = np.array([-v for v in qs], dtype=object)
    return scale_d(a, neg_q), scale_u(b, neg_q), und


def approx_error(formula, x: np.ndarray, fmt: Format, ref) -> ApproxError:
    """The formula's approximation error over inputs `x` (module docstring); `ref` is the
    reference.Reference of those inputs."""
    x = np.asarray(x, dtype=np.float64)
    enc = enclose_array(formula, x, fmt)
    und = enc.undecided
    # step 2: identity paths, tested at up to 3 inputs each (all paths in one MPFR pass)
    paths = np.unique(enc.path[~und]) if (~und).any() else np.array([], dtype=np.int64)
    reps, owner = [], []
    for pid in paths:
        members = np.flatnonzero((enc.path == pid) & ~und & (x != 0))
        cand = members[np.lexsort((x[members], np.abs(x[members])))][:3].tolist()
        reps += cand
        owner += [int(pid)] * len(cand)
    same = _identity(formula, x[reps], fmt) if reps else np.zeros(0, dtype=bool)
    exact = np.zeros(len(x), dtype=bool)
    n_exact = 0
    for pid in paths:
        mine = [k for k, o in enumerate(owner) if o == pid]
        if mine and same[mine].all():
            exact |= (enc.path == pid) & ~und
            n_exact += 1
    # step 3: binary64 bounds of the deviation, in ulps of mish(x)
    q = ref.E - fmt.p + 1
    with np.errstate(all="ignore"):
        m = np.ldexp(ref.rn, -q) + ref.d  # mish(x) / ulp
        em = REF_REL * np.abs(m) + REF_ABS + REF_D
        flo = np.nextafter(np.ldexp(enc.lo, -q), -np.inf)
        fhi = np.nextafter(np.ldexp(enc.hi, -q), np.inf)
        dlo = np.maximum(0.0, np.maximum(flo - (m + em), (m - em) - fhi))
        dhi = np.maximum(np.abs(fhi - (m - em)), np.abs((m + em) - flo))
        dlo = np.where(und | ~np.isfinite(dlo), 0.0, dlo)
        dhi = np.where(und | np.isnan(dhi), np.inf, dhi)
        normal = np.abs(ref.rn) >= fmt.tiny
        am = np.abs(m)
        rlo = np.where(normal, dlo / (am + em), 0.0)
        rhi = np.where(normal, dhi / np.maximum(am - em, 0.0), 0.0)
    todo = ~exact
    max_ulp, worst, und_u = _maximum(formula, x, fmt, q, dlo, dhi, todo, TAU, rel=False)
    tau_rel = TAU * 2.0**-fmt.p
    max_rel, rworst, und_r = _maximum(formula, x, fmt, q, rlo, rhi, todo & normal, tau_rel, rel=True)
    if not normal.any():
        max_rel, rworst = None, None
    return ApproxError(max_ulp, worst, max_rel, rworst, not todo.any(), und_u + und_r, n_exact, len(paths))


def _log2(a, b) -> float:
    """log2(a / b) for MPFR numbers a, b > 0 (inf when b is 0)."""
    import gmpy2

    if not b > 0 or not gmpy2.is_finite(a):
        return float("inf")
    return float(gmpy2.log2(a / b)) if a > 0 else float("-inf")


def _maximum(formula, x, fmt, q, lo, hi, todo, tau: float, rel: bool):
    """(max, an input attaining it, undecided count) over inputs `todo`: 0 when below `tau`."""
    if not todo.any():
        return 0.0, None, 0
    floor = max(tau, float(lo[todo].max()))
    idx = np.flatnonzero(todo & (hi >= floor))
    # index into PRECISIONS of each input's next pass; the first pass carries p + 40 bits (a binary64
    # deviation of 2^-10 ulp needs 63)
    level = np.full(len(x), int(np.searchsorted(np.array(PRECISIONS), fmt.p + 40)), dtype=np.int64)
    best, best_x, undecided = 0.0, None, 0
    ladder = np.array(PRECISIONS)
    while len(idx):
        lv = int(level[idx].min())
        now, later = idx[level[idx] == lv], idx[level[idx] != lv]
        blo, bhi, und = _mpfr_bounds(formula, x[now], fmt, q[now], PRECISIONS[lv], rel)
        flo = blo.astype(np.float64)  # binary64 neighbours of the bounds: enough to compare and prune
        fhi = np.nextafter(bhi.astype(np.float64), np.inf)
        ok = ~und
        if ok.any():
            floor = max(floor, float(np.nextafter(flo[ok].max(), -np.inf)))
        keep = ~ok | (fhi >= floor)  # an undecided one is tried again at a higher precision
        width = np.frompyfunc(mpfr_contexts(PRECISIONS[lv])[1].sub, 2, 1)(bhi, blo)  # in MPFR: may exceed binary64
        done = ok & keep & (width <= bhi * REL_TOL).astype(bool) & (bhi > 0).astype(bool)
        for k in np.flatnonzero(done).tolist():
            v = float((blo[k] + bhi[k]) / 2)
            xi = float(x[now[k]])
            if v > best or (v == best and best_x is not None and xi < best_x):
                best, best_x = v, xi
        # the next precision: where the width achieved now (it scales as 2^-P) would meet its target
        # (2^-60 of the value; the floor it must fall under where nothing is known yet, the lower
        # bound being 0), with 8 bits to spare; at least the next rung
        target = [max(h * REL_TOL, floor) if lo_ > 0 else floor for h, lo_ in zip(bhi, blo)]
        with np.errstate(all="ignore"):
            short = np.array([_log2(w, t) for w, t in zip(width, target)])
        want = PRECISIONS[lv] + np.where(ok & np.isfinite(short), np.ceil(short) + 8, PRECISIONS[lv])
        again = keep & ~done
        nxt = np.maximum(lv + 1, np.searchsorted(ladder, want))[again]
        idx = np.concatenate([now[again][nxt < len(PRECISIONS)], later])
        level[now[again]] = nxt
        undecided += int((nxt >= len(PRECISIONS)).sum())
    if best < tau:
        return 0.0, None, undecided
    return best, best_x, undecided
