"""--ftz against the real thing: numpy's binary32 arithmetic run under x86 MXCSR FTZ|DAZ (the "after"
mode, tininess detected after rounding, is what x86 does), exact rational arithmetic (the "before"
mode) and mpmath (the correctly rounded elementary functions under both). Also: a process left with
FTZ/DAZ set is refused, and the mode is named wherever the policy is (JSON, tables, thresholds)."""

import ctypes
import json
import math
import platform
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from fractions import Fraction

import mpmath
import numpy as np
import pytest

from mishaudit.errors import UserError
from mishaudit.eval.evaluate import Evaluator, Policy, evaluate
from mishaudit.formats import FP32, FP64
from mishaudit.lang.registry import load_text

X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
FTZ_BIT, DAZ_BIT = 0x8000, 0x0040
TINY = 2.0**-126  # the smallest normal binary32
T = Fraction(2) ** -126

C_SOURCE = r"""
#include <xmmintrin.h>
#include <immintrin.h>
unsigned int get_csr(void) { return _mm_getcsr(); }
void set_csr(unsigned int v) { _mm_setcsr(v); }
__attribute__((target("fma")))
void fma32(const float *a, const float *b, const float *c, float *out, long n) {
    for (long i = 0; i < n; i++)
        out[i] = _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(a[i]), _mm_set_ss(b[i]), _mm_set_ss(c[i])));
}
"""


def formula(body: str):
    return load_text(f"(FPCore t (x) {body})", "t.fpcore", "t")


def _build(folder) -> str:
    src = folder / "mxcsr.c"
    src.write_text(C_SOURCE)
    lib = folder / "libmxcsr.so"
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    return str(lib)


@pytest.fixture(scope="module")
def mxcsr(tmp_path_factory):
    """The compiled MXCSR library (ctypes): get_csr, set_csr, fma32."""
    # MXCSR is x86's, and so is every machine of this project (and CI's): elsewhere this fails, it does not hide
    assert X86, "the hardware check of --ftz needs x86 (MXCSR); this machine is " + platform.machine()
    lib = ctypes.CDLL(_build(tmp_path_factory.mktemp("mxcsr")))
    lib.get_csr.restype = ctypes.c_uint
    lib.set_csr.argtypes = [ctypes.c_uint]
    f32p = ctypes.POINTER(ctypes.c_float)
    lib.fma32.argtypes = [f32p, f32p, f32p, f32p, ctypes.c_long]
    return lib


@contextmanager
def hardware_flush(lib):
    """MXCSR.FTZ and MXCSR.DAZ set for the block; the old MXCSR always restored."""
    old = lib.get_csr()
    lib.set_csr(old | FTZ_BIT | DAZ_BIT)
    try:
        yield
    finally:
        lib.set_csr(old)


def _ptr(a):
    return a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


def hw_fma(lib, a, b, c):
    a, b, c = (np.ascontiguousarray(v, dtype=np.float32) for v in (a, b, c))
    out = np.empty_like(a)
    lib.fma32(_ptr(a), _ptr(b), _ptr(c), _ptr(out), len(a))
    return out


HW = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "sqrt": np.sqrt}


def f32(v):
    return np.asarray(v, dtype=np.float64).astype(np.float32)


def random_bits(rng, n):
    return rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32)


def small(rng, n, top=4):
    """Random sign, exponent field 0 (subnormal) .. top, random significand."""
    bits = (rng.integers(0, top + 1, n).astype(np.uint32) << 23) | rng.integers(0, 1 << 23, n).astype(np.uint32)
    bits |= rng.integers(0, 2, n).astype(np.uint32) << 31
    return bits.view(np.float32)


def signs(rng, n):
    return np.where(rng.random(n) < 0.5, -1.0, 1.0)


def near_tiny(rng, n, spread=40):
    """Targets 2^-126 (1 + k 2^-26), |k| <= spread: exact results around the smallest normal."""
    return TINY * (1 + rng.integers(-spread, spread + 1, n) * 2.0**-26)


def operands(op: str, seed: int = 0, n: int = 6000) -> list:
    """binary32 operand arrays: random bit patterns (NaN, inf, subnormals), small values, and pairs
    crafted so that the exact result lies within a few 2^-150 of 2^-126 (both sides, both signs)."""
    rng = np.random.default_rng(seed)
    arity = {"sqrt": 1, "fma": 3}.get(op, 2)
    cols = [[] for _ in range(arity)]

    def add(*vs):
        for c, v in zip(cols, vs):
            c.append(f32(v))

    add(*[random_bits(rng, n) for _ in range(arity)])
    add(*[small(rng, n) for _ in range(arity)])
    add(*[small(rng, n, 2) if k == 0 else rng.uniform(0.25, 4, n) * signs(rng, n) for k in range(arity)])
    if op in ("*", "/"):
        for lo, hi in ((0.5, 1.0), (1.0, 2.0)):  # b normal for a < 1; subnormal (read as 0) for a > 1
            a = f32(rng.uniform(lo, hi, 4 * n)).astype(np.float64)
            t = near_tiny(rng, 4 * n) * signs(rng, 4 * n)
            if op == "*":
                add(a, t / a)
            else:
                add(t * a, a)
        if op == "/":  # a quotient of binary32 normals lies in the windows only at (2^-126 - 2^-150) 2^j / 2^j
            j = rng.integers(1, 60, n)
            add((TINY - 2.0**-150) * 2.0**j * signs(rng, n), 2.0**j * signs(rng, n))
    elif op in ("+", "-"):
        a = rng.uniform(2.0**-125, 2.0**-118, 2 * n)
        a = f32(a).astype(np.float64)
        s = TINY + rng.integers(-20, 21, 2 * n) * 2.0**-149
        b = f32(a - s).astype(np.float64)
        add(a, -b if op == "+" else b)
    elif op == "fma":
        a = f32(rng.uniform(0.5, 1.0, 4 * n)).astype(np.float64)
        b = f32(2.0**-125 * rng.uniform(1.0, 1.5, 4 * n) / a).astype(np.float64)
        t = near_tiny(rng, 4 * n, 8)
        sg = signs(rng, 4 * n)
        add(a * sg, b, -f32(a * b - t).astype(np.float64) * sg)
        add(rng.uniform(-2, 2, n), small(rng, n), small(rng, n))
    else:  # sqrt
        add(np.abs(small(rng, n, 40)))
        add(np.abs(random_bits(rng, n)))
    return [np.concatenate(c) for c in cols]


def read_as_zero(a):
    """What DAZ makes of binary32 operands: subnormals are zeros of their sign (the test's own)."""
    a = np.asarray(a, dtype=np.float64)
    return np.where((a != 0) & (np.abs(a) < TINY), np.copysign(0.0, a), a)


ID = formula("x")


def model(op, args, mode):
    """The evaluator's one operation on binary32 operands as DAZ reads them."""
    ev = Evaluator(ID, Policy(FP32, ftz=mode))
    with np.errstate(all="ignore"):
        return ev.apply_op(op, [read_as_zero(a) for a in args], FP32).astype(np.float32)


def same_bits(got, want):
    """Equal bit for bit (any NaN equals any NaN: payloads are not modelled)."""
    got, want = np.asarray(got, dtype=np.float32), np.asarray(want, dtype=np.float32)
    both_nan = np.isnan(got) & np.isnan(want)
    return (got.view(np.uint32) == want.view(np.uint32)) | both_nan


def exact(op, args):
    """The exact results (Fraction; None where an operand is not finite or a division is by 0)."""
    out = []
    for vals in zip(*[read_as_zero(a) for a in args]):
        if not all(math.isfinite(v) for v in vals) or (op == "/" and vals[1] == 0) or (op == "sqrt" and vals[0] < 0):
            out.append(None)
            continue
        a, b, c = ([Fraction(x) for x in vals] + [None, None])[:3]
        out.append(a + b if op == "+" else a - b if op == "-" else a * b if op == "*" else a / b if op == "/"
                   else a * b + c if op == "fma" else None)  # sqrt: None (never tiny in binary32)
    return out


def windows(rs) -> tuple[int, int]:
    """How many exact results lie in [2^-126 - 2^-150, 2^-126 - 2^-151) (rounds to 2^-126 with gradual
    underflow, tiny after rounding) and in [2^-126 - 2^-151, 2^-126) (tiny before rounding only)."""
    a = b = 0
    for r in rs:
        if r is None:
            continue
        m = abs(r)
        a += T - Fraction(2) ** -150 <= m < T - Fraction(2) ** -151
        b += T - Fraction(2) ** -151 <= m < T
    return a, b


def covered(op, counts):
    """Enough exact results in both windows; a quotient of binary32 normals n / b never lies in the
    second (n and b*2^-126 in one binade differ by a multiple of ulp(b*2^-126) >= 2^-24 b 2^-126), and in
    the first only at its lower end 2^-126 - 2^-150 (b a power of two)."""
    a, b = counts
    assert a >= 50 and (b >= 50 or op == "/"), (op, a, b)


OPS = ["+", "-", "*", "/", "fma", "sqrt"]


def _hardware(lib, op, args):
    x = [np.ascontiguousarray(a, dtype=np.float32) for a in args]
    with np.errstate(all="ignore"), hardware_flush(lib):
        if op == "fma":
            return hw_fma(lib, *x), None, None
        f = HW[op]
        whole = f(*x)  # the SIMD loops
        strided = f(*[a[::3] for a in x])  # another loop
        single = [f(*[a[i:i + 1] for a in x])[0] for i in range(0, len(x[0]), 997)]  # the scalar path
    return whole, strided, np.array(single, dtype=np.float32)


def test_hardware_flushes_here(mxcsr):
    """The premise: numpy float32 + - * / and sqrt, and the fma of the C library, obey MXCSR here."""
    sub = np.array([2.0**-140] * 64, dtype=np.float32)
    one = np.ones(64, dtype=np.float32)
    big = np.full(64, 2.0**-63, dtype=np.float32)
    with np.errstate(all="ignore"), hardware_flush(mxcsr):
        got = {"+ (DAZ)": sub + np.float32(0), "* (DAZ)": sub * one, "/ (DAZ)": sub / one, "sqrt (DAZ)": np.sqrt(sub),
               "* (FTZ)": big * np.full(64, 2.0**-70, dtype=np.float32), "- (FTZ)": np.full(64, 2.0**-125 + 2.0**-148, np.float32) - np.full(64, 2.0**-125, np.float32),
               "fma (FTZ)": hw_fma(mxcsr, big, np.full(64, 2.0**-70, dtype=np.float32), np.zeros(64, np.float32))}
    ignored = [k for k, v in got.items() if not (v == 0).all()]
    assert not ignored, f"these ignore MXCSR FTZ/DAZ here: {ignored}"
    assert (sub + np.float32(0) == sub).all()  # restored


@pytest.mark.parametrize("op", OPS)
def test_after_mode_is_x86_ftz_daz_bit_for_bit(mxcsr, op):
    """--ftz after against numpy binary32 arithmetic under real MXCSR.FTZ|DAZ, on every loop numpy
    has for it (SIMD, strided, one element), including exact results in both rounding windows."""
    args = operands(op)
    whole, strided, single = _hardware(mxcsr, op, args)
    want = model(op, args, "after")
    bad = np.flatnonzero(~same_bits(want, whole))
    assert not len(bad), (f"{len(bad)} of {len(want)} differ; first: operands "
                          f"{[float(a[bad[0]]) for a in args]} hardware {whole[bad[0]]!r} model {want[bad[0]]!r}")
    if strided is not None:
        assert same_bits(want[::3], strided).all()
        assert same_bits(want[::997], single).all()
    if op in ("*", "/", "fma"):  # the inputs reach the cases where flushing after rounding is subtle
        covered(op, windows(exact(op, args)))


@pytest.mark.parametrize("op", OPS)
def test_before_mode_against_exact_rationals(op):
    """--ftz before: a zero of r's sign exactly where the exact result r has 0 < |r| < 2^-126 (Fraction),
    elsewhere the IEEE binary32 result of the operands as DAZ reads them."""
    args = operands(op, seed=1)
    with np.errstate(all="ignore"):
        x = [read_as_zero(a).astype(np.float32) for a in args]
        plain = HW[op](*x) if op != "fma" else None
    rs = exact(op, args)
    if op == "fma":  # IEEE fma of binary32 operands: the exact sum rounded once (Fraction -> binary32)
        plain = np.array([np.nan if r is None else _fma_zero(*v) if r == 0 else _rn32(r)
                          for r, v in zip(rs, zip(*[xx.astype(np.float64) for xx in x]))], dtype=np.float32)
        ok = np.array([r is not None for r in rs])
    else:
        ok = np.ones(len(rs), dtype=bool)
    want = plain.copy()
    for i, r in enumerate(rs):
        if r is not None and r != 0 and abs(r) < T:  # (sqrt of binary32 is never tiny: r is None there)
            want[i] = np.float32(-0.0) if r < 0 else np.float32(0.0)
    got = model(op, args, "before")
    bad = np.flatnonzero(~same_bits(got, want) & ok)
    assert not len(bad), (f"{len(bad)} differ; first: operands {[float(a[bad[0]]) for a in args]} "
                          f"exact {rs[bad[0]]} model {got[bad[0]]!r} want {want[bad[0]]!r}")
    if op in ("*", "/", "fma"):
        covered(op, windows(rs))


def _fma_zero(a, b, c) -> float:
    """IEEE's zero for an exact zero a*b + c: -0 when a*b and c are zeros that are both negative, else +0."""
    neg = (a == 0 or b == 0) and c == 0 and (math.copysign(1, a) * math.copysign(1, b) < 0) and math.copysign(1, c) < 0
    return -0.0 if neg else 0.0


def _rn32(r: Fraction) -> float:
    """RN_binary32 of an exact rational with gradual underflow (the test's own integer rounding)."""
    if r == 0:
        return 0.0
    s = -1.0 if r < 0 else 1.0
    m = abs(r)
    e = m.numerator.bit_length() - m.denominator.bit_length()  # 2^e <= m < 2^(e+2)
    if Fraction(2) ** e > m:
        e -= 1
    q = max(e, -126) - 23  # the quantum
    k = m / Fraction(2) ** q
    n = k.numerator // k.denominator
    rem = k - n
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and n % 2):
        n += 1
    v = math.ldexp(n, q)
    return s * (math.inf if v >= 2.0**128 else v)


def test_constants_and_inputs_are_read_as_zero_like_hardware(mxcsr):
    """A subnormal literal becomes a signed zero (the constant of x + 1e-40 reads as 0 under DAZ), as
    does a subnormal input; the whole formula against the same expression under MXCSR."""
    rng = np.random.default_rng(5)
    x = np.concatenate([small(rng, 4000, 3), f32(rng.uniform(-4, 4, 1000)),
                        f32([TINY, -TINY, 2.0**-127, 0.0, -0.0])])
    c = np.float32(1e-40)
    c2, c3 = np.float32(0.75), np.float32(1.5)
    with np.errstate(all="ignore"), hardware_flush(mxcsr):
        hw1 = x + c
        hw2 = x * c2 - x / c3
        hw3 = (x * c2 + c) * c3
    for body, hw in (("(+ x 1e-40)", hw1), ("(- (* x 0.75) (/ x 1.5))", hw2), ("(* (+ (* x 0.75) 1e-40) 1.5)", hw3)):
        got = evaluate(formula(body), x.astype(np.float64), Policy(FP32, ftz="after")).y
        assert same_bits(got, hw).all(), body


def test_compute_dtype_conversion_like_hardware(mxcsr):
    """fp32 computed in fp64: the final conversion to binary32 flushes like cvtpd2ps under FTZ, the
    exact midpoint 2^-126 - 2^-151 (x = 2^-126, K = 1 - 2^-25) included (it rounds up: not tiny)."""
    rng = np.random.default_rng(6)
    x = np.concatenate([TINY * (1 + np.arange(0, 64) * 2.0**-23), -TINY * (1 + np.arange(0, 64) * 2.0**-23),
                        small(rng, 3000, 3)]).astype(np.float32)
    for k in ("0x1.fffffcp-1", "0x1.fffffep-1", "0x1.fffff8p-1", "0x1.fffffdp-1", "0x1.ffffff8p-1"):
        kv = float.fromhex(k)
        with np.errstate(all="ignore"), hardware_flush(mxcsr):
            hw = (x.astype(np.float64) * kv).astype(np.float32)
        got = evaluate(formula(f"(* x {k})"), x.astype(np.float64), Policy(FP32, FP64, ftz="after")).y
        assert same_bits(got, hw).all(), k
    assert np.float32(TINY) * np.float32(1) != 0  # restored


# ---------------------------------------------------------------- elementary functions (libm cr)


def _libm_expected(op, x, mode, b=None):
    """mpmath at 800 bits: a zero of r's sign where r is tiny (after: r rounded to 24 bits with
    mpmath's unbounded exponent is below 2^-126; before: |r| < 2^-126), else RN_binary32(r)."""
    with mpmath.workprec(800):
        a = mpmath.mpf(float(x))
        r = {"exp": mpmath.exp, "expm1": mpmath.expm1, "log1p": mpmath.log1p, "tanh": mpmath.tanh,
             "log": mpmath.log}[op](a) if op != "pow" else mpmath.power(a, mpmath.mpf(b))
        tiny = mpmath.ldexp(1, -126)
        with mpmath.workprec(24):
            r24 = +r
        small_r = abs(r24) < tiny if mode == "after" else abs(r) < tiny
        if r != 0 and small_r:
            return -0.0 if r < 0 else 0.0
        return float(r24)  # not tiny: |r24| >= 2^-126, a normal binary32 value (no overflow in these cases)


def _libm_cases():
    e = float(mpmath.log(mpmath.ldexp(1, -126)))  # exp(x) = 2^-126 there
    x0 = np.float32(e)
    ords = x0.view(np.int32) + np.arange(-300, 301)
    exp_x = ords.astype(np.int32).view(np.float32).astype(np.float64)
    near = np.array([TINY * (1 + k * 2.0**-23) for k in range(4)])
    near = np.concatenate([near, -near])
    return {"exp": exp_x, "expm1": near, "log1p": near, "tanh": near,
            "pow": f32(2.0**-42 * (1 + np.arange(-50, 51) * 2.0**-24)).astype(np.float64)}


@pytest.mark.parametrize("mode", ["after", "before"])
@pytest.mark.parametrize("op", ["exp", "expm1", "log1p", "tanh", "pow"])
def test_libm_cr_flushes_by_the_exact_value(op, mode):
    """libm cr under ftz: the function's exact value decides tininess (tanh(2^-126) < 2^-126 rounds to
    2^-126: kept after rounding, flushed before); mpmath at 800 bits is the judge."""
    x = _libm_cases()[op]
    body = "(pow x 3)" if op == "pow" else f"({op} x)"
    got = evaluate(formula(body), x, Policy(FP32, ftz=mode)).y
    want = np.array([_libm_expected(op, v, mode, 3 if op == "pow" else None) for v in x])
    bad = np.flatnonzero(~same_bits(got, want))
    assert not len(bad), f"{op}({x[bad[0]]!r}): model {got[bad[0]]!r}, mpmath {want[bad[0]]!r}"
    if op in ("expm1", "log1p", "tanh"):  # the inputs do reach the difference between the modes
        assert (got == 0).any() == (mode == "before")


# ---------------------------------------------------------------- a process left flushing


def test_a_process_left_flushing_is_refused(tmp_path):
    """Another library set FTZ/DAZ before mishaudit runs: the CLI says so in one line and exits 2; the
    API raises UserError (detected with numpy arithmetic, no C code in mishaudit)."""
    assert X86, "setting MXCSR needs x86; this machine is " + platform.machine()
    lib = _build(tmp_path)
    for bits in (FTZ_BIT | DAZ_BIT, FTZ_BIT, DAZ_BIT):
        code = textwrap.dedent(f"""
            import ctypes, sys
            sys.dont_write_bytecode = True  # code compiled while flushing has its subnormal literals zeroed
            lib = ctypes.CDLL({lib!r})
            lib.get_csr.restype = ctypes.c_uint
            lib.set_csr.argtypes = [ctypes.c_uint]
            lib.set_csr(lib.get_csr() | {bits})
            import mishaudit
            try:
                mishaudit.compare("fp16", "softplus-tanh", domain="1:1.01")
            except mishaudit.UserError as e:
                print("API refused:", e)
            else:
                print("API ran")
            from mishaudit.cli import main
            sys.argv = ["mishaudit", "list"]
            main()
            """)
        p = subprocess.run([sys.executable, "-B", "-c", code], check=False, capture_output=True, text=True, timeout=300)
        assert p.returncode == 2, (bits, p.stdout, p.stderr)
        assert "API refused" in p.stdout and "flushes subnormal" in p.stdout
        err = p.stderr.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("mishaudit: error:") and "flushes subnormal" in err[0], p.stderr
        assert ("FTZ" in err[0]) == bool(bits & FTZ_BIT) and ("DAZ" in err[0]) == bool(bits & DAZ_BIT)


# ---------------------------------------------------------------- the mode, named everywhere


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "mishaudit.cli", *args], check=False, capture_output=True, text=True, timeout=600)


def test_cli_names_the_mode_in_json_and_tables():
    base = ["compare", "--dtype", "fp16", "--formula", "softplus-tanh", "--domain", "-20:-14"]
    got = {}
    for flag in ([], ["--ftz"], ["--ftz=before"], ["--ftz", "after"]):
        p = _cli(*base, *flag, "--format", "json")
        assert p.returncode == 0, p.stderr
        got[" ".join(flag)] = json.loads(p.stdout)[0]
    assert [r["ftz"] for r in got.values()] == [False, "after", "before", "after"]
    assert got[""]["max_ulp"] != got["--ftz"]["max_ulp"]  # mish of x in [-20, -14] is subnormal in fp16
    p = _cli(*base, "--ftz=before")
    assert p.returncode == 0 and "ftz=before" in p.stdout, p.stdout
    p = _cli(*base, "--ftz=sideways")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "sideways" in p.stderr


def test_thresholds_ftz_old_true_and_named_modes():
    from mishaudit.gate.thresholds import baseline_text, parse_thresholds

    def one(v):
        text = f'version = 1\n[[limit]]\nformula = "softplus-tanh"\ndtype = "fp16"\n{v}max_ulp = 3.0\n'
        return parse_thresholds(text, "t.toml").entries[0]

    assert one("").ftz is False
    assert one("ftz = false\n").ftz is False
    assert one("ftz = true\n").ftz == "after"  # files written before the modes had names
    assert one('ftz = "after"\n').ftz == "after"
    assert one('ftz = "before"\n').ftz == "before"
    assert " ftz=before" in one('ftz = "before"\n').label()
    with pytest.raises(UserError, match=r"t.toml:5: .*ftz"):
        one('ftz = "sometimes"\n')
    row = {"formula": "softplus-tanh", "dtype": "fp16", "compute_dtype": "fp16", "ftz": "before", "libm": "cr",
           "strategy": "exhaustive", "max_ulp": 1.0, "mean_ulp": 0.1, "p99_ulp": 1.0, "nonfinite": 0, "cr_frac": 0.9,
           "dulp_0": 9, "dulp_1": 1, "dulp_2": 0, "dulp_3": 0, "dulp_gt3": 0}
    text = baseline_text([row], 0.05, "mishaudit baseline", 1, 0, None)
    assert 'ftz = "before"' in text
    assert parse_thresholds(text, "b.toml").entries[0].ftz == "before"


def test_api_modes():
    assert Policy(FP32, ftz=True).ftz == "after"
    assert Policy(FP32, ftz=None).ftz is False
    with pytest.raises(UserError, match="--ftz"):
        Policy(FP32, ftz="yes")
