"""Streaming exhaustive sweep over every binary32 input (or every input of a domain).

The finite inputs, as consecutive ordinals, are cut into chunks of 2^22 and blocks of 2^15.
A block's reference comes from fastref (mpmath for the few inputs it cannot decide); each
formulation is evaluated with the ordinary evaluator and its errors folded into a mergeable
summary (`Acc`):
  counts  inputs, nonfinite, CR, faithful, signed-zero mismatches, dULP 0, 1, 2, 3, > 3;
  sums    of the ulp error and of the bits of error, as exact integers in units of 2^-1074
          (each block's binary64 sum converted exactly), so any merge order gives the same bits;
  maxima  ulp, absolute, relative error and bits, and the worst input (ties: the smaller x);
  hist    exact counts of the ulp error in bins of relative width 2^-11 (bin 0 holds every
          error below 2^-30 ulp); median and p99 are the upper edges of the bins holding the
          nearest-rank percentiles, so they are upper bounds within 2^-11 relative.
The per-input measures are DESIGN.md's (see metrics.py), computed from the same reference
fields: ulp error |(y - RN(r)) / ulp(r) - d|, dULP |ord(y) - ord(RN(r))|, bits log2(1 + dULP).

Chunks run on `jobs` processes. The parent merges chunk results as they arrive and writes a
checkpoint (the merged summaries and the set of finished chunks) every few seconds, when
interrupted, and at the end; `resume` continues from it. A checkpoint records the formulas'
file digests, format, mode, domain, chunk size and versions; one that differs is refused,
never mixed in.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from . import __version__
from .errors import UserError
from .evaluate import Policy, binary32_program, evaluate, shared_subexpressions
from .formats import FP32
from .heap import keep_heap
from .inputs import Domain, _inward
from .iofiles import atomic_write_bytes
from .reference import REF_VERSION, _compute_with_progress, cache_dir

SWEEP_VERSION = 4
CHUNK = 1 << 22
BLOCK = 1 << 15  # inputs per numpy pass: a block's arrays stay in cache
CHECKPOINT_SECONDS = 5.0

HIST_SUB = 2048  # bins per binade of the ulp error
HIST_FLOOR = -30  # ulp errors below 2^-30 share bin 0 (as in fold.py)
_KEY_BASE = ((1023 + HIST_FLOOR) << 11) - 1  # key = (binary64 bits >> 41) - _KEY_BASE, at least 0
# binary32 ulp errors stay below 2^278 (|y - r| < 2^129, ulp(r) >= 2^-149)
NBINS = 1 + (278 - HIST_FLOOR) * HIST_SUB

COUNTS = ("n", "nonfinite", "cr", "faithful", "signed_zero", "dulp_0", "dulp_1", "dulp_2", "dulp_3", "dulp_gt3")
MAXES = ("max_ulp", "max_abs", "max_rel", "max_bits")


def hist_keys(u: np.ndarray) -> np.ndarray:
    """Bin of each ulp error u >= 0: 0 below 2^-30, else 1 + (binade - (-30)) * 2048 + top 11
    significand bits (read from the binary64 encoding)."""
    k = (np.ascontiguousarray(u, dtype=np.float64).view(np.int64) >> 41) - _KEY_BASE
    return np.maximum(k, 0)


def hist_upper(key: int) -> float:
    """Largest ulp error of bin `key` (2^-30 for bin 0)."""
    if key == 0:
        return 2.0**HIST_FLOOR
    b, j = divmod(key - 1, HIST_SUB)
    return math.ldexp(1.0 + (j + 1) / HIST_SUB, b + HIST_FLOOR)


def _fixed(v: float) -> int:
    """v as an exact integer multiple of 2^-1074 (v a finite binary64 number)."""
    num, den = float(v).as_integer_ratio()
    return num << (1074 - den.bit_length() + 1)


# ---------------------------------------------------------------- summaries


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
        from .fold import fold

        y = np.asarray(y, dtype=np.float32)
        out = np.empty(7)
        before = int(self.counts[1])
        fold(y, rn, d, E, self.counts, self.hist, out, _NO_KEYS)
        if self.counts[1] - before < len(y):  # some output is finite
            self._take(out, x, y, r64)

    def add_exact(self, ex: "ExactBlock") -> None:
        """Fold a block whose outputs all equal RN(r), bit for bit (statistics computed once)."""
        self.counts += ex.counts
        self._take(ex.out, ex.x, ex.y, ex.r64)
        self.hist[ex.lo : ex.lo + len(ex.h)] += ex.h

    def _take(self, out: np.ndarray, x, y, r64) -> None:
        from .fold import MAX_ABS200, MAX_DULP, MAX_REL, MAX_ULP, SUM_BITS, SUM_ULP, WORST

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
class ExactBlock:
    """Statistics of a block when every output is RN(r): formula-independent, computed once per
    block and reused by each formulation that is correctly rounded on all of it."""

    x: np.ndarray
    y: np.ndarray  # RN(r) as binary32
    r64: np.ndarray
    counts: np.ndarray
    out: np.ndarray
    lo: int  # first histogram key
    h: np.ndarray  # counts of keys lo, lo + 1, ...

    @classmethod
    def of(cls, x, rn32, rn, d, E, r64) -> "ExactBlock":
        from .fold import fold

        counts, out, keys = np.zeros(len(COUNTS), dtype=np.int64), np.empty(7), np.empty(len(x), dtype=np.int64)
        fold(rn32, rn, d, E, counts, _NO_KEYS, out, keys)
        lo = int(keys.min())
        return cls(x, rn32, r64, counts, out, lo, np.bincount(keys - lo))


def _max(a, b):
    return b if a is None else a if b is None else max(a, b)


def summary_row(s: Acc) -> dict:
    """DESIGN.md's summary keys from a merged summary."""
    cnt = dict(zip(COUNTS, (int(v) for v in s.counts)))
    n, fin = cnt["n"], cnt["n"] - cnt["nonfinite"]
    row = {"inputs": n, "nonfinite": cnt["nonfinite"], "cr_frac": cnt["cr"] / n if n else None,
           "faithful_frac": cnt["faithful"] / n if n else None, "signed_zero_mismatch": cnt["signed_zero"]}
    row.update({k: cnt[k] for k in ("dulp_0", "dulp_1", "dulp_2", "dulp_3", "dulp_gt3")})
    if fin:
        keys = np.flatnonzero(s.hist)
        cum = np.cumsum(s.hist[keys])

        def pct(q):
            rank = max(1, math.ceil(q * fin))  # nearest rank
            return hist_upper(int(keys[int(np.searchsorted(cum, rank))]))

        wx, wy, wr = s.worst
        unit = fin << 1074
        row.update(max_ulp=s.max_ulp, mean_ulp=float(Fraction(s.sum_ulp, unit)), median_ulp=pct(0.5),
                   p99_ulp=pct(0.99), worst_x=wx, worst_y=wy, worst_ref=wr, max_abs_err=s.max_abs,
                   max_rel_err=s.max_rel if math.isfinite(s.max_rel) else None,
                   mean_bits=float(Fraction(s.sum_bits, unit)), max_bits=s.max_bits)
    else:
        row.update(max_ulp=None, mean_ulp=None, median_ulp=None, p99_ulp=None, worst_x=None, worst_y=None,
                   worst_ref=None, max_abs_err=None, max_rel_err=None, mean_bits=None, max_bits=None)
    return row


# ---------------------------------------------------------------- the run


@dataclass
class Sweep:
    """A streamed run over the binary32 inputs of a domain: `mode` "compare" (error summaries,
    Acc) or "overflow" (event intervals, overflow.ExhaustiveEvents)."""

    formulas: list
    policy: Policy
    domain: Domain = field(default_factory=Domain)
    chunk: int = CHUNK
    mode: str = "compare"

    def __post_init__(self):
        fmt = self.policy.storage
        if fmt is not FP32:
            raise UserError(f"--exhaustive streams binary32 only ({fmt.name}: fp16/bf16 are always exhaustive, "
                            "fp64 has 2^64 inputs); use --dtype fp32")
        self.olo, self.ohi = _inward(self.domain, fmt)
        if self.olo > self.ohi:
            raise UserError(f"--domain {self.domain.lo!r}:{self.domain.hi!r} holds no finite fp32 value: widen it")
        self.nchunks = (self.ohi - self.olo) // self.chunk + 1

    def identity(self) -> dict:
        """What a checkpoint must match to be resumed."""
        return {"version": SWEEP_VERSION, "reference": REF_VERSION, "mishaudit": __version__, "mode": self.mode,
                "formulas": [[f.id, f.digest] for f in self.formulas], "dtype": self.policy.storage.name,
                "compute_dtype": (self.policy.compute or self.policy.storage).name, "ftz": self.policy.ftz,
                "libm": self.policy.libm,
                "domain": [self.domain.lo, self.domain.hi], "chunk": self.chunk}

    def folder(self) -> str:
        ids = json.dumps([self.mode] + [f.id for f in self.formulas]
                         + [self.policy.describe(), repr(self.domain), self.chunk])
        return str(cache_dir() / "sweeps" / hashlib.sha256(ids.encode()).hexdigest()[:16])

    def first_ordinal(self, i: int) -> int:
        return self.olo + i * self.chunk

    def blocks(self, i: int):
        """The inputs of chunk i, block by block, ascending (-0 just before +0), as binary32."""
        a = self.first_ordinal(i)
        b = min(a + self.chunk - 1, self.ohi)
        for lo in range(a, b + 1, BLOCK):
            yield _values(lo, min(lo + BLOCK - 1, b))

    def job_class(self):
        """The mode's state class: cls(sweep), cls.chunk(sweep, i) -> data (run in a worker),
        .absorb(i, data), .dump() -> (JSON-able meta, arrays), .load(meta, arrays)."""
        if self.mode == "overflow":
            from .overflow import ExhaustiveEvents

            return ExhaustiveEvents
        return Summaries


def _values(lo: int, hi: int) -> np.ndarray:
    """The binary32 values of ordinals lo..hi, ascending, as float32 (-0 and +0 both when 0 is in,
    as a domain holding 0 holds both)."""
    parts = []
    if lo <= 0:  # magnitudes -lo down to 0 (-0 included), sign bit set
        parts.append(np.arange(-lo, max(-hi, 0) - 1, -1, dtype=np.uint32) | np.uint32(0x80000000))
    if hi >= 0:
        parts.append(np.arange(max(lo, 0), hi + 1, dtype=np.uint32))
    bits = parts[0] if len(parts) == 1 else np.concatenate(parts)
    return bits.view(np.float32)


class Summaries:
    """compare --exhaustive: one Acc per formulation."""

    def __init__(self, sweep: Sweep):
        self.sweep = sweep
        self.accs = {f.id: Acc() for f in sweep.formulas}
        self.fallback = 0

    @staticmethod
    def chunk(sweep: Sweep, i: int) -> dict:
        """Summaries of every formulation over chunk i, computed block by block."""
        accs = {f.id: Acc() for f in sweep.formulas}
        progs = programs(sweep.formulas, sweep.policy)
        fallback = n = 0
        for x32 in sweep.blocks(i):
            fallback += summarize_block(x32, sweep.formulas, progs, sweep.policy, accs)
            n += len(x32)
        return {"fallback": fallback, "n": n, "formulas": {k: a.state() for k, a in accs.items()}}

    def absorb(self, i: int, data: dict) -> None:
        self.fallback += data["fallback"]
        for fid, st in data["formulas"].items():
            self.accs[fid].merge(*st)

    def dump(self) -> tuple[dict, dict]:
        ids = list(self.accs)
        states = [self.accs[fid].state() for fid in ids]
        arrays = {}
        for j, (_, keys, counts) in enumerate(states):
            arrays[f"k{j}"], arrays[f"c{j}"] = keys, counts
        return {"ids": ids, "accs": [s[0] for s in states], "fallback": self.fallback}, arrays

    def load(self, meta: dict, arrays) -> None:
        for j, fid in enumerate(meta["ids"]):
            self.accs[fid].merge(meta["accs"][j], arrays[f"k{j}"], arrays[f"c{j}"])
        self.fallback = meta["fallback"]


def programs(formulas: list, policy: Policy) -> dict:
    """formula id -> binary32 program sharing common subexpressions (None: use the evaluator)."""
    shared = shared_subexpressions(formulas)
    return {f.id: binary32_program(f, policy, shared) for f in formulas}


def summarize_block(x32: np.ndarray, formulas: list, progs: dict, policy: Policy, accs: dict, clock=None) -> int:
    """Fold one block of inputs (ascending binary32) into every formulation's Acc; returns the
    inputs sent to mpmath. `clock(stage, seconds)`, when given, receives the time of the
    reference and of each formulation (evaluation and fold)."""
    t = time.perf_counter()
    x = x32.astype(np.float64)
    arr = _compute_with_progress(x, FP32, False)
    rn, d, E, r64 = arr["rn"], arr["d"], arr["E"], arr["r64"]
    rn32 = rn.astype(np.float32)
    if clock:
        clock("reference", time.perf_counter() - t)
    memo: dict = {}  # subexpressions common to several formulations, this block
    exact = None
    for f in formulas:
        t = time.perf_counter()
        prog = progs[f.id]
        y = prog(x32, memo) if prog else evaluate(f, x, policy).y.astype(np.float32)
        if len(formulas) > 1 and np.array_equal(y.view(np.int32), rn32.view(np.int32)):  # pays off when shared
            if exact is None:
                exact = ExactBlock.of(x, rn32, rn, d, E, r64)
            accs[f.id].add_exact(exact)
        else:
            accs[f.id].add_block(y, x, rn, d, E, r64)
        if clock:
            clock(f.id, time.perf_counter() - t)
    return int(arr["fallback"])


def _worker_init():
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the workers
    keep_heap()


def _job(args):
    sweep, i = args
    return i, sweep.job_class().chunk(sweep, i)


class _Checkpoint:
    """The parent's job state, the finished chunks and the checkpoint file holding both."""

    def __init__(self, sweep: Sweep, resume: bool):
        self.sweep = sweep
        self.job = sweep.job_class()(sweep)
        self.folder = sweep.folder()
        self.path = os.path.join(self.folder, "state.npz")
        self.done: set = set()
        self.inputs = 0
        if not resume:
            shutil.rmtree(self.folder, ignore_errors=True)
        elif os.path.exists(self.path):
            self._load()
        try:
            os.makedirs(self.folder, exist_ok=True)
        except OSError as e:
            raise _unwritable(self.folder, e) from None
        self.saved_at = time.monotonic()

    def _load(self):
        try:
            with np.load(self.path) as z:
                meta = json.loads(bytes(z["meta"]).decode())
                if meta["identity"] != self.sweep.identity():
                    raise UserError(f"the checkpoint in {self.folder} belongs to a different run (formula file, "
                                    "format, mode or version changed): run without --resume to start over")
                self.job.load(meta["job"], z)
        except UserError:
            raise
        except Exception:  # damaged: truncated zip, bad JSON, missing arrays
            raise UserError(f"checkpoint {self.path} is unreadable: delete {self.folder} or run without --resume"
                            ) from None
        self.done = set(meta["done"])
        self.inputs = meta["inputs"]

    def absorb(self, i: int, data: dict) -> None:
        self.done.add(i)
        self.inputs += data["n"]
        self.job.absorb(i, data)

    def save(self) -> None:
        jmeta, arrays = self.job.dump()
        meta = {"identity": self.sweep.identity(), "done": sorted(self.done), "inputs": self.inputs, "job": jmeta}
        arrays = {"meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays}
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        try:
            atomic_write_bytes(self.path, buf.getvalue())
        except OSError as e:
            raise _unwritable(self.folder, e) from None
        self.saved_at = time.monotonic()


def _unwritable(folder: str, e: OSError) -> UserError:
    return UserError(f"cannot write the sweep checkpoint in {folder} ({e.strerror or e}): set MISHAUDIT_CACHE_DIR "
                     "to a writable folder")


def run_sweep(sweep: Sweep, jobs: int = 0, resume: bool = False, progress=None, on_chunk=None):
    """Run (or resume) the sweep; returns the mode's job state (`Summaries.accs`: formula id ->
    merged Acc, `.fallback`: inputs sent to mpmath).

    `progress(done_chunks, total_chunks, inputs_done)` is called as chunks finish; `on_chunk(i)`
    after each is merged (it may raise KeyboardInterrupt). Whatever was merged is checkpointed
    before an interruption propagates."""
    keep_heap()
    st = _Checkpoint(sweep, resume)
    pending = [i for i in range(sweep.nchunks) if i not in st.done]
    jobs = jobs or os.cpu_count() or 1

    def finished(i, data):
        st.absorb(i, data)
        if time.monotonic() - st.saved_at > CHECKPOINT_SECONDS:
            st.save()
        if progress is not None:
            progress(len(st.done), sweep.nchunks, st.inputs)
        if on_chunk is not None:
            on_chunk(i)

    if progress is not None:
        progress(len(st.done), sweep.nchunks, st.inputs)
    try:
        if jobs > 1 and len(pending) > 1:
            _run_parallel(sweep, pending, jobs, finished)
        else:
            for i in pending:
                finished(i, st.job.chunk(sweep, i))
    finally:
        st.save()
    return st.job


def _run_parallel(sweep: Sweep, pending: list, jobs: int, finished) -> None:
    """Chunks on `jobs` processes, at most 2 per worker in flight (results never pile up)."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    pool = ProcessPoolExecutor(max_workers=jobs, initializer=_worker_init)
    running: set = set()
    todo = iter(pending)
    try:
        while True:
            while len(running) < 2 * jobs:
                i = next(todo, None)
                if i is None:
                    break
                running.add(pool.submit(_job, (sweep, i)))
            if not running:
                break
            ready, running = wait(running, return_when=FIRST_COMPLETED)
            for fut in ready:
                finished(*fut.result())
    except BaseException:
        for p in list(getattr(pool, "_processes", {}).values()):  # stop in-flight chunks now
            p.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
