"""Streaming exhaustive sweep over every binary32 input (or every input of a domain).

The finite inputs, as consecutive ordinals, are cut into chunks of 2^22 and blocks of 2^15.
A block's reference comes from the reference table's fast path (MPFR for the few inputs it
cannot decide); each formulation runs as a binary32 program (program32.py) and its errors are
folded into a mergeable summary (measure/summary.py).

Chunks run on `jobs` processes. The parent merges chunk results as they arrive and writes a
checkpoint (the merged summaries and the set of finished chunks) every few seconds, when
interrupted, and at the end; `resume` continues from it. A checkpoint records the formulas'
file digests, format, mode, domain, chunk size and versions, and what else decides the bits: the
libm model, numpy's SIMD dispatch under the numpy model (libm.numpy_dispatch), the framework
builds of torch (libm torch, kernels) and the device; one that differs is refused, never mixed in
(the checkpoint's folder is named by the run's formulas, formats, flush mode, domain and chunk, so
a resume under another libm model or device finds the old checkpoint and refuses it).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field

import numba
import numpy as np

from mishaudit import cache, pool
from mishaudit.errors import UserError
from mishaudit.eval.evaluate import Policy, evaluate
from mishaudit.eval.inputs import Domain, inward
from mishaudit.eval.program32 import binary32_program, shared_subexpressions
from mishaudit.formats import FP32
from mishaudit.heap import keep_heap
from mishaudit.measure.summary import Acc, BlockStats
from mishaudit.reference.table import REF_VERSION, reference_arrays
from mishaudit.version import __version__

SWEEP_VERSION = 5  # 5: histogram bin 0 = errors read as 0 (below 2^-60 ulp)
CHUNK = 1 << 22
BLOCK = 1 << 15  # inputs per numpy pass: a block's arrays stay in cache
CHECKPOINT_SECONDS = 5.0

@dataclass
class Sweep:
    """A streamed run over the binary32 inputs of a domain, doing the `job` its caller gives: the job's
    state class (None: Summaries, compare's error summaries; overflow passes
    exhaustive_events.ExhaustiveEvents, the event intervals). The class is constructed as cls(sweep);
    cls.chunk(sweep, i) -> data runs in a worker; .absorb(i, data), .dump() -> (JSON-able meta,
    arrays) and .load(meta, arrays) merge and checkpoint; cls.MODE names it in the checkpoint."""

    formulas: list
    policy: Policy
    domain: Domain = field(default_factory=Domain)
    chunk: int = CHUNK
    job: type | None = None

    def __post_init__(self):
        if self.job is None:
            self.job = Summaries
        fmt = self.policy.storage
        if fmt is not FP32:
            raise UserError(f"--exhaustive streams binary32 only ({fmt.name}: fp16/bf16 are always exhaustive, "
                            "fp64 has 2^64 inputs); use --dtype fp32")
        self.olo, self.ohi = inward(self.domain, fmt)
        if self.olo > self.ohi:
            raise UserError(f"--domain {self.domain.lo!r}:{self.domain.hi!r} holds no finite fp32 value: widen it")
        self.nchunks = (self.ohi - self.olo) // self.chunk + 1

    @property
    def mode(self) -> str:
        """The job's name ("compare", "overflow"): part of the checkpoint's identity and folder."""
        return self.job.MODE

    def identity(self) -> dict:
        """What a checkpoint must match to be resumed (IDENTITY_NAMES says what each key is)."""
        from mishaudit.eval import libm

        frameworks = sorted({f.framework for f in self.formulas if f.kernel} | (
            {"torch"} if self.policy.libm == "torch" else set()))
        if frameworks:  # their version and CPU capability decide a kernel's (and libm torch's) bits
            from mishaudit.eval.kernels import describe

            frameworks = [describe(fw) for fw in frameworks]
        return {"version": SWEEP_VERSION, "reference": REF_VERSION, "mishaudit": __version__, "mode": self.mode,
                "formulas": [[f.id, f.digest, f.spec.key] for f in self.formulas], "dtype": self.policy.storage.name,
                "compute_dtype": (self.policy.compute or self.policy.storage).name, "ftz": self.policy.ftz,
                "libm": self.policy.libm,
                "numpy_dispatch": libm.numpy_dispatch() if self.policy.libm == "numpy" else None,
                "c_library": libm.build("glibc") if self.policy.libm == "glibc" else None,
                "frameworks": frameworks,
                "device": self.policy.device,
                "domain": [self.domain.lo, self.domain.hi], "chunk": self.chunk}

    def folder(self) -> str:
        """The checkpoint's folder: named by what the run computes (not by the libm model, dispatch or
        device, which identity() holds: resuming under another one finds the checkpoint and refuses it)."""
        pol = self.policy
        ids = json.dumps([self.mode] + [f.id for f in self.formulas]
                         + [pol.storage.name, pol.work.name, pol.ftz, repr(self.domain), self.chunk])
        return str(cache.cache_dir() / "sweeps" / hashlib.sha256(ids.encode()).hexdigest()[:16])

    def first_ordinal(self, i: int) -> int:
        return self.olo + i * self.chunk

    def blocks(self, i: int):
        """The inputs of chunk i, block by block, ascending (-0 just before +0), as binary32."""
        a = self.first_ordinal(i)
        b = min(a + self.chunk - 1, self.ohi)
        for lo in range(a, b + 1, BLOCK):
            yield values(lo, min(lo + BLOCK - 1, b))


def values(lo: int, hi: int) -> np.ndarray:
    """The binary32 values of ordinals lo..hi, ascending, as float32 (-0 and +0 both when 0 is in,
    as a domain holding 0 holds both)."""
    return _ordinal_bits(lo, hi).view(np.float32)


@numba.njit(cache=True, nogil=True)
def _ordinal_bits(lo, hi):  # pragma: no cover - compiled
    """values' encodings in one pass: the negative ordinals lo..min(hi, 0) as magnitudes -o with the
    sign bit (0 gives -0), then max(lo, 0)..hi (0 gives +0)."""
    neg = max(min(hi, 0) - lo + 1, 0)
    pos = max(hi - max(lo, 0) + 1, 0)
    out = np.empty(neg + pos, dtype=np.uint32)
    for k in range(neg):
        out[k] = np.uint32(-(lo + k)) | np.uint32(0x80000000)
    p0 = max(lo, 0)
    for k in range(pos):
        out[neg + k] = np.uint32(p0 + k)
    return out


class Summaries:
    """compare --exhaustive: one Acc per formulation."""

    MODE = "compare"

    def __init__(self, sweep: Sweep):
        self.sweep = sweep
        self.accs = {f.id: Acc() for f in sweep.formulas}
        self.fallback = 0
        self.seconds = 0.0  # time spent in the chunks merged by this run (not checkpointed)

    @staticmethod
    def chunk(sweep: Sweep, i: int) -> dict:
        """Summaries of every formulation over chunk i, computed block by block (and the seconds it
        took where it ran, for benchmarks)."""
        t = time.perf_counter()
        accs = {f.id: Acc() for f in sweep.formulas}
        progs = programs(sweep.formulas, sweep.policy)
        fallback = n = 0
        for x32 in sweep.blocks(i):
            fallback += summarize_block(x32, sweep.formulas, progs, sweep.policy, accs)
            n += len(x32)
        states = {k: a.state() for k, a in accs.items()}
        for k, a in accs.items():
            a.release(states[k][1])
        return {"fallback": fallback, "n": n, "formulas": states, "seconds": time.perf_counter() - t}

    def absorb(self, i: int, data: dict) -> None:
        self.seconds += data.get("seconds", 0.0)
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


@dataclass
class Programs:
    """How a sweep evaluates its formulations: the fused pass (eval/fused32.py) for those it
    compiles, binary32 programs (program32.py) or the evaluator for the rest."""

    fused: object | None  # fused32.Fused over `in_fused`, or None
    in_fused: list  # formula ids, in the fused pass's order
    single: dict  # formula id -> binary32 program (None: the evaluator), for the others
    by_spec: list | None = None  # [(spec, formula ids)], set by summarize_block's first call


_PROGRAMS: dict = {}


def programs(formulas: list, policy: Policy) -> Programs:
    """The sweep's programs for `formulas` under `policy` (built once per process)."""
    from mishaudit.eval import fused32

    key = (tuple((f.id, f.digest) for f in formulas), policy)
    got = _PROGRAMS.get(key)
    if got is None:
        fused = [f for f in formulas if fused32.supported(f, policy)]
        rest = [f for f in formulas if f not in fused]
        shared = shared_subexpressions(rest)
        got = Programs(fused32.Fused(fused, policy) if fused else None, [f.id for f in fused],
                       {f.id: binary32_program(f, policy, shared) for f in rest})
        _PROGRAMS[key] = got
    return got


def outputs(x32: np.ndarray, formulas: list, progs: Programs, policy: Policy) -> dict:
    """formula id -> its binary32 outputs on the block x32 (the evaluator's bits)."""
    from mishaudit.eval.fused32 import fused_outputs

    out = {}
    if progs.fused is not None:
        ys = fused_outputs(progs.fused, x32, policy)
        out = dict(zip(progs.in_fused, ys))
    memo: dict = {}  # subexpressions common to several binary32 programs, this block
    x = None
    for f in formulas:
        if f.id in out:
            continue
        prog = progs.single[f.id]
        if prog is not None:
            out[f.id] = prog(x32, memo)
        else:
            x = x32.astype(np.float64) if x is None else x
            out[f.id] = evaluate(f, x, policy).y.astype(np.float32)
    return out


def summarize_block(x32: np.ndarray, formulas: list, progs: Programs, policy: Policy, accs: dict,
                    clock=None) -> int:
    """Fold one block of inputs (ascending binary32) into every formulation's Acc; returns the
    inputs sent to MPFR. Formulations whose outputs on the block are the same bits (all RN(r), or
    the same saturated values) share one fold (BlockStats). `clock(stage, seconds)`, when given,
    receives the time of the reference, the evaluation and the fold."""
    x = x32  # the reference reads binary32 inputs as they are
    t = time.perf_counter()
    ys = outputs(x32, formulas, progs, policy)
    if clock:
        clock("evaluate", time.perf_counter() - t)
    fallback = 0
    if progs.by_spec is None:  # the formulations of each spec in the run (one reference each)
        progs.by_spec = [(spec, [f.id for f in formulas if f.spec == spec])
                         for spec in dict.fromkeys(f.spec for f in formulas)]
    for spec, group in progs.by_spec:
        t = time.perf_counter()
        arr = reference_arrays(x, FP32, spec=spec)
        fallback += int(arr["fallback"])
        rn, d, E, r64 = arr["rn"], arr["d"], arr["E"], arr["r64"]
        if clock:
            clock("reference", time.perf_counter() - t)
        t = time.perf_counter()
        for ids in (_same_outputs(group, ys) if len(group) > 1 else [group]):
            if len(ids) == 1:
                accs[ids[0]].add_block(ys[ids[0]], x, rn, d, E, r64)
            else:
                st = BlockStats.of(x, ys[ids[0]], rn, d, E, r64)
                for fid in ids:
                    accs[fid].add_stats(st)
        if clock:
            clock("fold", time.perf_counter() - t)
    return fallback


def _same_outputs(ids: list, ys: dict) -> list:
    """`ids` grouped by bit-identical outputs (each compared with the first of every group so far,
    fold.same, which stops at the first 512 words that differ), in `ids`' order."""
    from mishaudit.measure.fold import same

    groups: list = []
    for fid in ids:
        y = ys[fid].view(np.uint32)
        for members in groups:
            if same(ys[members[0]].view(np.uint32), y):
                members.append(fid)
                break
        else:
            groups.append([fid])
    return groups


def _worker_init():
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the workers
    keep_heap()


def _job(args):
    sweep, i = args
    return sweep.job.chunk(sweep, i)


def _task(sweep: Sweep, i: int):
    """One chunk as a Dask task (cluster.py)."""
    keep_heap()
    return sweep.job.chunk(sweep, i)


IDENTITY_NAMES = {"version": "sweep version", "reference": "reference version", "mishaudit": "mishaudit version",
                  "formulas": "formula file", "dtype": "format", "compute_dtype": "compute format", "ftz": "flush mode",
                  "numpy_dispatch": "numpy's SIMD dispatch", "c_library": "C library",
                  "frameworks": "framework build", "device": "device"}
SHOWN = ("libm", "numpy_dispatch", "c_library", "device", "ftz", "compute_dtype", "mode")  # short values, named in the refusal


class _Checkpoint:
    """The parent's job state, the finished chunks and the checkpoint file holding both (cache.py)."""

    def __init__(self, sweep: Sweep, resume: bool):
        self.sweep = sweep
        self.job = sweep.job(sweep)
        self.folder = sweep.folder()
        self.path = os.path.join(self.folder, "state.npz")
        self.done: set = set()
        self.inputs = 0
        if not resume:
            shutil.rmtree(self.folder, ignore_errors=True)
        else:
            self._load()
        try:
            os.makedirs(self.folder, exist_ok=True)
        except OSError as e:
            raise _unwritable(self.folder, e) from None
        self.saved_at = time.monotonic()

    def _load(self):
        try:
            got = cache.load(self.path)
        except cache.Damaged:
            raise UserError(f"checkpoint {self.path} is unreadable: delete {self.folder} or run without --resume"
                            ) from None
        if got is None:  # nothing to resume: say so (a silent fresh start would read as a resumed run)
            print(f"mishaudit: note: --resume found no checkpoint of this run in {self.folder}; starting from "
                  "the first chunk", file=sys.stderr)
            return
        arrays, meta = got
        old, now = meta.get("identity") or {}, self.sweep.identity()
        if old != now:
            def shown(v):
                return "none" if v is None else v

            what = [IDENTITY_NAMES.get(k, k) + (f" ({shown(old.get(k))} then, {shown(now.get(k))} now)"
                                                if k in SHOWN else "")
                    for k in now if old.get(k) != now.get(k)] or ["version"]
            raise UserError(f"the checkpoint in {self.folder} belongs to a different run ({'; '.join(what)} "
                            "changed): run without --resume to start over")
        self.job.load(meta["job"], arrays)
        self.done = set(meta["done"])
        self.inputs = meta["inputs"]

    def absorb(self, i: int, data: dict) -> None:
        self.done.add(i)
        self.inputs += data["n"]
        self.job.absorb(i, data)

    def save(self) -> None:
        jmeta, arrays = self.job.dump()
        meta = {"identity": self.sweep.identity(), "done": sorted(self.done), "inputs": self.inputs, "job": jmeta}
        try:
            cache.save(self.path, arrays, meta)
        except OSError as e:
            raise _unwritable(self.folder, e) from None
        self.saved_at = time.monotonic()


def _unwritable(folder: str, e: OSError) -> UserError:
    return UserError(f"cannot write the sweep checkpoint in {folder} ({e.strerror or e}): set MISHAUDIT_CACHE_DIR "
                     "to a writable folder")


def run_sweep(sweep: Sweep, jobs: int = 0, resume: bool = False, progress=None, on_chunk=None, scheduler=None):
    """Run (or resume) the sweep on `jobs` processes (0: every core), or with `scheduler` (an address,
    "local:N" or a distributed.Client) on a Dask cluster (cluster.py); returns the job's state
    (`Summaries.accs`: formula id -> merged Acc, `.fallback`: inputs sent to MPFR).

    `progress(done_chunks, total_chunks, inputs_done)` is called as chunks finish; `on_chunk(i)`
    after each is merged (it may raise KeyboardInterrupt). Whatever was merged is checkpointed
    before an interruption propagates."""
    keep_heap()
    st = _Checkpoint(sweep, resume)
    pending = [i for i in range(sweep.nchunks) if i not in st.done]
    if progress is not None:
        progress(len(st.done), sweep.nchunks, st.inputs)
    if scheduler is not None:
        from mishaudit import cluster

        results = cluster.run(_task, sweep, pending, scheduler)
    else:
        results = pool.run(_job, [(sweep, i) for i in pending], pool.workers_for(len(pending), jobs),
                           initializer=_worker_init)
    try:
        for k, data in results:
            i = pending[k]
            st.absorb(i, data)
            if time.monotonic() - st.saved_at > CHECKPOINT_SECONDS:
                st.save()
            if progress is not None:
                progress(len(st.done), sweep.nchunks, st.inputs)
            if on_chunk is not None:
                on_chunk(i)
    finally:
        results.close()
        st.save()
    return st.job
