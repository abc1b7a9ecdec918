"""ns per input of fastref.fast_reference (numpy) and fastref_jit.jit_reference (numba), binary32.

Run: python benchmarks/fastref_jit_bench.py [--blocks 512] [--repeats 3]
Blocks of 2^15 consecutive binary32 values (ascending, as analysis/sweep.py's values gives them) in each of
fastref.py's regions, then the mean over --blocks blocks evenly spread over all finite binary32
ordinals (what the exhaustive sweep costs per input). One core, best of --repeats per block and reference,
with the minor page faults per call (numpy, jit): where glibc hands each call's output arrays fresh pages
(it trims the heap top on free), the faults cost both far more than the arithmetic; run with e.g.
MALLOC_TRIM_THRESHOLD_=1073741824 MALLOC_MMAP_THRESHOLD_=1073741824 to see the arithmetic alone.
Nothing here asserts on time; it measures.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from mishaudit.formats import FP32, ordinal
from mishaudit.reference.fastref import fast_reference
from mishaudit.reference.fastref_jit import jit_reference

N = 1 << 15
MAX_ORD = 2**31 - 2**23 - 1  # ord(max binary32)
REGIONS = {  # the region's name: its block's first value (toward +inf from there)
    "x < -1020": -3000.0,
    "-1020 <= x < -200": -600.0,
    "-200 <= x <= -2^-30 (exp)": -1.5,
    "|x| < 2^-30 (series)": 1e-20,
    "2^-30 <= x <= 350 (exp)": 1.5,
    "x > 350": 1000.0,
}


def block(lo: int) -> np.ndarray:
    """N binary32 values from ordinal lo up, ascending (-0 and +0 both where 0 is in: sweep.values)."""
    hi = lo + N - 1
    parts = []
    if lo <= 0:
        parts.append(np.arange(-lo, max(-hi, 0) - 1, -1, dtype=np.uint32) | np.uint32(0x80000000))
    if hi >= 0:
        parts.append(np.arange(max(lo, 0), hi + 1, dtype=np.uint32))
    return np.concatenate(parts).view(np.float32).astype(np.float64)


def best(f, x, repeats: int) -> tuple[float, float]:
    """(the best time of `repeats` calls f(x, FP32), minor page faults per call)."""
    t = []
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeats):
        s = time.perf_counter()
        f(x, FP32)
        t.append(time.perf_counter() - s)
    return min(t), (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / repeats


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    jit_reference(block(0), FP32)  # compile (or load the cache)
    print(f"{'region':30s} {'numpy ns':>9s} {'jit ns':>8s} {'ratio':>7s} {'faults/block':>13s}")

    def row(name, blocks):
        tn = tj = fn = fj = 0.0
        for b in blocks:  # block by block, both: a load from elsewhere weighs on both alike
            t, f = best(fast_reference, b, args.repeats)
            tn, fn = tn + t, fn + f
            t, f = best(jit_reference, b, args.repeats)
            tj, fj = tj + t, fj + f
        n = N * len(blocks)
        faults = f"{fn / len(blocks):6.0f} {fj / len(blocks):6.0f}"
        print(f"{name:30s} {tn / n * 1e9:9.2f} {tj / n * 1e9:8.2f} {tn / tj:7.1f} {faults:>13s}")

    for name, v in REGIONS.items():
        row(name, [block(int(ordinal(np.array([v]), FP32)[0]))])
    starts = np.linspace(-MAX_ORD, MAX_ORD - N + 1, args.blocks).astype(np.int64)
    row(f"all binary32 ({args.blocks} blocks)", [block(int(s)) for s in starts])


if __name__ == "__main__":
    main()
