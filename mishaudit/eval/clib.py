"""The host C library's math functions, called as a compiled C program calls them.

`function(name)` is the address of a libm symbol (dlsym through ctypes: on glibc the variant its
ifunc resolver picks for this CPU, e.g. __expf_fma where the CPU has FMA, exactly what a program
linked against libm.so.6 gets). `map_unary` / `map_binary` apply one such function to every
element of an array in a numba loop that calls the address (an indirect call in LLVM IR, so the
compiler cannot replace, fold or vectorise the call): binary32 functions on float32 arrays,
binary64 functions on float64 arrays. Nothing is compiled per function; the loops are cached.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

import numpy as np

from mishaudit.errors import UserError


@functools.lru_cache(maxsize=1)
def _libm() -> ctypes.CDLL:
    name = ctypes.util.find_library("m")
    try:
        return ctypes.CDLL(name or "libm.so.6")
    except OSError as exc:
        raise UserError(f"cannot load the C math library ({exc}): --libm glibc needs the host's libm") from None


def library() -> str:
    """The C library and its version ("glibc 2.36"), or "" where it is not glibc."""
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError, AttributeError):
        return ""


def library_file() -> str:
    return ctypes.util.find_library("m") or "libm"


@functools.lru_cache(maxsize=None)
def function(name: str) -> int:
    """The address of the C function `name` in the host's libm."""
    try:
        return ctypes.cast(getattr(_libm(), name), ctypes.c_void_p).value
    except AttributeError:
        raise UserError(f"the host's C library has no {name}: it cannot serve as --libm glibc") from None


def call(name: str, args: list, width: int) -> np.ndarray:
    """The C function `name` (binary32 when width is 32, binary64 when 64) on every element of the
    arrays `args` (broadcast; converted exactly, values of that format), as float64 values."""
    dtype = np.float32 if width == 32 else np.float64
    arrs = np.broadcast_arrays(*[np.asarray(a, dtype=np.float64) for a in args])
    shape = arrs[0].shape
    flat = [np.ascontiguousarray(a, dtype=dtype).ravel() for a in arrs]
    out = np.empty(flat[0].size, dtype=dtype)
    # numba is imported on first use (it is slow to import)
    from mishaudit.eval import clib_loops

    clib_loops.LOOPS[(len(flat), width)](function(name), *flat, out)
    return out.astype(np.float64).reshape(shape)
