"""The reference for any spec: Ziv's loop on MPFR interval enclosures of the spec expression.

spec(x) is enclosed in MPFR interval arithmetic (reference/enclose.py, `enclose_mpfr`: every
bound one correctly rounded MPFR operation in the outward direction, so the enclosure holds the
exact value by MPFR's correct rounding, with no error analysis to trust), first at P = p + 64
bits, then at twice the precision for the inputs left undecided, up to MAX_PREC bits.

An input is decided (decide.py, the decision every reference path shares) when both ends of the
enclosure [lo, hi] round to the same format value, lie in the same binade (so ulp(r) is known) on
the same side of zero, d is resolved strictly inside (-1/2, 1/2), and the side of r around RN(r)
is certain (d's enclosure excludes 0) or the enclosure is the single point RN(r) (r is a format
value: d = 0). Where, at 1024 bits or more, d's enclosure still holds 0 but is narrower
than 2^-60 ulp (r within 2^-1000 of RN(r): mish'(x) - 1 ~ 4x e^-2x for x > 350), d is taken as
0: the ulp error is still exact to 2^-60 ulp (the resolution of every figure,
measure/metrics.py), and only RN(r) counts as faithful there; likewise where r is that close to
RN(r) = 2^k on an unsettled side, ulp(r) is taken as ulp(RN(r)) (the approximations, the only
ones in any reference path). Outputs: rn = RN(r), d = (r - RN(r))/ulp(r),
E = max(floor(log2|r|), emin), r64 = r rounded to binary64; d is the midpoint of its
enclosure, within 2^(p + 2 - P) ulp of the true d.

A spec that is not a real number at an input (log of a negative, a division by zero), or whose
value no precision up to MAX_PREC separates from a rounding boundary (an exact tie reached
through a transcendental function, say), cannot be audited there: UserError naming the input.
"""

from __future__ import annotations

import gmpy2
import numpy as np

from mishaudit.errors import UserError
from mishaudit.eval.libm import mpfr_array
from mishaudit.formats import Format
from mishaudit.reference.decide import NO_E, mpfr_d_bounds, mpfr_ends
from mishaudit.reference.decide import decide as decide_rn
from mishaudit.reference.enclose import enclose_mpfr, mpfr_contexts

EXTRA_BITS = 64
MAX_PREC = 4096
UNSETTLED_PREC = 1024  # from this precision on, a side still unsettled is taken as RN(r) (module docstring)


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
    """Per input, from MPFR bounds lo <= r <= hi (object arrays): (rn, d, E, r64, decided), by
    decide.py's decision (with the unsettled reading of the module docstring from UNSETTLED_PREC bits)."""
    n = len(lo)
    F = lambda f, k=1: np.frompyfunc(f, k, 1)  # noqa: E731
    with np.errstate(all="ignore"):
        a, b, s_lo, s_hi, e_lo, e_hi = mpfr_ends(lo, hi, fmt)
        a = np.where(valid, a, np.nan)
        am = mpfr_array(np.where(np.isfinite(a), a, 0.0))
        exact = (lo == hi).astype(bool) & F(lambda p, q: p == q, 2)(lo, am).astype(bool)  # r is RN(r) itself
        loose = prec >= UNSETTLED_PREC
        E_known = np.full(n, NO_E)
        if loose:  # r within 2^-60 ulp of RN(r) = 2^k on an unsettled side: ulp(RN(r)) (module docstring)
            lo_E = np.where(s_lo == 0, fmt.emin, np.maximum(e_lo, fmt.emin))
            hi_E = np.where(s_hi == 0, fmt.emin, np.maximum(e_hi, fmt.emin))
            e_rn = np.where(a == 0, fmt.emin, np.frexp(np.where(np.isfinite(a), a, 1.0))[1].astype(np.int64) - 1)
            E_known = np.where(lo_E != hi_E, e_rn, NO_E)
        dec = decide_rn(fmt, a, b, s_lo, s_hi, e_lo, e_hi, mpfr_d_bounds(lo, hi, fmt, prec), E_known=E_known,
                        exact=exact, unsettled=np.full(n, loose))
        fin = F(gmpy2.is_finite)(lo).astype(bool) & F(gmpy2.is_finite)(hi).astype(bool) & valid
        dn = mpfr_contexts(prec + 64)[0]
        mid = F(lambda p, q: float(dn.div(dn.add(p, q), 2)), 2)(np.where(fin, lo, 0), np.where(fin, hi, 0))
        r64 = mid.astype(np.float64)
    good = dec.ok & fin
    return np.where(good, dec.rn, 0.0), np.where(good, dec.d, 0.0), dec.E, r64, good
