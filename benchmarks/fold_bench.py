"""ns per element of measure/fold.py's fold against the loop it replaced (tests/test_fold_speed.py's
_fold_reference), on 2^15-output blocks in cache, per region of binary32 and kind of outputs
("cr": RN(r) itself; "ulp1": one ordinal above; "mix": 10 % off by up to 2^20 ordinals, a few
inf, NaN and flipped zeros). The two are timed in turns, and the best of --reps runs is kept
(another process on the machine slows some runs).

    .venv/bin/python benchmarks/fold_bench.py [--reps N] [--keys]
"""

import argparse
import importlib.util
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mishaudit.measure.fold import fold
from mishaudit.measure.summary import NBINS

_spec = importlib.util.spec_from_file_location("test_fold_speed", ROOT / "tests" / "test_fold_speed.py")
tfs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tfs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--keys", action="store_true", help="keys mode (BlockStats.of) instead of the histogram")
    a = ap.parse_args()
    rng = np.random.default_rng(1)
    hist = np.zeros(NBINS, dtype=np.int64)
    print(f"{'region':14s} {'outputs':7s} {'old ns':>7s} {'new ns':>7s} {'speedup':>8s}")
    ratios = []
    for name, lo in tfs.REGIONS.items():
        x, rn, d, E = tfs.block(lo)
        n = len(x)
        keys = np.empty(n if a.keys else 0, dtype=np.int64)
        for kind in ("cr", "ulp1", "mix"):
            y = tfs.outputs(rn, kind, rng)
            args = (y, rn, d, E, np.zeros(10, dtype=np.int64), hist, np.empty(7), keys)
            best = {}
            for f in (tfs._fold_reference, fold):
                f(*args)  # compiled, warm
            for _ in range(a.reps):
                for f in (tfs._fold_reference, fold):
                    t = time.perf_counter()
                    f(*args)
                    t = time.perf_counter() - t
                    best[f] = min(best.get(f, t), t)
            t_old, t_new = best[tfs._fold_reference] / n * 1e9, best[fold] / n * 1e9
            ratios.append(t_old / t_new)
            print(f"{name:14s} {kind:7s} {t_old:7.2f} {t_new:7.2f} {t_old / t_new:7.2f}x", flush=True)
    print(f"speedup: min {min(ratios):.2f}x, geometric mean {np.exp(np.mean(np.log(ratios))):.2f}x")


if __name__ == "__main__":
    main()
