"""An independent mpmath computation of RN(mish(x)) by Ziv's strategy, one input at a time.

Not part of any reference path (those end in MPFR, mpfrref.py): its bound below assumes mpmath's
exp is within 2 units of its last place, which mpmath does not document. It is kept as a second,
independent computation for the tests and as the baseline of benchmarks/exhaustive.py.

mish(x) = x * tanh(log1p(exp(x))) = x * n / (n + 2),  n = e*(e + 2),  e = exp(x)
(tanh(log1p(e)) = ((1+e)^2 - 1)/((1+e)^2 + 1)). The second form has no
cancellation: every quantity is positive. At working precision P (u = 2^-P):
exp is within 2u (mpmath's exp carries guard bits), e+2, e*(e+2), n+2, the
division and the product by x each add one rounding, and d ln n / d ln e =
(2e+2)/(e+2) <= 2, d ln(n/(n+2)) / d ln n = 2/(n+2) <= 1, so the relative
error is at most 10u + O(u^2) <= 2^(4-P). We use EPS = 2^(5-P).

Ziv: RN(mish(x)) is certain when both ends of [r(1-EPS), r(1+EPS)] round to
the same value and lie in the same binade (the binade fixes ulp(r)); else P
doubles. For x != 0, mish(x) is transcendental (Lindemann-Weierstrass: e^x is
transcendental for algebraic x != 0), so it is never a rounding boundary and
the loop ends.

For x > 0, r - RN(r) is formed as (x - RN(r)) - x*delta with delta = 1 - mish(x)/x =
2t^2/(1 + 2t + 2t^2), t = exp(-x), so d keeps its digits even when x*delta is far below
2^-P x (large x, where r itself rounds to x at any practical precision).

Per input we keep: rn = RN(r) in the target format, d = (r - rn)/ulp(r)
(in [-1/2, 1/2], exact to ~2^(p+5-P) ulp), E = max(floor(log2|r|), emin), and
r64 = r rounded to binary64 (for absolute and relative errors).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mpmath
import numpy as np

from mishaudit.formats import Format, exponent_of, round_mpf

START_EXTRA_BITS = 48  # P = p + 48 at first: d exact to ~2^-40 ulp


def mish_mpf(x, prec: int):
    """mish(x) at precision `prec` via x*n/(n+2), relative error <= 2^(4-prec)."""
    with mpmath.workprec(prec):
        x = mpmath.mpf(x)
        e = mpmath.exp(x)
        n = e * (e + 2)
        return x * n / (n + 2)


@dataclass
class RefPoint:
    rn: float
    d: float
    E: int  # max(floor(log2|r|), emin): ulp(r) = 2^(E - p + 1)
    r64: float
    prec: int


def reference_point(x: float, fmt: Format) -> RefPoint:
    """RN(mish(x)) in `fmt`, (r - RN)/ulp(r), floor(log2|r|), r in binary64; Ziv loop."""
    if x == 0:
        return RefPoint(x, 0.0, fmt.emin, x, 0)
    prec = fmt.p + START_EXTRA_BITS
    ax = abs(x)
    mx, ex = math.frexp(ax)
    x_pow2 = mx == 0.5  # |x| = 2^(ex-1)
    while prec <= 1 << 16:
        r = mish_mpf(x, prec)
        s = mpmath.ldexp(1, 5 - prec)  # EPS
        E = exponent_of(r)
        m = mpmath.ldexp(abs(r), -E)  # in [1, 2), exact
        lo_ok = mpmath.fsub(m, 1, exact=True) > 2 * s  # m > 1 + 2 EPS, exactly
        hi_ok = mpmath.fsub(2, m, exact=True) > 4 * s  # m < 2 - 4 EPS
        # |mish(x)| < |x| for x != 0: if |x| = 2^k and r is within EPS of it, the binade is k - 1
        if x_pow2 and E == ex - 1 and not lo_ok:
            E, lo_ok, hi_ok = ex - 2, True, False
        Eu = max(E, fmt.emin)  # ulp(r) = 2^(Eu - p + 1)
        rn = round_mpf(r, fmt)
        if x > 0:
            # r = x - x*delta, delta = 2t^2/(1 + 2t + 2t^2), t = exp(-x): compute r - RN(r) as
            # (x - RN(r)) - x*delta so that d keeps its digits when x*delta is below 2^-P x
            with mpmath.workprec(prec):
                t = mpmath.exp(-mpmath.mpf(x))
                xdelta = x * (2 * t * t / (1 + 2 * t + 2 * t * t))
            diff = mpmath.fsub(mpmath.fsub(x, rn, exact=True), xdelta, prec=prec + 8)
        else:
            diff = mpmath.fsub(r, rn, exact=True)
        d = float(mpmath.ldexp(diff, fmt.p - 1 - Eu))
        # |r_true - r| <= EPS*|r| < EPS * 2^p ulp(r): decided when that cannot cross a
        # rounding boundary (|d| = 1/2) nor, for normal r, a binade boundary.
        slack = 2.0 ** (5 - prec + fmt.p)
        ok = abs(d) < 0.5 - slack
        # the side of r around RN(r) (it decides faithfulness) must be certain too, unless it is
        # known: RN(r) = 0 (r has the sign of x) or RN(r) = x (|mish(x)| < |x|: r lies toward 0)
        ok = ok and (abs(d) > slack or rn == 0 or rn == x)
        if ok and E >= fmt.emin:
            ok = lo_ok and (hi_ok or (x_pow2 and E == ex - 2))
        if ok:
            if rn == x:
                # mish(x) < x for x > 0 (> x for x < 0): r lies on the side of 0; when r carried
                # no bits below RN(r) = x, keep that side with a negligible magnitude
                d = math.copysign(max(abs(d), 2.0**-1000), -x)
            return RefPoint(rn, d, Eu, float(r), prec)
        prec *= 2
    raise RuntimeError(f"Ziv loop did not settle RN(mish({x!r})) in {fmt.name}")


def compute_points(xs: np.ndarray, fmt: Format, progress=None) -> dict:
    """Reference arrays for `xs` computed with mpmath (no cache)."""
    n = len(xs)
    rn, d, E, r64 = np.empty(n), np.empty(n), np.empty(n, dtype=np.int64), np.empty(n)
    for i, x in enumerate(xs.tolist()):
        pt = reference_point(x, fmt)
        rn[i], d[i], E[i], r64[i] = pt.rn, pt.d, pt.E, pt.r64
        if progress is not None and (i & 1023) == 1023:
            progress(1024)
    if progress is not None:
        progress(n & 1023)
    return {"rn": rn, "d": d, "E": E, "r64": r64}


def _chunk_job(args):
    xs, fmt = args
    return compute_points(xs, fmt)


def compute_parallel(xs: np.ndarray, fmt: Format, advance=None) -> dict:
    """compute_points over all cores in chunks (the mpmath loop is CPU-bound, one input at a time);
    `advance(k)` is called as chunks of k inputs finish."""
    from mishaudit.pool import run, workers_for

    if len(xs) < 8192:
        return compute_points(xs, fmt, progress=advance)
    workers = workers_for(len(xs))
    chunks = np.array_split(xs, max(workers * 8, len(xs) // 4096))
    parts = [None] * len(chunks)
    for i, part in run(_chunk_job, [(c, fmt) for c in chunks], workers):
        parts[i] = part
        if advance is not None:
            advance(len(chunks[i]))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
