"""Throughput of the exhaustive fp32 sweep on this machine, against a plain mpmath loop, in one run.

Run: python benchmarks/exhaustive.py [--blocks 128] [--mpmath 2000]
The sample is what the sweep itself processes: `--blocks` blocks of 2^15 consecutive binary32
inputs, evenly spaced over all 4,278,190,080 finite inputs. Prints inputs/s on one core for
the fast reference, for each formulation's evaluation plus fold into the summary under both libm
models (cr, the default, and numpy's kernels), for each installed framework kernel that runs
binary32 (torch:mish, onnxruntime:Mish, jax:mish, ...: ns/input beside the formulations; a
kernel has no libm model, so its numpy column repeats it), for a plain mpmath loop on a slice (the baseline),
their ratios, and the projected time of a full sweep on all cores (from one-core rates: process
start, merging and checkpoints are not included; the CLI run is the real figure). Measures;
asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from mishaudit.analysis.sweep import BLOCK, Acc, Sweep, programs, summarize_block
from mishaudit.eval.evaluate import Policy
from mishaudit.eval.kernels import KERNELS
from mishaudit.formats import FP32
from mishaudit.heap import keep_heap
from mishaudit.lang.registry import load_registry
from mishaudit.reference.table import reference_arrays
from mishaudit.reference.ziv import compute_points

FULL = 4_278_190_080


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=128, help="blocks of 2^15 inputs, evenly spaced")
    ap.add_argument("--mpmath", type=int, default=2000, help="inputs for the mpmath loop")
    a = ap.parse_args()
    keep_heap()
    reg = load_registry()
    kernels = [k for k in KERNELS.values() if k.available() and k.supports(FP32)]
    impls = list(reg.values()) + kernels
    sweep = Sweep(list(reg.values()), Policy(FP32), chunk=BLOCK)
    picks = np.linspace(0, sweep.nchunks - 1, a.blocks).astype(int)
    blocks = [next(sweep.blocks(int(i))) for i in picks]
    n = sum(len(b) for b in blocks)
    cores = os.cpu_count() or 1
    Acc().add_block(np.zeros(1, np.float32), np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1, np.int64),
                    np.zeros(1))  # compile (or load) the fold before timing
    reference_arrays(blocks[len(blocks) // 2][:64].astype(np.float64), FP32, False)  # imports, first calls

    xs = np.concatenate(blocks).astype(np.float64)
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    compute_points(rng.choice(xs, a.mpmath, replace=False), FP32)
    mp_rate = a.mpmath / (time.perf_counter() - t)

    spent = {}
    fallback = 0
    for model in ("cr", "numpy"):
        pol = Policy(FP32, libm=model)
        progs = programs(impls, pol)
        accs = {f.id: Acc() for f in impls}
        summarize_block(blocks[0], impls, progs, pol, accs)  # first calls (numba kernels, framework start-up)
        times = spent.setdefault(model, dict.fromkeys(["reference", *(f.id for f in impls)], 0.0))

        def clock(stage, seconds, times=times):
            times[stage] += seconds

        for x32 in blocks:  # exactly as the sweep does: a block's reference, then every formulation on it
            fallback += summarize_block(x32, impls, progs, pol, accs, clock)
    ref_rate = 2 * n / (spent["cr"]["reference"] + spent["numpy"]["reference"])

    print(f"{n:,} inputs in {len(blocks)} blocks spread over all of binary32; {cores} cores; rates are inputs/s "
          "on one core; full-sweep projections for all cores")
    print(f"{'stage':40s} {'inputs/s':>10s} {'ns/input':>9s} {'x mpmath':>9s} {'full sweep':>11s}   "
          f"{'numpy: inputs/s':>15s} {'full sweep':>11s}  {'cr/numpy time':>13s}")
    print(f"{'mpmath loop (baseline)':40s} {mp_rate:10.3g} {1e9 / mp_rate:9.0f} {1.0:9.1f} "
          f"{FULL / mp_rate / cores / 3600:9.1f} h")
    print(f"{'fast reference':40s} {ref_rate:10.3g} {1e9 / ref_rate:9.1f} {ref_rate / mp_rate:9.0f} "
          f"{FULL / ref_rate / cores:9.0f} s"
          f"   ({fallback // 2} of {n} sent to mpmath)")
    totals = {"cr": 1 / ref_rate, "numpy": 1 / ref_rate}
    for fid in [*sorted(reg), *(k.id for k in kernels)]:
        rates = {m: n / spent[m][fid] for m in spent}
        if fid in reg:
            for m in totals:
                totals[m] += 1 / rates[m]
        full = {m: FULL * (1 / rates[m] + 1 / ref_rate) / cores for m in rates}
        label = ("evaluate + fold " if fid in reg else "kernel + fold ") + fid
        print(f"{label:40s} {rates['cr']:10.3g} {1e9 / rates['cr']:9.1f} {rates['cr'] / mp_rate:9.0f} "
              f"{full['cr']:9.0f} s"
              f"   {rates['numpy']:15.3g} {full['numpy']:9.0f} s  {rates['numpy'] / rates['cr']:13.2f}")
    c, p = totals["cr"], totals["numpy"]
    print(f"{'all formulations, one sweep':40s} {1 / c:10.3g} {1e9 * c:9.1f} {1 / c / mp_rate:9.0f} "
          f"{FULL * c / cores:9.0f} s"
          f"   {1 / p:15.3g} {FULL * p / cores:9.0f} s  {c / p:13.2f}")


if __name__ == "__main__":
    main()
