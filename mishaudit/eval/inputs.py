"""Input sets: every finite value of a 16-bit format, or a seeded stratified sample.

Positions in a format are ordinals (formats.ordinal). Binade k of either sign
holds the ordinals |o| in [k*2^(p-1), (k+1)*2^(p-1)): k = 0 is zero and the
subnormals, k >= 1 the normal binade 2^(emin+k-1). A sample of N inputs takes
N / (number of strata) uniformly random ordinals in every binade of both signs
(restricted to the domain), the two extreme values of the domain, and the 16
neighbours on each side of every
point where the formulation changes behaviour: the constants its comparisons, fmin
and fmax test x against (its own, never another formulation's), and the edges of exp
(overflow, subnormal, underflow to zero, for exp(x) and exp(2x)). A domain holding no
more than N values is enumerated instead ("exhaustive").
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from mishaudit.errors import UserError
from mishaudit.formats import Format, all_finite, from_ordinal, ordinal, round_to
from mishaudit.lang import fpcore as fc

NEIGHBOURS = 16


@dataclass(frozen=True)
class Domain:
    """The inputs audited: x in [lo, hi] (--domain), and in a format named in `per_format` also
    within that format's bounds (the audited domain of the specs selected: `spec_bounds`)."""

    lo: float = -math.inf
    hi: float = math.inf
    per_format: tuple = ()  # ((format name, lo, hi), ...)

    def __str__(self) -> str:
        return f"[{self.lo!r}, {self.hi!r}]"

    def at(self, fmt: Format) -> "Domain":
        """The bounds that hold in `fmt`."""
        for name, lo, hi in self.per_format:
            if name == fmt.name:
                return Domain(max(self.lo, lo), min(self.hi, hi))
        return Domain(self.lo, self.hi)


def spec_bounds(spec, fmt: Format) -> tuple[float, float] | None:
    """The audited domain of `spec` in `fmt`, as its smallest and largest fmt values: where spec(x)
    is a real number whose correctly rounded value in fmt is finite (log: x > 0; log1p: x > -1;
    exp, exp2, expm1: up to the last x before RN(f(x)) overflows). None: every finite input (mish,
    mish', and every spec that is not one elementary operation of x, lang/operators.py)."""
    return _op_bounds(spec.op, fmt) if spec.op is not None else None


@functools.lru_cache(maxsize=None)
def _op_bounds(op: str, fmt: Format) -> tuple[float, float] | None:
    from mishaudit.eval.libm import correctly_rounded
    from mishaudit.lang.operators import OPERATORS

    info = OPERATORS[op]
    olo, ohi = inward(Domain(), fmt)
    value = lambda o: from_ordinal(np.array([o]), fmt)  # noqa: E731
    finite = lambda o: bool(np.isfinite(correctly_rounded(op, [value(o)], fmt)[0]))  # noqa: E731
    if info.domain is not None:  # the first value inside where f is finite (log(0) = -inf is not)
        lo, closed = info.domain
        o = int(ordinal(round_to([lo], fmt), fmt)[0])
        while not ((value(o)[0] > lo or (closed and value(o)[0] == lo)) and finite(o)):
            o += 1
        olo = max(olo, o)
    if info.monotone == "increasing" and info.range[1] == math.inf and not finite(ohi):
        a, b = olo, ohi  # finite(a), not finite(b): the last finite one by bisection (f increasing)
        while b - a > 1:
            m = (a + b) // 2
            a, b = (m, b) if finite(m) else (a, m)
        ohi = a
    if (olo, ohi) == inward(Domain(), fmt):
        return None
    lo_v, hi_v = from_ordinal(np.array([olo, ohi]), fmt)
    return float(lo_v), float(hi_v)


def with_spec_bounds(domain: Domain, formulas, fmts) -> Domain:
    """`domain` narrowed in each format to the audited domains of the formulas' specs (their
    intersection when they differ)."""
    per = []
    for fmt in fmts:
        bounds = [b for f in formulas if not f.kernel for b in [spec_bounds(f.spec, fmt)] if b is not None]
        if bounds:
            per.append((fmt.name, max(b[0] for b in bounds), min(b[1] for b in bounds)))
    return Domain(domain.lo, domain.hi, tuple(per)) if per else domain


def parse_domain(text: str | None) -> Domain:
    """'LO:HI' -> Domain; UserError for malformed, NaN, or inverted bounds. A bound is empty (unbounded),
    inf or -inf, or a number literal (decimal, p/q, hexadecimal) within the reader's limits (lang/fpcore.py),
    rounded to the nearest binary64 (+-inf beyond its range)."""
    if text is None:
        return Domain()
    if not isinstance(text, str):
        raise UserError(f"--domain {text!r}: give a text LO:HI, e.g. --domain -20:20")
    shown = fc.abbreviate(repr(text))
    parts = text.split(":")
    if len(parts) != 2:
        raise UserError(f"--domain {shown}: write it as LO:HI, e.g. --domain -20:20")
    lo, hi = (_bound(p, default, shown) for p, default in zip(parts, (-math.inf, math.inf)))
    if lo > hi:
        raise UserError(f"--domain {shown}: LO is greater than HI; write the smaller bound first")
    return Domain(lo, hi)


def _bound(part: str, default: float, shown: str) -> float:
    """One bound of --domain (`shown`: the option's text for messages)."""
    s = part.strip()
    word = s.lower()[1:] if s[:1] in ("+", "-") else s.lower()
    if not s:
        return default
    if word in ("inf", "infinity"):
        return -math.inf if s.startswith("-") else math.inf
    if word == "nan":
        raise UserError(f"--domain {shown}: a bound is NaN; give numbers (inf and -inf are allowed)")
    try:
        v = fc.parse_real(s)
    except fc.NumberTooLarge as exc:
        fix = "give a bound in that range (or inf, -inf, 0)" if exc.within else f"round it to at most {fc.MAX_DIGITS} significant digits"
        raise UserError(f"--domain {shown}: a bound is beyond the reader's limits ({exc.limit}): {fix}") from None
    if v is None:
        raise UserError(f"--domain {shown}: bounds must be numbers, e.g. --domain -20:20")
    return v


@dataclass
class InputSet:
    x: np.ndarray  # finite format values as float64, sorted, unique
    strategy: str  # "exhaustive" or "sampled"
    fmt: Format


def inward(domain: Domain, fmt: Format) -> tuple[int, int]:
    """Ordinals of the smallest format value >= lo and the largest <= hi (finite)."""
    domain = domain.at(fmt)
    lo = max(domain.lo, -fmt.max)
    hi = min(domain.hi, fmt.max)
    olo = int(ordinal(round_to([lo], fmt), fmt)[0])
    if from_ordinal([olo], fmt)[0] < lo:
        olo += 1
    ohi = int(ordinal(round_to([hi], fmt), fmt)[0])
    if from_ordinal([ohi], fmt)[0] > hi:
        ohi -= 1
    return olo, ohi


def _empty(domain: Domain, fmt: Format) -> UserError:
    if domain.at(fmt) != Domain(domain.lo, domain.hi):
        d = domain.at(fmt)
        return UserError(f"--domain {domain.lo!r}:{domain.hi!r} holds no finite {fmt.name} value inside the "
                         f"spec's own domain [{d.lo!r}, {d.hi!r}] there: widen it")
    return UserError(f"--domain {domain.lo!r}:{domain.hi!r} holds no finite {fmt.name} value: widen it")


def enumerate_all(fmt: Format, domain: Domain = Domain()) -> InputSet:
    x = all_finite(fmt)
    d = domain.at(fmt)
    x = x[(x >= d.lo) & (x <= d.hi)]
    if not len(x):
        raise _empty(domain, fmt)
    x = np.unique(x)  # sorted; -0 and +0 compare equal: keep both
    zeros = [v for v in (-0.0, 0.0) if d.lo <= v <= d.hi]
    x = np.concatenate([x[x != 0], np.array(zeros)]) if zeros else x
    return InputSet(np.sort(x, kind="stable"), "exhaustive", fmt)


def edge_points(fmt: Format, thresholds=()) -> np.ndarray:
    """Points where behaviour changes: given thresholds and the edges of exp(x), exp(2x) in `fmt`."""
    ln = math.log
    exp_edges = [ln(fmt.max), ln(fmt.tiny), ln(fmt.min_subnormal), ln(fmt.min_subnormal) - ln(2)]
    pts = list(thresholds) + exp_edges + [v / 2 for v in exp_edges]
    pts += [-v for v in pts]
    return np.array(sorted(set(pts)), dtype=np.float64)


def sample(fmt: Format, n: int, seed: int, domain: Domain = Domain(), thresholds=()) -> InputSet:
    """A deterministic stratified sample of about `n` finite values (see the module docstring)."""
    if n < 1:
        raise UserError(f"--samples {n}: give a positive number of samples")
    olo, ohi = inward(domain, fmt)
    if olo > ohi:
        raise _empty(domain, fmt)
    if ohi - olo + 1 <= n:
        x = from_ordinal(np.arange(olo, ohi + 1, dtype=np.int64), fmt)
        return InputSet(_with_neg_zero(x, domain.at(fmt)), "exhaustive", fmt)
    x = _stratified(fmt, n, seed, olo, ohi)
    edges = round_to(edge_points(fmt, thresholds), fmt)
    edges = edges[np.isfinite(edges)]
    eo = ordinal(edges, fmt)
    near = (eo[:, None] + np.arange(-NEIGHBOURS, NEIGHBOURS + 1)[None, :]).ravel()
    near = near[(near >= olo) & (near <= ohi)]
    ends = np.array([olo, ohi], dtype=np.int64)  # the domain's extreme values, so runs reach them
    x = np.concatenate([x, from_ordinal(near, fmt), from_ordinal(ends, fmt)])
    return InputSet(_with_neg_zero(np.unique(x), domain.at(fmt)), "sampled", fmt)


@functools.lru_cache(maxsize=8)
def _stratified(fmt: Format, n: int, seed: int, olo: int, ohi: int) -> np.ndarray:
    """The seeded random part of a sample: n / (number of strata) ordinals in every binade of |ordinal|,
    both signs, clipped to [olo, ohi] (the same for every formulation; read-only)."""
    width = 1 << (fmt.p - 1)
    strata = []
    kmax = (int(ordinal(np.array([fmt.max]), fmt)[0]) // width) + 1
    for k in range(kmax):
        for a, b in ((k * width, (k + 1) * width - 1), (-(k + 1) * width + 1, -k * width)):
            a, b = max(a, olo), min(b, ohi)
            if a <= b and (not strata or strata[-1] != (a, b)) and (a, b) not in strata[-2:]:
                strata.append((a, b))
    rng = np.random.default_rng(seed)
    per = max(1, n // len(strata))
    ords = [rng.integers(a, b + 1, size=min(per, b - a + 1), dtype=np.int64) for a, b in strata]
    x = from_ordinal(np.concatenate(ords), fmt)
    x.flags.writeable = False
    return x


def _with_neg_zero(x: np.ndarray, domain: Domain) -> np.ndarray:
    x = x[x != 0]
    zeros = [v for v in (-0.0, 0.0) if domain.lo <= v <= domain.hi]
    return np.sort(np.concatenate([x, np.array(zeros)]), kind="stable")


def formula_thresholds(formula, fmt: Format) -> list[float]:
    """Constants that the formula compares x-derived values with (if, fmin, fmax), evaluated in `fmt`
    (elementary functions correctly rounded, so the sample is the same under every libm model)."""
    from mishaudit.eval.evaluate import Policy, evaluate

    probe = np.array([0.5, 3.0, -7.0])
    ev = evaluate(formula, probe, Policy(fmt, libm="cr"), record=True)
    out = []
    for r in ev.records:
        if r.op in fc.COMPARISONS or r.op in ("fmin", "fmax"):
            for v in r.operands:
                if v.dtype != bool and np.all(v == v[0]) and np.isfinite(v[0]):
                    out.append(float(v[0]))
    return out


def input_set(fmt: Format, domain: Domain, samples: int, seed: int, formula=None) -> InputSet:
    """The inputs a formulation is audited on: every value for 16-bit formats, else the seeded
    sample with the neighbours of that formulation's own thresholds (never of others', so its
    figures do not depend on which formulations run beside it)."""
    if fmt.bits == 16:
        return enumerate_all(fmt, domain)
    th = sorted(set(formula_thresholds(formula, fmt))) if formula is not None and not formula.kernel else []
    return sample(fmt, samples, seed, domain, th)


SPECIALS = (0.0, -0.0, math.inf, -math.inf, math.nan)
