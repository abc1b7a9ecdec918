"""The exact reference: mish(x) in mpmath, correctly rounded by Ziv's strategy, cached on disk.

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

binary16, bfloat16 and binary32 inputs go through fastref's proven binary64 path
first; only the inputs it cannot decide come here (Ziv's fallback).

For x > 0, r - RN(r) is formed as (x - RN(r)) - x*delta with delta = 1 - mish(x)/x =
2t^2/(1 + 2t + 2t^2), t = exp(-x), so d keeps its digits even when x*delta is far below
2^-P x (large x, where r itself rounds to x at any practical precision).

Per input we keep: rn = RN(r) in the target format, d = (r - rn)/ulp(r)
(in [-1/2, 1/2], exact to ~2^(p+5-P) ulp), E = max(floor(log2|r|), emin), and
r64 = r rounded to binary64 (for absolute and relative errors).
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import mpmath
import numpy as np

from .formats import Format, exponent_of, round_mpf
from .iofiles import atomic_write_bytes

REF_VERSION = 6
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


@dataclass
class Reference:
    """Reference values for an array of inputs (all arrays aligned with `x`)."""

    x: np.ndarray
    rn: np.ndarray
    d: np.ndarray
    E: np.ndarray
    r64: np.ndarray
    computed: int = 0  # inputs not found in the cache
    fallback: int = 0  # of those, inputs the fast path could not decide (computed with mpmath)

    def take(self, idx: np.ndarray) -> "Reference":
        """The reference of the inputs x[idx]."""
        return Reference(self.x[idx], self.rn[idx], self.d[idx], self.E[idx], self.r64[idx], self.computed,
                         self.fallback)


# ---------------------------------------------------------------- cache


def cache_dir() -> Path:
    env = os.environ.get("MISHAUDIT_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("mishaudit"))


def _cache_path(fmt: Format) -> Path:
    return cache_dir() / f"reference-{fmt.name}-v{REF_VERSION}.npz"


_FIELDS = ("bits", "rn", "d", "E", "r64")


def _checksum(arrays: dict) -> str:
    h = hashlib.sha256()
    for k in _FIELDS:
        h.update(k.encode())
        h.update(np.ascontiguousarray(arrays[k]).tobytes())
    return h.hexdigest()


def _load_cache(path: Path) -> dict | None:
    """The cached arrays, or None when absent; a damaged file is reported and ignored."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in _FIELDS}
            stored = str(z["checksum"])
        n = len(arrays["bits"])
        if any(len(arrays[k]) != n for k in _FIELDS) or stored != _checksum(arrays):
            raise ValueError("checksum mismatch")
        return arrays
    except Exception:
        print(f"mishaudit: warning: reference cache {path} is corrupt or truncated; recomputing it", file=sys.stderr)
        return None


def _save_cache(path: Path, arrays: dict) -> None:
    import io

    buf = io.BytesIO()
    np.savez(buf, checksum=np.array(_checksum(arrays)), **arrays)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buf.getvalue())
    except OSError as exc:
        print(f"mishaudit: warning: cannot write the reference cache {path} ({exc.strerror}); "
              "set MISHAUDIT_CACHE_DIR to a writable folder to keep it", file=sys.stderr)


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


def _bits(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float64).view(np.uint64)


def reference(x: np.ndarray, fmt: Format, use_cache: bool = True, show_progress: bool = True) -> Reference:
    """Reference values for finite inputs `x` (float64 values of `fmt`), from the cache where possible."""
    x = np.asarray(x, dtype=np.float64)
    bits = _bits(x)
    path = _cache_path(fmt)
    cached = _load_cache(path) if use_cache else None
    if cached is None:
        cached = {"bits": np.empty(0, np.uint64), "rn": np.empty(0), "d": np.empty(0),
                  "E": np.empty(0, np.int64), "r64": np.empty(0)}
    pos = np.searchsorted(cached["bits"], bits)
    pos_c = np.minimum(pos, max(len(cached["bits"]) - 1, 0))
    hit = (len(cached["bits"]) > 0) & (cached["bits"][pos_c] == bits) if len(cached["bits"]) else np.zeros(len(x), bool)
    miss_bits = np.unique(bits[~hit])
    fallback = 0
    if len(miss_bits):
        new = _compute_with_progress(miss_bits.view(np.float64), fmt, show_progress)
        fallback = new.pop("fallback")
        new["bits"] = miss_bits
        merged = {k: np.concatenate([cached[k], new[k]]) for k in _FIELDS}
        order = np.argsort(merged["bits"], kind="stable")
        cached = {k: merged[k][order] for k in _FIELDS}
        if use_cache:
            _save_cache(path, cached)
        pos_c = np.searchsorted(cached["bits"], bits)
    return Reference(x, cached["rn"][pos_c], cached["d"][pos_c], cached["E"][pos_c], cached["r64"][pos_c],
                     computed=len(miss_bits), fallback=fallback)


def _chunk_job(args):
    xs, fmt = args
    return compute_points(xs, fmt)


def _compute_parallel(xs: np.ndarray, fmt: Format, advance=None) -> dict:
    """compute_points over all cores in chunks (the mpmath loop is CPU-bound, one input at a time)."""
    workers = os.cpu_count() or 1
    if workers == 1 or len(xs) < 8192:
        return compute_points(xs, fmt, progress=advance)
    from concurrent.futures import ProcessPoolExecutor

    chunks = np.array_split(xs, max(workers * 8, len(xs) // 4096))
    parts = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for c, part in zip(chunks, pool.map(_chunk_job, [(c, fmt) for c in chunks])):
            parts.append(part)
            if advance is not None:
                advance(len(c))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _compute_with_progress(xs: np.ndarray, fmt: Format, show: bool) -> dict:
    """Reference arrays for `xs`: a fast path where it decides (fastref's binary64 evaluation with a
    proven bound for p <= 24, MPFR interval enclosures otherwise), mpmath's Ziv loop elsewhere."""
    if fmt.p <= 24:
        from .fastref import fast_reference

        rn, d, E, r64, ok = fast_reference(xs, fmt)
        out = {"rn": rn, "d": d, "E": E, "r64": r64}
        rest = np.flatnonzero(~ok)
        if len(rest):
            slow = _compute_mpmath(xs[rest], fmt, show)
            for k in out:
                out[k][rest] = slow[k]
        out["fallback"] = len(rest)
        return out
    from .mpfrref import mpfr_reference

    rn, d, E, r64, ok = mpfr_reference(xs, fmt)
    out = {"rn": rn, "d": d, "E": E, "r64": r64}
    rest = np.flatnonzero(~ok)
    if len(rest):
        slow = _compute_mpmath(xs[rest], fmt, show)
        for k in out:
            out[k][rest] = slow[k]
    out["fallback"] = len(rest)
    return out


def _compute_mpmath(xs: np.ndarray, fmt: Format, show: bool) -> dict:
    if not show or len(xs) < 2048:
        return _compute_parallel(xs, fmt)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    with Progress(TextColumn(f"mpmath reference {fmt.name}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=console, transient=True) as prog:
        task = prog.add_task("ref", total=len(xs))
        return _compute_parallel(xs, fmt, advance=lambda k: prog.advance(task, k))
