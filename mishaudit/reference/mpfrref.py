"""A vectorised reference in MPFR interval arithmetic, for binary64 inputs (and any format).

mish(x) is enclosed with directed rounding at P = p + 48 bits (gmpy2 over numpy object arrays;
each bound is one correctly rounded MPFR operation in the outward direction, so the enclosure
holds mish(x) by MPFR's correct rounding, with no error analysis to trust):
  x <= 0: e = exp(x), n = e (e + 2), r = x * (n / (n + 2))   (n / (n + 2) increases with n)
  x > 0:  t = exp(-x), delta = 2 t^2 / (1 + 2 t + 2 t^2)     (increasing in t), r = x - x delta
For x > 0, r - RN(r) is enclosed as (x - RN(r)) - x delta, with x - RN(r) exact, so d keeps its
digits when x delta is far below 2^-P x (as in ziv.py).
An input is decided when both ends of r's enclosure round to the same format value and lie in
the same binade, and the side of r around RN(r) is certain (d's enclosure excludes 0, or RN(r)
is 0 or x, whose side is known: |mish(x)| < |x|, mish(x) has the sign of x). The rest go to the
mpmath Ziv loop (ziv.py). Each output is as reference_point's: rn, d = (r - RN(r))/ulp(r),
E = max(floor(log2|r|), emin), r64 = r rounded to binary64.
"""

from __future__ import annotations

import numpy as np

from mishaudit.eval.libm import format_context, mpfr_array
from mishaudit.formats import Format
from mishaudit.reference.enclose import mpfr_contexts

EXTRA_BITS = 64
TINY_D = 2.0**-1000


def mpfr_reference(x: np.ndarray, fmt: Format):
    """(rn, d, E, r64, decided) for finite inputs x (binary64 values of fmt), vectorised: a pass at
    p + 64 bits, then one at p + 64 + log2(1/|x|) bits for the undecided (for tiny x, where 3x/5
    is a format value, d is about 0.53 |x| ulps and takes that many more bits to place)."""
    x = np.asarray(x, dtype=np.float64)
    out = _pass(x, fmt, np.full(len(x), fmt.p + EXTRA_BITS))
    rest = np.flatnonzero(~out[4])
    if len(rest):
        with np.errstate(divide="ignore"):
            extra = np.maximum(0, -np.floor(np.log2(np.abs(x[rest])))).astype(np.int64)
        prec = fmt.p + EXTRA_BITS + 64 + (extra + 63) // 64 * 64  # few distinct precisions
        again = _pass(x[rest], fmt, prec)
        for a, b in zip(out, again):
            a[rest] = b
    return out


def _pass(x: np.ndarray, fmt: Format, precs: np.ndarray):
    """mpfr_reference's arrays for inputs x, each group of equal precision in one vectorised pass."""
    n = len(x)
    out = (np.zeros(n), np.zeros(n), np.full(n, fmt.emin, dtype=np.int64), np.zeros(n), np.zeros(n, dtype=bool))
    for prec in np.unique(precs):
        sel = np.flatnonzero(precs == prec)
        part = _one_pass(x[sel], fmt, int(min(prec, 4096)))
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
    plus = np.frompyfunc(format_context(fmt).plus, 1, 1)
    a = plus(r_lo).astype(np.float64)
    b = plus(r_hi).astype(np.float64)
    xs = x[idx]
    a = np.where(a == 0, np.copysign(0.0, xs), a)  # mish(x) has the sign of x
    b = np.where(b == 0, np.copysign(0.0, xs), b)
    same = a == b
    getexp = np.frompyfunc(gmpy2.get_exp, 1, 1)
    is_zero = np.frompyfunc(gmpy2.is_zero, 1, 1)
    lo_zero = is_zero(r_lo).astype(bool) | is_zero(r_hi).astype(bool)
    e_lo = np.where(lo_zero, fmt.emin, getexp(r_lo).astype(np.int64) - 1)
    e_hi = np.where(lo_zero, fmt.emin, getexp(r_hi).astype(np.int64) - 1)
    Eu = np.maximum(np.minimum(e_lo, e_hi), fmt.emin)
    binade = (np.maximum(e_lo, fmt.emin) == np.maximum(e_hi, fmt.emin)) & ~lo_zero
    binade |= lo_zero & (np.abs(a) < fmt.tiny)  # a zero end: r is subnormal-sized, binade emin
    m2, k2 = np.frexp(np.abs(xs))
    at_pow2 = (a == xs) & (m2 == 0.5) & (e_hi == k2 - 1)  # r < x = 2^k: the binade is k - 1
    Eu = np.where(at_pow2, np.maximum(k2 - 2, fmt.emin), Eu)
    binade |= at_pow2
    sh = np.array([int(fmt.p - 1 - e) for e in Eu], dtype=object)  # d = (r - RN) 2^(p-1-E)
    dn, up = mpfr_contexts(prec + 64)
    F = lambda f, k=2: np.frompyfunc(f, k, 1)  # noqa: E731
    rnm = mpfr_array(a)
    if xd_lo is None:  # x <= 0: r - RN(r)
        dlo, dhi = F(dn.sub)(r_lo, rnm), F(up.sub)(r_hi, rnm)
    else:  # x > 0: (x - RN(r)) - x delta, x - RN(r) exact at prec + 64 bits
        diff = F(dn.sub)(xm, rnm)
        dlo, dhi = F(dn.sub)(diff, xd_hi), F(up.sub)(diff, xd_lo)
    dlo = F(dn.mul_2exp)(dlo, sh).astype(np.float64)
    dhi = F(up.mul_2exp)(dhi, sh).astype(np.float64)
    dlo, dhi = np.nextafter(dlo, -np.inf), np.nextafter(dhi, np.inf)  # binary64 roundings of the ends
    side_known = (a == 0) | (a == xs)
    side = (dlo > 0) | (dhi < 0) | side_known
    good = same & binade & side & (np.abs(dlo) <= 0.5) & (np.abs(dhi) <= 0.5)
    dd = (dlo + dhi) / 2
    # RN(r) = x: r lies toward 0 (|mish(x)| < |x|); RN(r) = 0: r has x's sign; keep the side
    dd = np.where(side_known & ~((dlo > 0) | (dhi < 0)),
                  np.where(a == xs, -np.sign(xs), np.sign(xs)) * np.maximum(np.abs(dd), TINY_D), dd)
    mid = np.frompyfunc(lambda p, q: float((p + q) / 2), 2, 1)(r_lo, r_hi).astype(np.float64)
    rn[idx], d[idx], E[idx], r64[idx], ok[idx] = a, dd, Eu, mid, good
