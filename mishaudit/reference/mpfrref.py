"""The bottom of the mish reference: Ziv's loop in MPFR interval arithmetic, for any format.

mish(x) is enclosed with directed rounding at P bits (gmpy2 over numpy object arrays; each
bound is one correctly rounded MPFR operation in the outward direction, so the enclosure holds
mish(x) by MPFR's correct rounding, with no error analysis to trust):
  x <= 0: e = exp(x), n = e (e + 2), r = x * (n / (n + 2))   (n / (n + 2) increases with n)
  x > 0:  t = exp(-x), delta = 2 t^2 / (1 + 2 t + 2 t^2)     (increasing in t), r = x - x delta
For x > 0, r - RN(r) is enclosed as (x - RN(r)) - x delta, with x - RN(r) exact, so d keeps its
digits when x delta is far below 2^-P x.
decide.py makes the decision (both ends round alike, one binade, d inside (-1/2, 1/2) and
resolved, its side certain, or RN(r) is 0 or x, whose side is known: |mish(x)| < |x|, mish(x)
has the sign of x). Ziv's loop: P = p + EXTRA_BITS = p + 64 at first, then p + 128 +
log2(1/|x|) bits (rounded up to 64) for the inputs left undecided (tiny x, where 3x/5 is a format
value, d is about 0.53|x| ulps and takes that many more bits to place), then doubling. For x != 0, mish(x) is transcendental (Lindemann-Weierstrass: e^x is
transcendental for algebraic x != 0), so it is never a rounding boundary and the loop ends; a
loop past MAX_PREC bits is an internal error. Every undecided input of the fast paths
(fastref.py) ends here, so every reference value rests on MPFR's correct rounding or a written
proof, never on an unproven libm or mpmath. Outputs: rn, d = (r - RN(r))/ulp(r),
E = max(floor(log2|r|), emin), r64 = r rounded to binary64 (the enclosure's midpoint).
"""

from __future__ import annotations

import numpy as np

from mishaudit.eval.libm import mpfr_array
from mishaudit.formats import Format
from mishaudit.reference.decide import (
    NO_E,
    decide,
    mpfr_d_bounds,
    mpfr_diff_bounds,
    mpfr_ends,
)
from mishaudit.reference.enclose import mpfr_contexts

EXTRA_BITS = 64


def mpfr_reference(x: np.ndarray, fmt: Format):
    """(rn, d, E, r64, decided) for finite inputs x (binary64 values of fmt), vectorised, every input
    decided (Ziv's loop, module docstring)."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    out = (np.zeros(n), np.zeros(n), np.full(n, fmt.emin, dtype=np.int64), np.zeros(n), np.zeros(n, dtype=bool))
    prec = np.full(n, fmt.p + EXTRA_BITS)
    todo = np.arange(n)
    first = True
    while len(todo):
        if prec[todo].min() > MAX_PREC:
            raise RuntimeError(f"MPFR Ziv loop did not settle RN(mish({float(x[todo[0]])!r})) in {fmt.name} "
                               f"at {MAX_PREC} bits")
        part = _pass(x[todo], fmt, prec[todo])
        for a, b in zip(out, part):
            a[todo] = b
        todo = todo[~part[4]]
        if first and len(todo):  # tiny x: log2(1/|x|) more bits (module docstring), in few distinct steps
            with np.errstate(divide="ignore"):
                extra = np.maximum(0, -np.floor(np.log2(np.abs(x[todo])))).astype(np.int64)
            prec[todo] = fmt.p + EXTRA_BITS + 64 + (extra + 63) // 64 * 64
        else:
            prec[todo] *= 2
        first = False
    return out


MAX_PREC = 1 << 16


def _pass(x: np.ndarray, fmt: Format, precs: np.ndarray):
    """mpfr_reference's arrays for inputs x, each group of equal precision in one vectorised pass."""
    n = len(x)
    out = (np.zeros(n), np.zeros(n), np.full(n, fmt.emin, dtype=np.int64), np.zeros(n), np.zeros(n, dtype=bool))
    for prec in np.unique(precs):
        sel = np.flatnonzero(precs == prec)
        part = _one_pass(x[sel], fmt, int(prec))
        for a, b in zip(out, part):
            a[sel] = b
    return out


def _one_pass(x: np.ndarray, fmt: Format, prec: int):
    import gmpy2

    n = len(x)
    dn, up = mpfr_contexts(prec)
    F = lambda f, k=1: np.frompyfunc(f, k, 1)  # noqa: E731
    rn = np.zeros(n)
    d = np.zeros(n)
    E = np.full(n, fmt.emin, dtype=np.int64)
    r64 = np.zeros(n)
    ok = np.zeros(n, dtype=bool)
    zero = x == 0
    rn[zero], r64[zero], ok[zero] = x[zero], x[zero], True
    with np.errstate(all="ignore"):
        for neg in (True, False):
            idx = np.flatnonzero(((x <= 0) if neg else (x > 0)) & ~zero)
            if not len(idx):
                continue
            xm = mpfr_array(x[idx])
            if neg:
                e_lo, e_hi = F(dn.exp)(xm), F(up.exp)(xm)
                n_lo = F(dn.mul, 2)(e_lo, F(dn.add, 2)(e_lo, 2))
                n_hi = F(up.mul, 2)(e_hi, F(up.add, 2)(e_hi, 2))
                q_lo = F(dn.div, 2)(n_lo, F(up.add, 2)(n_hi, 2))  # n / (n + 2), increasing in n
                q_hi = F(up.div, 2)(n_hi, F(dn.add, 2)(n_lo, 2))
                r_lo = F(dn.mul, 2)(xm, q_hi)  # x < 0
                r_hi = F(up.mul, 2)(xm, q_lo)
                xd_lo = xd_hi = None
            else:
                mx = F(dn.minus)(xm)  # exact (never Python operators: 53-bit global context)
                t_lo, t_hi = F(dn.exp)(mx), F(up.exp)(mx)
                xd_lo = F(dn.mul, 2)(xm, _delta(dn, up, t_lo, lower=True))
                xd_hi = F(up.mul, 2)(xm, _delta(dn, up, t_hi, lower=False))
                r_lo, r_hi = F(dn.sub, 2)(xm, xd_hi), F(up.sub, 2)(xm, xd_lo)
            _decide(fmt, idx, x, xm, r_lo, r_hi, xd_lo, xd_hi, prec, rn, d, E, r64, ok, gmpy2)
    return rn, d, E, r64, ok


def _delta(dn, up, t, lower: bool):
    """2 t^2 / (1 + 2 t + 2 t^2) rounded down (lower) or up, for t >= 0 (increasing in t)."""
    a, b = (dn, up) if lower else (up, dn)
    F = lambda f: np.frompyfunc(f, 2, 1)  # noqa: E731
    t2 = F(a.mul)(t, t)
    num = F(a.mul)(t2, 2)
    den = F(b.add)(F(b.add)(F(b.mul)(t, 2), F(b.mul)(F(b.mul)(t, t), 2)), 1)
    return F(a.div)(num, den)


def _decide(fmt, idx, x, xm, r_lo, r_hi, xd_lo, xd_hi, prec, rn, d, E, r64, ok, gmpy2) -> None:
    xs = x[idx]
    a, b, s_lo, s_hi, e_lo, e_hi = mpfr_ends(r_lo, r_hi, fmt)
    sgn = np.sign(xs).astype(np.int64)  # mish(x) has the sign of x
    m2, k2 = np.frexp(np.abs(xs))
    # |mish(x)| < |x|: when RN(r) = x = 2^k and r's enclosure reaches 2^k, the binade is k - 1
    E_known = np.where((a == xs) & (m2 == 0.5), k2.astype(np.int64) - 2, NO_E)
    # RN(r) = x: r lies toward 0; RN(r) = 0: r has x's sign
    side_known = np.where(a == xs, -sgn, np.where(a == 0, sgn, 0))
    if xd_lo is None:  # x <= 0: r - RN(r)
        d_bounds = mpfr_d_bounds(r_lo, r_hi, fmt, prec)
    else:  # x > 0: (x - RN(r)) - x delta, x - RN(r) exact at prec + 64 bits
        def diff(rnm, dn, up, F):
            base = F(dn.sub)(xm, rnm)
            return F(dn.sub)(base, xd_hi), F(up.sub)(base, xd_lo)

        d_bounds = mpfr_diff_bounds(diff, fmt, prec)
    dec = decide(fmt, a, b, s_lo, s_hi, e_lo, e_hi, d_bounds, sign=sgn, E_known=E_known, side_known=side_known)
    mid = np.frompyfunc(lambda p, q: float((p + q) / 2), 2, 1)(r_lo, r_hi).astype(np.float64)
    rn[idx], d[idx], E[idx], r64[idx], ok[idx] = dec.rn, dec.d, dec.E, mid, dec.ok
