"""Mergeable summaries of a formulation's errors over a stream of inputs (the exhaustive sweep).

One summary (`Acc`) per formulation holds:
  counts  inputs, nonfinite, CR, faithful, signed-zero mismatches, dULP 0, 1, 2, 3, > 3;
  sums    of the ulp error and of the bits of error, as exact integers in units of 2^-1074
          (each block's binary64 sum converted exactly), so any merge order gives the same bits;
  maxima  ulp, absolute, relative error and bits, and the worst input (ties: the smaller x);
  hist    exact counts of the ulp error in bins of relative width 2^-11 (bin 0: the errors read as 0,
          below ULP_RES = 2^-60 ulp; bin 1: every error in (0, 2^-30) ulp); median and p99 are the
          upper edges of the bins holding the nearest-rank percentiles, capped at the maximum: upper
          bounds within 2^-11 relative (an exact 0 in bin 0; at most min(2^-30, max_ulp) in bin 1),
          labelled so in every row (`percentiles = "bound"`; the enumerated path's are "exact").
The per-input measures are metrics.py's, folded one block at a time by fold.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from mishaudit.measure.fold import (
    HIST_FLOOR,
    HIST_SUB,
    MAX_ABS200,
    MAX_DULP,
    MAX_REL,
    MAX_ULP,
    SUM_BITS,
    SUM_ULP,
    WORST,
    fold,
)

# binary32 ulp errors stay below 2^278 (|y - r| < 2^129, ulp(r) >= 2^-149): never beyond binary64
NBINS = 2 + (278 - HIST_FLOOR) * HIST_SUB

COUNTS = ("n", "nonfinite", "cr", "faithful", "signed_zero", "dulp_0", "dulp_1", "dulp_2", "dulp_3", "dulp_gt3")
MAXES = ("max_ulp", "max_abs", "max_rel", "max_bits")


def hist_upper(key: int) -> float:
    """Largest ulp error of bin `key`: 0 for bin 0 (errors read as 0), 2^-30 for bin 1 (0 < u < 2^-30)."""
    if key == 0:
        return 0.0
    if key == 1:
        return 2.0**HIST_FLOOR
    b, j = divmod(key - 2, HIST_SUB)
    return math.ldexp(1.0 + (j + 1) / HIST_SUB, b + HIST_FLOOR)


def _fixed(v: float) -> int:
    """v as an exact integer multiple of 2^-1074 (v a finite binary64 number)."""
    num, den = float(v).as_integer_ratio()
    return num << (1074 - den.bit_length() + 1)


@dataclass
class Acc:
    """Mergeable summary of one formulation's errors over a set of inputs (module docstring)."""

    counts: np.ndarray = field(default_factory=lambda: np.zeros(len(COUNTS), dtype=np.int64))
    sum_ulp: int = 0  # units of 2^-1074
    sum_bits: int = 0
    max_ulp: float | None = None
    max_abs: float | None = None
    max_rel: float | None = None
    max_bits: float | None = None
    worst: tuple | None = None  # (x, y, r as binary64)
    hist: np.ndarray = field(default_factory=lambda: np.zeros(NBINS, dtype=np.int64))

    def add_block(self, y: np.ndarray, x: np.ndarray, rn: np.ndarray, d: np.ndarray, E: np.ndarray,
                  r64: np.ndarray) -> None:
        """Fold outputs `y` (binary32 values) for inputs `x`, ascending, with reference fields
        rn, d, E, r64 (see reference.Reference)."""
        y = np.asarray(y, dtype=np.float32)
        out = np.empty(7)
        before = int(self.counts[1])
        fold(y, rn, d, E, self.counts, self.hist, out, _NO_KEYS)
        if self.counts[1] - before < len(y):  # some output is finite
            self._take(out, x, y, r64)

    def add_stats(self, st: "BlockStats") -> None:
        """Fold a block whose statistics were computed once (BlockStats), for several formulations
        whose outputs on it are the same bits: the same result as add_block."""
        self.counts += st.counts
        if st.counts[1] < st.counts[0]:  # some output is finite
            self._take(st.out, st.x, st.y, st.r64)
        self.hist[st.keys] += st.h

    def _take(self, out: np.ndarray, x, y, r64) -> None:
        self.sum_ulp += _fixed(out[SUM_ULP])
        self.sum_bits += _fixed(out[SUM_BITS])
        i = int(out[WORST])
        if self.max_ulp is None or out[MAX_ULP] > self.max_ulp:  # blocks arrive in x order within a chunk
            self.max_ulp, self.worst = float(out[MAX_ULP]), (float(x[i]), float(y[i]), float(r64[i]))
        self.max_abs = _max(self.max_abs, float(out[MAX_ABS200]) * 2.0**-200)
        self.max_rel = _max(self.max_rel, float(out[MAX_REL]))
        self.max_bits = _max(self.max_bits, math.log2(1.0 + out[MAX_DULP]))


    def merge(self, meta: dict, keys: np.ndarray, counts: np.ndarray) -> None:
        """Fold in another summary given as its `state()` (associative and commutative)."""
        self.counts += np.asarray(meta["counts"], dtype=np.int64)
        self.sum_ulp += int(meta["sum_ulp"])
        self.sum_bits += int(meta["sum_bits"])
        for k in ("max_abs", "max_rel", "max_bits"):
            setattr(self, k, _max(getattr(self, k), meta[k]))
        mu, w = meta["max_ulp"], meta["worst"]
        if mu is not None and (self.max_ulp is None or mu > self.max_ulp
                               or (mu == self.max_ulp and w[0] < self.worst[0])):
            self.max_ulp, self.worst = mu, tuple(w)
        self.hist[np.asarray(keys, dtype=np.int64)] += counts

    def state(self) -> tuple[dict, np.ndarray, np.ndarray]:
        """(JSON-able scalars, nonzero histogram keys, their counts)."""
        keys = np.flatnonzero(self.hist)
        meta = {"counts": self.counts.tolist(), "sum_ulp": str(self.sum_ulp), "sum_bits": str(self.sum_bits),
                "worst": list(self.worst) if self.worst else None, **{k: getattr(self, k) for k in MAXES}}
        return meta, keys.astype(np.int32), self.hist[keys]


_NO_KEYS = np.empty(0, dtype=np.int64)


@dataclass
class BlockStats:
    """The statistics of one block's outputs y, computed once and folded into every formulation
    whose outputs on the block are y, bit for bit (those that are all RN(r) there, say)."""

    x: np.ndarray
    y: np.ndarray  # binary32 outputs
    r64: np.ndarray
    counts: np.ndarray
    out: np.ndarray
    keys: np.ndarray  # the histogram keys present
    h: np.ndarray  # their counts

    @classmethod
    def of(cls, x, y, rn, d, E, r64) -> "BlockStats":
        y = np.asarray(y, dtype=np.float32)
        counts, out, keys = np.zeros(len(COUNTS), dtype=np.int64), np.empty(7), np.full(len(x), -1, dtype=np.int64)
        fold(y, rn, d, E, counts, _NO_KEYS, out, keys)
        keys = keys[keys >= 0]  # nonfinite outputs have no key
        if not len(keys):
            return cls(x, y, r64, counts, out, keys, keys)
        lo = int(keys.min())
        if int(keys.max()) - lo < 1 << 16:
            h = np.bincount(keys - lo)
            present = np.flatnonzero(h)
            return cls(x, y, r64, counts, out, present + lo, h[present])
        u, c = np.unique(keys, return_counts=True)
        return cls(x, y, r64, counts, out, u, c)


def _max(a, b):
    return b if a is None else a if b is None else max(a, b)


def summary_row(s: Acc) -> dict:
    """The summary keys of compare's JSON contract (output/frames.py) from a merged summary."""
    cnt = dict(zip(COUNTS, (int(v) for v in s.counts)))
    n, fin = cnt["n"], cnt["n"] - cnt["nonfinite"]
    # binary32 errors are bounded (NBINS): no ulp error overflows binary64 here
    row = {"inputs": n, "nonfinite": cnt["nonfinite"], "ulp_overflow": 0, "percentiles": "bound",
           "cr_frac": cnt["cr"] / n if n else None,
           "faithful_frac": cnt["faithful"] / n if n else None, "signed_zero_mismatch": cnt["signed_zero"]}
    row.update({k: cnt[k] for k in ("dulp_0", "dulp_1", "dulp_2", "dulp_3", "dulp_gt3")})
    if fin:
        keys = np.flatnonzero(s.hist)
        cum = np.cumsum(s.hist[keys])

        def pct(q):  # the upper edge of the bin holding the nearest rank, never above the maximum
            rank = max(1, math.ceil(q * fin))
            return min(hist_upper(int(keys[int(np.searchsorted(cum, rank))])), s.max_ulp)

        wx, wy, wr = s.worst
        unit = fin << 1074
        row.update(max_ulp=s.max_ulp, mean_ulp=float(Fraction(s.sum_ulp, unit)), median_ulp=pct(0.5),
                   p99_ulp=pct(0.99), worst_x=wx, worst_y=wy, worst_ref=wr, max_abs_err=s.max_abs,
                   max_rel_err=s.max_rel,
                   mean_bits=float(Fraction(s.sum_bits, unit)), max_bits=s.max_bits)
    else:
        row.update(max_ulp=None, mean_ulp=None, median_ulp=None, p99_ulp=None, worst_x=None, worst_y=None,
                   worst_ref=None, max_abs_err=None, max_rel_err=None, mean_bits=None, max_bits=None)
    return row
