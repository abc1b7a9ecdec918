"""Write reports/libm-fp32.json: each elementary function itself audited over every finite binary32 input of
its domain, under each libm model (the README's libm table reads it through scripts/readme.py).

Run from the repository root (about a minute per function and model on 2 cores):
    .venv/bin/python scripts/libm_fp32.py                      every function under every model
    .venv/bin/python scripts/libm_fp32.py --model glibc --function tanh
Each row is a row of `mishaudit compare --dtype fp32 --exhaustive --formula F --libm M --format json`
(F one of formulas/libm/), plus `wrong`, the inputs whose result is not RN(f(x)) (inputs - dulp_0: a
nonfinite output counts as wrong); `builds` names what each model's bits depend on on this machine
(eval/libm.py's build) and `elementary_functions` the sentence every output prints. Rows recomputed
replace the file's rows of the same function and model; the file is written atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "reports" / "libm-fp32.json"
FUNCTIONS = ("exp", "expm1", "log", "log1p", "tanh")
MODELS = ("cr", "glibc", "numpy", "torch")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", choices=MODELS)
    ap.add_argument("--function", action="append", choices=FUNCTIONS)
    args = ap.parse_args(argv)
    from mishaudit import api
    from mishaudit.eval import libm
    from mishaudit.files import write_output
    from mishaudit.output.frames import records
    from mishaudit.output.tables import to_json

    old = json.loads(OUT.read_text()) if OUT.exists() else {"rows": [], "builds": {}, "elementary_functions": {}}
    rows = {(r["formula"], r["libm"]): r for r in old["rows"]}
    for model in args.model or MODELS:
        for f in args.function or FUNCTIONS:
            t = time.time()
            df = api.compare("fp32", [f], libm=model, exhaustive=True)
            r = json.loads(to_json(records(df)))[0]  # exactly `compare --format json`
            r["wrong"] = int(r["inputs"] - r["dulp_0"])
            rows[(f, model)] = r
            print(f"{f:6} {model:6} max {r['max_ulp']:.6g} ulp at {r['worst_x']!r}, {r['wrong']:,} wrong of "
                  f"{r['inputs']:,} ({time.time() - t:.0f} s)", file=sys.stderr)
        old["builds"][model] = libm.build(model)
        old["elementary_functions"][model] = libm.describe(model)
    order = {m: i for i, m in enumerate(MODELS)}
    out = {"rows": sorted(rows.values(), key=lambda r: (FUNCTIONS.index(r["formula"]), order[r["libm"]])),
           "builds": old["builds"], "elementary_functions": old["elementary_functions"]}
    write_output(OUT, json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
