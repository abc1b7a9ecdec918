"""Throughput of mishaudit's stages and of whole commands on this machine, both libm models in one run.

Run: python benchmarks/throughput.py [--dtype fp16] [--n 20000] [--commands]
Prints inputs per second (one core, best of 3) for: the mpmath reference loop (the baseline), the
fast reference, each formulation's evaluation under the cr libm and under numpy's kernels (with
the ratio of the two), the error measures and the approximation error (formula_ulp). With
--commands it also times the issue's goals end to end, each in a fresh process with an empty
cache, under both models: `compare --dtype fp16 --dtype bf16` and `compare --dtype fp64`.
Nothing here asserts on time; it measures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from mishaudit.eval.evaluate import Policy, evaluate
from mishaudit.eval.inputs import Domain, input_set
from mishaudit.formats import get_format
from mishaudit.lang.registry import load_registry
from mishaudit.measure.approx import approx_error
from mishaudit.measure.metrics import errors
from mishaudit.reference.table import reference, reference_arrays
from mishaudit.reference.ziv import compute_points


def best(f, repeats: int = 3) -> float:
    t = []
    for _ in range(repeats):
        s = time.perf_counter()
        f()
        t.append(time.perf_counter() - s)
    return min(t)


def stages(fmt_name: str, n: int) -> None:
    fmt = get_format(fmt_name)
    reg = load_registry()
    x = input_set(fmt, Domain(), 1 << 16, 0).x
    xs = x[np.random.default_rng(0).choice(len(x), min(n, len(x)), replace=False)]
    t_ref = best(lambda: compute_points(xs, fmt), repeats=1)
    base = len(xs) / t_ref
    print(f"{fmt.name}: {len(x)} inputs; one core, best of 3 (the mpmath loop: one run)")
    print(f"{'stage':40s} {'inputs/s':>12s} {'x mpmath':>9s}   {'numpy libm':>12s} {'cr/numpy time':>14s}")
    print(f"{'mpmath reference (baseline)':40s} {base:12.3g} {1.0:9.1f}")
    t = best(lambda: reference_arrays(x, fmt, False))
    print(f"{'fast reference':40s} {len(x) / t:12.3g} {len(x) / t / base:9.1f}")
    ref = reference(x, fmt, show_progress=False)
    for fid, f in sorted(reg.items()):
        evaluate(f, x[:16], Policy(fmt))  # first calls (numba kernels)
        tc = best(lambda: evaluate(f, x, Policy(fmt, libm="cr")))
        tn = best(lambda: evaluate(f, x, Policy(fmt, libm="numpy")))
        print(f"{'evaluate ' + fid:40s} {len(x) / tc:12.3g} {len(x) / tc / base:9.1f}   {len(x) / tn:12.3g} "
              f"{tc / tn:14.2f}")
    y = evaluate(reg["softplus-tanh"], x, Policy(fmt)).y
    t = best(lambda: errors(y, ref, fmt))
    print(f"{'error measures':40s} {len(x) / t:12.3g} {len(x) / t / base:9.1f}")
    for fid in ("softplus-threshold", "tf-softplus", "darknet-cpu"):
        t = best(lambda: approx_error(reg[fid], x, fmt, ref), repeats=1)
        print(f"{'approximation error ' + fid:40s} {len(x) / t:12.3g} {len(x) / t / base:9.1f}")


def commands() -> None:
    print("\nwhole commands, cold (a fresh process and an empty cache each; wall seconds)")
    print(f"{'command':48s} {'cr':>8s} {'numpy':>8s}")
    for args in (["compare", "--dtype", "fp16", "--dtype", "bf16"], ["compare", "--dtype", "fp64"]):
        row = []
        for model in ("cr", "numpy"):
            with tempfile.TemporaryDirectory() as cache:
                env = dict(os.environ, MISHAUDIT_CACHE_DIR=cache)
                t = time.perf_counter()
                subprocess.run([sys.executable, "-m", "mishaudit.cli", *args, "--libm", model, "--format", "json",
                                "--output", os.path.join(cache, "out.json")], check=True, env=env)
                row.append(time.perf_counter() - t)
        print(f"{'mishaudit ' + ' '.join(args):48s} {row[0]:8.1f} {row[1]:8.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", default="fp16")
    ap.add_argument("--n", type=int, default=20000, help="inputs for the mpmath baseline (a slice)")
    ap.add_argument("--commands", action="store_true", help="also time whole commands, cold, both models")
    a = ap.parse_args()
    stages(a.dtype, a.n)
    if a.commands:
        commands()


if __name__ == "__main__":
    main()
