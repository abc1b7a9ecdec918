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
    key_of,
    take_present,
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


_FREE: list = []  # histogram arrays given back (Acc.release), all bins 0: NBINS int64 each, 5 MB


def _new_hist() -> np.ndarray:
    """An all-zero histogram array: one given back, else a new one (zeroing 5 MB costs about 1 ms)."""
    return _FREE.pop() if _FREE else np.zeros(NBINS, dtype=np.int64)


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
    hist: np.ndarray = field(default_factory=_new_hist)
    top: int = 0  # no bin above this key holds a count (state() reads hist[:top + 1] only)

    def add_block(self, y: np.ndarray, x: np.ndarray, rn: np.ndarray, d: np.ndarray, E: np.ndarray,
                  r64: np.ndarray) -> None:
        """Fold outputs `y` (binary32 values) for inputs `x`, ascending, with reference fields
        rn, d, E, r64 (see reference.Reference)."""
        y = np.asarray(y, dtype=np.float32)
        out = np.empty(7)
        before = int(self.counts[1])
        fold(y, rn, d, E, self.counts, self.hist, out, _NO_KEYS)
        if self.counts[1] - before < len(y):  # some output is finite
            self._take(_terms(out), x, y, r64)

    def add_stats(self, st: "BlockStats") -> None:
        """Fold a block whose statistics were computed once (BlockStats), for several formulations
        whose outputs on it are the same bits: the same result as add_block."""
        self.counts += st.counts
        if st.terms is not None:  # some output is finite
            self._take(st.terms, st.x, st.y, st.r64)
        self.hist[st.keys] += st.h

    def _take(self, t: tuple, x, y, r64) -> None:
        """A block's _terms (x, y, r64 its inputs, outputs and reference, for the worst input)."""
        s_ulp, s_bits, mu, i, mabs, mrel, mbits, top = t
        self.sum_ulp += s_ulp
        self.sum_bits += s_bits
        if self.max_ulp is None or mu > self.max_ulp:  # blocks arrive in x order within a chunk
            self.max_ulp, self.worst = mu, (float(x[i]), float(y[i]), float(r64[i]))
        self.max_abs = mabs if self.max_abs is None or mabs > self.max_abs else self.max_abs
        self.max_rel = mrel if self.max_rel is None or mrel > self.max_rel else self.max_rel
        self.max_bits = mbits if self.max_bits is None or mbits > self.max_bits else self.max_bits
        self.top = max(self.top, top)

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
        keys = np.asarray(keys, dtype=np.int64)
        self.hist[keys] += counts
        if len(keys):
            self.top = max(self.top, int(keys.max()))

    def state(self) -> tuple[dict, np.ndarray, np.ndarray]:
        """(JSON-able scalars, nonzero histogram keys, their counts)."""
        keys = np.flatnonzero(self.hist[:self.top + 1])
        meta = {"counts": self.counts.tolist(), "sum_ulp": str(self.sum_ulp), "sum_bits": str(self.sum_bits),
                "worst": list(self.worst) if self.worst else None, **{k: getattr(self, k) for k in MAXES}}
        return meta, keys.astype(np.int32), self.hist[keys]

    def release(self, keys: np.ndarray) -> None:
        """Give the histogram array back for the next Acc (`keys`: state()'s, every bin holding a
        count); this Acc is not used after."""
        self.hist[keys] = 0
        _FREE.append(self.hist)
        self.hist = None


_NO_KEYS = np.empty(0, dtype=np.int64)


@dataclass
class BlockStats:
    """The statistics of one block's outputs y, computed once and folded into every formulation
    whose outputs on the block are y, bit for bit (those that are all RN(r) there, say)."""

    x: np.ndarray
    y: np.ndarray  # binary32 outputs
    r64: np.ndarray
    counts: np.ndarray
    terms: tuple | None  # _terms(fold's out), None when no output is finite
    keys: np.ndarray  # the histogram keys present
    h: np.ndarray  # their counts

    @classmethod
    def of(cls, x, y, rn, d, E, r64) -> "BlockStats":
        """Fold y into a scratch histogram (all 0 between calls) and take its nonzero bins out."""
        global _SCRATCH
        y = np.asarray(y, dtype=np.float32)
        counts, out = np.zeros(len(COUNTS), dtype=np.int64), np.empty(7)
        if _SCRATCH is None:
            _SCRATCH = np.zeros(NBINS, dtype=np.int64)
        fold(y, rn, d, E, counts, _SCRATCH, out, _NO_KEYS)
        terms = _terms(out) if counts[1] < counts[0] else None  # None: no finite output, bin 0 holds nothing
        keys, h = take_present(_SCRATCH, terms[-1] if terms else 0)
        return cls(x, y, r64, counts, terms, keys, h)


_SCRATCH = None  # BlockStats.of's histogram, all 0 between calls


def _terms(out: np.ndarray) -> tuple:
    """What a block with a finite output adds to an Acc, from fold's out slots: the sums as exact
    integers (_fixed), the largest ulp error and its index, the largest absolute and relative
    error and bits of error, the largest histogram key (that of the largest u)."""
    return (_fixed(out[SUM_ULP]), _fixed(out[SUM_BITS]), float(out[MAX_ULP]), int(out[WORST]),
            float(out[MAX_ABS200]) * 2.0**-200, float(out[MAX_REL]), math.log2(1.0 + out[MAX_DULP]),
            key_of(out[MAX_ULP]))


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
