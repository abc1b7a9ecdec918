"""The reference for any spec: Ziv's loop on MPFR interval enclosures of the spec expression.

spec(x) is enclosed in MPFR interval arithmetic (reference/enclose.py, `enclose_mpfr`: every
bound one correctly rounded MPFR operation in the outward direction, so the enclosure holds the
exact value by MPFR's correct rounding, with no error analysis to trust), first at P = p + 64
bits, then at twice the precision for the inputs left undecided, up to MAX_PREC bits.

An input is decided when both ends of the enclosure [lo, hi] round to the same format value,
lie in the same binade (so ulp(r) is known) on the same side of zero, and the side of r around
RN(r) is certain (d's enclosure excludes 0) or the enclosure is the single point RN(r) (r is
a format value: d = 0). Where, at 1024 bits or more, d's enclosure still holds 0 but is narrower
than 2^-60 ulp (r within 2^-1000 of RN(r): mish'(x) - 1 ~ 4x e^-2x for x > 350), d is taken as 0: the ulp error is
still exact to 2^-60 ulp, and only RN(r) counts as faithful there; likewise where r is that
close to RN(r) = 2^k on an unsettled side, ulp(r) is taken as ulp(RN(r)) (the approximations). Outputs as reference/ziv.py's: rn = RN(r), d = (r - RN(r))/ulp(r),
E = max(floor(log2|r|), emin), r64 = r rounded to binary64; d is the midpoint of its
enclosure, within 2^(p + 2 - P) ulp of the true d.

A spec that is not a real number at an input (log of a negative, a division by zero), or whose
value no precision up to MAX_PREC separates from a rounding boundary (an exact tie reached
through a transcendental function, say), cannot be audited there: UserError naming the input.
"""

from __future__ import annotations

import numpy as np

from mishaudit.errors import UserError
from mishaudit.eval.libm import format_context, mpfr_array
from mishaudit.formats import Format
from mishaudit.reference.enclose import enclose_mpfr, mpfr_contexts

EXTRA_BITS = 64
MAX_PREC = 4096
UNSETTLED_PREC = 1024  # from this precision on, a side still unsettled is taken as RN(r) (module docstring)
TINY_D = 2.0**-1000  # stands for a |d| below any resolution (its sign is what matters)


def spec_reference(spec, x: np.ndarray, fmt: Format):
    """(rn, d, E, r64) for finite inputs x (binary64 values of fmt): every input decided."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    rn, d, r64 = np.zeros(n), np.zeros(n), np.zeros(n)
    E = np.full(n, fmt.emin, dtype=np.int64)
    todo = np.arange(n)
    prec = fmt.p + EXTRA_BITS
    while len(todo):
        if prec > MAX_PREC:
            bad = float(x[todo[0]])
            raise UserError(f"spec {spec.name} at x = {bad!r} ({fmt.name}): not a real number there, or not "
                            f"separated from a rounding boundary at {MAX_PREC} bits; restrict --domain to "
                            "where it is defined")
        part = enclosure_decide(spec, x[todo], fmt, prec)
        ok = part[4]
        for out, got in zip((rn, d, E, r64), part[:4]):
            out[todo[ok]] = got[ok]
        todo = todo[~ok]
        prec *= 2
    return rn, d, E, r64


def enclosure_decide(spec, x: np.ndarray, fmt: Format, prec: int):
    """(rn, d, E, r64, decided) from the enclosure of spec(x) at `prec` bits."""
    if not len(x):
        return np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0, dtype=bool)
    enc = enclose_mpfr(spec, x, fmt, prec)
    return decide(enc.lo, enc.hi, ~enc.undecided, fmt, prec)


def decide(lo, hi, valid: np.ndarray, fmt: Format, prec: int):
    """Per input, from MPFR bounds lo <= r <= hi (object arrays): (rn, d, E, r64, decided)."""
    import gmpy2

    n = len(lo)
    F = lambda f, k=1: np.frompyfunc(f, k, 1)  # noqa: E731
    with np.errstate(all="ignore"):
        plus = F(format_context(fmt).plus)
        a = plus(lo).astype(np.float64)
        b = plus(hi).astype(np.float64)
        finite = F(gmpy2.is_finite)(lo).astype(bool) & F(gmpy2.is_finite)(hi).astype(bool) & valid
        sgn_lo = F(gmpy2.sign)(lo).astype(np.int64)
        sgn_hi = F(gmpy2.sign)(hi).astype(np.int64)
        point = (lo == hi).astype(bool)
        # one sign: both ends nonzero alike, or the point 0 (whose MPFR sign of zero is RN's)
        one_sign = (sgn_lo * sgn_hi > 0) | (point & (sgn_lo == 0))
        same = (a == b) & (np.signbit(a) == np.signbit(b)) & finite & one_sign
        getexp = F(gmpy2.get_exp)
        zero = sgn_lo == 0
        one = gmpy2.mpfr(1)
        e_lo = np.where(zero, fmt.emin, getexp(np.where(zero, one, lo)).astype(np.int64) - 1)
        e_hi = np.where(zero, fmt.emin, getexp(np.where(zero, one, hi)).astype(np.int64) - 1)
        binade = np.maximum(e_lo, fmt.emin) == np.maximum(e_hi, fmt.emin)
        e_rn = np.where(a == 0, fmt.emin, np.frexp(np.where(np.isfinite(a), a, 1.0))[1] - 1)
        Eu = np.maximum(np.where(binade, e_lo, e_rn), fmt.emin)
        sh = np.array([int(fmt.p - 1 - e) for e in Eu], dtype=object)  # d = (r - RN) 2^(p-1-E)
        dn, up = mpfr_contexts(prec + 64)
        rnm = mpfr_array(np.where(np.isfinite(a), a, 0.0))
        dlo_m = F(dn.mul_2exp, 2)(F(dn.sub, 2)(lo, rnm), sh)
        dhi_m = F(up.mul_2exp, 2)(F(up.sub, 2)(hi, rnm), sh)
        s_lo, s_hi = F(gmpy2.sign)(dlo_m).astype(np.int64), F(gmpy2.sign)(dhi_m).astype(np.int64)
        dlo, dhi = dlo_m.astype(np.float64), dhi_m.astype(np.float64)
        exact = point & (s_lo == 0)  # r is the format value RN(r)
        dlo, dhi = np.nextafter(dlo, -np.inf), np.nextafter(dhi, np.inf)  # the binary64 roundings
        # r within 2^-60 ulp of RN(r) on a side no precision at hand settles (e.g. tanh(s) < 1 by
        # e^-2s, s ~ 1000): d is taken as 0, as if r were RN(r) (only RN(r) then counts as faithful)
        # (likewise r within 2^-60 ulp of RN(r) = 2^k, on a side that decides the binade: ulp(RN(r)) is used)
        settled = binade & ((s_lo > 0) | (s_hi < 0) | exact)
        unsettled = same & ~settled & (dhi - dlo < 2.0**-60) & (prec >= UNSETTLED_PREC)
        exact |= unsettled
        good = same & (settled | unsettled) & (np.abs(dlo) <= 0.5) & (np.abs(dhi) <= 0.5)
        dd = np.where(exact, 0.0, (dlo + dhi) / 2)
        # a |d| below binary64's range (r far below the smallest subnormal) keeps its sign
        dd = np.where(~exact & (np.abs(dd) < TINY_D), np.where(s_hi < 0, -TINY_D, TINY_D), dd)
        mid = F(lambda p, q: float(dn.div(dn.add(p, q), 2)), 2)(np.where(finite, lo, 0), np.where(finite, hi, 0))
        r64 = mid.astype(np.float64)
    return np.where(good, a, 0.0), np.where(good, dd, 0.0), Eu, r64, good & np.ones(n, dtype=bool)
