"""Dask against local processes for the exhaustive fp32 sweep, in one run: the same --domain sweep on
`--workers` local processes (pool.py, the baseline) and on a LocalCluster of as many single-threaded
workers (cluster.py), and Dask's own overhead per task.

Run: python benchmarks/dask_sweep.py [--domain=-1e10:-8] [--formula softplus-tanh] [--workers N] [--rounds 3]
     [--queued]

Prints, for the same chunks (2^22 inputs, the sweep's own size): the wall time and inputs/s of both
runs (the best of --rounds alternating runs each), their ratio, the cluster's start-up time (apart: paid once per command), the mean chunk's
time on one core (t_chunk = T_local * workers / chunks), and the Dask overhead per chunk two ways:
  per-chunk overhead = (T_dask - T_local) * workers / chunks     (what the whole run lost per chunk)
  time outside chunks = (workers * T - sum of the chunks' own times) / chunks, for each run; Dask's
                        own is its value minus the local one (medians over the rounds)
  round trip         = wall time of `chunks` empty tasks / chunks * workers
each also as a share of t_chunk. Checks the two runs merge to the same bits. Asserts nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--domain", default="-1e10:-8", help="LO:HI of the sweep (fp32 inputs)")
    ap.add_argument("--formula", default="softplus-tanh")
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                    help="workers of both runs (default: the cores but one, which the client and scheduler use, "
                         "as on a cluster where they have a machine of their own)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating runs of each; the best of each is shown")
    ap.add_argument("--queued", action="store_true",
                    help="Dask's default scheduler queueing (worker-saturation 1.1) instead of local:N's inf")
    a = ap.parse_args()
    os.environ.setdefault("MISHAUDIT_CACHE_DIR", tempfile.mkdtemp(prefix="mishaudit-bench-"))

    from distributed import Client, LocalCluster

    from mishaudit.analysis.sweep import Summaries, Sweep, run_sweep
    from mishaudit.cluster import local_cluster
    from mishaudit.eval.evaluate import Policy
    from mishaudit.eval.inputs import parse_domain
    from mishaudit.formats import FP32
    from mishaudit.lang.registry import load_registry

    f = load_registry()[a.formula]
    sweep = Sweep([f], Policy(FP32), parse_domain(a.domain))
    n_inputs = sweep.ohi - sweep.olo + 1
    print(f"sweep: {a.formula}, fp32 x in {a.domain}: {n_inputs:,} inputs, {sweep.nchunks} chunks of {sweep.chunk:,}; "
          f"{a.workers} workers")

    Summaries.chunk(sweep, 0)  # compile (or load) the numba kernels in this process
    t = time.perf_counter()
    reps = min(3, sweep.nchunks)
    for i in range(reps):
        Summaries.chunk(sweep, i)
    t_chunk = (time.perf_counter() - t) / reps
    full = min(sweep.chunk, n_inputs)

    t = time.perf_counter()
    cluster = local_cluster(a.workers) if not a.queued else LocalCluster(
        n_workers=a.workers, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=logging.ERROR)
    client = Client(cluster)
    t_start = time.perf_counter() - t
    client.run(lambda: Summaries.chunk(sweep, 0) and None)  # the numba kernels, loaded once per worker

    runs = {"local": [], "dask": []}
    gaps = {"local": [], "dask": []}  # per chunk: worker time not spent computing chunks
    for _ in range(a.rounds):  # alternate, keep each one's best: this machine's speed drifts
        for kind in ("local", "dask"):
            t = time.perf_counter()
            job = run_sweep(sweep, jobs=a.workers) if kind == "local" else run_sweep(sweep, scheduler=client)
            wall = time.perf_counter() - t
            runs[kind].append(wall)
            gaps[kind].append((a.workers * wall - job.seconds) / sweep.nchunks)
            if kind == "local":
                local, compute_local = job, job.seconds
            else:
                dask, compute_dask = job, job.seconds
    t_local, t_dask = min(runs["local"]), min(runs["dask"])
    print("rounds (s): " + "; ".join(f"{k} " + " ".join(f"{v:.2f}" for v in vs) for k, vs in runs.items()))

    t = time.perf_counter()
    futures = client.map(lambda i: i, range(sweep.nchunks), pure=False)
    client.gather(futures)
    t_noop = time.perf_counter() - t
    client.close()
    cluster.close()

    same = all(local.accs[k].state()[0] == dask.accs[k].state()[0] for k in local.accs)
    c = sweep.nchunks
    per_chunk = (t_dask - t_local) * a.workers / c
    trip = t_noop / c * a.workers
    print(f"one chunk on one core, the first {reps} ({full:,} inputs each): {t_chunk * 1e3:8.1f} ms; the mean chunk of "
          f"the local run (t_local * workers / chunks): {t_local * a.workers / c * 1e3:8.1f} ms")
    t_chunk = t_local * a.workers / c  # the shares below are of the mean chunk
    print(f"local processes (baseline): {t_local:8.2f} s  {n_inputs / t_local / 1e6:8.2f} M inputs/s")
    print(f"dask LocalCluster         : {t_dask:8.2f} s  {n_inputs / t_dask / 1e6:8.2f} M inputs/s  "
          f"ratio dask/local {t_dask / t_local:.3f}")
    print(f"cluster start-up (once)   : {t_start:8.2f} s")
    print(f"per-chunk overhead        : {per_chunk * 1e3:8.2f} ms = {100 * per_chunk / t_chunk:6.2f} % of t_chunk "
          "(from the best walls)")
    g_local, g_dask = sorted(gaps["local"])[len(gaps["local"]) // 2], sorted(gaps["dask"])[len(gaps["dask"]) // 2]
    print(f"worker time outside chunks, per chunk (median of rounds): local {g_local * 1e3:.2f} ms, dask "
          f"{g_dask * 1e3:.2f} ms; Dask's own: {(g_dask - g_local) * 1e3:.2f} ms = "
          f"{100 * (g_dask - g_local) / t_chunk:.2f} % of t_chunk")
    print(f"chunk compute, last round, mean: local {compute_local / c * 1e3:.1f} ms, in dask workers "
          f"{compute_dask / c * 1e3:.1f} ms")
    print(f"empty-task round trip     : {trip * 1e3:8.2f} ms = {100 * trip / t_chunk:6.2f} % of t_chunk")
    print(f"merged summaries identical: {same}")


if __name__ == "__main__":
    main()
