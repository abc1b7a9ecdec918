"""Binary floating-point formats and exact facts about them.

A format is (p, emin, emax): p significand bits including the hidden bit,
finite values (-1)^s * m * 2^(e-p+1), 0 <= m < 2^p, emin <= e <= emax.

Definitions used everywhere (the README's column table; the CORE-MATH convention):
  ulp(r) = 2^(max(floor(log2|r|), emin) - p + 1),  ulp(0) = 2^(emin - p + 1)
  ord(v) = the signed position of v in the ordered lattice of the format
           (ord(+0) = ord(-0) = 0, ord(next up of 0) = 1, ...)

All values travel as numpy float64 arrays holding values that are exactly
representable in the format (every binary16/bfloat16/binary32 value is a
binary64 value); `to_dtype` turns them into the format's own numpy dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import ml_dtypes
import numpy as np

from mishaudit.errors import UserError


@dataclass(frozen=True)
class Format:
    name: str  # the name users type: fp16, bf16, fp32, fp64
    fpcore: str  # the FPCore precision name: binary16, bfloat16, binary32, binary64
    p: int  # significand bits including the hidden bit
    emin: int  # exponent of the smallest normal number
    emax: int  # exponent of the largest finite number
    dtype: np.dtype = field(compare=False)
    uint: np.dtype = field(compare=False)
    aliases: tuple[str, ...] = ()

    @property
    def bits(self) -> int:
        return 8 * self.dtype.itemsize

    @property
    def max(self) -> float:
        """Largest finite value, (2 - 2^(1-p)) * 2^emax."""
        return math.ldexp(2.0 - math.ldexp(1.0, 1 - self.p), self.emax)

    @property
    def tiny(self) -> float:
        """Smallest positive normal value, 2^emin."""
        return math.ldexp(1.0, self.emin)

    @property
    def min_subnormal(self) -> float:
        """Smallest positive subnormal value, 2^(emin - p + 1) (= ulp(0))."""
        return math.ldexp(1.0, self.emin - self.p + 1)

    def __str__(self) -> str:
        return self.name

    def __reduce__(self):
        """Pickle by name: a format crossing to a worker process stays the same object (the
        code compares formats by identity, `fmt is FP32`)."""
        return (_by_name, (self.name,))


def _by_name(name: str) -> "Format":
    return {f.name: f for f in FORMATS}[name]


FP16 = Format("fp16", "binary16", 11, -14, 15, np.dtype(np.float16), np.dtype(np.uint16), ("float16", "half", "binary16"))
BF16 = Format("bf16", "bfloat16", 8, -126, 127, np.dtype(ml_dtypes.bfloat16), np.dtype(np.uint16), ("bfloat16",))
FP32 = Format("fp32", "binary32", 24, -126, 127, np.dtype(np.float32), np.dtype(np.uint32), ("float32", "single", "binary32"))
FP64 = Format("fp64", "binary64", 53, -1022, 1023, np.dtype(np.float64), np.dtype(np.uint64), ("float64", "double", "binary64"))

FORMATS: tuple[Format, ...] = (FP16, BF16, FP32, FP64)
_BY_NAME = {n: f for f in FORMATS for n in (f.name, f.fpcore, *f.aliases)}


def get_format(name: str) -> Format:
    """The format called `name` (or one of its aliases); UserError otherwise."""
    try:
        return _BY_NAME[name.strip().lower()]
    except KeyError:
        known = ", ".join(f.name for f in FORMATS)
        raise UserError(f"unknown dtype {name!r}: use one of {known} (or an alias such as float16, bfloat16)") from None


def to_dtype(v: np.ndarray, fmt: Format) -> np.ndarray:
    """Exactly representable float64 values -> the format's numpy dtype (exact)."""
    return np.asarray(v, dtype=np.float64).astype(fmt.dtype)


def round_to(v, fmt: Format) -> np.ndarray:
    """RN(v) in `fmt` for float64 `v`, returned as float64; one rounding, ties to even.

    Works on the integer significand: q = max(floor(log2|v|), emin) - p + 1 is the
    quantum, v / 2^q is exact (power-of-two scaling inside binary64's range) and
    np.rint rounds it to an integer with ties to even; overflow gives +-inf
    (anything at or beyond max + ulp(max)/2 rounds past max). Avoids
    float64 -> float32 -> bfloat16 double rounding.
    """
    v = np.array(v, dtype=np.float64, copy=True)
    if fmt is FP64:
        return v
    if fmt is FP32:  # the binary64 -> binary32 conversion is IEEE RN (ties to even, overflow to inf)
        with np.errstate(over="ignore"):
            return v.astype(np.float32).astype(np.float64)
    mask = np.isfinite(v) & (v != 0)
    a = v[mask]
    _, e = np.frexp(a)  # |a| = m * 2^e, m in [0.5, 1): floor(log2|a|) = e - 1
    q = np.maximum(e - 1, fmt.emin) - fmt.p + 1
    with np.errstate(over="ignore"):  # overflow gives inf, which is RN's answer
        r = np.ldexp(np.rint(np.ldexp(a, -q)), q)
    over = np.abs(r) > fmt.max
    r[over] = np.copysign(np.inf, r[over])
    v[mask] = r
    return v


def pow2(k) -> np.ndarray:
    """2^k as float64 for integers k in [-1022, 1023], built from the exponent field (exact; no ldexp)."""
    return ((np.asarray(k, dtype=np.int64) + 1023) << 52).view(np.float64)


def flush_subnormals(v: np.ndarray, fmt: Format) -> np.ndarray:
    """Replace subnormal values of `fmt` by zero of the same sign (FTZ/DAZ)."""
    v = np.asarray(v)
    sub = (v != 0) & (np.abs(v.astype(np.float64)) < fmt.tiny)
    if not sub.any():
        return v
    out = v.copy()
    out[sub] = np.copysign(0.0, v[sub].astype(np.float64)).astype(v.dtype)
    return out


def ulp(v, fmt: Format) -> np.ndarray:
    """ulp(v) = 2^(max(floor(log2|v|), emin) - p + 1) for float64 `v` (ulp(0) = 2^(emin-p+1))."""
    v = np.abs(np.asarray(v, dtype=np.float64))
    _, e = np.frexp(v)
    e = np.where(v == 0, fmt.emin + 1, e)
    return np.ldexp(1.0, np.maximum(e - 1, fmt.emin) - fmt.p + 1)


def ordinal(v, fmt: Format) -> np.ndarray:
    """ord(v) as int64 for format values `v` (float64); NaN gives an arbitrary value (mask it)."""
    bits = to_dtype(v, fmt).view(fmt.uint).astype(np.uint64)
    sign = bits >> np.uint64(fmt.bits - 1)
    mag = (bits & np.uint64((1 << (fmt.bits - 1)) - 1)).astype(np.int64)
    return np.where(sign == 1, -mag, mag)


def from_ordinal(o, fmt: Format) -> np.ndarray:
    """Inverse of `ordinal` (ord 0 gives +0), as float64."""
    o = np.asarray(o, dtype=np.int64)
    mag = np.abs(o).astype(np.uint64)
    bits = np.where(o < 0, mag | np.uint64(1 << (fmt.bits - 1)), mag).astype(fmt.uint)
    return bits.view(fmt.dtype).astype(np.float64)


def all_finite(fmt: Format) -> np.ndarray:
    """Every finite value of a 16-bit format, in bit-pattern order, as float64."""
    if fmt.bits != 16:
        raise ValueError(f"{fmt.name} is too large to enumerate in memory")
    with np.errstate(invalid="ignore"):  # NaN patterns
        v = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(fmt.dtype).astype(np.float64)
    return v[np.isfinite(v)]


def exponent_of(r_mpf) -> int:
    """floor(log2|r|) of a nonzero mpmath mpf, exactly (from its integer significand)."""
    sign, man, exp, bc = r_mpf._mpf_
    return exp + bc - 1


def round_mpf(r, fmt: Format) -> float:
    """RN(r) in `fmt` for an mpmath mpf `r`, exactly (integer arithmetic, ties to even).

    r = (-1)^s * man * 2^exp. With quantum q = max(floor(log2|r|), emin) - p + 1 the
    result is round(man * 2^(exp-q)) * 2^q; beyond the largest finite value it is +-inf.
    Returns a float64 (exact: every value of these formats is a binary64 value).
    """
    sign, man, exp, bc = r._mpf_
    if man == 0:
        if exp == 0 and bc == 0:  # mpmath zero
            return 0.0
        raise ValueError("round_mpf takes finite numbers")
    q = max(exp + bc - 1, fmt.emin) - fmt.p + 1
    if q <= exp:
        m = man << (exp - q)
    elif q - exp > bc + 1:  # |r| < 2^(exp+bc) <= 2^(q-2): below half the quantum
        m = 0
    else:
        k = q - exp
        m = man >> k
        rem = man & ((1 << k) - 1)
        half = 1 << (k - 1)
        if rem > half or (rem == half and (m & 1)):
            m += 1
    if m.bit_length() + q - 1 > fmt.emax:  # m * 2^q >= 2^(emax+1) > max
        val = math.inf
    else:
        val = math.ldexp(float(m), q) if m else 0.0
        if val > fmt.max:
            val = math.inf
    return -val if sign else val


def round_fraction(v, fmt: Format) -> float:
    """RN(v) in `fmt` for an exact Fraction `v` (ties to even), as float64."""
    from fractions import Fraction

    v = Fraction(v)
    if v == 0:
        return 0.0
    a = abs(v)
    e = a.numerator.bit_length() - a.denominator.bit_length()  # floor(log2 a) is e or e - 1
    if a < Fraction(2) ** e:
        e -= 1
    q = max(e, fmt.emin) - fmt.p + 1
    scaled = a / Fraction(2) ** q
    m, rem = divmod(scaled.numerator, scaled.denominator)
    twice = 2 * rem
    if twice > scaled.denominator or (twice == scaled.denominator and m & 1):
        m += 1
    if m.bit_length() + q - 1 > fmt.emax:
        val = math.inf
    else:
        val = math.ldexp(float(m), q)
        if val > fmt.max:
            val = math.inf
    return -val if v < 0 else val
