"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import UserError


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
