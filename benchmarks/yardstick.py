"""The C yardstick: the OpenMP loop a user would write instead of mishaudit to audit mish in binary32.

Run: python benchmarks/yardstick.py [--lo ORD --hi ORD] [--threads N]
Compiles yardstick.c (beside this file) with gcc -O2 -fopenmp into a temporary folder and runs it over
every finite binary32 input, or over the ordinals lo..hi (sweep.py's values() convention: ordinal 0 is
both -0 and +0). It measures y = x * tanhf(log1pf(expf(x))) against the unproven binary64 glibc
reference x * tanh(log1p(exp(x))): yardstick.c's header says what exactly. Prints one JSON line.
Needs no mishaudit import: benchmarks/exhaustive.py imports run_yardstick from here.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE = Path(__file__).resolve().with_name("yardstick.c")
MAX_ORD = 0x7F7FFFFF


def run_yardstick(lo: int | None = None, hi: int | None = None, threads: int | None = None) -> dict | None:
    """Compile and run the C yardstick over ordinals lo..hi (None: the full finite range) on `threads`
    OpenMP threads (None: os.cpu_count()). Returns its JSON result plus compile_seconds, wall_seconds
    (the process, as seen from Python), compile_command and run_command; None, with a one-line note on
    stderr, when gcc is missing, fails to compile, or the program fails."""
    gcc = shutil.which("gcc")
    if gcc is None:
        print("yardstick: gcc not found, C yardstick skipped", file=sys.stderr)
        return None
    threads = threads or os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="yardstick-") as tmp:
        exe = str(Path(tmp) / "yardstick")
        compile_cmd = [gcc, "-O2", "-fopenmp", "-std=c11", "-o", exe, str(SOURCE), "-lm"]
        t = time.perf_counter()
        try:
            c = subprocess.run(compile_cmd, capture_output=True, text=True)
        except OSError as e:
            print(f"yardstick: gcc could not run ({e}), C yardstick skipped", file=sys.stderr)
            return None
        compile_seconds = time.perf_counter() - t
        if c.returncode != 0:
            first = (c.stderr.strip().splitlines() or ["?"])[0]
            print(f"yardstick: gcc failed ({first}), C yardstick skipped", file=sys.stderr)
            return None
        run_cmd = [exe] + ([] if lo is None and hi is None else
                           [str(-MAX_ORD if lo is None else lo), str(MAX_ORD if hi is None else hi)])
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        t = time.perf_counter()
        p = subprocess.run(run_cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t
        if p.returncode != 0:
            print(f"yardstick: the C loop failed ({p.stderr.strip() or p.returncode})", file=sys.stderr)
            return None
    result = json.loads(p.stdout)
    result.update(compile_seconds=compile_seconds, wall_seconds=wall,
                  compile_command=shlex.join(compile_cmd),
                  run_command=f"OMP_NUM_THREADS={threads} " + shlex.join(["./yardstick"] + run_cmd[1:]))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lo", type=lambda s: int(s, 0), default=None, help="first ordinal (default -0x7F7FFFFF)")
    ap.add_argument("--hi", type=lambda s: int(s, 0), default=None, help="last ordinal (default 0x7F7FFFFF)")
    ap.add_argument("--threads", type=int, default=None, help="OpenMP threads (default: all cores)")
    a = ap.parse_args()
    r = run_yardstick(a.lo, a.hi, a.threads)
    if r is None:
        sys.exit(1)
    print(json.dumps(r))


if __name__ == "__main__":
    main()
