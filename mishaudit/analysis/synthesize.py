"""synthesize: the most accurate piecewise formulation of a spec under one evaluation model.

Candidates: every registered formulation of the spec, each arm of their branches taken alone (the
sub-expressions they are built from), and the derived region forms of analysis/forms.py with their
constants rounded to the working format. Every candidate is evaluated on every input (all finite
inputs of binary16 / bfloat16; a stratified sample of binary32, refined below) under the policy,
and each input's loss is measured against the correctly rounded reference:

  loss(y) = 0 if y = RN(r), else 1 + K max(0, u - TAU)^2          (u: ulp error, metrics.py)
          = BIG for a non-finite y or a zero of the wrong sign,

with TAU = 1 ulp and K = 1000, so a share of correctly rounded results is traded only among
candidates within TAU, and an error beyond it costs far more than any number of incorrectly
rounded ones nearby. A candidate over the budget (elementary calls on its costliest path) is left
out; a tie goes to fewer operations (a loss of 1e-6 per operation and input).

Regimes as Herbie infers them: dynamic programming over the inputs sorted by x, each input given
to one candidate, a penalty (in loss units) for each change of candidate; the branch points are
single format values (every input is in the set; for binary32 the split between two sample points
is refined over every binary32 value between them). The result is a chain of (if (< x T) A ...)
whose figures come from the exhaustive audit of the assembled formula, never from the DP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numba
import numpy as np

from mishaudit.analysis import forms as F
from mishaudit.eval.evaluate import Policy, evaluate
from mishaudit.eval.libm import ELEMENTARY
from mishaudit.formats import Format, all_finite, from_ordinal, ordinal
from mishaudit.lang import fpcore as fc
from mishaudit.lang.registry import Formula, load_text
from mishaudit.measure.metrics import errors
from mishaudit.reference.table import reference

TAU = 1.0
K = 10000.0
BIG = 1e9
OP_TIE = 1e-6
PENALTY = 256.0  # default loss units per branch
SAMPLES = 1 << 18  # binary32 inputs the regimes are chosen on
MAX_SAMPLES = 1 << 21  # about 10 GB of measurements (n x candidates x 13 bytes)
ROUNDS = 3  # proofs of a sampled search: each one above TAU adds the inputs around its worst and solves again
WINDOW = 1 << 14  # inputs added on each side of a proof's worst input
BUDGET = 3  # default elementary calls per path


@dataclass(frozen=True)
class Candidate:
    name: str
    body: str  # FPCore expression in x
    origin: str  # "registered <id>", "arm of <id>", "derived"
    calls: int  # elementary calls on its costliest path
    ops: int  # operations on its costliest path


def path_cost(e: fc.Expr) -> tuple[int, int]:
    """(elementary calls, operations) on the costliest path of `e` (let bindings all evaluated, an
    if's condition plus its costlier arm)."""
    if isinstance(e, fc.If):
        c = path_cost(e.cond)
        a, b = path_cost(e.then), path_cost(e.other)
        arm = max(a, b)
        return c[0] + arm[0], c[1] + arm[1] + 1
    if isinstance(e, fc.Let):
        calls = ops = 0
        for _, sub in e.bindings:
            c = path_cost(sub)
            calls, ops = calls + c[0], ops + c[1]
        c = path_cost(e.body)
        return calls + c[0], ops + c[1]
    if isinstance(e, fc.Op):
        calls, ops = (1, 1) if e.op in ELEMENTARY else (0, 1)
        for sub in e.args:
            c = path_cost(sub)
            calls, ops = calls + c[0], ops + c[1]
        return calls, ops
    calls = ops = 0
    for sub in fc.children(e):
        c = path_cost(sub)
        calls, ops = calls + c[0], ops + c[1]
    return calls, ops


def _arms(e: fc.Expr):
    """Copies of `e` with one if replaced by one of its arms, for every if in `e`."""
    if isinstance(e, fc.If):
        yield e.then
        yield e.other
        return
    if isinstance(e, fc.Let):
        for arm in _arms(e.body):
            yield fc.Let(e.bindings, arm, e.sequential)


def _candidate(name: str, body: str, origin: str) -> Candidate:
    core = fc.parse(f"(FPCore c (x) {body})", f"<candidate {name}>")
    calls, ops = path_cost(core.body)
    return Candidate(name, fc.to_text(core.body), origin, calls, ops)


def candidates(registry: dict, spec_key: str, work: Format, budget: int) -> list[Candidate]:
    """Every candidate for the spec (module docstring) within the budget, constants rounded to `work`."""
    out: dict[str, Candidate] = {}
    for f in registry.values():
        if f.kernel or f.spec.key != spec_key or not _simple(f):
            continue
        values = f.constant_values(work)  # parameters and constants at their values for this format
        bind = " ".join(f"[{n} {F.lit(v, work)}]" for n, v in values.items())

        def bound(e, bind=bind):
            return f"(let ({bind}) {fc.to_text(e)})" if bind else fc.to_text(e)

        out[f.id] = _candidate(f.id, bound(f.body), f"registered {f.id}")
        for j, arm in enumerate(_arms(f.body)):
            out[f"{f.id}/arm{j}"] = _candidate(f"{f.id}/arm{j}", bound(arm), f"arm of {f.id}")
    if spec_key in F.SPECS:
        for name, body in F.derived_forms(spec_key, work).items():
            out[name] = _candidate(name, body, "derived")
    return [c for c in out.values() if c.calls <= budget]


def _simple(f: Formula) -> bool:
    """Argument x, no :precision changes (the candidates run in one working format)."""
    return f.arg == "x" and "(!" not in fc.to_text(f.body)


def _as_formula(ident: str, body: str) -> Formula:
    return load_text(f"(FPCore {ident} (x) {body})", f"<{ident}>", ident)


@dataclass
class Measured:
    """Per-input loss (n, k) and ulp error of the candidates on inputs x (ascending)."""

    x: np.ndarray
    loss: np.ndarray
    ulp: np.ndarray
    cr: np.ndarray


def measure(cands: list[Candidate], x: np.ndarray, policy: Policy, spec, specials: bool = False,
            tau: float = TAU) -> Measured:
    """Each candidate's loss on every input of x (finite, ascending); with `specials`, -inf is added
    before x and +inf after it, a candidate wrong there (or wrong at NaN, for the +inf end: NaN takes
    the last regime) losing BIG."""
    fmt = policy.storage
    ref = reference(x, fmt, show_progress=False, spec=spec)
    n, k = len(x), len(cands)
    loss = np.empty((n + 2 * specials, k))
    ulp = np.empty((n, k), dtype=np.float32)
    cr = np.empty((n, k), dtype=bool)
    ends = np.array([-np.inf, np.inf, np.nan])
    for j, c in enumerate(cands):
        f = _as_formula("c", c.body)
        with np.errstate(all="ignore"):
            y = evaluate(f, x, policy).y
        err = errors(y, ref, fmt)
        u = np.where(err.finite, err.ulp, np.inf)
        right = err.cr & ~err.signed_zero
        lj = np.where(err.finite & ~err.signed_zero, (~right) * (1.0 + K * np.maximum(0.0, u - tau) ** 2), BIG) \
            + OP_TIE * c.ops
        if specials:
            with np.errstate(all="ignore"):
                ye = evaluate(f, ends, policy).y
            ok = [_same(float(v), spec.special(float(e), fmt)) for v, e in zip(ye, ends)]
            lj = np.concatenate([[0.0 if ok[0] else BIG], lj, [0.0 if ok[1] and ok[2] else BIG]])
        loss[:, j] = lj
        ulp[:, j] = np.minimum(u, 3e38)
        cr[:, j] = right
    return Measured(np.concatenate([[-np.inf], x, [np.inf]]) if specials else x, loss, ulp, cr)


def _same(got: float, want) -> bool:
    if want is None:
        return True
    if np.isnan(want):
        return bool(np.isnan(got))
    return got == want and np.signbit(got) == np.signbit(want)


@numba.njit(cache=True)
def _dp(loss, can_switch, penalty):  # pragma: no cover - compiled
    """Regime DP: choice[i] for each input minimizing sum(loss[i, choice[i]]) + penalty * changes;
    a change is allowed only where can_switch[i] (before input i)."""
    n, k = loss.shape
    best = loss[0].copy()
    back = np.empty((n, k), dtype=np.int16)
    new = np.empty(k)
    for c in range(k):
        back[0, c] = c
    for i in range(1, n):
        j = 0
        for c in range(1, k):
            if best[c] < best[j]:
                j = c
        sw = best[j] + penalty
        for c in range(k):
            if can_switch[i] and sw < best[c]:
                back[i, c] = j
                new[c] = sw + loss[i, c]
            else:
                back[i, c] = c
                new[c] = best[c] + loss[i, c]
        best[:] = new
    c = 0
    for m in range(1, k):
        if best[m] < best[c]:
            c = m
    choice = np.empty(n, dtype=np.int64)
    for i in range(n - 1, -1, -1):
        choice[i] = c
        c = back[i, c]
    return choice


def regimes(m: Measured, penalty: float) -> list[tuple[int, int]]:
    """[(first input index, candidate)] of each regime, ascending."""
    can = np.ones(len(m.x), dtype=np.bool_)
    can[1:] = m.x[1:] != m.x[:-1]  # -0 and +0 stay together
    choice = _dp(m.loss, can, float(penalty))
    starts = np.flatnonzero(np.r_[True, choice[1:] != choice[:-1]])
    return [(int(i), int(choice[i])) for i in starts]


def assemble(ident: str, segs: list[tuple[float, Candidate]]) -> str:
    """The FPCore body: a balanced tree of (if (< x T) A B), T the first input of a regime, so the
    nesting grows with the log of the number of regimes."""
    return " ".join(code for code, _ in _tree(segs, ""))


def _tree(segs: list, indent: str) -> list[tuple[str, str]]:
    """(code, comment) lines of the if-tree over `segs`: each regime's form on its own line."""
    if len(segs) == 1:
        c = segs[0][1]
        return [(indent + c.body, f"{c.name} ({c.origin})")]
    mid = len(segs) // 2
    lines = [(f"{indent}(if (< x {_threshold(segs[mid][0])})", "")]
    lines += _tree(segs[:mid], indent + "  ") + _tree(segs[mid:], indent + "  ")
    code, note = lines[-1]
    lines[-1] = (code + ")", note)
    return lines


def _threshold(v: float) -> str:
    return "INFINITY" if v == np.inf else fc.format_number(Fraction(v))


@dataclass
class Result:
    spec: str
    fmt: Format
    policy: Policy
    body: str
    regimes: list  # [(from x, candidate)]
    calls: int
    ops: int
    considered: int
    inputs: int
    notes: list = field(default_factory=list)


def busy_range(fmt: Format) -> tuple[float, float]:
    """Where mish(x) is neither rounded to -0 nor to x: e^x |x| above half the smallest subnormal
    2^(emin - p) needs x > (emin - p) ln 2 - log|x| (so below (emin - p) ln 2 - 10 it is -0, with room),
    and 2 e^-2x < 2^-(p+1) once x > (p + 2) ln 2 / 2 (plus room)."""
    ln2 = 0.6931471805599453
    return (fmt.emin - fmt.p) * ln2 - 10, (fmt.p + 2) * ln2 / 2 + 2


def _inputs(fmt: Format, samples: int, seed: int) -> tuple[np.ndarray, bool]:
    """(ascending inputs, exhaustive?): every finite value of binary16 and bfloat16; otherwise half
    the samples stratified over every binade (eval/inputs.py's sample) and half over busy_range()."""
    if fmt.name in ("fp16", "bf16"):
        return np.sort(all_finite(fmt), kind="stable"), True
    from mishaudit.eval.inputs import Domain, sample

    lo, hi = busy_range(fmt)
    x = np.concatenate([sample(fmt, samples // 2, seed).x, sample(fmt, samples // 2, seed, Domain(lo, hi)).x])
    return np.unique(x), False


def _refine(segs: list, cands: list, policy: Policy, spec, xs: np.ndarray, tau: float) -> list:
    """Binary32: move each branch point to the best split among every format value between the two
    sample points around it (the two regimes' losses on each): [(index or (index, value), candidate)]."""
    fmt = policy.storage
    out = [segs[0]]
    for i, c in segs[1:]:
        if not (np.isfinite(xs[i - 1]) and np.isfinite(xs[i])):
            out.append((i, c))
            continue
        a, b = (int(ordinal(np.array([v]), fmt)[0]) for v in (xs[i - 1], xs[i]))
        if b - a <= 1:
            out.append((i, c))
            continue
        between = from_ordinal(np.arange(a + 1, b + 1), fmt)  # xs[i-1] < v <= xs[i]
        m = measure([cands[out[-1][1]], cands[c]], between, policy, spec, tau=tau)
        left = np.concatenate([[0.0], np.cumsum(m.loss[:, 0])])
        right = np.concatenate([np.cumsum(m.loss[::-1, 1])[::-1], [0.0]])
        j = int(np.argmin((left + right)[:-1]))  # regime c starts at between[j]
        out.append(((i, float(between[j])), c))
    return out


class Search:
    """The candidates measured on an input set, kept so that inputs can be added (counterexamples of a
    proof) without measuring the others again."""

    def __init__(self, registry: dict, spec, fmt: Format, compute: Format | None = None, libm: str = "cr",
                 budget: int = BUDGET, samples: int = SAMPLES, seed: int = 0, tau: float = TAU):
        self.spec, self.fmt, self.tau = spec, fmt, tau
        self.policy = Policy(fmt, compute, False, libm)
        self.cands = candidates(registry, spec.key, self.policy.work, budget)
        x, self.exhaustive = _inputs(fmt, samples, seed)
        self.m = measure(self.cands, x, self.policy, spec, specials=True, tau=tau)
        self.added = 0

    def add(self, x: np.ndarray) -> int:
        """Measure the inputs of x not measured yet and merge them in; returns how many were new."""
        inner = self.m.x[1:-1]
        x = np.setdiff1d(np.unique(np.asarray(x, dtype=np.float64)), inner)
        x = x[np.isfinite(x)]
        if not len(x):
            return 0
        new = measure(self.cands, x, self.policy, self.spec, tau=self.tau)
        xs = np.concatenate([inner, new.x])
        order = np.argsort(xs, kind="stable")
        loss = np.concatenate([self.m.loss[1:-1], new.loss])[order]
        self.m = Measured(np.concatenate([[-np.inf], xs[order], [np.inf]]),
                          np.concatenate([self.m.loss[:1], loss, self.m.loss[-1:]]),
                          np.concatenate([self.m.ulp, new.ulp])[order], np.concatenate([self.m.cr, new.cr])[order])
        self.added += len(x)
        return len(x)

    def solve(self, penalty: float = PENALTY) -> Result:
        """The regimes over the inputs measured so far, assembled (module docstring)."""
        m, cands = self.m, self.cands
        xs = m.x  # -inf, x..., +inf
        segs = regimes(m, penalty)
        if not self.exhaustive:
            segs = _refine(segs, cands, self.policy, self.spec, xs, self.tau)
        points = [(float(xs[i]), c) if isinstance(i, (int, np.integer)) else (i[1], c) for i, c in segs]
        chosen = [(v, cands[c]) for v, c in points]
        body = assemble("s", chosen)
        calls, ops = path_cost(fc.parse(f"(FPCore s (x) {body})", "<synthesized>").body)
        res = Result(self.spec.key, self.fmt, self.policy, body, chosen, calls, ops, len(cands), len(xs) - 2)
        if not self.exhaustive:
            res.notes.append(f"regimes chosen on {len(xs) - 2:,} inputs ({self.added:,} of them added around the "
                             f"worst inputs of earlier proofs), branch points refined over every {self.fmt.name} "
                             "value between them")
        return res


def synthesize(registry: dict, spec, fmt: Format, compute: Format | None = None, libm: str = "cr",
               budget: int = BUDGET, penalty: float = PENALTY, samples: int = SAMPLES, seed: int = 0,
               tau: float = TAU) -> Result:
    """The synthesized formulation on the initial inputs (no counterexamples added)."""
    return Search(registry, spec, fmt, compute, libm, budget, samples, seed, tau).solve(penalty)


def window(x: float, fmt: Format, half: int = WINDOW) -> np.ndarray:
    """The 2 half + 1 format values around x (by ordinal), clipped to the finite ones."""
    o = int(ordinal(np.array([x]), fmt)[0])
    top = int(ordinal(np.array([fmt.max]), fmt)[0])
    return from_ordinal(np.arange(max(o - half, -top), min(o + half, top) + 1), fmt)


def command_line(spec: str, fmt: Format, compute: Format | None, libm: str, budget: int, penalty: float,
                 samples: int, seed: int, tau: float = TAU, ident: str | None = None, rounds: int = ROUNDS) -> str:
    """The synthesize command that reproduces a result (defaults left out)."""
    parts = ["mishaudit synthesize", f"--dtype {fmt.name}"]
    if spec != "mish":
        parts.append(f"--spec {spec}")
    if compute is not None and compute is not fmt:
        parts.append(f"--compute-dtype {compute.name}")
    if libm != "cr":
        parts.append(f"--libm {libm}")
    if budget != BUDGET:
        parts.append(f"--budget {budget}")
    if penalty != PENALTY:
        parts.append(f"--penalty {penalty:g}")
    if tau != TAU:
        parts.append(f"--tau {tau:g}")
    if fmt.name not in ("fp16", "bf16"):
        if samples != SAMPLES:
            parts.append(f"--samples {samples}")
        if seed:
            parts.append(f"--seed {seed}")
        if rounds != ROUNDS:
            parts.append(f"--rounds {rounds}")
    if ident is not None and ident != f"mishaudit-{'grad-' if spec != 'mish' else ''}{fmt.name}":
        parts.append(f"--id {ident}")
    return " ".join(parts)


def to_fpcore(res: Result, ident: str, command: str, spec_text: str | None) -> str:
    """The result as a formula file: one regime per line, its origin in a comment."""
    lines = [f"; {ident}: synthesized by `{command}` (mishaudit's analysis/synthesize.py).",
             f"; {len(res.regimes)} regimes chosen on {res.inputs:,} {res.fmt.name} inputs among {res.considered} "
             f"candidates; at most {res.calls} elementary calls and {res.ops} operations on any path.",
             "; Its figures are the audit's: mishaudit compare --dtype " + res.fmt.name
             + (" --exhaustive" if res.fmt.name == "fp32" else "") + f" --formula {ident} (with --formulas DIR "
             "where this file is not in formulas/).",
             f"(FPCore {ident} (x)",
             f'  :name "{ident}: {len(res.regimes)} regimes ({res.spec}, {res.fmt.name}, libm {res.policy.libm})"',
             f'  :description "the most accurate piecewise form synthesize found for {res.spec} in {res.fmt.name}'
             f' ({res.policy.work.name} compute, libm {res.policy.libm}), at most {res.calls} elementary calls"']
    if spec_text:
        lines.append(f"  :spec {spec_text}")
    lines.append(f"  :mishaudit-dtype {res.fmt.name}")
    lines.append(f'  :mishaudit-source "{command}"')
    lines.append('  :mishaudit-used-by "synthesized: no kernel yet"')
    body_lines = [code + (f"  ; {note}" if note else "") for code, note in _tree(res.regimes, "  ")]
    return "\n".join(lines + body_lines) + "\n  )\n"


def is_synthesized(f) -> bool:
    """A formula this command wrote (its :mishaudit-source names it): never a candidate, so a result
    is reproduced from the registered formulations alone."""
    return not f.kernel and f.source.startswith("mishaudit synthesize")


def prove(formula: Formula, policy: Policy, jobs: int = 0, on_sweep=None) -> dict:
    """The audit row of the result over every finite input (binary32: the exhaustive sweep; binary64:
    the default sample, said in `strategy`), with its special-input checks."""
    from mishaudit.analysis.audit import run_audit
    from mishaudit.eval.inputs import Domain

    fmt = policy.storage
    a = run_audit([formula], [fmt], policy.compute, False, Domain(), 1 << 16, 0, progress=False,
                  with_formula_error=False, model=policy.libm, exhaustive=fmt.name == "fp32", jobs=jobs,
                  on_sweep=on_sweep)
    row = dict(a.rows[0])
    row["specials"] = a.specials
    return row


def c_time(formula: Formula, fmt: Format, n: int = 1 << 20, repeat: int = 20) -> float | None:
    """ns per input of the emitted C function (emit/, gcc -O2 with the header's flags) over n inputs
    spread over busy_range(), best of `repeat` passes on one core; None without gcc."""
    import os
    import re
    import shutil
    import subprocess
    import tempfile

    from mishaudit.emit import emit
    from mishaudit.emit.text import identifier

    gcc = shutil.which("gcc")
    if gcc is None:
        return None
    src = emit(formula, "c", fmt)
    m = re.search(r"gcc ([^\n]*?)(?: -o | \S+\.c| -lm|\n)", src)
    flags = [f for f in (m.group(1).split() if m else ["-O2"]) if f.startswith("-") and not f.startswith("-o")]
    name = identifier(formula.id)
    ctype = {"fp16": "_Float16", "fp32": "float", "fp64": "double"}.get(fmt.name, "float")
    lo, hi = busy_range(fmt)
    main = f"""
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
int main(void) {{
  int n = {n};
  {ctype} *x = malloc(sizeof({ctype}) * n);
  for (int i = 0; i < n; i++) x[i] = ({ctype})({lo!r} + ({hi!r} - {lo!r}) * (double)i / n);
  double best = 1e30, sink = 0;
  for (int r = 0; r < {repeat}; r++) {{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < n; i++) sink += (double){name}(x[i]);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double t = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
    if (t < best) best = t;
  }}
  printf("%.6f %g\\n", best / n, sink);
  return 0;
}}
"""
    with tempfile.TemporaryDirectory(prefix="mishaudit-time-") as d:
        path = os.path.join(d, "t.c")
        with open(path, "w") as fh:
            fh.write(src + main)
        exe = os.path.join(d, "t")
        try:
            subprocess.run([gcc, *flags, "-std=gnu99", path, "-o", exe, "-lm"], check=True, capture_output=True,
                           timeout=120)
            out = subprocess.run([exe], check=True, capture_output=True, text=True, timeout=300).stdout
        except (subprocess.SubprocessError, OSError):
            return None
    return float(out.split()[0])
