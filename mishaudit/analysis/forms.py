"""Candidate forms of mish and mish' for `synthesize`: FPCore expressions in x, each made for a region.

Every constant is a value of the working format W (written exactly), so a form computes what its
text says in W. With e = exp(x), n = e (e + 2), d = n + 2 = e^2 + 2e + 2, t = exp(-x):

  mish(x)  = x n / d = x e (1 - w),  w = e (e + 1) / d
           = x (1 - delta),          delta = 2t^2 / (1 + 2t + 2t^2)
  mish'(x) = e W / d^2,              W = 4(x + 1) + e (4x + 6) + 4e^2 + e^3
           = 1 + a (2x (1 + t) / D - 1),  a = 2t^2 / D, D = 1 + 2t + 2t^2
  and, as x -> -inf, mish(x) = x e (1 - e/2 + ...), mish'(x) = (x + 1) e (1 - e (2x + 1)/(2x + 2) + ...).

The forms (name: what it computes; the region it is made for):
  negzero (- 0): x so negative that RN is -0.      identity x / one 1: x large (mish, mish').
  expxlog: -exp(x + log(-x)) (mish'), -exp(x + log(-1 - x)) (mish'): the result subnormal in W,
    where the argument's rounding (relative |arg| u) stays below the subnormal quantum.
  scaled-k: s = exp(x + k), p = v s with v = x (mish) or x + 1 (mish'), times C = e^-k split into
    Ch + Cl (W values), the product's rounding error pl = fma(v, s, -p) restored and the first-order
    correction applied: x where e^x is subnormal in W but the result is not; x + k is exact for
    k = 2^j once |x| >= k/2 (both are multiples of ulp(x)).
  negcomp (mish): p + fma(-p, w, pl), p = x e, pl = fma(x, e, -p): x < 0 moderate.
  reduced-s: X e^r (1 - w) (mish') X e^r (1 + eps)) with X = v 2^k exact and e^r - 1 = expm1(r) as a
    double word (reduced_form): x < 0 where exp's own rounding is too much.
  tiny (mish): 3x/5 with 3/5 split, x scaled out of the subnormal range (tiny_form): |x| < 2^-(p+2).
  rational (mish'): e W / d^2 with W by fma (Horner in e).
  pos: fma(-x, delta, x) (mish), fma(a, 2x(1 + t)/D - 1, 1) (mish'): x > 0.
  poly[a,b]-n: fma(x, c, x P(s)) (mish: keeps mish(0) = 0 exact), c + P(s) (mish'), s = x - m with m
    the middle of [a, b] rounded (0 where [a, b] holds 0); c = RN_W(f(mid)) (mish: of tanh(softplus(mid))),
    P of degree n fitted to f/x - c (mish) or f - c (mish') in relative error of f on [a, b].
  root[h]-n (mish'): around x0 = -1.19243..., the root of mish', split into W values x0h + x0l:
    s1 = x - x0h (exact near x0, Sterbenz), s = s1 - x0l, mish' = s (q0 + s R(s)) with the leading
    product s1 q0h rounded once (root_form).
Fits: least squares at Chebyshev nodes with mpmath values, coefficients rounded to W one at a time
from the lowest degree, the rest refitted after each (constants tuned per format).

What a form achieves is never taken from this text: synthesize measures every candidate on every
input (analysis/synthesize.py) and keeps a form only where it is measured best.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import mpmath
import numpy as np

from mishaudit.formats import Format, round_fraction
from mishaudit.lang import fpcore as fc

SCALES = (8, 16, 32, 64)
WIDTHS = (2, 4, 8, 16)  # interval widths in eighths
ROOT_HALF_WIDTHS = (1 / 32, 1 / 8, 1 / 2)


def degrees(fmt: Format) -> tuple:
    """Polynomial degrees worth trying in a format of precision p."""
    return (3, 5) if fmt.p <= 8 else (3, 5, 7) if fmt.p <= 11 else (5, 7, 9, 11)


def lit(v, fmt: Format) -> str:
    """The FPCore literal of RN_W(v), exact."""
    return fc.format_number(Fraction(round_fraction(Fraction(v), fmt)))


def rnw(v, fmt: Format) -> float:
    return float(round_fraction(Fraction(v), fmt))


def _mish(t):
    t = mpmath.mpf(t)
    return t * mpmath.tanh(mpmath.log1p(mpmath.exp(t)))


def _grad(t):
    t = mpmath.mpf(t)
    s = mpmath.tanh(mpmath.log1p(mpmath.exp(t)))
    return s + t / (1 + mpmath.exp(-t)) * (1 - s * s)


SPECS = {"mish": _mish, "mish'": _grad}


@functools.lru_cache(maxsize=None)
def grad_root() -> mpmath.mpf:
    """The negative root of mish' (about -1.19243), to 100 bits (Newton from -1.19)."""
    with mpmath.workprec(110):
        r = mpmath.findroot(_grad, mpmath.mpf("-1.19"), tol=mpmath.mpf(2) ** -200)
        return +r


class Unfit(Exception):
    """A fit whose coefficients leave the format's range (a high degree on a narrow interval)."""


def fit(basis_x: np.ndarray, target: np.ndarray, scale: np.ndarray, deg: int, fmt: Format) -> list[float]:
    """W coefficients a0..a_deg of sum a_j s^j ~ target at the nodes s = basis_x, the residual
    weighted by 1/scale (module docstring: rounded one at a time, the rest refitted). The least
    squares are solved by lstsq() in plain IEEE arithmetic with correctly rounded sums (math.fsum), so
    the coefficients are the same bits on every machine (no BLAS, whose sums follow the CPU)."""
    rows = [[p / float(w) for p in _powers(float(v), deg)] for v, w in zip(basis_x, scale)]
    rhs = [float(t) / float(w) for t, w in zip(target, scale)]
    coef: list[float] = []
    for j in range(deg + 1):
        resid = [r - math.fsum(c * row[i] for i, c in enumerate(coef)) for r, row in zip(rhs, rows)]
        sol = lstsq([row[j:] for row in rows], resid)
        if not (math.isfinite(sol[0]) and abs(sol[0]) < fmt.max):
            raise Unfit
        coef.append(rnw(sol[0], fmt))
    return coef


def _powers(v: float, deg: int) -> list[float]:
    """1, v, v^2, ... v^deg by repeated products (IEEE operations: the same bits everywhere)."""
    out = [1.0]
    for _ in range(deg):
        out.append(out[-1] * v)
    return out


def lstsq(a: list[list[float]], b: list[float]) -> list[float]:
    """The least-squares solution of a c ~ b (m x n, m >= n, full rank): columns scaled to unit norm,
    modified Gram-Schmidt QR, back substitution; every sum by math.fsum."""
    m, n = len(a), len(a[0])
    cols = [[a[i][j] for i in range(m)] for j in range(n)]
    norms = [math.sqrt(math.fsum(v * v for v in c)) or 1.0 for c in cols]
    q = [[v / nj for v in c] for c, nj in zip(cols, norms)]
    r = [[0.0] * n for _ in range(n)]
    for j in range(n):
        for k in range(j):
            r[k][j] = math.fsum(u * v for u, v in zip(q[k], q[j]))
            q[j] = [v - r[k][j] * u for u, v in zip(q[k], q[j])]
        r[j][j] = math.sqrt(math.fsum(v * v for v in q[j]))
        if r[j][j] == 0:
            raise Unfit
        q[j] = [v / r[j][j] for v in q[j]]
    qb = [math.fsum(u * v for u, v in zip(qk, b)) for qk in q]
    x = [0.0] * n
    for j in range(n - 1, -1, -1):
        x[j] = (qb[j] - math.fsum(r[j][k] * x[k] for k in range(j + 1, n))) / r[j][j]
    return [xj / nj for xj, nj in zip(x, norms)]


def _nodes(a: float, b: float, n: int = 160) -> np.ndarray:
    """n Chebyshev nodes of [a, b] (cosines by mpmath: the same values on every machine)."""
    with mpmath.workprec(80):
        return np.array([float(mpmath.cos(mpmath.pi * (k + mpmath.mpf(0.5)) / n) * (b - a) / 2 + (a + b) / 2)
                         for k in range(n)])


def _horner(coef: list[float], fmt: Format, var: str = "x") -> str:
    e = lit(coef[-1], fmt)
    for cj in reversed(coef[:-1]):
        e = f"(fma {e} {var} {lit(cj, fmt)})"
    return e


def poly_form(spec: str, a: float, b: float, deg: int, fmt: Format) -> str:
    """The polynomial form on [a, b] in s = x - m, m = RN_W of the middle (0 when [a, b] holds 0; x - m is
    exact across the interval by Sterbenz when 0 < a or b < 0 and b/a <= 2 in magnitude, else rounded once)."""
    f = SPECS[spec]
    m = 0.0 if a <= 0 <= b else rnw((a + b) / 2, fmt)
    xs = _nodes(a, b)
    with mpmath.workprec(80):
        fx = [f(v) for v in xs]
        mid = mpmath.mpf((a + b) / 2)
        c = rnw(float(mpmath.tanh(mpmath.log1p(mpmath.exp(mid))) if spec == "mish" else f(mid)), fmt)
        if spec == "mish":  # x (c + P(s)) ~ f: P ~ f/x - c, weight |f/x|
            target = np.array([float(v / mpmath.mpf(t) - c) for v, t in zip(fx, xs)])
            scale = np.array([abs(float(v / mpmath.mpf(t))) for v, t in zip(fx, xs)])
        else:
            target = np.array([float(v - c) for v in fx])
            scale = np.abs(np.array([float(v) for v in fx]))
    coef = fit(xs - m, target, np.maximum(scale, 1e-300), deg, fmt)
    s_expr = "x" if m == 0 else f"(- x {lit(m, fmt)})"
    p = _horner(coef, fmt, "s")
    if spec == "mish":
        body = f"(fma x {lit(c, fmt)} (* x {p}))"
    else:
        body = f"(+ {lit(c, fmt)} {p})"
    return f"(let* ([s {s_expr}]) {body})"


def root_form(h: float, deg: int, fmt: Format) -> str:
    """mish' around its root x0 = x0h + x0l: with s1 = x - x0h (exact near x0, Sterbenz) and
    s = s1 - x0l, mish'(x) = s Q(s), Q(s) = q0 + s R(s), q0 = mish''(x0) = q0h + q0l, evaluated as
    fma(s1, q0h, fma(s, t, -x0l q0h)) with t = fma(s, R(s), q0l): the leading product s1 q0h rounds
    once, the rest are small terms; R of degree n fitted in relative error of mish' on |s| <= h."""
    with mpmath.workprec(110):
        x0 = grad_root()
        x0h = rnw(float(x0), fmt)
        x0l = rnw(float(x0 - mpmath.mpf(x0h)), fmt)
        q0 = mpmath.diff(_grad, x0)
        q0h = rnw(float(q0), fmt)
        q0l = rnw(float(q0 - mpmath.mpf(q0h)), fmt)
        s = _nodes(-h, h)
        big_q = [_grad(x0 + mpmath.mpf(v)) / mpmath.mpf(v) for v in s]
        target = np.array([float((qv - q0) / mpmath.mpf(v)) for qv, v in zip(big_q, s)])
        scale = np.array([float(abs(qv / mpmath.mpf(v))) for qv, v in zip(big_q, s)])
    coef = fit(s, target, scale, deg, fmt)
    return (f"(let* ([s1 (- x {lit(x0h, fmt)})] [s (- s1 {lit(x0l, fmt)})] "
            f"[t (fma s {_horner(coef, fmt, 's')} {lit(q0l, fmt)})]) "
            f"(fma s1 {lit(q0h, fmt)} (fma s t (- (* {lit(x0l, fmt)} {lit(q0h, fmt)})))))")


def _split(v, fmt: Format) -> tuple[str, str]:
    hi = rnw(float(v), fmt)
    return lit(hi, fmt), lit(float(v - mpmath.mpf(hi)), fmt)


def scaled_form(spec: str, k: int, fmt: Format) -> str:
    with mpmath.workprec(100):
        ch, cl = _split(mpmath.exp(-k), fmt)
    v = "x" if spec == "mish" else "(+ x 1)"
    # mish: 1 - e/2; mish': 1 - e (2x + 1)/(2x + 2), with e = s C
    corr = f"(* (* s {ch}) {lit(0.5, fmt)})" if spec == "mish" else f"(* (* s {ch}) (/ (fma 2 x 1) (fma 2 x 2)))"
    return (f"(let* ([s (exp (+ x {k}))] [v {v}] [p (* v s)] [pl (fma v s (- p))]) "
            f"(fma p {ch} (fma pl {ch} (* p (- {cl} (* {ch} {corr}))))))")


def reduced_form(spec: str, scale: int, fmt: Format) -> str | None:
    """mish(x) = X e^r (1 - w) (mish': X e^r (1 + eps)) with X = v 2^k exact (v = x, or x + 1 for
    mish'), k = RN(x / ln 2) by the magic number M = 1.5 2^(p-1) (valid for |x / ln 2| < 2^(p-2)),
    r = x - k ln 2 with ln 2 = L1 + L2 (L1 to p - 8 bits: k L1 and r1 = x - k L1 exact for |k| < 2^8),
    r = RN(r1 + k L2) and its residual rr (Fast2Sum); em = expm1(r) carries relative error 2^-p |em| with
    |em| <= 0.42, a third of exp's. X e^r = hi + lo as a double word (hi = fma(X, em, X), lo the fma's
    residual, exact by Sterbenz as X and hi are within a factor 2, plus X rr (1 + em)), and
    y = hi + fma(-hi, w, lo) (mish' + fma(hi, eps, lo)) rounds once: the error is that of em (at most
    2^-(p+1.5) relative) and half an ulp. `scale` > 0 keeps X normal where 2^k is not: X = v 2^(k + scale),
    the result is multiplied by 2^-scale (a second rounding, into the subnormal range only). None when
    the format is too narrow for the reduction."""
    if fmt.p < 11:
        return None
    with mpmath.workprec(100):
        ln2 = mpmath.log(2)
        l1 = Fraction(int(mpmath.floor(ln2 * 2 ** (fmt.p - 8))), 2 ** (fmt.p - 8))
        nl2 = -rnw(float(ln2 - mpmath.mpf(l1.numerator) / l1.denominator), fmt)
        inv = rnw(float(1 / ln2), fmt)
    magic = lit(Fraction(3, 2) * 2 ** (fmt.p - 1), fmt)
    v = "x" if spec == "mish" else "(+ x 1)"
    down = f"(* e {lit(Fraction(1, 2**scale), fmt)})" if scale else "e"
    if spec == "mish":  # mish = x e^x (1 - w), w = e (e + 1) / (e^2 + 2e + 2)
        corr = "[w (/ (* e0 (+ e0 1)) (fma e0 (+ e0 2) 2))]"
        y = "(+ hi (fma (- hi) w lo))"
    else:  # mish' = (x + 1) e^x (1 + eps), eps from the module docstring's expansion
        corr = ("[d (fma e0 (+ e0 2) 2)] "
                "[num (fma e0 (fma e0 (fma (- -1 x) e0 (fma -4 x -3)) (fma -8 x -4)) (fma -4 x -2))] "
                "[eps (/ (* e0 num) (* (+ x 1) (* d d)))]")
        y = "(+ hi (fma hi eps lo))"
    body = (f"(let* ([t (* x {lit(inv, fmt)})] [k (- (+ t {magic}) {magic})] [r1 (- x (* k {lit(l1, fmt)}))] "
            f"[rl (* k {lit(nl2, fmt)})] [r (+ r1 rl)] [rr (- rl (- r r1))] [em (expm1 r)] "
            f"[q (exp2 (+ k {scale}))] [X (* {v} q)] [hi (fma X em X)] "
            f"[lo (fma (* X rr) (+ em 1) (fma X em (- X hi)))] [e (fma q em q)] [e0 {down}] {corr}) ")
    return body + (f"(* {y} {lit(Fraction(1, 2**scale), fmt)}))" if scale else f"{y})")


def tiny_form(scale: int, fmt: Format) -> str:
    """mish(x) = 3x/5 (1 + 8x/15 + ...) for |x| < 2^-(p+2): y = fma(X, ch, X cl) 2^-scale with X = x 2^scale
    (exact) and 3/5 = ch + cl: one rounding of X ch plus the small X cl; ch = RD_W(3/5) so that cl > 0
    keeps the sign of a zero (fma(-0, ch, -0) = -0); the scale keeps X ch and X cl out of the subnormal
    range, the last product rounds once more (into the subnormal range only)."""
    ch = Fraction(3, 5)
    hi = Fraction(round_fraction(ch, fmt))
    if hi > ch:  # the format value below 3/5
        hi = Fraction(float(np.nextafter(np.array(float(hi), fmt.dtype), fmt.dtype.type(0))))
    cl = lit(ch - hi, fmt)
    up, down = lit(Fraction(2**scale), fmt), lit(Fraction(1, 2**scale), fmt)
    return f"(let* ([X (* x {up})]) (* (fma X {lit(hi, fmt)} (* X {cl})) {down}))"


MISH_FIXED = {
    "negzero": "(- 0)",
    "identity": "x",
    "expxlog": "(- (exp (+ x (log (- x)))))",
    "negcomp": ("(let* ([e (exp x)] [p (* x e)] [pl (fma x e (- p))] "
                "[w (/ (* e (+ e 1)) (+ (* e (+ e 2)) 2))]) (+ p (fma (- p) w pl)))"),
    "pos": ("(let* ([t (exp (- x))] [delta (/ (* 2 (* t t)) (+ 1 (* 2 (* t (+ 1 t)))))]) "
            "(fma (- x) delta x))"),
}
GRAD_FIXED = {
    "negzero": "(- 0)",
    "one": "(if (== x x) 1 x)",  # NaN stays NaN
    "expxlog": "(- (exp (+ x (log (- -1 x)))))",
    "rational": ("(let* ([e (exp x)] [w (fma e (fma e (+ e 4) (fma 4 x 6)) (* 4 (+ x 1)))] "
                 "[d (fma e (+ e 2) 2)]) (/ (* e w) (* d d)))"),
    "pos": ("(let* ([t (exp (- x))] [dd (fma (* 2 t) (+ 1 t) 1)] [a (/ (* 2 (* t t)) dd)]) "
            "(fma a (- (/ (* (* 2 x) (+ 1 t)) dd) 1) 1))"),
}


def intervals(spec: str) -> list[tuple[float, float]]:
    """Intervals for the polynomial forms: widths 1/4 .. 2, each half-overlapping the next, over
    [-3, 3] (mish) or [-4, 4] (mish')."""
    top = 24 if spec == "mish" else 32
    return [(lo / 8, (lo + w) / 8) for w in WIDTHS for lo in range(-top, top - w + 1, w // 2)]


def derived_forms(spec: str, fmt: Format) -> dict[str, str]:
    """name -> FPCore body (in x) of every derived form of `spec` ("mish" or "mish'"), constants
    rounded to the working format `fmt`."""
    out = dict(MISH_FIXED if spec == "mish" else GRAD_FIXED)
    for k in SCALES:
        out[f"scaled-{k}"] = scaled_form(spec, k, fmt)
    for m in (0, 2 * fmt.p + 16):
        form = reduced_form(spec, m, fmt)
        if form is not None:
            out[f"reduced-{m}"] = form
    if spec == "mish" and fmt.emax >= 2 * fmt.p + 16:
        out["tiny"] = tiny_form(2 * fmt.p + 16, fmt)
    made = [(f"poly[{a:g},{b:g}]-{n}", poly_form, (spec, a, b, n, fmt))
            for a, b in intervals(spec) for n in degrees(fmt)]
    if spec == "mish'":
        made += [(f"root[{h:g}]-{n}", root_form, (h, n, fmt)) for h in ROOT_HALF_WIDTHS for n in degrees(fmt)]
    for name, make, args in made:
        try:
            out[name] = make(*args)
        except Unfit:
            pass
    return out
