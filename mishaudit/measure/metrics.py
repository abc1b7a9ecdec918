"""Per-input error measures and their summary (the definitions of the README's column table).

With r = mish(x) exact, RN(r) its correctly rounded value, y the formula's output:
  ulp error   |y - r| / ulp(r),  ulp(r) = 2^(max(floor(log2|r|), emin) - p + 1)
  bits        log2(1 + |ord(y) - ord(RN(r))|)            (Herbie's bits of error)
  dULP        |ord(y) - ord(RN(r))|, bucketed 0, 1, 2, 3, >3
  correctly rounded  y == RN(r) (as numbers: +0 == -0; sign mismatches counted apart)
  faithful    y is RN(r) or the other format value next to r
  abs, rel    |y - r|, |y - r| / |r| (rel = 0 at x = +-0 when y = 0, inf when y != 0; ratios of
              2^924 and more, only met where |mish(x)| < 2^-640, read as inf: beyond range)
  nonfinite   y is NaN or +-inf (r is finite for every finite x): kept out of the
              ulp, bits, abs and rel statistics, always counted.
  MAE, mean rel   the means of abs and rel over the finite outputs (mean_abs_err, mean_rel_err).
The ulp error is computed as |(y - RN(r))/ulp(r) - d| with d = (r - RN(r))/ulp(r)
from the reference, so it is exact to 1e-6 ulp (the reference's guarantee; usually ~1e-12).
Resolution: an ulp error below ULP_RES = 2^-60 ulp reads as 0 (and so does its absolute error,
and its relative error where RN(r) != 0): the reference does not resolve d that finely everywhere
(where r is within 2^-983 ulp of RN(r) it knows only the side), so no smaller figure is shown as
measured; tables print such a 0 as `< 2^-60`. Where RN(r) = 0 and y = 0 the relative error stays
what it is, 1 (r is a nonzero number far below the smallest subnormal).
Unbounded errors: a finite output whose ulp error exceeds binary64's range (fp64 only: y = 1 where
RN(r) is -0, say) has ulp error inf; it stays in every statistic (max_ulp, mean_ulp, the
percentiles, max_rel_err become inf, JSON the string "inf") and is counted in `ulp_overflow`.
Percentiles are exact here (`percentiles = "exact"`, inverted-CDF nearest rank); the exhaustive
sweep's are bounds (measure/summary.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mishaudit.formats import Format, ordinal
from mishaudit.reference.table import Reference

ULP_RES = 2.0**-60  # ulp errors below it read as 0 (module docstring; measure/fold.py's loop reads it here)


@dataclass
class Errors:
    x: np.ndarray
    y: np.ndarray
    finite: np.ndarray
    ulp: np.ndarray  # NaN where y is not finite
    abs: np.ndarray
    rel: np.ndarray
    dulp: np.ndarray  # int64, -1 where y is not finite
    bits: np.ndarray
    cr: np.ndarray
    faithful: np.ndarray
    signed_zero: np.ndarray


def relative(ulp_err: np.ndarray, r_in_ulps: np.ndarray) -> np.ndarray:
    """|y - r| / |r| from both in ulps, as (ulp_err 2^100 / r_in_ulps) 2^-100: the quotient is formed
    above binary64's (slow) subnormal range; ratios of 2^924 and more come out as inf (beyond range)."""
    return ulp_err * 2.0**100 / r_in_ulps * 2.0**-100


def errors(y: np.ndarray, ref: Reference, fmt: Format) -> Errors:
    """Every per-input measure for outputs `y` (format values as float64) against `ref`."""
    y = np.asarray(y, dtype=np.float64)
    finite = np.isfinite(y)
    q = ref.E - fmt.p + 1  # ulp(r) = 2^q
    with np.errstate(all="ignore"):
        diff = np.ldexp(np.where(finite, y, 0.0) - ref.rn, -q)  # (y - RN(r)) / ulp(r)
        raw = np.abs(diff - ref.d)
        ulp_err = np.where(raw < ULP_RES, 0.0, raw)  # below the resolution: 0
        r_in_ulps = np.abs(np.ldexp(ref.rn, -q) + ref.d)  # |r| / ulp(r)
        rel = np.where(r_in_ulps > 0, relative(raw, r_in_ulps), np.where(raw == 0, 0.0, np.inf))
        # below the resolution the relative error is 0 as well, unless RN(r) = 0: y = 0 against a tiny r
        # is wrong by 100 % (both |y - r| and |r| are tiny in ulps there)
        rel = np.where((raw < ULP_RES) & (ref.rn != 0), 0.0, rel)
        # |y - r| directly where the ulp error overflowed (it is finite: both are below 2^1024)
        abs_err = np.where(np.isinf(ulp_err), np.abs((np.where(finite, y, 0.0) - ref.rn) - np.ldexp(ref.d, q)),
                           np.ldexp(ulp_err, q))
    oy = ordinal(np.where(finite, y, 0.0), fmt)
    orn = ordinal(ref.rn, fmt)
    dulp = np.abs(oy - orn)
    # the other neighbour of r: one step from RN(r) towards r
    toward = np.sign(ref.d).astype(np.int64)
    toward = np.where((ref.d == 0) & (ref.rn == 0), np.sign(ref.x).astype(np.int64), toward)
    faithful = finite & ((oy == orn) | ((toward != 0) & (oy == orn + toward)))
    nan = np.full(len(y), np.nan)
    return Errors(
        x=ref.x, y=y, finite=finite,
        ulp=np.where(finite, ulp_err, nan),
        abs=np.where(finite, abs_err, nan),
        rel=np.where(finite, rel, nan),
        dulp=np.where(finite, dulp, -1),
        bits=np.where(finite, np.log2(1.0 + dulp), nan),
        cr=finite & (y == ref.rn),
        faithful=faithful,
        signed_zero=finite & (y == 0) & (ref.rn == 0) & (np.signbit(y) != np.signbit(ref.rn)),
    )


BUCKETS = ("dulp_0", "dulp_1", "dulp_2", "dulp_3", "dulp_gt3")


def _num(v):
    """A figure: None for NaN (no data), +inf kept (an error beyond binary64's range)."""
    v = float(v)
    return None if np.isnan(v) else v


def quantile(u: np.ndarray, q: float, w: np.ndarray | None = None) -> float:
    """The inverted-CDF q-quantile of u (the smallest value v with share(u <= v) >= q), each u[i] counted
    w[i] times (once when w is None)."""
    if w is None:
        return float(np.quantile(u, q, method="inverted_cdf"))
    order = np.argsort(u, kind="stable")
    cw = np.cumsum(w[order])
    k = min(int(np.searchsorted(cw, q * cw[-1], side="left")), len(u) - 1)
    return float(u[order][k])


def summarize(err: Errors, ref: Reference, counts: np.ndarray | None = None) -> dict:
    """The summary row of compare's JSON contract (output/frames.py) (statistics over finite outputs), plus dULP buckets and
    the mean absolute and relative errors; input i counts counts[i] times (once when None)."""
    w = np.ones(len(err.x), dtype=np.int64) if counts is None else np.asarray(counts, dtype=np.int64)
    f = err.finite
    n = int(w.sum())

    def mean(a: np.ndarray) -> float:  # numpy's pairwise sums (no BLAS: its order depends on the CPU)
        return _num(a[f].mean() if counts is None else (a[f] * w[f]).sum() / w[f].sum())

    row: dict = {"inputs": n, "nonfinite": int(w[~f].sum()), "ulp_overflow": int(w[f & np.isinf(err.ulp)].sum()),
                 "percentiles": "exact"}
    if f.any():
        u = err.ulp[f]
        i = int(np.flatnonzero(f)[np.argmax(u)])
        wf = None if counts is None else w[f]
        row.update(
            max_ulp=_num(u.max()), mean_ulp=mean(err.ulp),
            median_ulp=_num(quantile(u, 0.5, wf)), p99_ulp=_num(quantile(u, 0.99, wf)),
            worst_x=float(err.x[i]), worst_y=float(err.y[i]), worst_ref=float(ref.r64[i]),
            max_abs_err=_num(err.abs[f].max()), max_rel_err=_num(err.rel[f].max()),
            mean_bits=mean(err.bits), max_bits=_num(err.bits[f].max()),
            mean_abs_err=mean(err.abs), mean_rel_err=mean(err.rel),
        )
    else:
        row.update(max_ulp=None, mean_ulp=None, median_ulp=None, p99_ulp=None, worst_x=None,
                   worst_y=None, worst_ref=None, max_abs_err=None, max_rel_err=None, mean_bits=None, max_bits=None,
                   mean_abs_err=None, mean_rel_err=None)
    row["cr_frac"] = float(w[err.cr].sum() / n) if n else None
    row["faithful_frac"] = float(w[err.faithful].sum() / n) if n else None
    row["signed_zero_mismatch"] = int(w[err.signed_zero].sum())
    d, wd = err.dulp[f], w[f]
    for name, cnt in zip(BUCKETS, (d == 0, d == 1, d == 2, d == 3, d > 3)):
        row[name] = int(wd[cnt].sum())
    return row
