"""Elementary functions (exp, expm1, log, log1p, tanh, pow) under a libm model.

A model says what an elementary operation returns in its working format w (p bits):

cr (the default): RN_w(f(a)), the correctly rounded value of the exact result (round to
  nearest, ties to even; IEEE subnormals; overflow to inf; exact cases exact). This is the
  model of Herbie and CORE-MATH: it isolates a formulation's own error, and every CPU and
  numpy build gives the same bits. How it is computed:
  - w with p <= 24 (binary16, bfloat16, binary32): y = f(a) in binary64, by mishaudit's own exp,
    expm1, log, log1p and tanh where their domains hold (eval/elem64.py: each within a proven
    relative bound of at most 6e-15, decided with margins of that bound), else by the host's
    binary64 libm, assumed to satisfy |y - f(a)| <= B |f(a)| with B = 2^-44
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

glibc: the host C library's functions as a C program calls them (eval/clib.py): expf, expm1f, logf,
  log1pf, tanhf, powf (and exp2f) for binary32, the binary64 ones for binary64, and for binary16 and
  bfloat16 the float function on the value (exact in binary32), rounded once to w, as C code on
  half-precision data computes. Figures under this model hold for this C library on this CPU
  (glibc picks a variant of some functions by CPU feature, FMA among them; `build` names both).

torch: torch's own CPU functions on tensors of the working format.

numpy: numpy's own kernels, whose bits depend on numpy's build and the CPU's SIMD dispatch:
  binary32 and binary64 use the float32 / float64 ufuncs; binary16 and bfloat16 use the float32
  ufuncs, rounded once to w (as numpy and ml_dtypes compute them). Figures under this model
  hold for this CPU only (`numpy_dispatch` names it).

Which function each model calls for each operation is the table below (IMPLEMENTATIONS: one line
per operation per model, Herbie's platforms); what the operation is, lang/operators.py's table.
Arrays are float64 arrays holding values of the working format, as everywhere in mishaudit.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np

from mishaudit.errors import UserError
from mishaudit.eval import clib
from mishaudit.formats import FP32, FP64, Format, round_to
from mishaudit.lang.operators import OPERATORS

B = 2.0**-44  # assumed relative error bound of the host binary64 libm (module docstring)
B_CHECK = B / 8  # the start-up check refuses a libm that errs by more than this
_BW = B + 2.0**-52  # B plus the rounding of |y|(1 +- B)
_REL = 2 * B  # the same as a relative margin (above _BW)
_TINY64 = 2.0**-1000

# What each libm model calls for each elementary operation (lang/operators.py's "libm" kind): one
# line per operation per model. cr: the host's binary64 C function its fast pass rounds (module
# docstring; MPFR, by the operator's `mpfr` method, for the rest); glibc: the C functions for
# binary32 and binary64; numpy: the ufunc; torch: the function of the torch module.
IMPLEMENTATIONS = {
    "cr":    {"exp": "exp", "exp2": "exp2", "expm1": "expm1", "log": "log", "log1p": "log1p", "tanh": "tanh",
              "pow": "pow"},
    "glibc": {"exp": ("expf", "exp"), "exp2": ("exp2f", "exp2"), "expm1": ("expm1f", "expm1"),
              "log": ("logf", "log"), "log1p": ("log1pf", "log1p"), "tanh": ("tanhf", "tanh"),
              "pow": ("powf", "pow")},
    "numpy": {"exp": np.exp, "exp2": np.exp2, "expm1": np.expm1, "log": np.log, "log1p": np.log1p, "tanh": np.tanh,
              "pow": np.power},
    "torch": {"exp": "exp", "exp2": "exp2", "expm1": "expm1", "log": "log", "log1p": "log1p", "tanh": "tanh",
              "pow": "pow"},
}
MODELS = tuple(IMPLEMENTATIONS)
ELEMENTARY = tuple(op for op in OPERATORS if OPERATORS[op].kind == "libm")
NUMPY_UFUNCS = _NP = IMPLEMENTATIONS["numpy"]
SHORTCUTS = {"exp": 0, "expm1": 1, "log": 2, "log1p": 3, "tanh": 4}  # crkernel.py's exact shortcuts


def check_model(name: str) -> str:
    """The model called `name`; UserError for an unknown one, or for torch when it is not installed."""
    if name not in MODELS:
        raise UserError(f"unknown --libm {name!r}: use one of {', '.join(MODELS)}")
    if name == "torch":
        from mishaudit.eval.kernels import framework_version

        if framework_version("torch") is None:
            raise UserError("--libm torch needs torch, which is not installed: pip install 'mishaudit[torch]'")
    if name == "glibc" and not clib.library().startswith("glibc"):
        raise UserError("--libm glibc needs the GNU C library, and this machine's C library is "
                        f"{clib.library() or 'another one'}: use --libm cr or numpy")
    return name


def build(model: str) -> str | None:
    """What the bits of `model` depend on besides mishaudit (None for cr, the same everywhere): the
    numpy dispatch, the C library and the CPU features its variants are picked by, torch's build."""
    if model == "numpy":
        return numpy_dispatch()
    if model == "glibc":
        return f"{clib.library()} {clib.library_file()} on {cpu_features()}"
    if model == "torch":
        from mishaudit.eval.kernels import describe as fw

        return fw("torch")
    return None


def cpu_features() -> str:
    """The CPU features glibc's x86-64 libm picks function variants by (FMA, AVX2), as numpy sees them."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as feats
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__ as feats
    on = [k for k in ("FMA3", "AVX2", "AVX512F") if feats.get(k)]
    return "a CPU with " + (" ".join(on) if on else "none of FMA3 AVX2 AVX512F")


def describe(model: str) -> str:
    """One sentence naming what the elementary functions of `model` are."""
    if model == "torch":
        from mishaudit.eval.kernels import describe as fw

        return (f"elementary functions are torch's own CPU functions on tensors of the working format (libm torch: "
                f"{fw('torch')}); these figures hold for this CPU and torch build")
    if model == "cr":
        return ("elementary functions correctly rounded in the working format (libm cr: the same bits on "
                "every machine)")
    if model == "glibc":
        names = ", ".join(f for f, _ in IMPLEMENTATIONS["glibc"].values())
        return (f"elementary functions are the C library's as a C program calls them (libm glibc: {build('glibc')}; "
                f"{names} on binary32, the double functions on binary64, the float functions on 16-bit values "
                "rounded once); these figures hold for this C library on this CPU")
    return (f"elementary functions are numpy's kernels (libm numpy: {numpy_dispatch()}); "
            "these figures hold for this CPU and numpy build")


def apply(model: str, op: str, args: list, fmt: Format) -> np.ndarray:
    """op(*args) in working format `fmt` under `model`, as float64 values of fmt."""
    if model == "cr":
        return correctly_rounded(op, args, fmt)
    if model == "torch":
        return torch_kernel(op, args, fmt)
    if model == "glibc":
        return c_kernel(op, args, fmt)
    return numpy_kernel(op, args, fmt)


def c_kernel(op: str, args: list, fmt: Format) -> np.ndarray:
    """The C library's function (module docstring, glibc): the float one for formats inside binary32
    (rounded once to fmt below binary32), the double one otherwise (rounded once to fmt)."""
    f32, f64 = IMPLEMENTATIONS["glibc"][op]
    with np.errstate(all="ignore"):
        if fmt.p <= 24 and fmt.emax <= 127 and fmt.emin >= -126:
            r = clib.call(f32, args, 32)
        else:
            r = clib.call(f64, args, 64)
    return r if fmt in (FP32, FP64) else round_to(r, fmt)


def torch_kernel(op: str, args: list, fmt: Format) -> np.ndarray:
    """torch's own elementary function on CPU tensors of the working format (as PyTorch eager
    computes one operation of a formula written with torch ops)."""
    import torch

    from mishaudit.eval.kernels import _from_torch, _to_torch

    f = getattr(torch, IMPLEMENTATIONS["torch"][op])
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
    nargs = len(args)
    a = np.ascontiguousarray(args[0], dtype=np.float64).ravel()
    b = np.ascontiguousarray(args[1], dtype=np.float64).ravel() if nargs == 2 else a
    out = np.empty(a.size)
    flag = np.empty(a.size, dtype=np.uint8)
    # numba is imported on first use (it is slow to import)
    from mishaudit.eval import crkernel

    crkernel.kernel(SHORTCUTS.get(op, -1), _host_address(op), nargs, a, b, fmt.p, fmt.emin, fmt.emax, _M, _REL,
                    out, flag)
    rest = np.flatnonzero(flag)
    if len(rest):
        out[rest] = _mpfr(op, [a[rest], b[rest]][:nargs], fmt)
    return out.reshape(shape)


_M = int(_BW * 2.0**53) + 2  # B'|y| < B' 2^53 ulp64(y): the decision margin in binary64 ulps


def _host_address(op: str) -> int:
    """The address of the binary64 C function the cr model's fast pass calls for op."""
    return clib.function(IMPLEMENTATIONS["cr"][op])


def host(op: str, a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """The host's binary64 libm value of op(a[, b]) elementwise (the libm `verify_host_libm` checks)."""
    verify_host_libm()
    return _host_values(op, a, b)


def _host_values(op: str, a, b=None) -> np.ndarray:
    return clib.call(IMPLEMENTATIONS["cr"][op], [a] if b is None else [a, b], 64)


def increasing_bounds(op: str, lo: np.ndarray, hi: np.ndarray, slack: float):
    """(f(lo) widened down, f(hi) widened up) for an increasing elementary f, by the host libm
    that `verify_host_libm` checks; `slack` must cover its error (at least B)."""
    verify_host_libm()
    from mishaudit.eval import crkernel

    lo = np.ascontiguousarray(lo, dtype=np.float64)
    hi = np.ascontiguousarray(hi, dtype=np.float64)
    out_lo, out_hi = np.empty_like(lo), np.empty_like(hi)
    crkernel.bounds(_host_address(op), lo.ravel(), hi.ravel(), slack, out_lo.ravel(), out_hi.ravel())
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
    f = np.frompyfunc(getattr(format_context(fmt), OPERATORS[op].mpfr), len(args), 1)
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
    """Fixed arguments per function (each elementary operation of lang/operators.py): ordinary, tiny,
    huge, near overflow and underflow, near 1; those inside the operation's domain."""
    base = [-745.0, -708.5, -103.97, -87.3, -40.0, -17.3, -7.5, -1.0, -2.0**-20, 2.0**-60, 0.3, 0.55, 1.0,
            2.5, 11.09375, 20.0, 44.36, 88.72, 709.7, *np.linspace(-30, 30, 61).tolist()]
    pos = [2.0**-1070, 2.0**-149, 1e-30, 0.5, 0.999999, 1.0000001, 1.5, 10.0, 1e10, 3.4e38, 1e300]
    out = {}
    for op in ELEMENTARY:
        dom = OPERATORS[op].domain
        if op == "pow":
            out[op] = [(a, b) for a in (0.5, 1.5, 3.0, 1e-5, 7.25) for b in (2.0, 3.0, -2.5, 0.5, 10.0)]
        elif dom is None:
            out[op] = base
        else:
            lo, closed = dom
            out[op] = [v for v in (*base, *pos, lo + 1e-4, lo + 0.5) if v > lo or (closed and v == lo)]
    return out


@functools.lru_cache(maxsize=1)
def verify_host_libm() -> float:
    """The largest relative error of the host's binary64 libm (as the kernel calls it) over the
    check points; UserError when it exceeds B/8 (the cr model's decisions rest on B)."""
    import gmpy2

    ctx = gmpy2.context(precision=160)
    worst = 0.0
    for op, pts in _check_points().items():
        f = getattr(ctx, op)
        for pt in pts:
            a, b = pt if op == "pow" else (pt, pt)
            exact = f(*[gmpy2.mpfr(v, 53) for v in ((a, b) if op == "pow" else (a,))])
            if not gmpy2.is_finite(exact) or abs(exact) < 2.0**-1000 or abs(exact) > 1e307:
                continue  # outside the region B speaks for (the kernel treats it apart)
            y = float(_host_values(op, np.array([a]), np.array([b]) if op == "pow" else None)[0])
            err = float(abs((gmpy2.mpfr(y, 53) - exact) / exact))
            worst = max(worst, err)
            if not err <= B_CHECK:
                where = f"{a!r}, {b!r}" if op == "pow" else repr(a)
                raise UserError(f"this machine's binary64 {op}({where}) is off by {err:.3g} relative, more "
                                "than the 2^-47 the cr libm model relies on: use --libm numpy, or run on a "
                                "machine with an accurate libm")
    return worst
