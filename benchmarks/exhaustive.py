"""Speed of the exhaustive fp32 audit on this machine, side by side with the C loop a user would write,
in one run.

Run: python benchmarks/exhaustive.py [--blocks 64] [--sample-only] [--repeat 2] [--rows DIR]
     [--output reports/speed-fp32.json]

Prints, and writes as JSON (the README's speed table is generated from it by scripts/readme.py):
1. the C yardstick (benchmarks/yardstick.c, gcc -O2 -fopenmp, every core): x*tanhf(log1pf(expf(x)))
   against the unproven binary64 glibc x*tanh(log1p(exp(x))) over all 4,278,190,080 finite binary32
   inputs, max/mean ulp and the share equal to the rounded reference; skipped with a note where gcc
   is missing;
2. `mishaudit compare --dtype fp32 --exhaustive --formula softplus-tanh` (one formulation; a process
   of its own, every core; its compiled code built by a run over a small domain first);
3. the same over every registered formulation of mish and mish' that runs in binary32, in one sweep;
4. `mishaudit compare --dtype fp16 --dtype bf16` with its per-format tables cached (the second of two
   runs; best of 3) and with --no-cache, against a bare `python -c "import numpy, pandas, matplotlib,
   numba"` (best of 3);
5. ns per input per stage on one core (reference, fused evaluation, fold), over `--blocks` blocks of
   2^15 consecutive inputs evenly spaced over binary32, for one formulation and for all;
and the ratios of 2 and 3 to 1 and of 4 to the bare import. 1 and 2 run `--repeat` times,
alternately, and the fastest of each counts (every run's seconds are kept): this machine's speed
drifts by 10-25 % over minutes. Measures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from yardstick import run_yardstick  # noqa: E402

from mishaudit.analysis.sweep import BLOCK, Sweep, programs, summarize_block  # noqa: E402
from mishaudit.eval.evaluate import Policy  # noqa: E402
from mishaudit.formats import FP32  # noqa: E402
from mishaudit.heap import keep_heap  # noqa: E402
from mishaudit.lang.registry import load_registry  # noqa: E402
from mishaudit.measure.summary import Acc  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FULL = 4_278_190_080
ONE = "softplus-tanh"


def fp32_formulas() -> list:
    """Every registered formulation of mish and mish' that an fp32 audit runs (no framework kernels)."""
    return [f for f in load_registry().values() if f.spec.key in ("mish", "mish'") and f.supports(FP32)]


def mishaudit_cmd() -> list:
    return [sys.executable, "-m", "mishaudit.cli"]


def timed(cmd: list, env=None) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t


def sweep_run(ids: list, out: str) -> dict:
    """Wall seconds of one exhaustive compare over `ids` (after a small-domain run that builds its code)."""
    args = [a for i in ids for a in ("--formula", i)]
    timed(mishaudit_cmd() + ["compare", "--dtype", "fp32", "--exhaustive", "--domain", "1:1.01", *args,
                             "--format", "json", "--output", out])
    seconds = timed(mishaudit_cmd() + ["compare", "--dtype", "fp32", "--exhaustive", *args, "--format", "json",
                                       "--output", out])
    rows = json.loads(Path(out).read_text())
    return {"seconds": seconds, "formulas": len(ids), "inputs": rows[0]["inputs"]}


def sixteen_bit() -> dict:
    bare = min(timed([sys.executable, "-c", "import numpy, pandas, matplotlib, numba"]) for _ in range(3))
    cmd = mishaudit_cmd() + ["compare", "--dtype", "fp16", "--dtype", "bf16"]
    timed(cmd)  # fills the per-format tables
    warm = min(timed(cmd) for _ in range(3))
    cold = timed(cmd + ["--no-cache"])
    return {"bare_import_seconds": bare, "warm_seconds": warm, "no_cache_seconds": cold}


def stages(formulas: list, nblocks: int) -> dict:
    """ns per input on one core of each stage of the sweep (summarize_block's clock)."""
    pol = Policy(FP32)
    sweep = Sweep(formulas, pol, chunk=BLOCK)
    picks = np.linspace(0, sweep.nchunks - 1, nblocks).astype(int)
    blocks = [next(sweep.blocks(int(i))) for i in picks]
    progs = programs(formulas, pol)
    warm = {f.id: Acc() for f in formulas}
    for x32 in blocks:  # compile or load everything first, the evaluator's redo of flagged inputs too
        summarize_block(x32, formulas, progs, pol, warm)
    spent: dict = {}

    def clock(stage, seconds):
        spent[stage] = spent.get(stage, 0.0) + seconds

    accs = {f.id: Acc() for f in formulas}
    for x32 in blocks:
        summarize_block(x32, formulas, progs, pol, accs, clock)
    n = sum(len(b) for b in blocks)
    out = {k: v / n * 1e9 for k, v in spent.items()}
    out["total"] = sum(out.values())
    return out


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model or platform.processor() or platform.machine()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=64, help="blocks of 2^15 inputs for the per-stage figures")
    ap.add_argument("--sample-only", action="store_true", help="only the per-stage figures (no full runs)")
    ap.add_argument("--output", default=None, help="write the figures as JSON here (reports/speed-fp32.json)")
    ap.add_argument("--repeat", type=int, default=2,
                    help="runs of the C loop and of one formulation, alternately; the fastest of each counts")
    ap.add_argument("--rows", default=None, help="keep the full runs' JSON rows (one.json, all.json) in this folder")
    a = ap.parse_args()
    keep_heap()
    fs = fp32_formulas()
    ids = [f.id for f in fs]
    res: dict = {"machine": machine(), "formulas": ids}
    print(f"machine: {res['machine']}; all formulations: {len(ids)} ({', '.join(ids)})")
    res["stages_one"] = stages([f for f in fs if f.id == ONE], a.blocks)
    res["stages_all"] = stages(fs, a.blocks)
    if not a.sample_only:
        with tempfile.TemporaryDirectory() as tmp:
            rows = a.rows or tmp
            os.makedirs(rows, exist_ok=True)
            c_runs, one_runs = [], []
            for _ in range(a.repeat):  # alternately, so a slow spell of the machine hits both alike
                c_runs.append(run_yardstick())
                one_runs.append(sweep_run([ONE], os.path.join(rows, "one.json")))
            if all(c_runs):
                res["c_loop"] = min(c_runs, key=lambda r: r["seconds"])
                res["c_loop"]["runs_seconds"] = [r["seconds"] for r in c_runs]
            res["one"] = min(one_runs, key=lambda r: r["seconds"])
            res["one"]["runs_seconds"] = [r["seconds"] for r in one_runs]
            res["all"] = sweep_run(ids, os.path.join(rows, "all.json"))
        res["sixteen"] = sixteen_bit()
    report(res)
    if a.output:
        from mishaudit.files import atomic_write_bytes

        atomic_write_bytes(Path(a.output), (json.dumps(res, indent=1) + "\n").encode())


def report(res: dict) -> None:
    print(f"\nper stage, ns per input on one core ({ONE} / all {len(res['formulas'])} formulations):")
    for k in ("reference", "evaluate", "fold", "total"):
        print(f"  {k:10s} {res['stages_one'].get(k, 0):8.1f} {res['stages_all'].get(k, 0):8.1f}")
    c = res.get("c_loop")
    if "one" not in res:
        return
    print("\nfull runs over every finite binary32 input (wall seconds, every core):")
    if c:
        print(f"  C loop (gcc -O2 -fopenmp, unproven binary64 reference)  {c['seconds']:8.1f} s   "
              f"max {c['max_ulp']:.3g} ulp, mean {c['mean_ulp']:.3g}, equal to the rounded reference "
              f"{100 * c['cr_frac']:.2f} %")
    for key, label in (("one", f"mishaudit, {ONE}"), ("all", f"mishaudit, all {res['all']['formulas']} formulations")):
        r = res[key]
        ratio = f"   {r['seconds'] / c['seconds']:.2f}x the C loop" if c else ""
        print(f"  {label:55s} {r['seconds']:8.1f} s{ratio}")
    s = res["sixteen"]
    print(f"\ncompare --dtype fp16 --dtype bf16: {s['warm_seconds']:.2f} s with its tables cached "
          f"({s['warm_seconds'] / s['bare_import_seconds']:.2f}x a bare import of numpy, pandas, matplotlib, "
          f"numba: {s['bare_import_seconds']:.2f} s); {s['no_cache_seconds']:.2f} s with --no-cache")


if __name__ == "__main__":
    main()
