"""Compiled loops calling a C function by its address (eval/clib.py): an indirect call in LLVM IR,
so the compiler cannot replace, fold or vectorise it. One loop per arity and width, cached."""

from __future__ import annotations

import numba
from llvmlite import ir
from numba import types
from numba.extending import intrinsic


def _caller(nargs: int, nb, lt):
    def codegen(context, builder, signature, llargs):
        fn = builder.inttoptr(llargs[0], ir.FunctionType(lt, [lt] * nargs).as_pointer())
        return builder.call(fn, list(llargs[1:]))

    sig = nb(types.intp, *([nb] * nargs))
    if nargs == 1:
        return intrinsic(lambda typingctx, addr, a: (sig, codegen))
    return intrinsic(lambda typingctx, addr, a, b: (sig, codegen))


_c1f = _caller(1, types.float32, ir.FloatType())
_c1d = _caller(1, types.float64, ir.DoubleType())
_c2f = _caller(2, types.float32, ir.FloatType())
_c2d = _caller(2, types.float64, ir.DoubleType())


@numba.njit(cache=True, nogil=True)
def _unary32(addr, a, out):
    for i in range(a.size):
        out[i] = _c1f(addr, a[i])


@numba.njit(cache=True, nogil=True)
def _unary64(addr, a, out):
    for i in range(a.size):
        out[i] = _c1d(addr, a[i])


@numba.njit(cache=True, nogil=True)
def _binary32(addr, a, b, out):
    for i in range(a.size):
        out[i] = _c2f(addr, a[i], b[i])


@numba.njit(cache=True, nogil=True)
def _binary64(addr, a, b, out):
    for i in range(a.size):
        out[i] = _c2d(addr, a[i], b[i])


LOOPS = {(1, 32): _unary32, (1, 64): _unary64, (2, 32): _binary32, (2, 64): _binary64}
