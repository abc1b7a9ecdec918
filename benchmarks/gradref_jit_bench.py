"""ns per input of the mish' fast reference: gradref.grad_reference (numpy) against
gradref_jit.jit_grad_reference (numba), binary32, on blocks of 2^15 consecutive inputs.

Run: python benchmarks/gradref_jit_bench.py [--blocks 64] [--repeats 3]
Prints, per region of gradref.py (a block starting inside it), and averaged over `blocks` blocks
evenly spread over every finite binary32 ordinal (as the exhaustive sweep meets them; sweep.values
turns ordinals into values), the best-of-`repeats` time per input of each and their ratio; `jit out`
is the compiled one writing into arrays it is handed (`out=`): fresh output arrays cost page faults
that can dominate here (a few ns an input, depending on the allocator's state). One core; nothing
is asserted. A last row times the regions' blocks shuffled together (the compiled one's general
path: inputs gathered by region).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mishaudit.analysis.sweep import values
from mishaudit.formats import FP32, ordinal
from mishaudit.reference.gradref import grad_reference
from mishaudit.reference.gradref_jit import jit_grad_reference

BLOCK = 1 << 15
TOP_ORD = 0x7F7FFFFF  # the ordinal of the largest finite binary32 value
REGIONS = {  # a value inside each region of gradref.py, where its block starts
    "low (x < -200)": -250.0, "main (-200 <= x < -3)": -20.0, "band (-3 <= x <= -0.5)": -1.2,
    "main (-0.5 < x <= -2^-30)": -0.1, "series (|x| < 2^-30)": 1e-12, "main (2^-30 <= x < 2)": 0.5,
    "near 1 (2 <= x <= 350)": 20.0, "top (x > 350)": 1000.0,
}


def block_at(o: int) -> np.ndarray:
    o = max(-TOP_ORD, min(o, TOP_ORD - BLOCK + 1))
    return values(o, o + BLOCK - 1)[:BLOCK].astype(np.float64)


def per_input(f, blocks, repeats) -> float:
    best = np.inf
    for _ in range(repeats):
        s = time.perf_counter()
        for x in blocks:
            f(x, FP32)
        best = min(best, time.perf_counter() - s)
    return best / sum(len(x) for x in blocks) * 1e9


OUT = (np.empty(BLOCK), np.empty(BLOCK), np.empty(BLOCK, dtype=np.int64), np.empty(BLOCK), np.empty(BLOCK, dtype=bool))


def jit_out(x, fmt):
    return jit_grad_reference(x, fmt, out=OUT)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    jit_grad_reference(block_at(0), FP32)  # compile (or load the cache)
    rows = [(name, [block_at(int(ordinal(np.array([v]), FP32)[0]))]) for name, v in REGIONS.items()]
    starts = np.linspace(-TOP_ORD, TOP_ORD - BLOCK + 1, a.blocks).astype(np.int64)
    spread = [block_at(int(o)) for o in starts]
    rows.append((f"all binary32 ({a.blocks} blocks)", spread))
    mixed = np.concatenate([b[0] for _, b in rows[:len(REGIONS)]])  # every region, in random order
    mixed = np.random.default_rng(0).permutation(mixed).reshape(-1, BLOCK)
    rows.append(("every region shuffled", list(mixed)))
    print(f"{'region':34s} {'numpy ns':>9s} {'jit ns':>8s} {'jit out ns':>10s} {'ratio':>6s} {'ratio out':>9s}")
    for name, blocks in rows:
        t_np = per_input(grad_reference, blocks, a.repeats)
        t_jit = per_input(jit_grad_reference, blocks, max(a.repeats, 10))
        t_out = per_input(jit_out, blocks, max(a.repeats, 10))
        print(f"{name:34s} {t_np:9.1f} {t_jit:8.2f} {t_out:10.2f} {t_np / t_jit:6.0f} {t_np / t_out:9.0f}")


if __name__ == "__main__":
    main()
