"""Is RN(r) certain from an enclosure of r? The one decision every reference path makes.

Each path (fastref.py, gradref.py: binary64 with a proven error bound; mpfrref.py, specref.py:
MPFR interval arithmetic) encloses the exact value r of its input and hands `decide` what it
knows, per input, as numpy arrays:
  a, b          RN(lo), RN(hi) in the format, lo <= r <= hi (float64; the sign of a zero is ignored)
  s_lo, s_hi    the signs of lo and hi (-1, 0, 1)
  e_lo, e_hi    floor(log2 |lo|), floor(log2 |hi|) (ignored where that end is 0)
  d_bounds      a function (rn, E) -> (dlo, dhi, dc[, side]): binary64 bounds of
                d = (r - rn)/ulp(r), ulp(r) = 2^(E - p + 1), rounded outward, and the estimate dc
                within them that the path reports (each path forms d its own way, e.g. without
                cancellation as (x - rn) - x*delta where r is within 2^-983 ulp of x); `side`
                (+1: lower bound > 0, -1: upper bound < 0, 0: neither), where the bounds were exact
                before their binary64 rounding (MPFR), else the signs of dlo and dhi
and facts it knows from mathematics rather than from the enclosure:
  sign          the sign of r where known (mish(x) has the sign of x), else 0
  E_known       the binade of r where known (|mish(x)| < |x| = 2^k: binade k - 1), else None
  side_known    the side of r around RN(r) where known (RN(r) = x: toward 0; RN(r) = 0: r's sign)
  exact         r is the format value a itself (d = 0), e.g. x = 0
  unsettled     where True, an enclosure of d narrower than 2^-60 ulp that still holds 0 is read
                as d = 0 (specref.py's documented approximation at 1024 bits and more; at the
                resolution of every figure, measure/metrics.py's ULP_RES = 2^-60 ulp).

RN(r) is certain, and the input decided, when
  (1) r has one sign: s_lo = s_hi != 0, or the sign is known (so RN(r) = 0 takes r's sign: -0 below 0);
  (2) both ends round alike: a == b (finite);
  (3) the binade is certain: max(e_lo, emin) == max(e_hi, emin) (a zero end counts as emin), or known,
      so ulp(r) is;
  (4) d's enclosure lies strictly inside (-1/2, 1/2) around rn (no rounding boundary within reach)
      and is resolved: dhi - dlo <= 2 d_res, by default D_RES = 2^-20 ulp (figures exact to 1e-6 ulp);
      a path whose enclosure is wider by its own bound passes d_res itself, at most 1e-6 ulp
      (elemref.py: 1e-6, as the host libm's bound 2^-44 leaves a binary32 d 2^-19 (1 + 2^-8) ulp wide);
  (5) the side of r around rn is certain: dlo > 0, dhi < 0, known, or r exact (or unsettled, above).
Then rn = a (a zero with r's sign), E = the binade, and d = dc; where dc is 0 or on the wrong side
(only a fact settles the side, or |d| is below binary64's range), d takes the certain side with a
magnitude of at least TINY_D = 2^-1000 (far below ULP_RES: such an error reads as 0, only the side
is used).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mishaudit.formats import Format, round_to

D_RES = 2.0**-20  # d must be known to this many ulps (every figure exact to 1e-6 ulp)
TINY_D = 2.0**-1000  # the magnitude of a d known only by its side (reads as 0: measure/metrics.py)
UNSETTLED_WIDTH = 2.0**-60
NO_E = np.iinfo(np.int64).min  # E_known's "not known"


@dataclass
class Decision:
    rn: np.ndarray  # RN(r), float64 (a zero carries r's sign)
    d: np.ndarray  # (r - rn)/ulp(r)
    E: np.ndarray  # int64: max(floor(log2|r|), emin)
    ok: np.ndarray  # bool: RN(r), E and the side of d are certain


def decide(fmt: Format, a, b, s_lo, s_hi, e_lo, e_hi, d_bounds, *, sign=None, E_known=None, side_known=None,
           exact=None, unsettled=None, d_res: float = D_RES) -> Decision:
    """The decision of the module docstring, element by element; `d_res` is the resolution of (4)
    (D_RES unless the caller's enclosure needs a coarser one, never above 1e-6 ulp)."""
    if not d_res <= 1e-6:
        raise ValueError(f"d_res {d_res!r} is coarser than the 1e-6 ulp every figure is exact to")
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    n = len(a)
    s_lo = np.asarray(s_lo, dtype=np.int64)
    s_hi = np.asarray(s_hi, dtype=np.int64)
    known_sign = np.zeros(n, dtype=np.int64) if sign is None else np.asarray(sign, dtype=np.int64)
    exact = np.zeros(n, dtype=bool) if exact is None else np.asarray(exact, dtype=bool)
    with np.errstate(all="ignore"):
        # (1) the sign of r
        enc_sign = np.where((s_lo == s_hi) & (s_lo != 0), s_lo, 0)
        sgn = np.where(known_sign != 0, known_sign, enc_sign)
        one_sign = (sgn != 0) | (exact & (a == 0))
        # (2) both ends round alike
        same = (a == b) & np.isfinite(a) & one_sign
        # (3) the binade
        lo_E = np.where(s_lo == 0, fmt.emin, np.maximum(np.asarray(e_lo, dtype=np.int64), fmt.emin))
        hi_E = np.where(s_hi == 0, fmt.emin, np.maximum(np.asarray(e_hi, dtype=np.int64), fmt.emin))
        binade = lo_E == hi_E
        E = np.where(binade, lo_E, np.minimum(lo_E, hi_E))
        if E_known is not None:  # NO_E where not known
            Ek = np.asarray(E_known, dtype=np.int64)
            has = Ek != NO_E
            E = np.where(has, np.maximum(Ek, fmt.emin), E)
            binade = binade | has
        rn = np.where(a == 0, np.where(sgn < 0, -0.0, np.where(sgn > 0, 0.0, a)), a)  # an exact 0 keeps a's sign
        # (4) d inside (-1/2, 1/2), resolved
        got = d_bounds(np.where(np.isfinite(rn), rn, 0.0), E)
        dlo, dhi, mid = (np.asarray(v, dtype=np.float64) for v in got[:3])
        inside = (dlo > -0.5) & (dhi < 0.5) & (dlo <= dhi)
        resolved = (dhi - dlo) <= 2 * d_res
        # (5) the side of r around rn
        side_fact = np.zeros(n, dtype=np.int64) if side_known is None else np.asarray(side_known, dtype=np.int64)
        # the side from the bounds (or, where d's bounds underflow binary64, from the path's exact signs)
        bound_side = np.where(dlo > 0, 1, np.where(dhi < 0, -1, 0)) if len(got) < 4 else np.asarray(got[3])
        by_bounds = bound_side != 0
        loose = np.zeros(n, dtype=bool)
        if unsettled is not None:
            loose = np.asarray(unsettled, dtype=bool) & ~by_bounds & (side_fact == 0) & ~exact & \
                (dhi - dlo < UNSETTLED_WIDTH)
        zero_d = exact | loose
        side = by_bounds | (side_fact != 0) | zero_d
        ok = same & binade & inside & resolved & side
        d_side = np.where(by_bounds, bound_side, side_fact)
        right = (d_side != 0) & (np.sign(mid) == d_side)  # a nonzero estimate on the certain side stays
        d = np.where(zero_d, 0.0, np.where(right | (d_side == 0), mid, np.copysign(np.maximum(np.abs(mid), TINY_D), d_side)))
    return Decision(rn, d, E.astype(np.int64), ok)


def outward(lo: np.ndarray, hi: np.ndarray):
    """[lo, hi] widened by one binary64 step each way (covers one rounding of each bound)."""
    return np.nextafter(lo, -np.inf), np.nextafter(hi, np.inf)


def float_ends(lo: np.ndarray, hi: np.ndarray, fmt: Format):
    """(a, b, s_lo, s_hi, e_lo, e_hi) of decide() for binary64 bounds lo <= hi."""
    with np.errstate(all="ignore"):
        _, el = np.frexp(lo)
        _, eh = np.frexp(hi)
        return (round_to(lo, fmt), round_to(hi, fmt), np.sign(lo).astype(np.int64), np.sign(hi).astype(np.int64),
                el.astype(np.int64) - 1, eh.astype(np.int64) - 1)


def mpfr_ends(lo, hi, fmt: Format):
    """(a, b, s_lo, s_hi, e_lo, e_hi) of decide() for MPFR bounds lo <= hi (object arrays)."""
    import gmpy2

    from mishaudit.eval.libm import format_context

    F = lambda f: np.frompyfunc(f, 1, 1)  # noqa: E731
    with np.errstate(all="ignore"):
        plus = F(format_context(fmt).plus)
        a = plus(lo).astype(np.float64)
        b = plus(hi).astype(np.float64)
        fin = F(gmpy2.is_finite)(lo).astype(bool) & F(gmpy2.is_finite)(hi).astype(bool)
        a = np.where(fin, a, np.nan)
        s_lo = F(gmpy2.sign)(lo).astype(np.int64)
        s_hi = F(gmpy2.sign)(hi).astype(np.int64)
        one = gmpy2.mpfr(1)
        getexp = F(gmpy2.get_exp)
        e_lo = getexp(np.where(s_lo == 0, one, lo)).astype(np.int64) - 1  # MPFR: |v| in [2^(e-1), 2^e)
        e_hi = getexp(np.where(s_hi == 0, one, hi)).astype(np.int64) - 1
    return a, b, s_lo, s_hi, e_lo, e_hi


def mpfr_d_bounds(lo, hi, fmt: Format, prec: int):
    """d_bounds for MPFR bounds of r: ((lo - rn), (hi - rn)) 2^(p-1-E), directed, then binary64 outward."""
    return mpfr_diff_bounds(lambda rnm, dn, up, F: (F(dn.sub)(lo, rnm), F(up.sub)(hi, rnm)), fmt, prec)


def mpfr_diff_bounds(diff, fmt: Format, prec: int):
    """d_bounds from `diff(rn as MPFR, down, up, F) -> (lower, upper)` bounds of r - rn in MPFR."""
    import gmpy2

    from mishaudit.eval.libm import mpfr_array
    from mishaudit.reference.enclose import mpfr_contexts

    def bounds(rn, E):
        dn, up = mpfr_contexts(prec + 64)
        F = lambda f, k=2: np.frompyfunc(f, k, 1)  # noqa: E731
        sh = np.array([int(fmt.p - 1 - e) for e in E], dtype=object)
        lo_m, hi_m = diff(mpfr_array(rn), dn, up, F)
        sign = np.frompyfunc(gmpy2.sign, 1, 1)
        side = np.where(sign(lo_m).astype(np.int64) > 0, 1, np.where(sign(hi_m).astype(np.int64) < 0, -1, 0))
        with np.errstate(all="ignore"):
            dlo = F(dn.mul_2exp)(lo_m, sh).astype(np.float64)
            dhi = F(up.mul_2exp)(hi_m, sh).astype(np.float64)
        dlo, dhi = outward(dlo, dhi)  # the binary64 roundings of the ends
        return dlo, dhi, (dlo + dhi) / 2, side

    return bounds
