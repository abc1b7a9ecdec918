"""Throughput of the exhaustive fp32 sweep on this machine, against a plain mpmath loop, in one run.

Run: python benchmarks/exhaustive.py [--inputs 2097152] [--mpmath 2000]
Prints inputs/s per core for the fast reference, for each formulation's evaluation plus
summary, for a plain mpmath loop on a slice, their ratios, and the projected time of a full
sweep (4,278,190,080 inputs) on all cores. Measures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from mishaudit.evaluate import Policy, evaluate
from mishaudit.fastref import fast_reference
from mishaudit.formats import FP32, from_ordinal
from mishaudit.reference import Reference, compute_points
from mishaudit.registry import load_registry
from mishaudit.sweep import BLOCK, chunk_summary

FULL = 4_278_190_080


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=1 << 21, help="inputs per measurement (uniform fp32 bit patterns)")
    ap.add_argument("--mpmath", type=int, default=2000, help="inputs for the mpmath loop")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    x = from_ordinal(rng.integers(-(2**31 - 2**23), 2**31 - 2**23, a.inputs), FP32)
    x = x[np.isfinite(x)]
    cores = os.cpu_count() or 1

    t = time.perf_counter()
    compute_points(x[: a.mpmath], FP32)
    mp_rate = a.mpmath / (time.perf_counter() - t)

    t = time.perf_counter()
    refs = []
    for b in range(0, len(x), BLOCK):
        xb = x[b : b + BLOCK]
        rn, d, E, r64, ok = fast_reference(xb, FP32)
        refs.append((xb, Reference(xb, rn, d, E, r64), int((~ok).sum())))
    ref_rate = len(x) / (time.perf_counter() - t)
    undecided = sum(u for *_, u in refs)

    print(f"{len(x):,} uniform fp32 bit patterns; {cores} cores; rates are inputs/s on one core")
    print(f"{'stage':44s} {'inputs/s':>12s} {'x mpmath':>9s} {'full sweep, all cores':>22s}")
    print(f"{'mpmath loop (baseline)':44s} {mp_rate:12.3g} {1.0:9.1f} {FULL / mp_rate / cores / 3600:19.1f} h")
    print(f"{'fast reference':44s} {ref_rate:12.3g} {ref_rate / mp_rate:9.0f} {FULL / ref_rate / cores:19.0f} s"
          f"   ({undecided} of {len(x)} sent to mpmath)")
    total = 1 / ref_rate
    for fid, f in sorted(load_registry().items()):
        pol = Policy(FP32)
        t = time.perf_counter()
        for xb, ref, _ in refs:
            chunk_summary(xb, evaluate(f, xb, pol).y, ref, FP32)
        rate = len(x) / (time.perf_counter() - t)
        total += 1 / rate
        one = 1 / (1 / rate + 1 / ref_rate)
        print(f"{'evaluate + summary ' + fid:44s} {rate:12.3g} {rate / mp_rate:9.0f} {FULL / one / cores:19.0f} s")
    print(f"{'all formulations, one sweep':44s} {1 / total:12.3g} {1 / total / mp_rate:9.0f} {FULL * total / cores:19.0f} s")


if __name__ == "__main__":
    main()
