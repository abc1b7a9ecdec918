"""Inputs a user gives (`--inputs`): a file of values, or a seeded generator.

    --inputs FILE                 .npy (float16/32/64 or integer array), or text: numbers separated by
                                  spaces, commas or newlines, '#' starts a comment
    --inputs linspace:LO:HI:N     numpy.linspace(LO, HI, N) in binary64 (N >= 2)
    --inputs normal:MU:SIGMA:N    N normal deviates, seeded by --seed (Marsaglia's polar method on
                                  numpy's PCG64 uniforms, log correctly rounded: the same values on
                                  every machine)

Every value is rounded once to the audited format (round to nearest even, from the exact value:
a text number whose binary64 value is a tie of the format is decided from its exact decimal).
Duplicates are kept: the statistics count an input as often as it occurs. Values that are NaN
or infinite after rounding are left out and counted (mish there is checked by the special inputs).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from mishaudit.errors import UserError
from mishaudit.formats import FP64, Format, from_ordinal, ordinal, round_to
from mishaudit.lang.fpcore import NumberTooLarge, abbreviate, parse_number


@dataclass(frozen=True)
class Given:
    """The values as binary64 (duplicates kept, file order), and where they came from."""

    values: np.ndarray
    source: str  # the --inputs text
    exact: dict  # index -> Fraction: integers of a .npy beyond 2^53 (binary64 does not hold them)
    tokens: tuple | None = None  # a text file's numbers as written (their exact values decide ties)

    def exact_value(self, i: int) -> Fraction | None:
        """The exact value of input i (None when it is not finite)."""
        if i in self.exact:
            return self.exact[i]
        if self.tokens is not None:
            return parse_number(self.tokens[i].lstrip("+")) if math.isfinite(self.values[i]) else None
        return Fraction(float(self.values[i])) if math.isfinite(self.values[i]) else None


@dataclass(frozen=True)
class Counted:
    """A Given rounded to one format: unique finite values (sorted, -0 before +0) and how often each
    occurs; `dropped` values were NaN or infinite after rounding."""

    x: np.ndarray
    counts: np.ndarray  # int64, same length as x
    dropped: int

    @property
    def total(self) -> int:
        return int(self.counts.sum())


def parse_inputs(text: str, seed: int = 0) -> Given:
    """`--inputs` text -> Given; UserError (one line, the fix) for a bad spec or an unreadable file."""
    kind, _, rest = text.partition(":")
    if kind in ("linspace", "normal") and not Path(text).exists():
        parts = rest.split(":")
        if len(parts) != 3:
            raise UserError(f"--inputs {text!r}: write {kind}:{'LO:HI' if kind == 'linspace' else 'MU:SIGMA'}:N, "
                            f"e.g. {'linspace:-0.9:0.9:1000' if kind == 'linspace' else 'normal:0:1:100000'}")
        a, b, n = _real(parts[0], text), _real(parts[1], text), _count(parts[2], text)
        if kind == "linspace":
            if a > b:
                raise UserError(f"--inputs {text!r}: LO is greater than HI; write the smaller bound first")
            if n < 2:
                raise UserError(f"--inputs {text!r}: N must be at least 2 (the two ends)")
            return Given(np.linspace(a, b, n), text, {})
        if not b > 0:
            raise UserError(f"--inputs {text!r}: SIGMA must be positive")
        return Given(a + b * normal_deviates(n, seed), text, {})
    return _read_file(Path(text), text)


def _real(s: str, text: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise UserError(f"--inputs {text!r}: {s!r} is not a number") from None
    if not math.isfinite(v):
        raise UserError(f"--inputs {text!r}: {s!r} is not finite; give finite numbers")
    return v


def _count(s: str, text: str) -> int:
    if not re.fullmatch(r"\d+", s.strip()) or int(s) < 1:
        raise UserError(f"--inputs {text!r}: N = {s!r} must be a positive integer")
    if int(s) > 1 << 28:
        raise UserError(f"--inputs {text!r}: N = {s} is more than 2^28 values; use fewer (or --exhaustive)")
    return int(s)


def normal_deviates(n: int, seed: int) -> np.ndarray:
    """n standard normal deviates: Marsaglia's polar method, u, v uniform in [-1, 1) from PCG64(seed)
    (consecutive draws of Generator.random, as pairs; pairs with s outside (0, 1) skipped),
    s = u^2 + v^2 in (0, 1), z = (u, v) * sqrt(-2 log(s) / s). Every operation is IEEE binary64 (log
    correctly rounded), so the values are the same on every machine."""
    from mishaudit.eval.libm import correctly_rounded

    rng = np.random.Generator(np.random.PCG64(seed))
    out, have = [], 0
    while have < n:
        m = max(16, int((n - have) * 0.66) + 16)  # pairs; 78.5 % are accepted
        uv = rng.random(2 * m) * 2.0 - 1.0  # consecutive pairs (u, v)
        u, v = uv[0::2], uv[1::2]
        s = u * u + v * v
        ok = (s > 0) & (s < 1)
        u, v, s = u[ok], v[ok], s[ok]
        f = np.sqrt(-2.0 * correctly_rounded("log", [s], FP64) / s)
        z = np.column_stack([u * f, v * f]).ravel()
        out.append(z)
        have += len(z)
    return np.concatenate(out)[:n]


_SPLIT = re.compile(r"[\s,]+")


def _read_file(path: Path, text: str) -> Given:
    if not path.exists():
        raise UserError(f"--inputs {text}: no such file, and not linspace:LO:HI:N or normal:MU:SIGMA:N: check the "
                        "path or the spelling")
    if path.suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise UserError(f"--inputs {text}: not a readable .npy file ({exc}): save it with numpy.save") from None
        if arr.dtype.kind not in "fiu" or arr.dtype.itemsize > 8:
            raise UserError(f"--inputs {text}: a .npy of {arr.dtype} values; store float16, float32, float64 or "
                            "integers (e.g. tensor.float().numpy())")
        flat = arr.ravel()
        exact = {}
        if flat.dtype.kind in "iu":  # integers beyond 2^53 are not binary64 values: keep them exactly
            big = np.flatnonzero(np.abs(flat.astype(np.float64)) > 2.0**53)
            exact = {int(i): Fraction(int(flat[i])) for i in big}
        return Given(flat.astype(np.float64), text, exact)
    try:
        body = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise UserError(f"--inputs {text}: cannot read it ({why}): give a .npy file or a text file of numbers") from None
    vals, toks = [], []
    for lineno, line in enumerate(body.splitlines(), 1):
        for tok in _SPLIT.split(line.split("#", 1)[0].strip()):
            if not tok:
                continue
            try:
                try:
                    v = float(tok)  # binary64, correctly rounded (decimal, inf, nan)
                    if math.isfinite(v) and parse_number(tok.lstrip("+")) is None:
                        raise ValueError  # '1_000' and the like: Python's float() only
                except ValueError:
                    q = parse_number(tok)  # p/q or hexadecimal: converted correctly rounded
                    if q is None:
                        raise UserError(f"--inputs {text}:{lineno}: {tok!r} is not a number; the file holds numbers "
                                        "separated by spaces, commas or newlines") from None
                    v = float(q)
            except NumberTooLarge as exc:  # the reader's bounds on digits and magnitude (lang/fpcore.py)
                why = str(exc).split(" is beyond the reader's limits ", 1)[-1].split(":", 1)[0]
                raise UserError(f"--inputs {text}:{lineno}: {abbreviate(tok)} is beyond the reader's limits {why}: "
                                "give inputs in that range") from None
            vals.append(v)
            toks.append(tok)
    if not vals:
        raise UserError(f"--inputs {text}: the file holds no numbers")
    return Given(np.array(vals, dtype=np.float64), text, {}, tuple(toks))


def round_given(given: Given, fmt: Format) -> np.ndarray:
    """Every value rounded once to `fmt` (as float64), from its exact value."""
    from mishaudit.formats import round_fraction

    v = given.values
    with np.errstate(all="ignore"):
        y = round_to(v, fmt)
    if fmt is FP64 or (given.tokens is None and not given.exact):
        return y  # binary64 values are exact, or already correctly rounded from the exact value
    # Rounding to binary64 first keeps a value's side of every midpoint of `fmt` (the midpoints are
    # binary64 values), so a second rounding is wrong only where the binary64 value is a midpoint.
    fin = np.isfinite(y)
    toward = np.where(v > y, 1, -1)
    other = from_ordinal(ordinal(np.where(fin, y, 0.0), fmt) + toward, fmt)
    with np.errstate(all="ignore"):
        tie = fin & (v != y) & (v - y == other - v)
    for i in np.flatnonzero(tie):
        q = given.exact_value(int(i))
        if q is not None and q != Fraction(float(v[i])):
            y[i] = round_fraction(q, fmt)
    return y


def counted(given: Given, fmt: Format, domain=None) -> Counted:
    """The values rounded to `fmt`, finite ones counted (within `domain` when given)."""
    y = round_given(given, fmt)
    keep = np.isfinite(y)
    if domain is not None:
        d = domain.at(fmt)
        keep &= (y >= d.lo) & (y <= d.hi)
    dropped = int((~np.isfinite(y)).sum())
    y = y[keep]
    if not len(y):
        raise UserError(f"--inputs {given.source}: no finite {fmt.name} value left"
                        + (" in the --domain" if domain is not None else "") + ": check the values")
    bits, counts = np.unique(np.ascontiguousarray(y).view(np.uint64), return_counts=True)
    x = bits.view(np.float64)
    order = np.lexsort((~np.signbit(x), x))  # ascending, -0 before +0
    return Counted(x[order], counts[order].astype(np.int64), dropped)
