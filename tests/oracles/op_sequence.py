"""An independent evaluator of an operation sequence in a small binary format, and its error
against the exact Mish, written from the definitions (DESIGN.md) with mpmath and Python integers;
nothing here calls mishaudit or numpy's rounding.

Values are Python floats holding exact values of their format (binary16, bfloat16 and binary32
values are all binary64 values); a format is `Fmt(p, emin, emax)`, p counting the hidden bit.

Rounding (`rn_dyadic`): the value (-1)^neg * man * 2^exp, man >= 0 an integer, to the nearest
value of the format, ties to the even significand, subnormals below 2^emin, +-inf where the
rounded magnitude exceeds the largest finite value (2 - 2^(1-p)) 2^emax, and a zero of the
value's sign where it rounds to 0. Every value this module rounds is such a dyadic: an mpmath
mpf is man * 2^exp, and a sum or product of two floats is one.

Exact operations (`exact_op`): + and * of two format values are formed exactly with integers and
rounded once; an elementary function is evaluated with mpmath at P bits (P = 64, 128, ...),
taken to lie within a relative 2^-(P - GUARD) of the real value, and rounded at both ends of that
interval: where both ends round to the same value (same sign, same binade for the ulp) that value
is RN of the real value (RN is monotone). GUARD = 12 is generous: mpmath's exp, log, log1p and
tanh are accurate to about 1 ulp of the working precision, and the composite functions chain at
most 4 such steps whose relative errors are not amplified (d log1p(e)/de * e / log1p(e) <= 1,
tanh's relative condition 2s/sinh(2s) <= 1, a product adds one rounding). The loop ends: for a
format value a != 0, exp(a), log(a) (a != 1), log1p(a), tanh(a), softplus(a) = log1p(exp(a)) and
mish(a) are transcendental (Lindemann-Weierstrass; mish(a) and softplus(a) are algebraic
functions of e^a), so never a rounding boundary (a dyadic rational); the exact cases exp(0) = 1,
log(1) = 0, log1p(+-0) = +-0, tanh(+-0) = +-0, mish(+-0) = +-0 are answered exactly, and
infinite or NaN operands by IEEE 754's rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mpmath

GUARD = 12
START_PREC = 64
MAX_PREC = 1 << 14


@dataclass(frozen=True)
class Fmt:
    name: str
    p: int
    emin: int
    emax: int
    width: int  # storage bits

    @property
    def max_finite(self) -> float:
        return math.ldexp((1 << self.p) - 1, self.emax - self.p + 1)


BINARY16 = Fmt("binary16", 11, -14, 15, 16)
BFLOAT16 = Fmt("bfloat16", 8, -126, 127, 16)
BINARY32 = Fmt("binary32", 24, -126, 127, 32)
FORMATS = {f.name: f for f in (BINARY16, BFLOAT16, BINARY32)}


# ------------------------------------------------------------------ encoding


def decode(bits: int, fmt: Fmt) -> float:
    """The value of a bit pattern of fmt (IEEE interchange layout: sign, exponent, fraction)."""
    frac_bits = fmt.p - 1
    exp_bits = fmt.width - 1 - frac_bits
    sign = -1.0 if bits >> (fmt.width - 1) else 1.0
    e = (bits >> frac_bits) & ((1 << exp_bits) - 1)
    f = bits & ((1 << frac_bits) - 1)
    if e == (1 << exp_bits) - 1:
        return math.nan if f else sign * math.inf
    if e == 0:
        return sign * math.ldexp(f, fmt.emin - frac_bits)
    return sign * math.ldexp((1 << frac_bits) | f, e - (fmt.emax) - frac_bits)


def finite_values(fmt: Fmt) -> list:
    """Every finite value of a 16-bit format, in bit-pattern order (+0 and -0 both)."""
    assert fmt.width == 16
    out = [decode(b, fmt) for b in range(1 << 16)]
    return [v for v in out if math.isfinite(v)]


# ------------------------------------------------------------------ rounding


def _signed(neg: bool, v: float) -> float:
    return -v if neg else v


def _value(neg: bool, n: int, q: int, fmt: Fmt) -> float:
    """(-1)^neg * n * 2^q for the rounded integer significand n at the quantum exponent q: zero, a
    format value, or inf where the rounding carried out of the top binade."""
    if n == 0:
        return _signed(neg, 0.0)
    if q == fmt.emax - fmt.p + 1 and n >= 1 << fmt.p:  # carried out of the top binade
        return _signed(neg, math.inf)
    return _signed(neg, math.ldexp(n, q))


def rn_dyadic(neg: bool, man: int, exp: int, fmt: Fmt) -> float:
    """RN_fmt((-1)^neg * man * 2^exp), man >= 0 (module docstring)."""
    if man == 0:
        return _signed(neg, 0.0)
    e = exp + man.bit_length() - 1  # floor(log2 |v|), exact
    if e < fmt.emin - fmt.p - 1:  # |v| < 2^(emin - p): below half the smallest subnormal
        return _signed(neg, 0.0)
    if e > fmt.emax:  # |v| >= 2^(emax + 1): beyond the overflow threshold
        return _signed(neg, math.inf)
    q = max(e, fmt.emin) - fmt.p + 1  # the exponent of ulp at |v|
    s = q - exp
    if s <= 0:
        n = man << -s  # a multiple of the quantum: exact
    else:
        n = man >> s
        r = man - (n << s)
        half = 1 << (s - 1)
        if r > half or (r == half and n & 1):
            n += 1
    return _value(neg, n, q, fmt)


def rn_fraction(num: int, den: int, fmt: Fmt) -> float:
    """RN_fmt(num / den) for any integers (den != 0), by exact integer division: the general
    rounding the dyadic one is checked against."""
    if den < 0:
        num, den = -num, -den
    neg = num < 0
    num = abs(num)
    if num == 0:
        return _signed(neg, 0.0)
    e = num.bit_length() - den.bit_length()
    if (num << max(-e, 0)) < (den << max(e, 0)):
        e -= 1  # now 2^e <= num/den < 2^(e+1)
    if e > fmt.emax:
        return _signed(neg, math.inf)
    q = max(e, fmt.emin) - fmt.p + 1
    big_n = num << max(-q, 0)
    big_d = den << max(q, 0)
    n, r = divmod(big_n, big_d)
    if 2 * r > big_d or (2 * r == big_d and n & 1):
        n += 1
    return _value(neg, n, q, fmt)


def rn_float(x: float, fmt: Fmt) -> float:
    """RN_fmt of a finite binary64 value (exact: a float is a dyadic)."""
    if x == 0:
        return x
    num, den = abs(x).as_integer_ratio()
    return rn_dyadic(x < 0, num, -(den.bit_length() - 1), fmt)


def _dyadic(x: float) -> tuple:
    num, den = abs(x).as_integer_ratio()
    return x < 0 or (x == 0 and math.copysign(1, x) < 0), num, -(den.bit_length() - 1)


def exact_add(a: float, b: float, fmt: Fmt) -> float:
    if not (math.isfinite(a) and math.isfinite(b)):
        return a + b  # IEEE: inf + finite = inf, inf - inf = NaN, NaN propagates
    if a == 0 and b == 0:
        return a + b  # +0 unless both -0 (round to nearest)
    na, ma, ea = _dyadic(a)
    nb, mb, eb = _dyadic(b)
    e = min(ea, eb)
    s = (-ma if na else ma) * (1 << (ea - e)) + (-mb if nb else mb) * (1 << (eb - e))
    if s == 0:
        return 0.0  # an exact zero sum is +0 under round to nearest
    return rn_dyadic(s < 0, abs(s), e, fmt)


def exact_mul(a: float, b: float, fmt: Fmt) -> float:
    neg = (math.copysign(1, a) < 0) != (math.copysign(1, b) < 0)
    if math.isnan(a) or math.isnan(b):
        return math.nan
    if math.isinf(a) or math.isinf(b):
        return math.nan if a == 0 or b == 0 else _signed(neg, math.inf)
    _, ma, ea = _dyadic(a)
    _, mb, eb = _dyadic(b)
    return rn_dyadic(neg, ma * mb, ea + eb, fmt)


# ------------------------------------------------------------------ real functions


def _softplus(a):
    return a + mpmath.log1p(mpmath.exp(-a)) if a > 0 else mpmath.log1p(mpmath.exp(a))


REAL = {
    "exp": mpmath.exp,
    "log": mpmath.log,
    "log1p": mpmath.log1p,
    "tanh": mpmath.tanh,
    "softplus": _softplus,
    "mish": lambda a: a * mpmath.tanh(_softplus(a)),
}

# values at the operands where the result is exact (or IEEE special), by operation
_SPECIAL = {
    "exp": {math.inf: math.inf, -math.inf: 0.0},
    "log": {math.inf: math.inf},
    "log1p": {math.inf: math.inf},
    "tanh": {math.inf: 1.0, -math.inf: -1.0},
    "softplus": {math.inf: math.inf, -math.inf: 0.0},
    "mish": {math.inf: math.inf, -math.inf: -0.0},
}


def real_value(op: str, a: float, prec: int):
    """op(a) by mpmath at prec bits (an mpf)."""
    with mpmath.workprec(prec):
        return REAL[op](mpmath.mpf(a))


def _cmp(m1: int, e1: int, m2: int, e2: int) -> int:
    """Sign of m1 2^e1 - m2 2^e2 for positive integers m1, m2."""
    b1, b2 = e1 + m1.bit_length(), e2 + m2.bit_length()
    if b1 != b2:
        return -1 if b1 < b2 else 1
    e = min(e1, e2)
    a, b = m1 << (e1 - e), m2 << (e2 - e)
    return (a > b) - (a < b)


def _floor_log2(m: int, e: int, open_below: bool = False) -> int:
    """floor(log2(m 2^e)), or of a value infinitesimally below it (open_below)."""
    f = e + m.bit_length() - 1
    if open_below and m & (m - 1) == 0:
        f -= 1
    return f


def decided(v, prec: int, fmt: Fmt, binade: bool = False, below: float | None = None,
            above: float | None = None):
    """RN_fmt of the real value known to lie within a relative 2^-(prec - GUARD) of the mpf v
    (v != 0), and floor(log2 |value|) where `binade`, or None where the interval does not decide
    them. `below` / `above`: what is known besides, |value| < below, |value| > above (format values:
    mish(x) is smaller than x in magnitude, softplus(x) > x for x > 0), which clip the interval."""
    sign, man, exp, _ = v._mpf_  # mpmath's raw value: (-1)^sign man 2^exp
    neg, man, exp = bool(sign), int(man), int(exp)
    if man == 0:
        raise AssertionError("decided() of a zero approximation")
    k = prec - GUARD
    lo, hi, e = man * ((1 << k) - 1), man * ((1 << k) + 1), exp - k
    lo_m, lo_e, hi_m, hi_e, hi_open = lo, e, hi, e, False
    if below is not None:
        _, bm, be = _dyadic(abs(below))
        if _cmp(hi_m, hi_e, bm, be) >= 0:
            hi_m, hi_e, hi_open = bm, be, True
    if above is not None:
        _, am, ae = _dyadic(abs(above))
        if _cmp(lo_m, lo_e, am, ae) <= 0:
            lo_m, lo_e = am, ae
    if _cmp(lo_m, lo_e, hi_m, hi_e) > 0:
        raise AssertionError(f"empty interval: {v} with below={below}, above={above}")
    r_lo = rn_dyadic(neg, lo_m, lo_e, fmt)
    r_hi = rn_dyadic(neg, hi_m, hi_e, fmt)
    if r_lo != r_hi or math.copysign(1, r_lo) != math.copysign(1, r_hi):
        return None
    if not binade:
        return r_lo, None
    f_lo, f_hi = _floor_log2(lo_m, lo_e), _floor_log2(hi_m, hi_e, hi_open)
    return (r_lo, f_lo) if f_lo == f_hi else None


def exact_real(op: str, a: float, fmt: Fmt, binade: bool = False):
    """(RN_fmt(op(a)), an mpf within 2^-(P - GUARD) relative of op(a), floor(log2 |op(a)|) where
    `binade`); (value, None, None) for the exact and special cases."""
    if math.isnan(a):
        return math.nan, None, None
    if math.isinf(a):
        return _SPECIAL[op][a], None, None
    if op == "log" and a <= 0:
        return (-math.inf if a == 0 else math.nan), None, None
    if op == "log1p" and a <= -1:
        return (-math.inf if a == -1 else math.nan), None, None
    if a == 0 and op in ("log1p", "tanh", "mish"):
        return a, None, None  # +-0
    if a == 0 and op == "exp":
        return 1.0, None, None
    if a == 1 and op == "log":
        return 0.0, None, None
    below = a if op == "mish" else None  # |mish(a)| < |a| for a != 0
    above = a if op == "softplus" and a > 0 else None  # softplus(a) > a
    prec = START_PREC
    while prec <= MAX_PREC:
        v = real_value(op, a, prec)
        d = decided(v, prec, fmt, binade, below, above)
        if d is not None:
            return d[0], v, d[1]
        prec *= 2
    raise RuntimeError(f"RN({op}({a!r})) undecided at {MAX_PREC} bits")


_CACHE: dict = {}


def correctly_rounded(op: str, a: float, fmt: Fmt) -> float:
    """RN_fmt(op(a)) for a value a (cached: each distinct argument is evaluated once)."""
    key = (op, fmt.name, a, math.copysign(1, a) < 0 if a == 0 else False)
    r = _CACHE.get(key)
    if r is None:
        r = _CACHE[key] = exact_real(op, a, fmt)[0]
    return r


# ------------------------------------------------------------------ op sequences


@dataclass(frozen=True)
class Step:
    """`out = op(args)` in format `fmt` (None: the sequence's). args name earlier steps, "x", or
    are float constants (exact values of the step's format)."""

    out: str
    op: str  # exp log log1p tanh softplus mish add mul cast
    args: tuple
    fmt: Fmt | None = None


def run(steps, x: float, fmt: Fmt) -> float:
    """The sequence's last result at input x, every step rounded to its format."""
    env = {"x": x}
    for s in steps:
        f = s.fmt or fmt
        v = [env[a] if isinstance(a, str) else float(a) for a in s.args]
        if s.op == "add":
            r = exact_add(v[0], v[1], f)
        elif s.op == "mul":
            r = exact_mul(v[0], v[1], f)
        elif s.op == "cast":
            r = v[0] if not math.isfinite(v[0]) else rn_float(v[0], f)
        else:
            r = correctly_rounded(s.op, v[0], f)
        env[s.out] = r
    return env[steps[-1].out]


def seq(*steps) -> tuple:
    return tuple(Step(*s) for s in steps)


# Mish's ONNX function body with Softplus's: exp, + 1, log, tanh, * x
LOG_EXP_PLUS_ONE = seq(("e", "exp", ("x",)), ("s", "add", ("e", 1.0)), ("l", "log", ("s",)),
                       ("t", "tanh", ("l",)), ("y", "mul", ("x", "t")))
# MIL's Mish: softplus (one operation), tanh, * x
SOFTPLUS_ONE_OP = seq(("s", "softplus", ("x",)), ("t", "tanh", ("s",)), ("y", "mul", ("x", "t")))
# one correctly rounded mish
MISH_ONE_OP = seq(("y", "mish", ("x",)),)


def cast_around(steps, inner: Fmt, outer: Fmt) -> tuple:
    """steps computed in `inner`, the input cast into it and the result cast back to `outer`."""
    ren = {"x": "xi"}
    body = [Step("xi", "cast", ("x",), inner)]
    for s in steps:
        body.append(Step(s.out, s.op, tuple(ren.get(a, a) if isinstance(a, str) else a for a in s.args), inner))
    body.append(Step("out", "cast", (steps[-1].out,), outer))
    return tuple(body)


# ------------------------------------------------------------------ error statistics


@dataclass
class Reference:
    """Exact mish at one input: RN(r), r to well beyond 1e-6 ulp (an mpf, None where exact), ulp(r)."""

    rn: float
    r: object  # mpf or None (r exactly rn)
    ulp_exp: int  # ulp(r) = 2^ulp_exp


_REF: dict = {}


def reference(x: float, fmt: Fmt) -> Reference:
    key = (fmt.name, x, math.copysign(1, x) < 0)
    ref = _REF.get(key)
    if ref is None:
        rn, r, e = exact_real("mish", x, fmt, binade=True)
        if r is None:  # +-0: ulp(0) = 2^(emin - p + 1)
            e = fmt.emin
        ref = _REF[key] = Reference(rn, r, max(e, fmt.emin) - fmt.p + 1)
    return ref


def ulp_error(y: float, ref: Reference):
    """|y - r| / ulp(r) as an mpf (y finite)."""
    with mpmath.workprec(256):
        r = ref.r if ref.r is not None else mpmath.mpf(ref.rn)
        return mpmath.ldexp(abs(mpmath.mpf(y) - r), -ref.ulp_exp)


@dataclass
class Stats:
    inputs: int
    max_ulp: float
    worst_x: float
    mean_ulp: float
    cr: int  # y == RN(r) (as numbers: +0 == -0)
    signed_zero_mismatch: int
    nonfinite: int
    outputs: list


def statistics(steps, xs, fmt: Fmt) -> Stats:
    """Run the sequence on every x and measure it against exact mish (DESIGN.md's definitions)."""
    ys = [run(steps, x, fmt) for x in xs]
    worst, worst_x, total, finite, cr, szm, nonfinite = None, None, mpmath.mpf(0), 0, 0, 0, 0
    for x, y in zip(xs, ys):
        ref = reference(x, fmt)
        if not math.isfinite(y):
            nonfinite += 1
            continue
        u = ulp_error(y, ref)
        finite += 1
        total += u
        if worst is None or u > worst:
            worst, worst_x = u, x
        if y == ref.rn:
            cr += 1
            if y == 0 and math.copysign(1, y) != math.copysign(1, ref.rn):
                szm += 1
    return Stats(len(xs), float(worst), worst_x, float(total / finite) if finite else math.nan, cr, szm, nonfinite,
                 ys)
