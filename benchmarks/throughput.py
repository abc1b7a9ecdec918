"""Throughput of mishaudit's stages on this machine, with ratios to the mpmath reference loop.

Run: python benchmarks/throughput.py [--dtype fp16] [--n 20000]
Prints inputs per second (one core, best of 3) for: the mpmath reference (the baseline), the
proven binary64 fast reference,
each formulation's numpy evaluation, the error measures, and the exact formula evaluation.
Nothing here asserts on time; it measures.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mishaudit.evaluate import Policy, evaluate
from mishaudit.exact import formula_error
from mishaudit.formats import get_format
from mishaudit.inputs import Domain, input_set
from mishaudit.metrics import errors
from mishaudit.reference import compute_points, reference
from mishaudit.registry import load_registry


def best(f, repeats: int = 3) -> float:
    t = []
    for _ in range(repeats):
        s = time.perf_counter()
        f()
        t.append(time.perf_counter() - s)
    return min(t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", default="fp16")
    ap.add_argument("--n", type=int, default=20000, help="inputs for the mpmath baseline (a slice)")
    a = ap.parse_args()
    fmt = get_format(a.dtype)
    reg = load_registry()
    x = input_set(fmt, Domain(), 1 << 16, 0, list(reg.values())).x
    xs = x[np.random.default_rng(0).choice(len(x), min(a.n, len(x)), replace=False)]
    t_ref = best(lambda: compute_points(xs, fmt), repeats=1)
    base = len(xs) / t_ref
    print(f"{fmt.name}: {len(x)} inputs; one core, best of 3 (the mpmath loop: one run)")
    print(f"{'stage':40s} {'inputs/s':>14s} {'x mpmath':>10s}")
    print(f"{'mpmath reference (baseline)':40s} {base:14.3g} {1.0:10.1f}")
    if fmt.p <= 24:
        from mishaudit.fastref import fast_reference

        t = best(lambda: fast_reference(x, fmt))
        decided = fast_reference(x, fmt)[4].mean()
        print(f"{'fast reference (' + format(decided, '.1%') + ' decided)':40s} {len(x) / t:14.3g} {len(x) / t / base:10.1f}")
    ref = reference(x, fmt, show_progress=False)
    for fid, f in sorted(reg.items()):
        t = best(lambda: evaluate(f, x, Policy(fmt)))
        print(f"{'evaluate ' + fid:40s} {len(x) / t:14.3g} {len(x) / t / base:10.1f}")
    y = evaluate(reg["softplus-tanh"], x, Policy(fmt)).y
    t = best(lambda: errors(y, ref, fmt))
    print(f"{'error measures':40s} {len(x) / t:14.3g} {len(x) / t / base:10.1f}")
    for fid in ("softplus-threshold", "exp-rational"):
        t = best(lambda: formula_error(reg[fid], x, fmt, ref.r64), repeats=1)
        print(f"{'exact evaluation ' + fid:40s} {len(x) / t:14.3g} {len(x) / t / base:10.1f}")


if __name__ == "__main__":
    main()
