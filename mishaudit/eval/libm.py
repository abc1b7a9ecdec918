"""Elementary functions (exp, expm1, log, log1p, tanh, pow) under a libm model.

A model says what an elementary operation returns in its working format w (p bits):

cr (the default): RN_w(f(a)), the correctly rounded value of the exact result (round to
  nearest, ties to even; IEEE subnormals; overflow to inf; exact cases exact). This is the
  model of Herbie and CORE-MATH: it isolates a formulation's own error, and every CPU and
  numpy build gives the same bits. How it is computed:
  - w with p <= 24 (binary16, bfloat16, binary32): y = f(a) by the host's binary64 libm
    (numpy's float64 kernels), assumed to satisfy |y - f(a)| <= B |f(a)| with B = 2^-44
    (512 binary64 ulps; glibc documents at most 4 ulps for these functions in libm-test-ulps,
    numpy's own and SVML kernels at most 4 ulps). RN_w(f(a)) is decided when both ends of
    [|y|(1 - B'), |y|(1 + B')], B' = B + 2^-52 (the rounding of the two products), round to
    the same w value; then that value, with y's sign, is the answer whatever bits the
    host's libm returned inside its bound. Binary64 results below 2^-1000 in magnitude stand
    for true values below half the smallest subnormal of w: RN_w is then a zero of y's sign.
    Non-finite binary64 results (overflow past 2^1024, exact specials such as log(0)) are
    IEEE's answer in w too. The rest, inputs where the decision fails (within B of a
    rounding boundary: about 2^-19 of binary32 results), go to MPFR.
  - w = binary64: MPFR for every input (gmpy2; a context with w's precision, exponent range
    and subnormals rounds correctly once).
  - pow(a, 2) for p <= 26 is RN_w(a*a) with a*a exact in binary64.
  `verify_host_libm` checks B against MPFR at start-up (exp, expm1, log, log1p, tanh, pow on
  fixed points: tiny, huge, near overflow and underflow, near 1) and refuses to run when the
  host's libm errs by more than B/8 anywhere there.

numpy: numpy's own kernels, whose bits depend on numpy's build and the CPU's SIMD dispatch:
  binary32 and binary64 use the float32 / float64 ufuncs; binary16 and bfloat16 use the float32
  ufuncs, rounded once to w (as numpy and ml_dtypes compute them). Figures under this model
  hold for this CPU only (`numpy_dispatch` names it).

Arrays are float64 arrays holding values of the working format, as everywhere in mishaudit.
"""

from __future__ import annotations

import functools
import hashlib
import math

import numpy as np

from mishaudit.errors import UserError
from mishaudit.formats import FP32, FP64, Format, round_to

MODELS = ("cr", "numpy", "torch")
ELEMENTARY = ("exp", "expm1", "log", "log1p", "tanh", "pow")
B = 2.0**-44  # assumed relative error bound of the host binary64 libm (module docstring)
B_CHECK = B / 8  # the start-up check refuses a libm that errs by more than this
_BW = B + 2.0**-52  # B plus the rounding of |y|(1 +- B)
_TINY64 = 2.0**-1000

NUMPY_UFUNCS = _NP = {"exp": np.exp, "expm1": np.expm1, "log": np.log, "log1p": np.log1p, "tanh": np.tanh, "pow": np.power}


def check_model(name: str) -> str:
    """The model called `name`; UserError for an unknown one, or for torch when it is not installed."""
    if name not in MODELS:
        raise UserError(f"unknown --libm {name!r}: use one of {', '.join(MODELS)}")
    if name == "torch":
        from mishaudit.eval.kernels import framework_version

        if framework_version("torch") is None:
            raise UserError("--libm torch needs torch, which is not installed: pip install 'mishaudit[torch]'")
    return name


def describe(model: str) -> str:
    """One sentence naming what the elementary functions of `model` are."""
    if model == "torch":
        from mishaudit.eval.kernels import describe as fw

        return (f"elementary functions are torch's own CPU functions on tensors of the working format (libm torch: "
                f"{fw('torch')}); these figures hold for this CPU and torch build")
    if model == "cr":
        return ("elementary functions correctly rounded in the working format (libm cr: the same bits on "
                "every machine)")
    return (f"elementary functions are numpy's kernels (libm numpy: {numpy_dispatch()}); "
            "these figures hold for this CPU and numpy build")


def apply(model: str, op: str, args: list, fmt: Format) -> np.ndarray:
    """op(*args) in working format `fmt` under `model`, as float64 values of fmt."""
    if model == "cr":
        return correctly_rounded(op, args, fmt)
    if model == "torch":
        return torch_kernel(op, args, fmt)
    return numpy_kernel(op, args, fmt)


def torch_kernel(op: str, args: list, fmt: Format) -> np.ndarray:
    """torch's own elementary function on CPU tensors of the working format (as PyTorch eager
    computes one operation of a formula written with torch ops)."""
    import torch

    from mishaudit.eval.kernels import _from_torch, _to_torch

    f = {"exp": torch.exp, "expm1": torch.expm1, "log": torch.log, "log1p": torch.log1p, "tanh": torch.tanh,
         "pow": torch.pow}[op]
    with torch.no_grad():
        ts = [_to_torch(np.asarray(a, dtype=np.float64), fmt, "cpu") for a in np.broadcast_arrays(*args)]
        return _from_torch(f(*ts), fmt)


# ---------------------------------------------------------------- numpy's kernels


def numpy_kernel(op: str, args: list, fmt: Format) -> np.ndarray:
    """numpy's float32 (float64 for binary64) ufunc, rounded once to fmt for 16-bit formats."""
    f = _NP[op]
    with np.errstate(all="ignore"):
        if fmt is FP64:
            return f(*args)
        r = f(*[np.asarray(a).astype(np.float32) for a in args]).astype(np.float64)
    return r if fmt is FP32 else round_to(r, fmt)


def numpy_dispatch() -> str:
    """numpy's version and the SIMD targets it dispatches to on this CPU (the bits of the numpy
    model depend on both)."""
    try:
        from numpy._core._multiarray_umath import __cpu_baseline__ as base
        from numpy._core._multiarray_umath import __cpu_dispatch__ as disp
        from numpy._core._multiarray_umath import __cpu_features__ as feats
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_baseline__ as base
        from numpy.core._multiarray_umath import __cpu_dispatch__ as disp
        from numpy.core._multiarray_umath import __cpu_features__ as feats
    on = [t for t in disp if feats.get(t)]
    return f"numpy {np.__version__} baseline {' '.join(base) or 'none'}, dispatch {' '.join(on) or 'none'}"


# ---------------------------------------------------------------- correctly rounded

OPS = {op: k for k, op in enumerate(ELEMENTARY)}  # kernel op codes


def correctly_rounded(op: str, args: list, fmt: Format) -> np.ndarray:
    """RN_fmt(op(*args)) for arrays of fmt values (module docstring)."""
    args = np.broadcast_arrays(*[np.asarray(a, dtype=np.float64) for a in args])
    shape = args[0].shape
    if op == "pow" and fmt.p <= 26 and args[1].size and np.all(args[1] == 2.0):
        with np.errstate(all="ignore"):
            return round_to(args[0] * args[0], fmt)  # exact square, one rounding
    if fmt.p > 24:
        return _mpfr_cached(op, args, fmt)
    verify_host_libm()
    a = np.ascontiguousarray(args[0], dtype=np.float64).ravel()
    b = np.ascontiguousarray(args[1], dtype=np.float64).ravel() if op == "pow" else a
    out = np.empty(a.size)
    flag = np.empty(a.size, dtype=np.uint8)
    _kernel()(OPS[op], a, b, fmt.p, fmt.emin, fmt.emax, out, flag)
    rest = np.flatnonzero(flag)
    if len(rest):
        out[rest] = _mpfr(op, [a[rest], b[rest]][: 2 if op == "pow" else 1], fmt)
    return out.reshape(shape)


_LN2 = 0.6931471805599453  # ln 2 to binary64 (the shortcuts below keep a margin of 1e-6)


def _raw(op, a, b):  # pragma: no cover - compiled by numba
    """The host libm's binary64 value of op(a[, b]) (op codes: OPS)."""
    if op == 0:
        return math.exp(a)
    if op == 1:
        return math.expm1(a)
    if op == 2:
        return math.log(a)
    if op == 3:
        return math.log1p(a)
    if op == 4:
        return math.tanh(a)
    return math.pow(a, b)


def _kernel_py(op, a, b, p, emin, emax, out, flag):  # pragma: no cover - compiled by numba
    """out[i] = RN(op(a[i][, b[i]])) in the format (p, emin, emax), p <= 24; flag[i] = 1 where this
    pass cannot decide it (then out[i] is garbage and MPFR must).

    Shortcuts, each an exact fact for any such format (u = 2^-p, half an ulp of 1 from above):
      |a| <= 2^-(p+2), a != 0: exp -> 1 (e^a within 2^-(p+1) of 1, the midpoints around 1 are
        1 - 2^-(p+1) and 1 + 2^-p); expm1, log1p, tanh -> a (their relative distance from a,
        below |a|/2 resp. a^2/3, is under 2^-(p+1), less than half an ulp relative to a);
      exp, expm1: a > (emax + 1) ln2 -> inf (e^a > 2^(emax+1), above max + half an ulp);
      exp: a < (emin - p) ln2 -> +0 (e^a below half the smallest subnormal);
      expm1: a < -(p + 1) ln2 -> -1 (e^a < 2^-(p+1), half an ulp of the values just above -1);
      tanh: |a| > 0.35 (p + 2) -> +-1 (1 - |tanh a| < 2 e^(-2|a|) < 2^-(p+1));
      a repeating the previous argument: the previous answer.
    Otherwise y = the host libm's binary64 value, within B of the truth (module docstring), and
    the answer is decided when no rounding boundary of the format lies within B'|y|:
      y non-finite: IEEE's answer; |y| < 2^-1000: a zero of y's sign;
      normal range [2^emin, max + ulp(max)/2): the 53 - p low significand bits of y are not
        within M of the midpoint pattern 2^(52 - p); RN rounds those bits half up (no tie);
      subnormal range: s = |y| / 2^(emin - p + 1) is not within B's + 2^-60 of a half-integer;
        RN is rint(s) 2^(emin - p + 1);
      beyond max + ulp(max)/2 by more than B': inf."""
    L = 53 - p
    lowmask = (np.int64(1) << L) - 1
    half = np.int64(1) << (L - 1)
    q0 = emin - p + 1
    sub_scale = 2.0 ** (-q0)
    quantum = 2.0**q0
    minnorm = 2.0**emin
    boundary = (2.0 - 2.0 ** (-p)) * 2.0**emax  # max + half an ulp of max
    tiny_arg = 2.0 ** (-(p + 2))
    exp_over = (emax + 1) * _LN2 + 1e-6  # margins far above the rounding of these products
    exp_under = (emin - p) * _LN2 - 1e-6
    m1_under = -(p + 1) * _LN2 - 1e-6
    tanh_sat = 0.35 * (p + 2)
    last_a = np.nan
    last_b = np.nan
    last_out = 0.0
    last_flag = 1
    for i in range(len(a)):
        v = a[i]
        w = b[i]
        if v == last_a and w == last_b and math.copysign(1.0, v) == math.copysign(1.0, last_a):
            out[i] = last_out
            flag[i] = last_flag
            continue
        res = 0.0
        fl = 0
        av = abs(v)
        done = True
        if op != 2 and op <= 4 and av <= tiny_arg and v != 0.0:
            res = 1.0 if op == 0 else v
        elif op <= 1 and v > exp_over:
            res = np.inf
        elif op == 0 and v < exp_under:
            res = 0.0
        elif op == 1 and v < m1_under:
            res = -1.0
        elif op == 4 and av > tanh_sat:
            res = math.copysign(1.0, v)
        else:
            done = False
        if not done:
            y = _raw(op, v, w)
            ay = abs(y)
            if not (ay < np.inf):  # inf or NaN
                res = y
            elif ay < 2.0**-1000:
                res = math.copysign(0.0, y)
            elif ay < minnorm:
                s = ay * sub_scale
                h = s - math.floor(s) - 0.5
                if abs(h) > s * 2.0**-43 + 2.0**-60:
                    res = math.copysign(math.floor(s + 0.5) * quantum, y)
                else:
                    fl = 1
            elif ay < boundary:
                bits = np.float64(ay).view(np.int64)
                if abs((bits & lowmask) - half) > _M:
                    res = math.copysign(np.int64((bits + half) & ~lowmask).view(np.float64), y)
                else:
                    fl = 1
            elif ay * (1.0 - 2.0**-43) > boundary:
                res = math.copysign(np.inf, y)
            else:
                fl = 1
        out[i] = res
        flag[i] = fl
        last_a = v
        last_b = w
        last_out = res
        last_flag = fl


_M = int(_BW * 2.0**53) + 2  # B'|y| < B' 2^53 ulp64(y): the decision margin in binary64 ulps


@functools.lru_cache(maxsize=1)
def _jit():
    """(compiled _raw, compiled kernel); numba is imported on first use (it is slow to import)."""
    import numba

    raw = numba.njit(cache=True, nogil=True)(_raw)
    globals()["_raw"] = raw  # the kernel calls the compiled version
    return raw, numba.njit(cache=True, nogil=True)(_kernel_py)


def _kernel():
    return _jit()[1]


def _bounds_py(op, lo, hi, slack, out_lo, out_hi):  # pragma: no cover - compiled by numba
    """Enclosure of an increasing function (op codes 0-4) over [lo, hi]: the host libm's values at
    both ends, widened by `slack` relative and 2^-1060 absolute; infinite ends stay."""
    for i in range(len(lo)):
        a = _raw(op, lo[i], lo[i])
        b = _raw(op, hi[i], hi[i])
        if a == -np.inf or a != a:
            out_lo[i] = a
        elif a == np.inf:
            out_lo[i] = 1.7976931348623157e308
        else:
            out_lo[i] = a - abs(a) * slack - 2.0**-1060
        if b == np.inf or b != b:
            out_hi[i] = b
        elif b == -np.inf:
            out_hi[i] = -1.7976931348623157e308
        else:
            out_hi[i] = b + abs(b) * slack + 2.0**-1060


@functools.lru_cache(maxsize=1)
def _bounds_kernel():
    import numba

    _jit()
    return numba.njit(cache=True, nogil=True)(_bounds_py)


def _host_py(op, a, b, out):  # pragma: no cover - compiled by numba
    for i in range(len(a)):
        out[i] = _raw(op, a[i], b[i])


@functools.lru_cache(maxsize=1)
def _host_kernel():
    import numba

    _jit()
    return numba.njit(cache=True, nogil=True)(_host_py)


def host(op: str, a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """The host's binary64 libm value of op(a[, b]) elementwise (the libm `verify_host_libm` checks)."""
    verify_host_libm()
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(a if b is None else b, dtype=np.float64))
    a, b = np.ascontiguousarray(a).ravel(), np.ascontiguousarray(b).ravel()
    out = np.empty(a.size)
    _host_kernel()(OPS[op], a, b, out)
    return out


def increasing_bounds(op: str, lo: np.ndarray, hi: np.ndarray, slack: float):
    """(f(lo) widened down, f(hi) widened up) for an increasing elementary f, by the host libm
    that `verify_host_libm` checks; `slack` must cover its error (at least B)."""
    verify_host_libm()
    lo = np.ascontiguousarray(lo, dtype=np.float64)
    hi = np.ascontiguousarray(hi, dtype=np.float64)
    out_lo, out_hi = np.empty_like(lo), np.empty_like(hi)
    _bounds_kernel()(OPS[op], lo.ravel(), hi.ravel(), slack, out_lo.ravel(), out_hi.ravel())
    return out_lo, out_hi


# ---------------------------------------------------------------- MPFR


@functools.lru_cache(maxsize=None)
def mpfr_context(p: int, emin: int, emax: int):
    """An MPFR context that rounds once to the format (p, emin, emax): IEEE subnormals, overflow
    to inf, round to nearest even. MPFR's exponents put the significand in [1/2, 1)."""
    import gmpy2

    return gmpy2.context(precision=p, emin=emin - p + 2, emax=emax + 1, subnormalize=True,
                         round=gmpy2.RoundToNearest)


def format_context(fmt: Format):
    return mpfr_context(fmt.p, fmt.emin, fmt.emax)


def _mpfr(op: str, args: list, fmt: Format) -> np.ndarray:
    """RN_fmt(op(*args)) element by element with MPFR (exact inputs, one rounding)."""
    f = np.frompyfunc(getattr(format_context(fmt), op), len(args), 1)
    with np.errstate(all="ignore"):
        return f(*[mpfr_array(a) for a in args]).astype(np.float64)


@functools.lru_cache(maxsize=1)
def _exact53():
    import gmpy2

    ctx = gmpy2.context(precision=53, emax=gmpy2.get_emax_max(), emin=gmpy2.get_emin_min())
    return np.frompyfunc(ctx.plus, 1, 1)


def mpfr_array(a) -> np.ndarray:
    """binary64 values as an object array of MPFR numbers (exactly)."""
    with np.errstate(all="ignore"):
        return _exact53()(np.asarray(a, dtype=np.float64)).astype(object)


def fma(a, b, c, fmt: Format) -> np.ndarray:
    """RN_fmt(a*b + c), one rounding, by MPFR (for binary64, where no wider binary format helps)."""
    return _mpfr("fma", [a, b, c], fmt)


_MEMO: dict = {}
_MEMO_MAX = 32


def _mpfr_cached(op: str, args: list, fmt: Format) -> np.ndarray:
    """_mpfr, remembering the last few results: formulations evaluated on the same inputs share
    exp(x) and the like, which costs a microsecond per element in binary64."""
    h = hashlib.sha256(op.encode() + fmt.name.encode())
    for a in args:
        h.update(np.ascontiguousarray(a).tobytes())
    key = h.digest()
    hit = _MEMO.get(key)
    if hit is None:
        hit = _mpfr(op, [a.ravel() for a in args], fmt).reshape(args[0].shape)
        if len(_MEMO) >= _MEMO_MAX:
            _MEMO.pop(next(iter(_MEMO)))
        _MEMO[key] = hit
    return hit.copy()


# ---------------------------------------------------------------- start-up check of B


def _check_points() -> dict:
    """Fixed arguments per function: ordinary, tiny, huge, near overflow/underflow, near 1."""
    base = [-745.0, -708.5, -103.97, -87.3, -40.0, -17.3, -7.5, -1.0, -2.0**-20, 2.0**-60, 0.3, 1.0,
            2.5, 11.09375, 20.0, 44.36, 88.72, 709.7]
    pos = [2.0**-1070, 2.0**-149, 1e-30, 0.5, 0.999999, 1.0000001, 1.5, 10.0, 1e10, 3.4e38, 1e300]
    grid = np.linspace(-30, 30, 61).tolist()
    return {"exp": base + grid, "expm1": base + grid, "tanh": base + grid + [0.55, -0.55],
            "log": pos, "log1p": [-0.9999, -0.5, -1e-10, *pos],
            "pow": [(a, b) for a in (0.5, 1.5, 3.0, 1e-5, 7.25) for b in (2.0, 3.0, -2.5, 0.5, 10.0)]}


@functools.lru_cache(maxsize=1)
def verify_host_libm() -> float:
    """The largest relative error of the host's binary64 libm (as the kernel calls it) over the
    check points; UserError when it exceeds B/8 (the cr model's decisions rest on B)."""
    import gmpy2

    raw = _jit()[0]
    ctx = gmpy2.context(precision=160)
    worst = 0.0
    for op, pts in _check_points().items():
        f = getattr(ctx, op)
        for pt in pts:
            a, b = pt if op == "pow" else (pt, pt)
            exact = f(*[gmpy2.mpfr(v, 53) for v in ((a, b) if op == "pow" else (a,))])
            if not gmpy2.is_finite(exact) or abs(exact) < 2.0**-1000 or abs(exact) > 1e307:
                continue  # outside the region B speaks for (the kernel treats it apart)
            y = raw(OPS[op], a, b)
            err = float(abs((gmpy2.mpfr(y, 53) - exact) / exact))
            worst = max(worst, err)
            if not err <= B_CHECK:
                where = f"{a!r}, {b!r}" if op == "pow" else repr(a)
                raise UserError(f"this machine's binary64 {op}({where}) is off by {err:.3g} relative, more "
                                "than the 2^-47 the cr libm model relies on: use --libm numpy, or run on a "
                                "machine with an accurate libm")
    return worst
