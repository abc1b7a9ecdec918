"""Per-input error measures and their summary (DESIGN.md, "Error measures").

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
The ulp error is computed as |(y - RN(r))/ulp(r) - d| with d = (r - RN(r))/ulp(r)
from the reference, so it is exact to ~1e-12 ulp.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mishaudit.formats import Format, ordinal
from mishaudit.reference.table import Reference


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
        ulp_err = np.abs(diff - ref.d)
        r_in_ulps = np.abs(np.ldexp(ref.rn, -q) + ref.d)  # |r| / ulp(r)
        rel = np.where(r_in_ulps > 0, relative(ulp_err, r_in_ulps), np.where(y == 0, 0.0, np.inf))
        abs_err = np.ldexp(ulp_err, q)
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
    """A JSON-safe number: None for NaN/inf."""
    v = float(v)
    return v if np.isfinite(v) else None


def summarize(err: Errors, ref: Reference) -> dict:
    """The summary row of DESIGN.md's contract (statistics over finite outputs), plus dULP buckets."""
    f = err.finite
    n = len(err.x)
    row: dict = {"inputs": int(n), "nonfinite": int((~f).sum())}
    if f.any():
        u = err.ulp[f]
        i = int(np.flatnonzero(f)[np.argmax(u)])
        row.update(
            max_ulp=_num(u.max()), mean_ulp=_num(u.mean()),
            median_ulp=_num(np.quantile(u, 0.5, method="inverted_cdf")),
            p99_ulp=_num(np.quantile(u, 0.99, method="inverted_cdf")),
            worst_x=float(err.x[i]), worst_y=float(err.y[i]), worst_ref=float(ref.r64[i]),
            max_abs_err=_num(err.abs[f].max()), max_rel_err=_num(err.rel[f].max()),
            mean_bits=_num(err.bits[f].mean()), max_bits=_num(err.bits[f].max()),
        )
    else:
        row.update(max_ulp=None, mean_ulp=None, median_ulp=None, p99_ulp=None, worst_x=None,
                   worst_y=None, worst_ref=None, max_abs_err=None, max_rel_err=None, mean_bits=None, max_bits=None)
    row["cr_frac"] = float(err.cr.sum() / n) if n else None
    row["faithful_frac"] = float(err.faithful.sum() / n) if n else None
    row["signed_zero_mismatch"] = int(err.signed_zero.sum())
    d = err.dulp[f]
    for name, cnt in zip(BUCKETS, (d == 0, d == 1, d == 2, d == 3, d > 3)):
        row[name] = int(cnt.sum())
    return row
