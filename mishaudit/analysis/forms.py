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
  rational (mish'): e W / d^2 with W by fma (Horner in e).
  pos: fma(-x, delta, x) (mish), fma(a, 2x(1 + t)/D - 1, 1) (mish'): x > 0.
  poly[a,b]-n: fma(x, c, x P(x)) (mish: keeps mish(0) = 0 exact), c + P(x) (mish'); c = RN_W(f(m)),
    m the middle of [a, b], P of degree n fitted to f - c in relative error on [a, b].
  root[a,b]-n (mish'): s = (x - x0h) - x0l, s Q(s), x0 = -1.19243... the root of mish' split into
    W values x0h + x0l (x - x0h is exact near x0, Sterbenz), Q of degree n fitted to mish'(x0 + s)/s.
Fits: least squares at Chebyshev nodes with mpmath values, coefficients rounded to W one at a time
from the lowest degree, the rest refitted after each (constants tuned per format).

What a form achieves is never taken from this text: synthesize measures every candidate on every
input (analysis/synthesize.py) and keeps a form only where it is measured best.
"""

from __future__ import annotations

import functools
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
    """The negative root of mish' (about -1.19243), to 100 bits."""
    with mpmath.workprec(100):
        return mpmath.findroot(_grad, mpmath.mpf("-1.19"))


def fit(basis_x: np.ndarray, target: np.ndarray, scale: np.ndarray, deg: int, fmt: Format) -> list[float]:
    """W coefficients a0..a_deg of sum a_j s^j ~ target at the nodes s = basis_x, the residual
    weighted by 1/scale (module docstring: rounded one at a time, the rest refitted)."""
    V = np.vander(basis_x, deg + 1, increasing=True) / scale[:, None]
    rhs = target / scale
    coef: list[float] = []
    for j in range(deg + 1):
        resid = rhs - (V[:, :j] @ np.array(coef) if j else 0.0)
        sol = np.linalg.lstsq(V[:, j:], resid, rcond=None)[0]
        coef.append(rnw(float(sol[0]), fmt))
    return coef


def _nodes(a: float, b: float, n: int = 160) -> np.ndarray:
    k = np.arange(n)
    return np.cos(np.pi * (k + 0.5) / n) * (b - a) / 2 + (a + b) / 2


def _horner(coef: list[float], fmt: Format, var: str = "x") -> str:
    e = lit(coef[-1], fmt)
    for cj in reversed(coef[:-1]):
        e = f"(fma {e} {var} {lit(cj, fmt)})"
    return e


def poly_form(spec: str, a: float, b: float, deg: int, fmt: Format) -> str:
    f = SPECS[spec]
    xs = _nodes(a, b)
    with mpmath.workprec(80):
        fx = [f(v) for v in xs]
        c = rnw(float(f((a + b) / 2)), fmt)
        if spec == "mish":  # x (c + P(x)) ~ f: P ~ f/x - c, weight |f|/|x|
            target = np.array([float(v / mpmath.mpf(t) - c) for v, t in zip(fx, xs)])
            scale = np.array([abs(float(v / mpmath.mpf(t))) for v, t in zip(fx, xs)])
        else:
            target = np.array([float(v - c) for v in fx])
            scale = np.abs(np.array([float(v) for v in fx]))
    coef = fit(xs, target, np.maximum(scale, 1e-300), deg, fmt)
    if spec == "mish":
        return f"(fma x {lit(c, fmt)} (* x {_horner(coef, fmt)}))"
    return f"(+ {lit(c, fmt)} {_horner(coef, fmt)})"


def root_form(h: float, deg: int, fmt: Format) -> str:
    with mpmath.workprec(100):
        x0 = grad_root()
        x0h = rnw(float(x0), fmt)
        x0l = rnw(float(x0 - mpmath.mpf(x0h)), fmt)
        s = _nodes(-h, h)
        vals = [_grad(x0 + mpmath.mpf(v)) / mpmath.mpf(v) for v in s]
        target = np.array([float(v) for v in vals])
    coef = fit(s, target, np.abs(target), deg, fmt)
    return f"(let* ([s (- (- x {lit(x0h, fmt)}) {lit(x0l, fmt)})]) (* s {_horner(coef, fmt, 's')}))"


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
    "one": "1",
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
    for a, b in intervals(spec):
        for n in degrees(fmt):
            out[f"poly[{a:g},{b:g}]-{n}"] = poly_form(spec, a, b, n, fmt)
    if spec == "mish'":
        for h in ROOT_HALF_WIDTHS:
            for n in degrees(fmt):
                out[f"root[{h:g}]-{n}"] = root_form(h, n, fmt)
    return out
