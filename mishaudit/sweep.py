"""Streaming exhaustive sweep over every binary32 input (or every input of a domain).

The finite inputs are cut into chunks of consecutive ordinals. A chunk's reference comes
from fastref (mpmath for the few inputs it cannot decide); each formulation is evaluated
with the ordinary evaluator and its errors reduced to a mergeable summary: counts (CR,
faithful, nonfinite, signed zeros, dULP buckets), sums (ulp, bits), maxima with the
worst input, and an exact histogram of the ulp error (bins of relative width 2^-11; all
errors below 2^-30 ulp share bin 0). Chunks run on `jobs` processes; each finished chunk
is written as a checkpoint, so an interrupted sweep resumes where it stopped. A
checkpoint records the formulas' file digests, format, mode, domain, chunk size and
mishaudit version; one that differs is refused, never mixed in.

Median and p99 come from the histogram: the upper edge of the bin holding the
nearest-rank percentile, so they are upper bounds within 2^-11 relative.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass, field

import numpy as np

from . import __version__
from .errors import UserError
from .evaluate import Policy, evaluate
from .formats import FP32, Format, from_ordinal
from .inputs import Domain, _inward
from .iofiles import atomic_write_bytes
from .metrics import errors
from .reference import Reference, _compute_with_progress, cache_dir

SWEEP_VERSION = 2
CHUNK = 1 << 21
HIST_SUB = 2048  # bins per binade of the ulp error
HIST_FLOOR = -30  # ulp errors below 2^-30 share bin 0

COUNTS = ("n", "nonfinite", "cr", "faithful", "signed_zero", "dulp_0", "dulp_1", "dulp_2", "dulp_3", "dulp_gt3")
SUMS = ("sum_ulp", "sum_bits")
MAXES = ("max_ulp", "max_abs", "max_rel", "max_bits")


def hist_keys(u: np.ndarray) -> np.ndarray:
    """Bin of each ulp error: 0 below 2^-30, else 1 + (binade offset) * 2048 + 11 significand bits."""
    m, e = np.frexp(u)  # u = m 2^e, m in [0.5, 1)
    k = 1 + (e.astype(np.int64) - 1 - HIST_FLOOR) * HIST_SUB + ((2 * m - 1) * HIST_SUB).astype(np.int64)
    return np.where(u < 2.0**HIST_FLOOR, 0, k)


def hist_upper(key: int) -> float:
    """Largest ulp error of bin `key` (2^-30 for bin 0)."""
    if key == 0:
        return 2.0**HIST_FLOOR
    b, j = divmod(key - 1, HIST_SUB)
    return math.ldexp(1.0 + (j + 1) / HIST_SUB, b + HIST_FLOOR)


def chunk_summary(x: np.ndarray, y: np.ndarray, ref: Reference, fmt: Format) -> dict:
    """Mergeable summary of one formulation on one chunk."""
    err = errors(y, ref, fmt)
    f = err.finite
    d = err.dulp[f]
    out = {"n": len(x), "nonfinite": int((~f).sum()), "cr": int(err.cr.sum()), "faithful": int(err.faithful.sum()),
           "signed_zero": int(err.signed_zero.sum()), "dulp_0": int((d == 0).sum()), "dulp_1": int((d == 1).sum()),
           "dulp_2": int((d == 2).sum()), "dulp_3": int((d == 3).sum()), "dulp_gt3": int((d > 3).sum()),
           # per-block sums, added with math.fsum at the end: exact rounding, any merge order
           "sum_ulp": [float(np.sum(err.ulp[f]))], "sum_bits": [float(np.sum(err.bits[f]))]}
    if f.any():
        u = err.ulp[f]
        i = int(np.flatnonzero(f)[np.argmax(u)])
        out.update(max_ulp=float(u.max()), worst=(float(x[i]), float(y[i]), float(ref.r64[i])),
                   max_abs=float(err.abs[f].max()), max_rel=float(err.rel[f].max()), max_bits=float(err.bits[f].max()))
        counts = np.bincount(hist_keys(u))
        keys = np.flatnonzero(counts)
        out["hist"] = dict(zip(keys.tolist(), counts[keys].tolist()))
    else:
        out.update(max_ulp=None, worst=None, max_abs=None, max_rel=None, max_bits=None, hist={})
    return out


def merge(a: dict | None, b: dict) -> dict:
    """Combine two summaries (associative and commutative; the worst input is the smallest x with
    the largest error)."""
    if a is None:
        return {k: (dict(v) if k == "hist" else v) for k, v in b.items()}
    out = {k: a[k] + b[k] for k in COUNTS}
    out.update({k: a[k] + b[k] for k in SUMS})  # lists of block sums: concatenated
    for k in MAXES:
        vals = [v for v in (a[k], b[k]) if v is not None]
        out[k] = max(vals) if vals else None
    if b["max_ulp"] is not None and (a["max_ulp"] is None or b["max_ulp"] > a["max_ulp"]
                                     or (b["max_ulp"] == a["max_ulp"] and b["worst"][0] < a["worst"][0])):
        out["worst"] = b["worst"]  # ties go to the smaller input, whatever order chunks finish in
    else:
        out["worst"] = a["worst"]
    h = dict(a["hist"])
    for k, c in b["hist"].items():
        h[k] = h.get(k, 0) + c
    out["hist"] = h
    return out


def summary_row(s: dict) -> dict:
    """DESIGN.md's summary keys from a merged summary."""
    n, fin = s["n"], s["n"] - s["nonfinite"]
    row = {"inputs": n, "nonfinite": s["nonfinite"], "cr_frac": s["cr"] / n if n else None,
           "faithful_frac": s["faithful"] / n if n else None, "signed_zero_mismatch": s["signed_zero"]}
    row.update({k: s[k] for k in ("dulp_0", "dulp_1", "dulp_2", "dulp_3", "dulp_gt3")})
    if fin:
        keys = sorted(int(k) for k in s["hist"])
        counts = np.array([s["hist"][k] for k in keys])
        cum = np.cumsum(counts)

        def pct(q):
            rank = max(1, math.ceil(q * fin))  # nearest rank
            return hist_upper(keys[int(np.searchsorted(cum, rank))])

        wx, wy, wr = s["worst"]
        row.update(max_ulp=s["max_ulp"], mean_ulp=math.fsum(s["sum_ulp"]) / fin, median_ulp=pct(0.5), p99_ulp=pct(0.99),
                   worst_x=wx, worst_y=wy, worst_ref=wr, max_abs_err=s["max_abs"], max_rel_err=s["max_rel"],
                   mean_bits=math.fsum(s["sum_bits"]) / fin, max_bits=s["max_bits"])
    else:
        row.update(max_ulp=None, mean_ulp=None, median_ulp=None, p99_ulp=None, worst_x=None, worst_y=None,
                   worst_ref=None, max_abs_err=None, max_rel_err=None, mean_bits=None, max_bits=None)
    return row


# ---------------------------------------------------------------- the run


@dataclass
class Sweep:
    formulas: list
    policy: Policy
    domain: Domain = field(default_factory=Domain)
    chunk: int = CHUNK

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
        return {"version": SWEEP_VERSION, "mishaudit": __version__,
                "formulas": [[f.id, f.digest] for f in self.formulas], "dtype": self.policy.storage.name,
                "compute_dtype": (self.policy.compute or self.policy.storage).name, "ftz": self.policy.ftz,
                "domain": [self.domain.lo, self.domain.hi], "chunk": self.chunk}

    def folder(self) -> str:
        ids = json.dumps([f.id for f in self.formulas] + [self.policy.describe(), repr(self.domain), self.chunk])
        return str(cache_dir() / "sweeps" / hashlib.sha256(ids.encode()).hexdigest()[:16])

    def chunk_inputs(self, i: int) -> np.ndarray:
        a = self.olo + i * self.chunk
        b = min(a + self.chunk - 1, self.ohi)
        x = from_ordinal(np.arange(a, b + 1, dtype=np.int64), self.policy.storage)
        if a <= 0 <= b:  # ordinal 0 stands for +0; -0 is an input too
            x = np.concatenate([x, [-0.0]])
        return x


BLOCK = 1 << 15  # inputs per numpy pass: arrays of 256 KiB stay in cache


def run_chunk(sweep: Sweep, i: int) -> dict:
    """Summaries of every formulation over chunk i, computed block by block."""
    fmt = sweep.policy.storage
    xs = sweep.chunk_inputs(i)
    out = {"fallback": 0, "formulas": {}}
    for b in range(0, len(xs), BLOCK):
        x = xs[b : b + BLOCK]
        arr = _compute_with_progress(x, fmt, False)
        ref = Reference(x, arr["rn"], arr["d"], arr["E"], arr["r64"], computed=len(x), fallback=arr["fallback"])
        out["fallback"] += int(arr["fallback"])
        for f in sweep.formulas:
            y = evaluate(f, x, sweep.policy).y
            out["formulas"][f.id] = merge(out["formulas"].get(f.id), chunk_summary(x, y, ref, fmt))
    return out


def _job(args):
    sweep, i = args
    return i, run_chunk(sweep, i)


def _load_checkpoints(sweep: Sweep, folder: str, resume: bool):
    """Yield (chunk index, data) of the valid checkpoints, one at a time (memory stays bounded)."""
    meta_path = os.path.join(folder, "sweep.json")
    if not resume:
        shutil.rmtree(folder, ignore_errors=True)
        return
    if not os.path.exists(meta_path):
        return
    try:
        with open(meta_path) as fh:
            meta = json.load(fh)
    except (OSError, ValueError):
        raise UserError(f"checkpoint {meta_path} is unreadable: delete {folder} or run without --resume") from None
    if meta != sweep.identity():
        raise UserError(f"the checkpoint in {folder} belongs to a different run (formula file, format, mode or "
                        "version changed): run without --resume to start over")
    for name in sorted(os.listdir(folder)):
        if name.startswith("chunk-") and name.endswith(".json"):
            try:
                with open(os.path.join(folder, name)) as fh:
                    data = json.load(fh)
                data["formulas"] = {k: _unjson(v) for k, v in data["formulas"].items()}
                yield int(name[6:-5]), data
            except (OSError, ValueError, KeyError):
                pass  # a damaged checkpoint is recomputed


def _unjson(s: dict) -> dict:
    s["hist"] = {int(k): v for k, v in s["hist"].items()}
    s["worst"] = tuple(s["worst"]) if s["worst"] is not None else None
    return s


def run_sweep(sweep: Sweep, jobs: int = 0, resume: bool = False, progress=None, on_chunk=None) -> tuple[dict, int]:
    """Run (or resume) the sweep; returns (formula id -> merged summary, inputs sent to mpmath).

    Chunk results are merged as they arrive (the parent holds one summary per formula, not one
    per chunk). `progress(done_chunks, total_chunks, inputs_done)` is called as chunks finish;
    `on_chunk(i)` after each checkpoint is written (it may raise KeyboardInterrupt: everything
    written stays)."""
    folder = sweep.folder()
    merged: dict = {}
    state = {"done": set(), "inputs": 0, "fallback": 0}

    def absorb(i, data):
        state["done"].add(i)
        state["fallback"] += data["fallback"]
        state["inputs"] += next(iter(data["formulas"].values()))["n"]
        for fid, s in data["formulas"].items():
            merged[fid] = merge(merged.get(fid), s)

    for i, data in _load_checkpoints(sweep, folder, resume):
        absorb(i, data)
    os.makedirs(folder, exist_ok=True)
    atomic_write_bytes(os.path.join(folder, "sweep.json"), json.dumps(sweep.identity()).encode())
    pending = [i for i in range(sweep.nchunks) if i not in state["done"]]
    jobs = jobs or os.cpu_count() or 1

    def finished(i, data):
        atomic_write_bytes(os.path.join(folder, f"chunk-{i}.json"), json.dumps(data).encode())
        absorb(i, data)
        if progress is not None:
            progress(len(state["done"]), sweep.nchunks, state["inputs"])
        if on_chunk is not None:
            on_chunk(i)

    if progress is not None:
        progress(len(state["done"]), sweep.nchunks, state["inputs"])
    if jobs > 1 and len(pending) > 1:
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        pool = ProcessPoolExecutor(max_workers=jobs)
        running: set = set()
        todo = iter(pending)
        try:
            while True:  # keep 2 chunks per worker in flight: results never pile up
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
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
    else:
        for i in pending:
            finished(i, run_chunk(sweep, i))
    return merged, state["fallback"]
