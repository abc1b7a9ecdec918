"""C99 and CUDA source for a lowered formulation (lower.py): one statement per operation, each rounded
once to its format, as mishaudit's evaluator computes it.

C (`--lang c`): `static inline T mishaudit_<id>(T x)`, T = _Float16 (fp16), float (fp32), double (fp64);
bf16 values travel in a float, every result rounded to bfloat16 by the helper mishaudit_bf16 (round to
nearest even on the float's bits; a NaN stays a NaN). The bits are those of the evaluator under
`--libm glibc` (eval/libm.py): binary32 formats call the C library's float functions (expf, log1pf,
tanhf, expm1f, logf, powf, exp2f), binary64 the double ones, and binary16/bfloat16 the float function on
the value (exact in binary32), rounded once. + - * / and sqrt of a 16-bit format are computed in float
and rounded once, which is the correctly rounded result (24 >= 2p + 2: the double rounding is
innocuous); fma is fmaf / fma in binary32 / binary64 and, for the 16-bit formats, the exact fma as the
evaluator forms it (eval/evaluate.py fma_round_to_odd: the product exact in double, TwoSum, rounded to
odd) then rounded to odd into float and once to the format (round to odd then to nearest is correct
with two bits to spare). Every operation is its own statement assigned to a variable of its type (or
cast explicitly), so excess precision cannot merge two roundings; the header says the flags.

fmax/fmin: the first operand when the two compare equal (+0 and -0 included), a NaN operand giving the
other one: the evaluator's rule (eval/evaluate.py fmax, fmin; C's fmax as glibc computes it).

CUDA (`--lang cuda`): the same statements as a `__device__ __forceinline__` function for float, double,
__half and __nv_bfloat16 (cuda_fp16.h, cuda_bf16.h: each 16-bit operation computed in float and rounded
once by __float2half_rn / __float2bfloat16_rn), arithmetic through the _rn intrinsics, which nvcc never
contracts into an fma. CUDA's expf, tanhf... are CUDA's own libm, not glibc's: those bits follow CUDA's.
The CUDA text is never run by the tests (no GPU): tests/test_emit.py checks its structure (balanced
brackets, the signature, every operation of the formula spelled as many times as it occurs) and, where
nvcc is installed, compiles it (`nvcc -O3 --fmad=false -c`, a kernel calling every function); its bits
are not checked against anything.

GCC folds a libm call whose argument is a constant with its own correctly rounded value (MPFR), and
pow(a, 2) into a*a, where the C library's expf / powf can differ in the last bit: the header's flags
include -fno-builtin, which keeps every call a call (tests/test_emit.py shows the difference).
"""

from __future__ import annotations

import math

from mishaudit.emit import lower as L
from mishaudit.emit.text import comment_text, hex_float, identifier
from mishaudit.eval.libm import IMPLEMENTATIONS
from mishaudit.formats import BF16, FP16, FP32, FP64, Format

GLIBC = IMPLEMENTATIONS["glibc"]  # op -> (binary32 function, binary64 function): the model's own table

C_FLAGS = "gcc -O2 -std=c99 -fexcess-precision=standard -ffp-contract=off -fno-builtin"
NVCC_FLAGS = "nvcc -O3 --fmad=false"

# Every name the emitted C and CUDA may contain besides t<N>, x and mishaudit_<id> (tests check it).
NAMES = frozenset({
    # C keywords, types, macros, headers
    "static", "inline", "const", "return", "if", "else", "union", "float", "double", "int", "long",
    "_Float16", "uint32_t", "uint64_t", "f", "u", "v", "INFINITY", "NAN", "isnan", "isfinite",
    "include", "ifndef", "define", "endif", "math", "h", "stdint",
    "sqrtf", "sqrt", "fabsf", "fabs", "copysignf", "copysign", "fmaf", "fma",
    *(name for pair in GLIBC.values() for name in pair),
    # helpers (emitted beside the function, each guarded by its own macro)
    "mishaudit_bf16", "mishaudit_ro32", "mishaudit_fma_ro", "MISHAUDIT_BF16", "MISHAUDIT_RO32", "MISHAUDIT_FMA_RO",
    "MISHAUDIT_CUDA_RO32", "MISHAUDIT_CUDA_FMA_RO", "d", "a", "b", "c", "p", "s", "bb", "t",
    # CUDA
    "__device__", "__forceinline__", "__half", "__nv_bfloat16", "cuda_fp16", "cuda_bf16",
    "__half2float", "__float2half_rn", "__bfloat162float", "__float2bfloat16_rn", "__double2float_rn",
    "__fadd_rn", "__fsub_rn", "__fmul_rn", "__fdiv_rn", "__fsqrt_rn",
    "__dadd_rn", "__dsub_rn", "__dmul_rn", "__ddiv_rn", "__dsqrt_rn",
    "__float_as_int", "__int_as_float", "__double_as_longlong", "__longlong_as_double",
})

_C_TYPE = {FP16: "_Float16", BF16: "float", FP32: "float", FP64: "double"}
_CUDA_TYPE = {FP16: "__half", BF16: "__nv_bfloat16", FP32: "float", FP64: "double"}
_C_BIN = {"+": "+", "-": "-", "*": "*", "/": "/"}
_CUDA_BIN = {"+": "add", "-": "sub", "*": "mul", "/": "div"}
_CUDA_WORD32 = {"nan": "0x7fc00000", "inf": "0x7f800000", "-inf": "(int)0xff800000"}
_CUDA_WORD64 = {"nan": "0x7ff8000000000000LL", "inf": "0x7ff0000000000000LL",
                "-inf": "(long long)0xfff0000000000000ULL"}
_CMP = {"<": "<", ">": ">", "<=": "<=", ">=": ">=", "==": "==", "!=": "!="}

_C_HELPERS = {
    "bf16": """\
#ifndef MISHAUDIT_BF16
#define MISHAUDIT_BF16
/* a float rounded to bfloat16 (the float's top 16 bits), to nearest, ties to even; a NaN stays a NaN */
static inline float mishaudit_bf16(float f)
{
    union { float f; uint32_t u; } v;
    v.f = f;
    if ((v.u & 0x7fffffffu) > 0x7f800000u)
        v.u |= 0x00400000u;
    else
        v.u += 0x7fffu + ((v.u >> 16) & 1u);
    v.u &= 0xffff0000u;
    return v.f;
}
#endif
""",
    "ro32": """\
#ifndef MISHAUDIT_RO32
#define MISHAUDIT_RO32
/* a double rounded to float to odd: an inexact result takes the odd one of its two neighbours */
static inline float mishaudit_ro32(double d)
{
    union { float f; uint32_t u; } v;
    v.f = (float)d;
    if ((double)v.f != d && d == d && !(v.u & 1u))
        v.u += (fabs((double)v.f) > fabs(d)) ? 0xffffffffu : 1u;
    return v.f;
}
#endif
""",
    "fma_ro": """\
#ifndef MISHAUDIT_FMA_RO
#define MISHAUDIT_FMA_RO
/* a*b + c rounded to odd in double, for operands of at most 24 bits: the product is exact, TwoSum
   gives the sum's error t, and an inexact even sum moves one step towards the exact value */
static inline double mishaudit_fma_ro(double a, double b, double c)
{
    const double p = a * b;
    const double s = p + c;
    const double bb = s - p;
    const double t = (p - (s - bb)) + (c - bb);
    union { double f; uint64_t u; } v;
    v.f = s;
    if (isfinite(s) && t != 0 && !(v.u & 1u))
        v.u += ((t > 0) == (s > 0)) ? 1u : 0xffffffffffffffffu;
    return v.f;
}
#endif
""",
}

_CUDA_HELPERS = {
    "ro32": """\
#ifndef MISHAUDIT_CUDA_RO32
#define MISHAUDIT_CUDA_RO32
/* a double rounded to float to odd: an inexact result takes the odd one of its two neighbours */
__device__ __forceinline__ float mishaudit_ro32(double d)
{
    float f = __double2float_rn(d);
    if ((double)f != d && d == d && !(__float_as_int(f) & 1))
        f = __int_as_float(__float_as_int(f) + ((fabs((double)f) > fabs(d)) ? -1 : 1));
    return f;
}
#endif
""",
    "fma_ro": """\
#ifndef MISHAUDIT_CUDA_FMA_RO
#define MISHAUDIT_CUDA_FMA_RO
/* a*b + c rounded to odd in double, for operands of at most 24 bits (exact product, TwoSum) */
__device__ __forceinline__ double mishaudit_fma_ro(double a, double b, double c)
{
    const double p = __dmul_rn(a, b);
    const double s = __dadd_rn(p, c);
    const double bb = __dsub_rn(s, p);
    const double t = __dadd_rn(__dsub_rn(p, __dsub_rn(s, bb)), __dsub_rn(c, bb));
    if (isfinite(s) && t != 0.0 && !(__double_as_longlong(s) & 1))
        return __longlong_as_double(__double_as_longlong(s) + (((t > 0.0) == (s > 0.0)) ? 1 : -1));
    return s;
}
#endif
""",
}


class _C:
    """The C dialect (cuda=False) or CUDA's."""

    def __init__(self, cuda: bool):
        self.cuda = cuda
        self.helpers: set = set()

    def type(self, fmt) -> str:
        if fmt is None:
            return "int"
        return (_CUDA_TYPE if self.cuda else _C_TYPE)[fmt]

    def wide(self, v: L.Val) -> str:
        """v's value in its computing type: float for the 16-bit formats and binary32, double for binary64."""
        if v.fmt is FP16:
            return f"__half2float({v.name})" if self.cuda else f"(float){v.name}"
        if v.fmt is BF16 and self.cuda:
            return f"__bfloat162float({v.name})"
        return v.name

    def narrow(self, expr: str, fmt: Format) -> str:
        """A float (double for binary64) expression rounded once to fmt."""
        if fmt is FP16:
            return f"__float2half_rn({expr})" if self.cuda else f"(_Float16)({expr})"
        if fmt is BF16:
            if self.cuda:
                return f"__float2bfloat16_rn({expr})"
            self.helpers.add("bf16")
            return f"mishaudit_bf16({expr})"
        return expr

    def literal(self, v: float, fmt: Format) -> str:
        if self.cuda:
            if not math.isfinite(v):  # by their bits: no math.h macro is needed in device code
                key = "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
                if fmt is FP64:
                    return f"__longlong_as_double({_CUDA_WORD64[key]})"
                f32 = f"__int_as_float({_CUDA_WORD32[key]})"
            else:
                f32 = hex_float(v) + ("" if fmt is FP64 else "f")
            return f32 if fmt in (FP32, FP64) else self.narrow(f32, fmt)
        if math.isnan(v):
            text = "NAN"
        elif math.isinf(v):
            text = "INFINITY" if v > 0 else "-INFINITY"
        else:
            text = hex_float(v) + ("" if fmt is FP64 else "f")
        if fmt is FP64 and not math.isfinite(v):
            return f"(double){text}"
        return f"(_Float16){text}" if fmt is FP16 else text

    def arith(self, op: str, a: str, b: str, fmt: Format) -> str:
        if self.cuda:
            return f"__{'d' if fmt is FP64 else 'f'}{_CUDA_BIN[op]}_rn({a}, {b})"
        return f"{a} {_C_BIN[op]} {b}"

    def convert(self, src: L.Val, dst: Format) -> str:
        """src's value rounded into dst (exact where dst is wider)."""
        if dst is FP64:
            return f"(double){self.wide(src)}"
        if dst is FP32:
            if src.fmt is FP64:
                return f"__double2float_rn({src.name})" if self.cuda else f"(float){src.name}"
            return self.wide(src)
        if src.fmt is FP64:
            self.helpers.add("ro32")
            return self.narrow(f"mishaudit_ro32({src.name})", dst)
        return self.narrow(self.wide(src), dst)

    def fn(self, op: str, fmt: Format) -> str:
        f32, f64 = GLIBC[op]
        return f64 if fmt is FP64 else f32

    def op(self, op: str, args: list, fmt: Format) -> str:
        w = [self.wide(a) for a in args]
        f = "" if fmt is FP64 else "f"
        if op in ("+", "-", "*", "/"):
            return self.narrow(self.arith(op, w[0], w[1], fmt), fmt)
        if op == "sqrt":
            inner = f"__{'d' if fmt is FP64 else 'f'}sqrt_rn({w[0]})" if self.cuda else f"sqrt{f}({w[0]})"
            return self.narrow(inner, fmt)
        if op == "neg":
            return self.narrow(f"-{w[0]}", fmt)
        if op == "fabs":
            return self.narrow(f"fabs{f}({w[0]})", fmt)
        if op == "copysign":
            return self.narrow(f"copysign{f}({w[0]}, {w[1]})", fmt)
        if op in ("fmax", "fmin"):
            rel = ">=" if op == "fmax" else "<="
            return f"({w[0]} {rel} {w[1]} || isnan({w[1]})) ? {args[0].name} : {args[1].name}"
        if op == "fma":
            if fmt in (FP32, FP64):
                return f"fma{f}({', '.join(a.name for a in args)})"
            self.helpers.update(("ro32", "fma_ro"))
            dbl = ", ".join(f"(double){x}" for x in w)
            return self.narrow(f"mishaudit_ro32(mishaudit_fma_ro({dbl}))", fmt)
        if op in L.LIBM:
            return self.narrow(f"{self.fn(op, fmt)}({', '.join(w)})", fmt)
        raise AssertionError(op)

    def truth(self, v: bool) -> str:
        return "1" if v else "0"

    def compare(self, op: str, pairs: list) -> str:
        return " && ".join(f"({self.wide(a)} {_CMP[op]} {self.wide(b)})" for a, b in pairs)

    def logic(self, op: str, args: list) -> str:
        if op == "not":
            return f"!{args[0].name}"
        return f" {'&&' if op == 'and' else '||'} ".join(a.name for a in args)

    def statements(self, body: list, depth: int) -> list:
        pad = "    " * depth
        out = []
        for s in body:
            kind, dst = s[0], s[1]
            if kind == "if":
                _, _, cond, then, tv, other, ov = s
                out.append(f"{pad}{self.type(dst.fmt)} {dst.name};")
                out.append(f"{pad}if ({cond.name}) {{")
                out += self.statements(then, depth + 1)
                out.append(f"{pad}    {dst.name} = {tv.name};")
                out.append(f"{pad}}} else {{")
                out += self.statements(other, depth + 1)
                out.append(f"{pad}    {dst.name} = {ov.name};")
                out.append(f"{pad}}}")
                continue
            out.append(f"{pad}const {self.type(dst.fmt)} {dst.name} = {L.expression(self, s)};")
        return out


def _header(formula, fmt: Format, low: L.Lowered, cuda: bool) -> list:
    ctype = (_CUDA_TYPE if cuda else _C_TYPE)[fmt]
    d = _C(cuda)
    fns = ", ".join(dict.fromkeys(d.fn(op, f) for op, f in sorted(low.ops, key=lambda o: (o[0], o[1].p))
                                  if op in L.LIBM)) or "none"
    lines = [f"mishaudit emit: formula {comment_text(formula.id)}, {fmt.fpcore}"
             f"{' carried in float' if fmt is BF16 and not cuda else ''} ({ctype}), "
             f"{'CUDA' if cuda else 'C99'}",
             f":name {comment_text(formula.name)}"]
    if cuda:
        lines += [
            "Every operation is rounded once to its format, as mishaudit's evaluator computes it: + - * / and",
            "sqrt through the _rn intrinsics (never contracted into an fma), a 16-bit operation computed in",
            "float and rounded once (__float2half_rn / __float2bfloat16_rn); fma exactly rounded.",
            f"Elementary functions used: {fns}: CUDA's own libm, not glibc's, so their bits (and the",
            "result's) follow CUDA's libm (its documented ulp bounds), not mishaudit's --libm glibc.",
            f"Compile: {NVCC_FLAGS} (never --use_fast_math, which swaps expf for __expf).",
        ]
    else:
        lines += [
            "Model: mishaudit's evaluator under --libm glibc, bit for bit: every operation rounded once to",
            "its format (round to nearest even). binary32 calls the C library's float functions, binary64",
            "the double ones, binary16/bfloat16 the float function on the value (exact in float), rounded",
            "once; + - * / and sqrt of a 16-bit format computed in float and rounded once (exact: 24 >= 2p+2);",
            "fma exactly rounded (fmaf/fma, or the round-to-odd helper for 16-bit formats).",
            f"Elementary functions used: {fns} (glibc's: the bits hold for this C library and CPU).",
            f"Compile: {C_FLAGS} ... -lm",
            "(x86-64 or another SSE2/IEEE target; -fno-builtin keeps GCC from folding a libm call on a",
            "constant with its own correctly rounded value; _Float16 needs GCC >= 12 on x86-64;",
            "never -ffast-math).",
        ]
    return lines


def render(formula, fmt: Format, low: L.Lowered, cuda: bool = False) -> str:
    """The C (or CUDA) source of the lowered formula: header comment, includes, helpers, the function."""
    d = _C(cuda)
    body = d.statements(low.body, 1)
    name = identifier(formula.id)
    ctype = d.type(fmt)
    lines = ["/* " + "\n * ".join(comment_text(t, 1000) for t in _header(formula, fmt, low, cuda)) + "\n */"]
    lines += ["#include <cuda_fp16.h>", "#include <cuda_bf16.h>"] if cuda else ["#include <math.h>",
                                                                                "#include <stdint.h>"]
    lines.append("")
    helpers = _CUDA_HELPERS if cuda else _C_HELPERS
    for key in ("bf16", "ro32", "fma_ro"):
        if key in d.helpers:
            lines.append(helpers[key])
    qual = "__device__ __forceinline__" if cuda else "static inline"
    lines.append(f"{qual} {ctype} {name}({ctype} x)")
    lines.append("{")
    lines += body
    lines.append(f"    return {low.result.name};")
    lines.append("}")
    return "\n".join(lines) + "\n"
