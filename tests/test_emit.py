"""emit/: the code `mishaudit emit` writes computes what the evaluator computes, bit for bit.

C: every registered formulation is compiled with gcc, with the flags its own header states, and run on
every finite fp16 and bf16 input (and the specials), on the fp32 sample (2^16 values, edges, specials)
and on an fp64 sample; the bits (a NaN as any NaN, -0 apart from +0) equal eval/evaluate.py's under
`--libm glibc`. numpy and torch: the emitted module is executed here (our own generated code) and
compared the same way with the evaluator under `--libm numpy` and `--libm torch`. CUDA is not run (no
GPU): its text is checked for structure (the signature, balanced brackets, every operation of the formula
spelled as often as it occurs) and compiled where nvcc is installed. A property test draws random FPCore trees (+ - * / fma exp
log1p tanh, constants, let*, if, :precision) and compares C and numpy with the evaluator on an fp16
sample. Every program is compiled once per format (all formulations in one file)."""

from __future__ import annotations

import io
import math
import os
import re
import shutil
import subprocess
import sys
import tokenize

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import fpcore_trees
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mishaudit import api
from mishaudit.cli import main
from mishaudit.emit import LANGS, emit, lower
from mishaudit.emit import c as emit_c
from mishaudit.emit import python as emit_py
from mishaudit.emit.text import identifier
from mishaudit.errors import UserError
from mishaudit.eval import libm
from mishaudit.eval.evaluate import Policy, evaluate, fma_round_to_odd
from mishaudit.eval.inputs import sample
from mishaudit.formats import (
    BF16,
    FP16,
    FP32,
    FP64,
    all_finite,
    round_fraction,
    round_to,
    to_dtype,
)
from mishaudit.lang import fpcore as fc
from mishaudit.lang.registry import load_registry, load_text

REG = load_registry()
IDS = sorted(REG)  # every shipped formulation, formulas/libm/ included
FP64_IDS = ["softplus-tanh", "yashas2", "njuffa", "pytorch-75251", "darknet-cpu-grad", "exp-rational-clamped"]
SPECIALS = np.array([np.inf, -np.inf, np.nan])
GCC = shutil.which("gcc")
needs_gcc = pytest.mark.skipif(GCC is None, reason="gcc is not installed")


def inputs(fmt) -> np.ndarray:
    """Every finite value (16-bit formats) or the seeded sample with its edges, plus inf, -inf and NaN."""
    if fmt.bits == 16:
        x = all_finite(fmt)
    else:
        x = sample(fmt, 1 << 16 if fmt is FP32 else 1 << 12, 0).x
        x = np.concatenate([x, [fmt.max, -fmt.max, fmt.tiny, fmt.min_subnormal, -fmt.min_subnormal, 0.0, -0.0]])
    return np.concatenate([x, SPECIALS])


def mismatches(got: np.ndarray, y: np.ndarray, fmt, x: np.ndarray) -> list:
    """Inputs where `got` (values of fmt's dtype) and the evaluator's `y` (float64) differ: bit patterns,
    except that any NaN equals any NaN. Returns up to five (x, got, want) for the message."""
    got = np.asarray(got)
    assert got.dtype == fmt.dtype and got.shape == y.shape
    want = to_dtype(y, fmt)
    gnan, wnan = np.isnan(got.astype(np.float64)), np.isnan(y)
    bad = (gnan != wnan) | (~wnan & (got.view(fmt.uint) != want.view(fmt.uint)))
    idx = np.flatnonzero(bad)
    return [(float(x[i]), float(got[i]), float(y[i])) for i in idx[:5]] + ([f"{len(idx)} in all"] if len(idx) else [])


def expected(formula, x: np.ndarray, fmt, model: str) -> np.ndarray:
    return evaluate(formula, x, Policy(fmt, libm=model)).y


# ------------------------------------------------------------------------------------------------ C

_STORE = {FP16: "uint16_t", BF16: "uint16_t", FP32: "uint32_t", FP64: "uint64_t"}
_CTYPE = {FP16: "_Float16", BF16: "float", FP32: "float", FP64: "double"}


def compile_flags(text: str) -> list:
    """The gcc command line the emitted header states (`Compile: gcc ... -lm`), as arguments."""
    m = re.search(r"Compile: (gcc [^\n]*?) \.\.\. (-lm)", text)
    assert m, "the header names no compile command"
    return m.group(1).split(), [m.group(2)]


def c_program(formulas, fmt) -> tuple[str, list, list]:
    """A C program holding the emitted function of every formula in `formulas`: it reads the inputs'
    bits from argv[1] and writes each function's outputs in turn (bf16: the float's 32 bits) to argv[2]."""
    texts = [emit(f, "c", fmt) for f in formulas]
    flags = {tuple(a + b) for a, b in map(compile_flags, texts)}
    assert len(flags) == 1
    head, tail = compile_flags(texts[0])
    ctype, store = _CTYPE[fmt], _STORE[fmt]
    load = ("uint32_t u = (uint32_t)in[i] << 16; float v; memcpy(&v, &u, 4);" if fmt is BF16
            else f"{ctype} v; memcpy(&v, &in[i], sizeof v);")
    keep = ("float y = FNS[k](v); memcpy(&out[k * n + i], &y, 4);" if fmt is BF16
            else f"{ctype} y = FNS[k](v); memcpy(&out[k * n + i], &y, sizeof y);")
    out_t = "uint32_t" if fmt is BF16 else store
    main_c = f"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
typedef {ctype} (*fn)({ctype});
static fn const FNS[] = {{{", ".join(identifier(f.id) for f in formulas)}}};
int main(int argc, char **argv)
{{
    FILE *fi = fopen(argv[1], "rb"), *fo = fopen(argv[2], "wb");
    long n, i;
    size_t k, m = sizeof FNS / sizeof FNS[0];
    if (argc != 3 || !fi || !fo) return 2;
    fseek(fi, 0, SEEK_END);
    n = ftell(fi) / (long)sizeof({store});
    rewind(fi);
    {store} *in = malloc(n * sizeof *in);
    {out_t} *out = malloc(m * n * sizeof *out);
    if (fread(in, sizeof *in, n, fi) != (size_t)n) return 2;
    for (k = 0; k < m; k++)
        for (i = 0; i < n; i++) {{
            {load}
            {keep}
        }}
    return fwrite(out, sizeof *out, m * n, fo) == m * n ? 0 : 2;
}}
"""
    return "".join(texts) + main_c, head, tail


def run_c(formulas, fmt, x: np.ndarray, tmp_path) -> list:
    """The outputs (values of fmt's dtype) of every formula's compiled C function on x."""
    src, head, tail = c_program(formulas, fmt)
    tag = f"{fmt.name}-{len(formulas)}-{abs(hash(src)) % 10**8}"
    c_file, exe = tmp_path / f"{tag}.c", tmp_path / tag
    c_file.write_text(src)
    p = subprocess.run([*head, str(c_file), "-o", str(exe), *tail], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    fin, fout = tmp_path / f"{tag}.in", tmp_path / f"{tag}.out"
    to_dtype(x, fmt).view(fmt.uint).tofile(fin)
    p = subprocess.run([str(exe), str(fin), str(fout)], capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr
    if fmt is BF16:
        words = np.fromfile(fout, dtype=np.uint32).reshape(len(formulas), len(x))
        nan = np.isnan(words.view(np.float32))
        assert not (words[~nan] & 0xFFFF).any(), "a bf16 result that is not a bfloat16 value"
        out = (words >> 16).astype(np.uint16).view(BF16.dtype)
    else:
        out = np.fromfile(fout, dtype=fmt.uint).view(fmt.dtype).reshape(len(formulas), len(x))
    return list(out)


@needs_gcc
@pytest.mark.parametrize("fmt", [FP16, BF16, FP32, FP64], ids=lambda f: f.name)
def test_c_equals_the_evaluator_under_glibc(fmt, tmp_path):
    forms = [REG[i] for i in (IDS if fmt is not FP64 else FP64_IDS)]
    x = inputs(fmt)
    outs = run_c(forms, fmt, x, tmp_path)
    bad = {f.id: m for f, got in zip(forms, outs) if (m := mismatches(got, expected(f, x, fmt, "glibc"), fmt, x))}
    assert not bad, bad


@needs_gcc
def test_the_c_header_states_the_model_and_the_flags():
    text = emit(REG["njuffa"], "c", FP16)
    head = text.split("*/")[0]
    assert "formula njuffa" in head and "--libm glibc" in head and "-ffp-contract=off" in head
    assert "-fexcess-precision=standard" in head and "GCC >= 12" in head and "-ffast-math" in head
    assert "static inline _Float16 mishaudit_njuffa(_Float16 x)" in text
    assert "static inline float mishaudit_yashas2(float x)" in emit(REG["yashas2"], "c", BF16)
    assert "static inline double mishaudit_njuffa(double x)" in emit(REG["njuffa"], "c", FP64)
    assert "fmaf(" in emit(REG["njuffa"], "c", FP32) and "fma(" in emit(REG["njuffa"], "c", FP64)


# ------------------------------------------------------------------------------------- numpy, torch


def load_python(formula, lang: str, fmt):
    ns: dict = {}
    exec(compile(emit(formula, lang, fmt), f"<emit {formula.id} {lang} {fmt.name}>", "exec"), ns)
    return ns[identifier(formula.id)]


def _ids(fmt):
    return IDS if fmt is not FP64 else FP64_IDS


@pytest.mark.parametrize("fmt", [FP16, BF16, FP32, FP64], ids=lambda f: f.name)
def test_numpy_equals_the_evaluator_under_numpy(fmt):
    x = inputs(fmt)
    xin = to_dtype(x, fmt)
    bad = {}
    for i in _ids(fmt):
        f = REG[i]
        got = load_python(f, "numpy", fmt)(xin)
        if m := mismatches(got, expected(f, x, fmt, "numpy"), fmt, x):
            bad[i] = m
    assert not bad, bad


def _to_torch(v: np.ndarray, fmt):
    import torch

    if fmt is BF16:
        return torch.from_numpy(to_dtype(v, fmt).view(np.int16).copy()).view(torch.bfloat16)
    return torch.from_numpy(to_dtype(v, fmt))


def _from_torch(t, fmt) -> np.ndarray:
    import torch

    if fmt is BF16:
        return t.view(torch.int16).numpy().view(BF16.dtype)
    return t.numpy()


@pytest.mark.parametrize("fmt", [FP16, BF16, FP32, FP64], ids=lambda f: f.name)
def test_torch_equals_the_evaluator_under_torch(fmt):
    pytest.importorskip("torch")
    x = inputs(fmt)
    xin = _to_torch(x, fmt)
    bad = {}
    for i in _ids(fmt):
        f = REG[i]
        got = _from_torch(load_python(f, "torch", fmt)(xin), fmt)
        if m := mismatches(got, expected(f, x, fmt, "torch"), fmt, x):
            bad[i] = m
    assert not bad, bad


def test_python_functions_refuse_another_dtype():
    f = load_python(REG["softplus-tanh"], "numpy", FP16)
    with pytest.raises(TypeError, match="float16"):
        f(np.zeros(3))
    assert f(np.zeros(3, dtype=np.float16)).dtype == np.float16


# ---------------------------------------------------------------------------------------------- CUDA

_CUDA_SPELLING = {"+": "add", "-": "sub", "*": "mul", "/": "div", "sqrt": "sqrt"}


def _op_nodes(e) -> list:
    """The operation of every Op node of the tree (unary minus as "neg")."""
    out = [("neg" if e.op == "-" and len(e.args) == 1 else e.op)] if isinstance(e, fc.Op) else []
    for c in fc.children(e):
        out += _op_nodes(c)
    return out


def _balanced(text: str) -> bool:
    stack = []
    for ch in text:
        if ch in "({[":
            stack.append(ch)
        elif ch in ")}]":
            if not stack or "({["[")}]".index(ch)] != stack.pop():
                return False
    return not stack


@pytest.mark.parametrize("fmt", [FP16, BF16, FP32, FP64], ids=lambda f: f.name)
def test_cuda_text_has_the_signature_and_every_operation(fmt):
    ctype = {FP16: "__half", BF16: "__nv_bfloat16", FP32: "float", FP64: "double"}[fmt]
    for i in IDS:
        f = REG[i]
        text = emit(f, "cuda", fmt)
        code = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        assert _balanced(code), i
        sig = f"__device__ __forceinline__ {ctype} {identifier(i)}({ctype} x)\n{{"
        assert sig in code, i
        body = code.split(sig, 1)[1]
        assert body.rstrip().endswith("}") and "return t" in body
        assert "CUDA's own libm, not glibc's" in text and "--fmad=false" in text
        if fmt in (FP16, BF16):
            wide, narrow = {FP16: ("__half2float", "__float2half_rn"), BF16: ("__bfloat162float", "__float2bfloat16_rn")}[fmt]
            assert wide in body and narrow in body
        d = "d" if fmt is FP64 else "f"
        ops = _op_nodes(f.body)
        for op in set(ops):
            n = ops.count(op)
            if op in _CUDA_SPELLING:
                assert body.count(f"__{d}{_CUDA_SPELLING[op]}_rn(") == n, (i, op)
            elif op in lower.LIBM:
                name = emit_c.GLIBC[op][1 if fmt is FP64 else 0]
                assert len(re.findall(rf"\b{name}\(", body)) == n, (i, op)
            elif op == "fma":
                fma = f"fma{'' if fmt is FP64 else 'f'}(" if fmt in (FP32, FP64) else "mishaudit_fma_ro("
                assert body.count(fma) == n, (i, op)
            elif op in ("fmax", "fmin", "fabs", "copysign"):
                assert ("isnan(" if op in ("fmax", "fmin") else op) in body, (i, op)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="no nvcc here: the CUDA text is checked for structure only")
def test_cuda_compiles_where_nvcc_is(tmp_path):
    for fmt in (FP16, BF16, FP32, FP64):
        src = tmp_path / f"m-{fmt.name}.cu"
        forms = [REG[i] for i in IDS] + [load_text(MIXED, "<mixed>", "mixed"), load_text(EVIL, "<evil>", "evil")]
        ctype = {FP16: "__half", BF16: "__nv_bfloat16", FP32: "float", FP64: "double"}[fmt]
        calls = "".join(f"    y[{k} * n + i] = {identifier(f.id)}(x[i]);\n" for k, f in enumerate(forms))
        kernel = (f"__global__ void all_of_them(const {ctype} *x, {ctype} *y, int n)\n{{\n"
                  f"    int i = blockIdx.x * blockDim.x + threadIdx.x;\n    if (i >= n) return;\n{calls}}}\n")
        src.write_text("".join(emit(f, "cuda", fmt) for f in forms) + kernel)
        p = subprocess.run(["nvcc", "-O3", "--fmad=false", "-c", str(src), "-o", str(src.with_suffix(".o"))],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]


# ------------------------------------------------------- the exact helpers: round to odd, fma

RNG = np.random.default_rng(20250601)


@np.errstate(all="ignore")
def hard_doubles(fmt, n: int = 1 << 15) -> np.ndarray:
    """binary64 values on and next to the ties of fmt, below binary32's resolution (where float64 ->
    float32 -> fmt rounds twice wrongly), and random ones; subnormal ties too."""
    h = from_bits(RNG.integers(0, 1 << 16, n, dtype=np.uint32).astype(np.uint16), fmt)
    h = h[np.isfinite(h) & (np.abs(h) < fmt.max)]
    up = np.nextafter(to_dtype(h, fmt), to_dtype(np.copysign(np.inf, h), fmt)).astype(np.float64)
    tie = (h + up) / 2  # exact in binary64
    off = np.ldexp(RNG.integers(-3, 4, tie.size).astype(np.float64), np.frexp(np.where(tie == 0, 1, tie))[1] - 40)
    return np.concatenate([tie, tie + off, tie - off, h, RNG.normal(size=n) * 2.0 ** RNG.integers(-140, 130, n)])


def from_bits(bits: np.ndarray, fmt) -> np.ndarray:
    return bits.view(fmt.dtype).astype(np.float64)


@np.errstate(all="ignore")
def hard_triples(fmt, n: int = 1 << 15):
    """(a, b, c) of fmt: products on ties of fmt (a = 1 + i u, b = 1 + j u, scaled), c tiny (a nudge
    up to 90 bits below the product: where a*b + c is inexact in binary64 and only rounding to odd
    keeps the nudge), of the product's size (cancellation) or random."""
    u = 2.0 ** -((fmt.p + 1) // 2)
    i, j = RNG.integers(0, 1 << ((fmt.p - 1) // 2), (2, n))
    span = 6 if fmt is FP16 else 40
    k = RNG.integers(-span, span, (2, n))
    a = round_to(np.ldexp(1 + i * u, k[0]) * RNG.choice([-1, 1], n), fmt)
    b = round_to(np.ldexp(1 + j * u, k[1]), fmt)
    p = a * b
    tiny = np.ldexp(RNG.choice([-1.0, 1.0], n), np.frexp(p)[1] - fmt.p - RNG.integers(1, 90, n))
    tiny = round_to(np.where(np.abs(tiny) < fmt.min_subnormal, np.copysign(fmt.min_subnormal, tiny), tiny), fmt)
    near = round_to(-p * (1 + RNG.normal(size=n) * 2.0 ** -RNG.integers(1, fmt.p, n)), fmt)
    rand = round_to(RNG.normal(size=n) * 4.0 ** RNG.integers(-10, 10, n), fmt)
    c = np.where(RNG.integers(0, 2, n) == 0, tiny, np.where(RNG.integers(0, 2, n) == 0, near, rand))
    return a, b, c


def exact_fma(a, b, c, fmt, count: int = 3000) -> np.ndarray:
    """RN_fmt(a*b + c) for the first `count` finite triples by exact rationals: an oracle for the evaluator."""
    from fractions import Fraction

    return np.array([round_fraction(Fraction(x) * Fraction(y) + Fraction(z), fmt)
                     if np.isfinite([x, y, z]).all() and x * y + z != 0 else x * y + z
                     for x, y, z in zip(a[:count], b[:count], c[:count])])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("fmt", [FP16, BF16, FP32], ids=lambda f: f.name)
def test_python_fma_and_round_to_odd_helpers_equal_the_evaluator(fmt):
    a, b, c = hard_triples(fmt)
    want = fma_round_to_odd(a, b, c, fmt)
    assert np.array_equal(exact_fma(a, b, c, fmt), want[:3000], equal_nan=True)  # the evaluator is RN(a*b + c)
    for lang in ("numpy", "torch"):
        ns: dict = {}
        exec(emit(REG["njuffa"], lang, FP16), ns)
        ro, fma_ro = ns["_mishaudit_ro32"], ns["_mishaudit_fma_ro"]
        if lang == "torch":
            import torch

            t = [torch.from_numpy(v) for v in (a, b, c)]
            s = fma_ro(*t)
            got = (s.to(torch.float32) if fmt is FP32 else ro(s)).to(torch.float64).numpy()
        else:
            s = fma_ro(a, b, c)
            got = (s.astype(np.float32) if fmt is FP32 else ro(s)).astype(np.float64)
        assert np.array_equal(round_to(got, fmt), want), (lang, fmt.name)
        if fmt is not FP32:
            d = hard_doubles(fmt)
            dd = torch.from_numpy(d) if lang == "torch" else d
            r = ro(dd)
            r = r.to(torch.float64).numpy() if lang == "torch" else r.astype(np.float64)
            naive = round_to(d.astype(np.float32).astype(np.float64), fmt)
            assert (naive != round_to(d, fmt)).any()  # the double rounding these values catch
            assert np.array_equal(round_to(r, fmt), round_to(d, fmt), equal_nan=True), (lang, fmt.name)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_python_binary64_fma_equals_mpfr():
    a, b, c = (RNG.normal(size=4000) * 2.0 ** RNG.integers(-600, 600, 4000) for _ in range(3))
    c[:1000] = -a[:1000] * b[:1000]  # cancellation
    a[1000:1100], c[1100:1200] = np.inf, -np.inf
    b[1200:1300] = 0.0
    a[1300:1400], b[1300:1400] = 2.0 ** 600, 2.0 ** 600  # overflow
    a[1400:1500], b[1400:1500], c[1400:1500] = 2.0 ** -600, 2.0 ** -500, 2.0 ** -1074  # subnormal
    want = libm.fma(a, b, c, FP64)
    for lang in ("numpy", "torch"):
        ns: dict = {}
        exec(emit(REG["njuffa"], lang, FP64), ns)
        args = (a, b, c)
        if lang == "torch":
            import torch

            args = tuple(torch.from_numpy(v) for v in args)
        got = np.asarray(ns["_mishaudit_fma64"](*args))
        same = (got.view(np.uint64) == want.view(np.uint64)) | (np.isnan(got) & np.isnan(want))
        assert same.all(), (lang, a[~same][:3], b[~same][:3], c[~same][:3])


@needs_gcc
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("fmt", [FP16, BF16, FP32], ids=lambda f: f.name)
def test_c_fma_and_round_to_odd_helpers_equal_the_evaluator(fmt, tmp_path):
    """The helpers as emitted, called on hard cases by a small program compiled with the header's flags:
    (T)ro32(fma_ro(a, b, c)) and fmaf against the evaluator's fma, (T)ro32(d) against exact rounding."""
    helpers = emit(REG["njuffa"], "c", FP16) + emit(REG["softplus-tanh"], "c", BF16)
    head, tail = compile_flags(helpers)
    a, b, c = hard_triples(fmt)
    d = hard_doubles(fmt) if fmt is not FP32 else a
    narrow = {FP16: "(double)(_Float16)", BF16: "(double)mishaudit_bf16", FP32: "(double)(float)"}[fmt]
    fma = "fmaf((float)a[i], (float)b[i], (float)c[i])" if fmt is FP32 else "mishaudit_ro32(mishaudit_fma_ro(a[i], b[i], c[i]))"
    prog = helpers + f"""
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv)
{{
    long n = atol(argv[1]), m = atol(argv[2]), i;
    double *a = malloc(n * 8), *b = malloc(n * 8), *c = malloc(n * 8), *d = malloc(m * 8), *o = malloc((n + m) * 8);
    FILE *f = fopen(argv[3], "rb");
    if (fread(a, 8, n, f) != (size_t)n || fread(b, 8, n, f) != (size_t)n || fread(c, 8, n, f) != (size_t)n
        || fread(d, 8, m, f) != (size_t)m) return 2;
    for (i = 0; i < n; i++) o[i] = {narrow}({fma});
    for (i = 0; i < m; i++) o[n + i] = {narrow}(mishaudit_ro32(d[i]));
    f = fopen(argv[4], "wb");
    return fwrite(o, 8, n + m, f) == (size_t)(n + m) ? 0 : 2;
}}
"""
    (tmp_path / "h.c").write_text(prog)
    p = subprocess.run([*head, str(tmp_path / "h.c"), "-o", str(tmp_path / "h"), *tail], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    np.concatenate([a, b, c, d]).tofile(tmp_path / "h.in")
    p = subprocess.run([str(tmp_path / "h"), str(a.size), str(d.size), str(tmp_path / "h.in"), str(tmp_path / "h.out")])
    assert p.returncode == 0
    out = np.fromfile(tmp_path / "h.out")
    assert np.array_equal(out[:a.size], fma_round_to_odd(a, b, c, fmt))
    assert np.array_equal(out[a.size:], round_to(d, fmt), equal_nan=True)


# ------------------------------------------------------------------------ what reaches the output


def _names_c(text: str) -> set:
    code = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return set(re.findall(r"(?<![\w.])[A-Za-z_]\w*", code))


def _names_py(text: str) -> set:
    toks = tokenize.generate_tokens(io.StringIO(text).readline)
    return {t.string for t in toks if t.type == tokenize.NAME}


EVIL = """(FPCore evil-one (x)
  :name "a */ int boom; /* \\" ??/ \n; import os"
  :mishaudit-params ([secret_threshold 3])
  (let* ([secret_local_name (exp x)] [another_secret_name (+ secret_local_name 1)])
    (if (< x secret_threshold) (* x another_secret_name) x)))"""


@pytest.mark.parametrize("lang", LANGS)
def test_only_the_table_of_names_and_the_id_reach_the_code(lang):
    evil = load_text(EVIL, "<evil>", "evil")
    forms = [REG[i] for i in ("softplus-tanh", "yashas2", "njuffa", "exp-rational-clamped", "coreml-2725")] + [evil]
    table = emit_c.NAMES if lang in ("c", "cuda") else emit_py.NAMES
    for f in forms:
        for fmt in (FP16, BF16, FP32, FP64):
            text = emit(f, lang, fmt)
            names = (_names_c if lang in ("c", "cuda") else _names_py)(text)
            extra = {n for n in names - table if not re.fullmatch(r"t\d+|x", n) and n != identifier(f.id)}
            assert not extra, (f.id, lang, fmt.name, extra)
            assert "secret" not in text and "boom;" not in text.replace("int boom; /", "")
    text = emit(evil, "c", FP32)
    assert text.count("*/") == text.count("/*")  # the :name's comment terminators are escaped
    ns: dict = {}
    exec(emit(evil, "numpy", FP16), ns)  # its :name cannot break out of the comment
    assert "os" not in ns and set(ns) >= {identifier("evil-one")}


@needs_gcc
def test_an_evil_name_compiles_and_computes(tmp_path):
    evil = load_text(EVIL, "<evil>", "evil")
    x = inputs(FP16)
    (got,) = run_c([evil], FP16, x, tmp_path)
    assert not mismatches(got, expected(evil, x, FP16, "glibc"), FP16, x)


# ------------------------------------------------------------------------ refusals and constructs

PRIMITIVE = "(FPCore prim (x) (* x (tanh (softplus x))))"
BADPREC = "(FPCore badprec (x) (! :precision binary8 (exp x)))"
MIXED = """(FPCore mixed (x)
  :mishaudit-constants ((eps (binary16 0x1p-10) (bfloat16 0x1p-7) (binary32 0x1p-23) (binary64 0x1p-52)))
  (let ([a (! :precision binary32 (* x (+ 1 eps)))]
        [b (! :precision binary64 (fma x PI (- LN2)))]
        [c (! :precision bfloat16 (+ x E))])
    (if (and (not (== x 0)) (or (< a b c) (!= a b c)))
        (+ (copysign (fabs a) x) (fmax b c))
        (- (sqrt (fabs (fmin a b))) (pow (exp2 (expm1 c)) (log (+ 2 (fabs x))))))))"""


def test_refusals_are_one_line_user_errors():
    with pytest.raises(UserError, match="runtime primitive") as e:
        emit(load_text(PRIMITIVE, "<p>", "p"), "c", FP16)
    assert "\n" not in str(e.value) and "softplus" in str(e.value)
    with pytest.raises(UserError, match="binary8") as e:
        emit(load_text(BADPREC, "<b>", "b"), "numpy", FP32)
    with pytest.raises(UserError, match="framework kernel"):
        api.emit("torch:mish", "torch", "fp32")
    with pytest.raises(UserError, match="unknown language"):
        emit(REG["softplus-tanh"], "fortran", FP32)
    for bad, words in ((dict(lang="rust"), "--lang rust"), (dict(dtype="fp8"), "unknown dtype"),
                       (dict(formula="nope"), "unknown formula"), (dict(dtype=["fp16", "bf16"]), "one format"),
                       (dict(formula="soft*"), "matches")):
        args = dict(formula="softplus-tanh", lang="c", dtype="fp16") | bad
        with pytest.raises(UserError, match=re.escape(words)) as e:
            api.emit(args.pop("formula"), **args)
        assert "\n" not in str(e.value)


@needs_gcc
def test_mixed_precision_constants_and_every_exact_operation(tmp_path):
    """:precision in all four formats, E PI LN2, a per-format constant, variadic comparisons, and/or/not,
    copysign fabs fmax fmin sqrt pow exp2 expm1 log: C and numpy and torch equal the evaluator."""
    f = load_text(MIXED, "<mixed>", "mixed")
    for fmt in (FP16, BF16, FP32, FP64):
        x = inputs(fmt)
        (got,) = run_c([f], fmt, x, tmp_path)
        assert not mismatches(got, expected(f, x, fmt, "glibc"), fmt, x), fmt
        assert not mismatches(load_python(f, "numpy", fmt)(to_dtype(x, fmt)), expected(f, x, fmt, "numpy"), fmt, x)
        got_t = _from_torch(load_python(f, "torch", fmt)(_to_torch(x, fmt)), fmt)
        assert not mismatches(got_t, expected(f, x, fmt, "torch"), fmt, x), fmt


FOLDED = [f"(+ x ({op} {c}))" for op in ("exp", "tanh", "log1p", "expm1", "log", "exp2")
          for c in ("0.3", "1.7", "-2.9", "5.5", "-0.77", "3.3", "0.123", "0x1.fffp-2")] + \
         [f"(pow (+ x {c}) 2)" for c in ("0.3", "1.7", "-2.9", "5.5")]


@needs_gcc
@pytest.mark.parametrize("fmt", [FP32, FP64], ids=lambda f: f.name)
def test_libm_calls_on_constants_are_the_c_librarys(fmt, tmp_path):
    """A libm call on a constant is the C library's value (GCC would fold it, and pow(a, 2) into a*a,
    with its own correctly rounded result, which differs for several of these without -fno-builtin)."""
    forms = [load_text(f"(FPCore k{i} (x) {b})", "<k>", f"k{i}") for i, b in enumerate(FOLDED)]
    assert "-fno-builtin" in compile_flags(emit(forms[0], "c", fmt))[0]
    x = inputs(fmt)
    outs = run_c(forms, fmt, x, tmp_path)
    bad = [b for f, got, b in zip(forms, outs, FOLDED) if mismatches(got, expected(f, x, fmt, "glibc"), fmt, x)]
    assert not bad, bad


# --------------------------------------------------------------------------------- property test

CONSTS = ["0", "1", "-1", "2", "0.5", "-0.6", "3", "20", "1/3", "1e-3", "0x1.8p3", "-7.625", "100", "65504",
          "1e5", "-1e-7", "E", "PI", "LN2"]
PRECS = ["binary32", "bfloat16", "binary64", "binary16"]


trees = fpcore_trees(CONSTS, ['exp', 'log1p', 'tanh', '-'], ['+', '-', '*', '/'], PRECS)


PROPERTY_X = np.concatenate([all_finite(FP16)[::29], SPECIALS])


@needs_gcc
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                               HealthCheck.function_scoped_fixture])
@given(st.lists(trees(), min_size=6, max_size=6))
def test_random_trees_c_and_numpy_equal_the_evaluator(tmp_path, bodies):
    forms = [load_text(f"(FPCore h{i} (x) {b})", f"<tree {i}>", f"h{i}") for i, b in enumerate(bodies)]
    x = PROPERTY_X
    outs = run_c(forms, FP16, x, tmp_path)
    for f, got, body in zip(forms, outs, bodies):
        assert not mismatches(got, expected(f, x, FP16, "glibc"), FP16, x), ("c", body)
        got_np = load_python(f, "numpy", FP16)(to_dtype(x, FP16))
        assert not mismatches(got_np, expected(f, x, FP16, "numpy"), FP16, x), ("numpy", body)


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_prints_writes_and_refuses(tmp_path):
    r = CliRunner().invoke(main, ["emit", "--formula", "softplus-tanh", "--lang", "c"])
    assert r.exit_code == 0, r.output
    assert "static inline float mishaudit_softplus_tanh(float x)" in r.output and "expf(" in r.output
    out = tmp_path / "mish.py"
    r = CliRunner().invoke(main, ["emit", "--formula", "yashas2", "--lang", "numpy", "--dtype", "bf16",
                                  "--output", str(out)])
    assert r.exit_code == 0 and r.output == "" and "def mishaudit_yashas2(" in out.read_text()
    assert out.read_text() == api.emit("yashas2", "numpy", "bf16")
    d = tmp_path / "mine"
    d.mkdir()
    (d / "mine.fpcore").write_text("(FPCore my-mish (x) (* x (tanh (log1p (exp x)))))")
    r = CliRunner().invoke(main, ["emit", "--formula", "my-mish", "--formula-dir", str(d), "--lang", "cuda",
                                  "--dtype", "fp16"])
    assert r.exit_code == 0 and "__device__ __forceinline__ __half mishaudit_my_mish(__half x)" in r.output
    for args, words in ((["--lang", "rust"], "--lang rust"), (["--formula", "nope"], "unknown formula 'nope'"),
                        (["--dtype", "fp8"], "unknown dtype 'fp8'"), (["--formula", "torch:mish"], "framework kernel"),
                        (["--output", str(tmp_path / "no" / "x.c")], "does not exist")):
        argv = ["emit", "--formula", "softplus-tanh", *args]
        r = CliRunner().invoke(main, argv)
        assert r.exit_code == 2 and words in r.output and len(r.output.strip().splitlines()) == 1, (args, r.output)


def test_cli_bad_input_is_one_line_on_stderr_exit_2():
    p = subprocess.run([sys.executable, "-m", "mishaudit.cli", "emit", "--formula", "softplus-tanh", "--lang", "go"],
                       capture_output=True, text=True, env=os.environ.copy(), timeout=120)
    assert p.returncode == 2 and p.stdout == "" and len(p.stderr.strip().splitlines()) == 1 and "--lang go" in p.stderr


def test_hex_literals_are_exact():
    from mishaudit.emit.text import hex_float, py_float

    for v in (0.75, -0.0, 5e-324, 1.7976931348623157e308, 1 / 3, -2.0**-149, 65504.0):
        assert float.fromhex(hex_float(v)) == v and math.copysign(1, float.fromhex(hex_float(v))) == math.copysign(1, v)
        assert py_float(v) == f"float.fromhex('{hex_float(v)}')"
    assert hex_float(0.75) == "0x1.8p-1" and hex_float(-0.0) == "-0x0p+0"
