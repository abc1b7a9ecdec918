"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mishaudit.errors import UserError


def atomic_write_bytes(path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_output(path, text: str, option: str = "--output") -> None:
    """Write a user-requested output file atomically; UserError when it cannot be written."""
    check_writable(path, option)
    try:
        atomic_write_bytes(Path(path), text.encode("utf-8"))
    except OSError as exc:
        raise UserError(f"cannot write {option} {path}: {exc.strerror}; choose a writable location") from None


def check_writable(path, option: str = "--output") -> None:
    """Fail early (before any work) when `path`, given with `option`, cannot be created."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"cannot write {option} {path}: it is a folder; give a file name")
    parent = path.parent
    if not parent.exists():
        raise UserError(f"cannot write {option} {path}: folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(f"cannot write {option} {path}: permission denied; choose a writable location")


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step where the OS can (Linux renameat2 RENAME_EXCHANGE, macOS
    renamex_np RENAME_SWAP); False where it cannot."""
    import ctypes
    import ctypes.util
    import sys

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if sys.platform.startswith("linux") and hasattr(libc, "renameat2"):
            at_fdcwd, exchange = -100, 2
            return libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), exchange) == 0
        if sys.platform == "darwin" and hasattr(libc, "renamex_np"):
            return libc.renamex_np(os.fsencode(a), os.fsencode(b), 0x2) == 0
    except (OSError, AttributeError):
        pass
    return False


def replace_folder(new: Path, target: Path) -> None:
    """Put folder `new` in place of `target`: an atomic exchange where the OS offers one (the old folder
    then goes away), so a reader sees the old or the new folder at every instant; a plain rename when
    there is no old folder; elsewhere two renames (a moment without `target`)."""
    import shutil

    new, target = Path(new), Path(target)
    if not target.exists():
        os.replace(new, target)
        return
    if _exchange(new, target):
        shutil.rmtree(new, ignore_errors=True)  # `new` now holds the old folder
        return
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)
