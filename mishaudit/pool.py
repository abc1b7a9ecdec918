"""The one process-pool driver: the approximation errors and the exhaustive
sweep's chunks fan out through it."""

from __future__ import annotations

import os


def workers_for(items: int, jobs: int = 0) -> int:
    """Processes to use for `items` jobs: `jobs` (0 = every core), never more than the items."""
    return max(1, min(items, jobs or os.cpu_count() or 1))


def _init(initializer=None):
    """Every worker ignores Ctrl-C (the terminal sends SIGINT to the whole process group): the parent
    alone handles it, stops the workers and reports one line."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer()


def _stop(pool) -> None:
    """Terminate the pool's processes now (in-flight work is dropped) and reap them."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    for p in procs:
        try:
            p.terminate()
        except (OSError, ValueError, AttributeError):
            pass
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        try:
            p.join(timeout=2)
        except (OSError, ValueError, AssertionError, AttributeError):
            pass


def run(fn, items: list, workers: int, initializer=None, per_worker: int = 2):
    """Yield (index, fn(items[index])) for every item as it finishes, on `workers` processes (here, in
    order, when workers < 2 or there is one item); at most per_worker * workers items are in flight,
    so results never pile up. An exception, an interrupt or closing the generator stops the workers
    at once and propagates."""
    from mishaudit.files import check_interrupt

    if workers < 2 or len(items) < 2:
        for i, item in enumerate(items):
            check_interrupt()
            yield i, fn(item)
        return
    import multiprocessing
    import sys
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # forking a process in which JAX (or another threaded runtime) has started its threads can
    # deadlock the child: start workers from a clean fork server then
    threaded = any(m in sys.modules for m in ("jax", "jaxlib", "tensorflow", "openvino"))
    ctx = multiprocessing.get_context("forkserver" if threaded else None)
    from functools import partial

    pool = ProcessPoolExecutor(max_workers=workers, initializer=partial(_init, initializer), mp_context=ctx)
    running: dict = {}
    todo = iter(enumerate(items))
    try:
        while True:
            check_interrupt()  # a Ctrl-C swallowed somewhere (a finalizer) still stops the work
            while len(running) < per_worker * workers:
                nxt = next(todo, None)
                if nxt is None:
                    break
                running[pool.submit(fn, nxt[1])] = nxt[0]
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                yield running.pop(fut), fut.result()
    except BaseException:
        _stop(pool)  # stop in-flight work now
        raise
    pool.shutdown()


def run_all(fn, items: list, workers: int) -> list:
    """[fn(item) for item in items], in order, on `workers` processes."""
    out = [None] * len(items)
    for i, r in run(fn, items, workers):
        out[i] = r
    return out
