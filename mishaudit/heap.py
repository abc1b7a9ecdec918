"""Keep freed memory in the process heap (glibc): numpy's block-sized temporaries are then reused
instead of being returned to the kernel and page-faulted back on every operation, which made the
streaming sweep several times slower. A no-op where glibc's mallopt is unavailable."""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def keep_heap() -> bool:
    """Raise glibc's trim and mmap thresholds (1 GiB, 32 MiB); True when it took effect."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(M_TRIM_THRESHOLD, 1 << 30)) and bool(mallopt(M_MMAP_THRESHOLD, 32 << 20))
