"""Run the exhaustive sweep's chunks on a Dask cluster (dask.distributed), as pool.py runs them on local
processes: the same `(index, result)` stream, results merged by the caller as they arrive.

    --scheduler tcp://host:8786   an existing scheduler (`dask scheduler`; workers `dask worker ADDRESS`)
    --scheduler local:N           a LocalCluster of N single-threaded worker processes on this machine

The sweep is sent to every worker once (scatter, broadcast); each chunk is one task. A worker that
dies costs only its chunks: the scheduler hands them to another worker (a chunk whose workers die
`distributed.scheduler.allowed-failures` times, 3 by default, fails the run). Chunks are pure
functions of the sweep and their index, so the merged result is the same bits wherever they run.
Only this process reads and writes the checkpoint: workers need no shared folder. Every worker must
run the same mishaudit version (checked on connecting). A scheduler started with
DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION=inf sends each worker its next chunk before the
current one ends (local:N does so): with Dask's default queueing a worker idles one round trip
per chunk (measured 15 % of a chunk on 2 cores; benchmarks/dask_sweep.py).
"""

from __future__ import annotations

import re
from contextlib import contextmanager

from mishaudit.errors import UserError
from mishaudit.version import __version__

_LOCAL = re.compile(r"local:(\d+)$")
CONNECT_TIMEOUT = "10s"


def check_address(address: str) -> None:
    """UserError unless `address` is local:N (N >= 1) or a scheduler address (scheme://host:port or host:port)."""
    m = _LOCAL.match(address)
    if m:
        if int(m.group(1)) < 1:
            raise UserError(f"--scheduler {address}: give at least one worker, e.g. local:2")
        return
    if address == "local" or address.startswith("local:"):
        raise UserError(f"--scheduler {address!r}: write local:N with N workers, e.g. local:2")
    if not re.match(r"([a-z+]+://)?[^\s:/]+:\d+$", address):
        raise UserError(f"--scheduler {address!r}: give the scheduler's address, e.g. tcp://10.0.0.5:8786, or "
                        "local:N for a cluster of N workers on this machine")


def _distributed():
    try:
        import distributed
    except ImportError:
        raise UserError("--scheduler needs dask.distributed: pip install 'mishaudit[dask]'") from None
    return distributed


def _worker_version() -> str:
    from mishaudit.version import __version__ as v

    return v


# Dask settings for a sweep: the scheduler sends chunks ahead (a worker never waits a round trip
# between two chunks), and the periodic housekeeping that takes CPU from the chunks on a small
# machine runs less often (the workers' statistical profiler off: its 10 ms stack samples compete
# for the GIL). `dask scheduler` and `dask worker` take the same as DASK_* variables (README).
SWEEP_CONFIG = {
    "distributed.scheduler.worker-saturation": "inf",
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "500ms",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.admin.system-monitor.gil.enabled": False,
    "distributed.worker.memory.monitor-interval": "1s",
}


def local_cluster(workers: int):
    """A LocalCluster of `workers` single-threaded processes, configured for a sweep (SWEEP_CONFIG)."""
    import dask

    distributed = _distributed()
    with dask.config.set(SWEEP_CONFIG):
        return distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                        dashboard_address=":0", silence_logs=40)


@contextmanager
def connect(scheduler):
    """A distributed.Client for `scheduler`: an address, "local:N", or a Client (used as it is)."""
    distributed = _distributed()
    if isinstance(scheduler, distributed.Client):
        yield scheduler
        return
    check_address(scheduler)
    m = _LOCAL.match(scheduler)
    cluster = None
    try:
        if m:
            cluster = local_cluster(int(m.group(1)))
            client = distributed.Client(cluster)
        else:
            client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        if cluster is not None:
            cluster.close()
        raise UserError(f"--scheduler {scheduler}: cannot reach it ({exc}); start one with `dask scheduler` and "
                        "workers with `dask worker ADDRESS`, or use local:N") from None
    try:
        _check_workers(client, scheduler)
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _check_workers(client, scheduler) -> None:
    if not client.scheduler_info().get("workers"):
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
    try:
        versions = client.run(_worker_version)
    except Exception as exc:  # a worker without mishaudit cannot unpickle the function
        raise UserError(f"--scheduler {scheduler}: a worker cannot run mishaudit ({type(exc).__name__}: {exc}); "
                        f"install mishaudit {__version__} on every worker") from None
    other = {w: v for w, v in versions.items() if v != __version__}
    if other:
        w, v = next(iter(other.items()))
        raise UserError(f"--scheduler {scheduler}: worker {w} runs mishaudit {v}, this is {__version__}: install the "
                        "same version on every worker")


def run(fn, shared, indices: list, scheduler):
    """Yield (k, fn(shared, indices[k])) for every k as the tasks finish on the cluster; closing the
    generator (an interrupt, an error) cancels what is left."""
    with connect(scheduler) as client:
        distributed = _distributed()
        if not indices:
            return
        ref = client.scatter(shared, broadcast=True, hash=False)
        futures = [client.submit(fn, ref, i, pure=False, retries=1) for i in indices]
        where = {f.key: k for k, f in enumerate(futures)}
        try:
            for fut in distributed.as_completed(futures):
                k = where[fut.key]
                yield k, fut.result()
                futures[k] = None  # let the scheduler forget it
                fut.release()
        finally:
            client.cancel([f for f in futures if f is not None])
