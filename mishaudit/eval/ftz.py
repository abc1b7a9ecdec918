"""Flush to zero as hardware does it: FTZ (tiny results become zero) and DAZ (subnormal operands
read as zero), with tininess detected after rounding or before rounding.

`--ftz after` (a bare `--ftz` means after): x86 SSE/AVX with MXCSR.FTZ and MXCSR.DAZ set.
`--ftz before`: machines that detect tininess before rounding (ARM's flush-to-zero, some GPU modes).
tests/test_ftz.py runs numpy's binary32 arithmetic under x86 MXCSR FTZ|DAZ and matches the after
model bit for bit; the before model is checked against exact rational arithmetic.

The model, in a working format w (p significand bits, smallest normal 2^emin), for every value that
an operation produces from its exact result r (+ - * / sqrt fma, the elementary functions, and each
conversion into a narrower format, the final rounding to the storage format included):

- tiny, after rounding: r rounded to p bits with an unbounded exponent is below 2^emin in
  magnitude, i.e. |r| < 2^emin - 2^(emin-p-1) (the midpoint between 2^emin and the p-bit value just
  below it; r at that midpoint rounds, ties to even, up to 2^emin and is not tiny);
- tiny, before rounding: |r| < 2^emin, even where r rounds up to 2^emin.
- A tiny result is a zero of r's sign; any other result is RN_w(r), which is then normal. An exact
  zero result keeps IEEE's sign rules.

So every result with gradual underflow subnormal is flushed in both modes, and so is
|r| in [2^emin - 2^(emin-p), 2^emin - 2^(emin-p-1)), which rounds to 2^emin with gradual underflow
yet is tiny after rounding with an unbounded exponent (x86 flushes it: flushing the IEEE result
only where it is subnormal would keep it); the modes differ on |r| in
[2^emin - 2^(emin-p-1), 2^emin): after keeps 2^emin, before flushes.

Operands (DAZ): every input (a subnormal of the storage format) and every constant (a literal, E, a
per-format constant, rounded to w as a compiler would, and then subnormal in w) becomes a zero of
its sign. Flushed results feed every later operation, so no operation sees a subnormal operand.
Sign changes, fabs, copysign, fmin, fmax, comparisons and `if` make no new value (x86's sign
operations are bit operations and do not flush; fmin/fmax only ever see flushed operands).

Elementary functions (exp, expm1, log, log1p, tanh, pow): the operands are flushed (as above), then
- libm cr: r is the function's exact value f(a); the result is flushed by the same tininess rule
  (where the correctly rounded value is +-2^emin, MPFR decides |f(a)| < threshold exactly, rounding
  toward zero at p + 2 bits with an unbounded exponent);
- libm numpy / torch: the kernel's returned value y stands for r (its internal rounding is not
  observable): y is flushed where it is subnormal, in both modes.

No exception flags are modelled, and rounding is to nearest even throughout.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from mishaudit.errors import UserError
from mishaudit.formats import Format, flush_subnormals
from mishaudit.lang.operators import OPERATORS

MODES = ("after", "before")


def mode_of(value, option: str = "--ftz"):
    """The flush mode `value` names: False (IEEE gradual underflow), "after" or "before". True (an old
    thresholds file's `ftz = true`, the API's ftz=True) means "after"; None means False."""
    if value is None or value is False:
        return False
    if value is True:
        return "after"
    if isinstance(value, str) and value.strip().lower() in MODES:
        return value.strip().lower()
    raise UserError(f"{option} {value!r}: give after (tininess detected after rounding, x86 FTZ/DAZ) or before "
                    "(before rounding, as ARM flushes), or leave it out for IEEE gradual underflow")


def threshold(fmt: Format, mode: str) -> Fraction:
    """The magnitude below which an exact result is tiny under `mode` (module docstring)."""
    t = Fraction(2) ** fmt.emin
    return t - Fraction(2) ** (fmt.emin - fmt.p - 1) if mode == "after" else t


def daz(v, fmt: Format):
    """Operands read as zero: subnormal values of fmt become zeros of their sign (bool arrays pass)."""
    if not isinstance(v, np.ndarray) or v.dtype == bool:
        return v
    return flush_subnormals(v, fmt)


def flush(y, fmt: Format, mode: str, below=None):
    """The flushed results: y holds RN_fmt of the exact results r with gradual underflow (float64
    values of fmt); `below(idx, t)` says, as a bool array, where |r[idx]| < t exactly. It is asked
    only about results y = +-2^emin, the only ones whose tininess y does not decide; without it y
    stands for r (no such result is tiny)."""
    if not isinstance(y, np.ndarray) or y.dtype == bool:
        return y
    a = np.abs(y)
    tiny = (a < fmt.tiny) & (y != 0)
    if below is not None:
        edge = np.flatnonzero(a.ravel() == fmt.tiny)
        if len(edge):
            hit = np.asarray(below(edge, threshold(fmt, mode)), dtype=bool)
            if hit.any():
                tiny = tiny.copy()
                tiny.ravel()[edge[hit]] = True
    if not tiny.any():
        return y
    out = y.copy()
    out[tiny] = np.copysign(0.0, y[tiny])
    return out


def _fraction(v) -> Fraction:
    return Fraction(float(v))


def _rational(op: str, v: list) -> Fraction:
    """The exact result of a rational operation on Fraction operands."""
    if op == "+":
        return v[0] + v[1]
    if op == "-":
        return v[0] - v[1]
    if op == "*":
        return v[0] * v[1]
    if op == "/":
        return v[0] / v[1]
    if op == "fma":
        return v[0] * v[1] + v[2]
    return v[0]  # "convert": the value itself


def exact_below(op: str, args: list):
    """`below` for a rational operation (+ - * / sqrt fma, or "convert": the value itself) of finite
    binary64 operands: exact rational arithmetic on the few elements asked about."""

    def below(idx, t):
        out = []
        for i in idx:
            v = [_fraction(np.asarray(a).ravel()[i] if np.ndim(a) else a) for a in args]
            if op == "sqrt":  # sqrt(a) < t  <=>  a < t^2 (a >= 0)
                out.append(v[0] < t * t)
            else:
                out.append(abs(_rational(op, v)) < t)
        return np.array(out, dtype=bool)

    return below


def libm_below(op: str, args: list, fmt: Format):
    """`below` for a correctly rounded elementary function: MPFR rounds f(a) toward zero at p + 2 bits
    (enough to hold either threshold) with an unbounded exponent, so |RZ(f(a))| < t iff |f(a)| < t."""

    def below(idx, t):
        import gmpy2

        ctx = gmpy2.context(precision=fmt.p + 2, round=gmpy2.RoundToZero, emin=gmpy2.get_emin_min(),
                            emax=gmpy2.get_emax_max())
        f = getattr(ctx, OPERATORS[op].mpfr)
        out = []
        for i in idx:
            v = f(*[gmpy2.mpfr(float(np.asarray(a).ravel()[i] if np.ndim(a) else a), 53) for a in args])
            out.append(abs(Fraction(*v.as_integer_ratio())) < t)
        return np.array(out, dtype=bool)

    return below


def _from_bits(k: int, dtype, uint):
    """The value with bit pattern k (built from bits: a subnormal literal, parsed or converted under
    FTZ/DAZ, could itself be flushed)."""
    return np.array([k], dtype=uint).view(dtype)[0]


def _bits(v) -> int:
    return int(np.array([v]).view(np.uint32 if np.asarray(v).dtype == np.float32 else np.uint64)[0])


def flushing() -> list[str]:
    """What this thread's floating-point environment does to subnormals, by numpy arithmetic (no C):
    "FTZ" where a normal product with a subnormal result reads 0, "DAZ" where a subnormal operand
    reads as 0 in a product whose result is normal; [] under IEEE gradual underflow."""
    out = []
    with np.errstate(all="ignore"):
        # (the bits, not `== 0`: under DAZ a subnormal compares equal to 0)
        if (_bits(np.float32(2.0**-63) * np.float32(2.0**-70)) == 0
                or _bits(np.float64(2.0**-537) * np.float64(2.0**-537)) == 0):
            out.append("FTZ")
        if (_from_bits(1, np.float32, np.uint32) * np.float32(2.0**40) == 0
                or _from_bits(1, np.float64, np.uint64) * np.float64(2.0**100) == 0):
            out.append("DAZ")
    return out


def require_ieee() -> None:
    """UserError when this process flushes subnormals (FTZ/DAZ set by another library): every figure,
    the references' roundings included, assumes IEEE gradual underflow."""
    got = flushing()
    if got:
        raise UserError(f"this process flushes subnormal numbers to zero ({'/'.join(got)} set in the floating-point "
                        "control register, typically by a library built with -ffast-math loaded before mishaudit): "
                        "its figures would be wrong; run mishaudit in a process without that library (--ftz models "
                        "flushing on exact IEEE arithmetic)")
