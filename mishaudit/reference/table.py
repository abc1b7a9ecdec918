"""The reference table: RN(spec(x)), d, the binade and r for an array of inputs, cached on disk.

Per input (all arrays aligned with x): rn = RN(r) in the target format, d = (r - rn)/ulp(r)
(in [-1/2, 1/2]), E = max(floor(log2|r|), emin) (so ulp(r) = 2^(E - p + 1)), r64 = r rounded
to binary64, for r = spec(x), the function a formulation approximates (lang/spec.py; mish
unless its file says otherwise). For mish: a fast path with a proven bound where it decides
(fastref.py: binary64 with its own exp, for binary16, bfloat16 and binary32 inputs; run as
fastref_jit.py, its compiled twin, bit for bit), MPFR
interval enclosures in Ziv's loop for every other input (mpfrref.py). For mish': gradref.py
(p <= 24; its tails in every format), MPFR Ziv elsewhere (specref.py). A spec that is one
elementary operation of x, (tanh x) say, for p <= 24: elemref.py (the host libm within its checked
bound, closed forms near 0 and at the saturations; decide.py's criteria compiled, checked equal to
decide), MPFR Ziv for the inputs it leaves undecided (specref.py). Any other spec: specref.py.
Every path decides with decide.py; none rests on mpmath (ziv.py is kept as an
independent check for the tests and the benchmark's baseline). Cached per spec and format in the cache folder (cache.py), a damaged cache
file being reported and recomputed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from mishaudit import cache
from mishaudit.formats import Format
from mishaudit.lang.spec import MISH, Spec

REF_VERSION = 10  # 10: (op x) specs by elemref.py (the true binade at saturation); 9: MPFR, decide.py
FIELDS = ("rn", "d", "E", "r64")


@dataclass
class Reference:
    """Reference values for an array of inputs (all arrays aligned with `x`)."""

    x: np.ndarray
    rn: np.ndarray
    d: np.ndarray
    E: np.ndarray
    r64: np.ndarray
    computed: int = 0  # inputs not found in the cache
    fallback: int = 0  # of those, inputs the fast path could not decide (computed with MPFR)

    def take(self, idx: np.ndarray) -> "Reference":
        """The reference of the inputs x[idx]."""
        return Reference(self.x[idx], self.rn[idx], self.d[idx], self.E[idx], self.r64[idx], self.computed,
                         self.fallback)


def cache_path(fmt: Format, spec: Spec = MISH):
    return cache.cache_dir() / f"reference-{spec.key.replace(chr(39), '-grad')}-{fmt.name}-v{REF_VERSION}.npz"


def _empty() -> dict:
    return {"bits": np.empty(0, np.uint64), "rn": np.empty(0), "d": np.empty(0), "E": np.empty(0, np.int64),
            "r64": np.empty(0)}


def _load(path) -> dict:
    try:
        got = cache.load(path)
    except cache.Damaged:
        print(f"mishaudit: warning: reference cache {path} is corrupt or truncated; recomputing it", file=sys.stderr)
        return _empty()
    if got is None or set(got[0]) != {"bits", *FIELDS}:
        return _empty()
    return got[0]


def reference(x: np.ndarray, fmt: Format, use_cache: bool = True, show_progress: bool = True,
              spec: Spec = MISH) -> Reference:
    """Reference values of `spec` for finite inputs `x` (float64 values of `fmt`), from the cache where possible."""
    x = np.asarray(x, dtype=np.float64)
    bits = np.ascontiguousarray(x).view(np.uint64)
    path = cache_path(fmt, spec)
    table = _load(path) if use_cache else _empty()
    pos = np.minimum(np.searchsorted(table["bits"], bits), max(len(table["bits"]) - 1, 0))
    hit = (table["bits"][pos] == bits) if len(table["bits"]) else np.zeros(len(x), bool)
    miss = np.unique(bits[~hit])
    fallback = 0
    if len(miss):
        new = reference_arrays(miss.view(np.float64), fmt, show_progress, spec)
        fallback = new.pop("fallback")
        new["bits"] = miss
        merged = {k: np.concatenate([table[k], new[k]]) for k in table}
        order = np.argsort(merged["bits"], kind="stable")
        table = {k: v[order] for k, v in merged.items()}
        if use_cache:
            try:
                cache.save(path, table)
            except OSError as exc:
                print(f"mishaudit: warning: cannot write the reference cache {path} ({exc.strerror}); "
                      "set MISHAUDIT_CACHE_DIR to a writable folder to keep it", file=sys.stderr)
        pos = np.searchsorted(table["bits"], bits)
    return Reference(x, *(table[k][pos] for k in FIELDS), computed=len(miss), fallback=fallback)


_NONE = np.empty(0, dtype=np.int64)


def reference_arrays(xs: np.ndarray, fmt: Format, show: bool = False, spec: Spec = MISH) -> dict:
    """rn, d, E, r64 for `xs` (no cache), and `fallback`, the inputs the fast path sent to MPFR."""
    from mishaudit.reference.mpfrref import mpfr_reference

    if spec.key != "mish":
        return _other_spec(xs, fmt, spec)
    if fmt.p > 24:
        rn, d, E, r64, _ = mpfr_reference(xs, fmt)
        return {"rn": rn, "d": d, "E": E, "r64": r64, "fallback": 0}
    # fastref.fast_reference compiled (numba), bit for bit
    from mishaudit.reference.fastref_jit import jit_reference_counted

    rn, d, E, r64, ok, undecided = jit_reference_counted(xs, fmt)
    out = {"rn": rn, "d": d, "E": E, "r64": r64}
    rest = np.flatnonzero(~ok) if undecided else _NONE
    if len(rest):
        for k, v in zip(out, mpfr_reference(xs[rest], fmt)):
            out[k][rest] = v
    out["fallback"] = len(rest)
    return out


def _other_spec(xs: np.ndarray, fmt: Format, spec: Spec) -> dict:
    from mishaudit.reference.specref import spec_reference

    xs = np.asarray(xs, dtype=np.float64)
    op = spec.op if fmt.p <= 24 else None  # one elementary operation of x, (tanh x) say
    fast = spec.key == "mish'"
    if fast:
        from mishaudit.reference.gradref import grad_tails
        from mishaudit.reference.gradref_jit import jit_grad_reference

        rn, d, E, r64, ok = jit_grad_reference(xs, fmt) if fmt.p <= 24 else grad_tails(xs, fmt)
    elif op in ("exp", "exp2", "expm1", "log", "log1p", "tanh"):  # elemref.OPS (numba is imported with it)
        from mishaudit.reference.elemref import elementary_reference

        fast = True
        rn, d, E, r64, ok = elementary_reference(op, xs, fmt)
    else:
        n = len(xs)
        rn, d, E, r64, ok = np.zeros(n), np.zeros(n), np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros(n, bool)
    out = {"rn": rn, "d": d, "E": E, "r64": r64}
    rest = _NONE if ok.all() else np.flatnonzero(~ok)
    if len(rest):
        for k, v in zip(out, spec_reference(spec, xs[rest], fmt)):
            out[k][rest] = v
    out["fallback"] = len(rest) if fast else 0
    return out


