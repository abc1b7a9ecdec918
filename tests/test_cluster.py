"""The exhaustive sweep on a Dask cluster (a LocalCluster here): the same bits as the local run, also
when a worker is killed mid-sweep, interrupted and resumed, and bad schedulers are one line."""

from __future__ import annotations

import json
import logging
import os
import signal

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import stop_after
from distributed import Client, LocalCluster

from mishaudit.analysis.exhaustive_events import ExhaustiveEvents
from mishaudit.analysis.sweep import Sweep, run_sweep
from mishaudit.cli import main
from mishaudit.errors import UserError
from mishaudit.eval.evaluate import Policy
from mishaudit.eval.inputs import Domain
from mishaudit.formats import FP32
from mishaudit.lang.registry import load_registry

REG = load_registry()
FORMS = [REG[i] for i in ("softplus-tanh", "exp-rational", "pytorch-75251", "onednn-jit")]
DOM = Domain(-40.0, -36.0)  # 2^20 + 1 fp32 inputs: exp underflow, cancellation, the RN(mish) ~ x e^x tail


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                           silence_logs=logging.CRITICAL)
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


def _sweep(chunk=1 << 15):
    return Sweep(FORMS, Policy(FP32), DOM, chunk=chunk)


def _state(job):
    """Everything a compare sweep merged, as plain values (the arrays as bytes)."""
    out = {"fallback": job.fallback}
    for fid, acc in job.accs.items():
        head, keys, counts = acc.state()
        out[fid] = (json.dumps(head, sort_keys=True, default=repr), np.asarray(keys).tobytes(),
                    np.asarray(counts).tobytes())
    return out


@pytest.fixture(scope="module")
def local():
    return _state(run_sweep(_sweep(), jobs=1))


def test_cluster_sweep_is_bit_identical_to_the_local_one(client, local):
    assert _sweep().nchunks == 33
    assert _state(run_sweep(_sweep(), scheduler=client)) == local


def test_overflow_sweep_on_the_cluster_is_identical(client):
    f = REG["exp-rational"]  # exp(x) underflows to 0 at -103.97: e*(e+2) = 0, 2/0 = inf

    def sweep():
        return Sweep([f], Policy(FP32), Domain(-104.5, -103.5), chunk=1 << 14, job=ExhaustiveEvents)

    a = run_sweep(sweep(), jobs=1)
    b = run_sweep(sweep(), scheduler=client)
    assert sweep().nchunks > 4
    ra, rb = a.result(f), b.result(f)
    assert any(m.event == "underflow" for m in ra[0])
    assert ra == rb


def test_a_killed_worker_costs_only_its_chunks(client, local):
    """SIGKILL a worker process (by its pid) while it runs a chunk: the scheduler gives its chunks to
    the other worker (the nanny restarts the dead one), and the merged result is the same bits."""
    pids = client.run(os.getpid)
    killed = []

    def kill_a_busy_worker(i):
        if killed:
            return
        busy = [w for w, keys in client.processing().items() if keys]
        assert busy, "no worker is running a chunk: the test would not kill one mid-chunk"
        os.kill(pids[busy[0]], signal.SIGKILL)
        killed.append((busy[0], pids[busy[0]], len(client.processing()[busy[0]])))

    job = run_sweep(_sweep(), scheduler=client, on_chunk=kill_a_busy_worker)
    assert killed and killed[0][2] >= 1  # it was running (or holding) a chunk when it died
    assert _state(job) == local
    client.wait_for_workers(2, timeout=60)
    assert killed[0][1] not in client.run(os.getpid).values()  # a new process took its place


def test_interrupted_on_the_cluster_then_resumed(client, local):
    with pytest.raises(KeyboardInterrupt):
        run_sweep(_sweep(), scheduler=client, on_chunk=stop_after(3, []))
    seen = []
    job = run_sweep(_sweep(), scheduler=client, resume=True, on_chunk=seen.append)
    assert len(seen) == _sweep().nchunks - 3
    assert _state(job) == local


def test_cli_local_cluster_gives_the_same_json():
    args = ["compare", "--dtype", "fp32", "--exhaustive", "--domain=-25:-20", "--formula", "softplus-tanh",
            "--formula", "exp-rational-clamped", "--format", "json"]
    a = CliRunner().invoke(main, args)
    b = CliRunner().invoke(main, args + ["--scheduler", "local:2"])
    assert a.exit_code == 0 and b.exit_code == 0, b.output
    assert a.output == b.output


@pytest.mark.parametrize("args, msg", [
    (["--scheduler", "local:2"], "add --exhaustive"),
    (["--exhaustive", "--dtype", "fp32", "--scheduler", "local:0"], "at least one worker"),
    (["--exhaustive", "--dtype", "fp32", "--scheduler", "localhost"], "scheduler's address"),
    (["--exhaustive", "--dtype", "fp32", "--scheduler", "local:2", "--jobs", "2"], "drop --jobs"),
    (["--exhaustive", "--dtype", "fp32", "--domain", "1:1.001", "--scheduler", "tcp://127.0.0.1:1"], "cannot reach"),
])
def test_bad_scheduler_is_one_line(args, msg):
    r = CliRunner().invoke(main, ["compare", "--formula", "softplus-tanh", *args])
    assert r.exit_code == 2, r.output
    assert msg in r.output and len(r.output.strip().splitlines()) == 1


def test_a_worker_of_another_version_is_refused(client, monkeypatch):
    monkeypatch.setattr("mishaudit.cluster.__version__", "0.0.0-other")
    with pytest.raises(UserError, match="runs mishaudit"):
        run_sweep(_sweep(), scheduler="local:1")


def test_tune_and_overflow_commands_take_the_scheduler(client):
    from mishaudit import api

    kw = dict(dtype="fp32", steps=3, exhaustive=True, domain="5:5.25")
    a = api.tune("softplus-threshold", "threshold", "5.1:5.2", jobs=1, **kw)
    b = api.tune("softplus-threshold", "threshold", "5.1:5.2", scheduler=client, **kw)
    assert a.equals(b) and len(a) == 4
    ea, _ = api.overflow("fp32", ["exp-rational"], exhaustive=True, domain="-104.2:-103.8", jobs=1)
    eb, _ = api.overflow("fp32", ["exp-rational"], exhaustive=True, domain="-104.2:-103.8", scheduler=client)
    assert ea.equals(eb) and len(ea)
