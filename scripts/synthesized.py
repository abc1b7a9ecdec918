"""Synthesize the six shipped results from scratch, time each run, and audit each over every finite input:
formulas/mishaudit-*.fpcore (written by `mishaudit synthesize`, the command in each file) and
reports/synthesized.json (their `compare --format json` rows, fp32 through --exhaustive, and the seconds
each synthesize run took on this machine). scripts/readme.py reads the JSON for the README's opening table.

    .venv/bin/python scripts/synthesized.py [--only ID ...] [--audit-only]     (about 25 minutes on 2 cores)

--only synthesizes (and times) just those results, keeping the others' files and seconds; --audit-only
synthesizes nothing. Either way every shipped file is audited anew.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JSON = ROOT / "reports" / "synthesized.json"
# (id, dtype, spec, further synthesize options): fp32 mish defends 0.75 ulp in its search (--tau), which the
# issue's target (faithful everywhere) needs: with the default 1 ulp its sampled search leaves rare inputs
# above 1 ulp that three rounds of proofs do not all find
RESULTS = [(f"mishaudit-{'grad-' if spec == 'mish' + chr(39) else ''}{d}", d, spec,
            ("--tau", "0.75") if (spec, d) == ("mish", "fp32") else ())
           for spec in ("mish", "mish'") for d in ("fp16", "bf16", "fp32")]


def _mishaudit(*args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "mishaudit.cli", *args], capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        raise SystemExit(f"mishaudit {' '.join(args)} failed: {r.stderr.strip()}")
    return r.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--audit-only", action="store_true", help="audit the shipped files; synthesize nothing")
    ap.add_argument("--only", nargs="+", metavar="ID", help="synthesize these results only")
    a = ap.parse_args()
    old = json.loads(JSON.read_text()) if JSON.exists() else {}
    seconds = dict(old.get("synthesize_seconds", {}))
    if not a.audit_only:
        for ident, dtype, spec, more in RESULTS:
            if a.only and ident not in a.only:
                continue
            t = time.perf_counter()
            _mishaudit("synthesize", "--dtype", dtype, "--spec", spec, *more, "--out",
                       str(ROOT / "formulas" / f"{ident}.fpcore"), "--format", "json")
            seconds[ident] = round(time.perf_counter() - t, 1)
            print(f"{ident}: synthesized and proved in {seconds[ident]} s", file=sys.stderr)
    rows = []
    for ident, dtype, _, _ in RESULTS:
        args = ["compare", "--dtype", dtype, "--formula", ident, "--format", "json"]
        rows += json.loads(_mishaudit(*args, *(["--exhaustive"] if dtype == "fp32" else [])))
    out = {"what": "the shipped mishaudit-* results: compare over every finite input (fp32: --exhaustive), "
                   "and the seconds `mishaudit synthesize` took for each (synthesis, proof and timing, 2 cores)",
           "synthesize_seconds": {i: seconds[i] for i, _, _, _ in RESULTS if i in seconds}, "rows": rows}
    JSON.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {JSON}", file=sys.stderr)


if __name__ == "__main__":
    main()
