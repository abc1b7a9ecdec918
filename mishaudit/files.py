"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
import re
import stat
import tempfile
from pathlib import Path

from mishaudit.errors import UserError

_interrupted = False  # set by the command line's SIGINT handler (cli._Group.main)


def note_interrupt() -> None:
    """Record a Ctrl-C: from now on nothing is published (check_interrupt), even where the
    KeyboardInterrupt itself was swallowed (raised inside a finalizer or a library's handler)."""
    global _interrupted
    _interrupted = True


def interrupted() -> bool:
    return _interrupted


def check_interrupt() -> None:
    """Raise KeyboardInterrupt when a Ctrl-C has been seen: called before anything is renamed into place."""
    if _interrupted:
        raise KeyboardInterrupt


def umask() -> int:
    """The process's umask (read from /proc where it can, so it is never changed, not even for a moment)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _mode_for(path: Path) -> int:
    """The mode a new file gets from open(): 0666 & ~umask; an existing file keeps its own mode."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~umask()


def atomic_write_bytes(path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, fsync it, then rename it over `path`; the file gets
    the mode open() would give it (0666 & ~umask, or the old file's mode). A path that exists and is not a
    regular file (/dev/stdout, a FIFO, a device) is written directly, never replaced. An OSError names
    `path` (its filename)."""
    path = Path(path)
    try:
        if path.exists() and not path.is_file():
            with open(path, "wb") as f:
                f.write(data)
            return
        check_interrupt()
    except OSError as exc:
        if exc.filename is None:
            exc.filename = str(path)
        raise
    tmp = _stage(path, data)
    try:
        check_interrupt()
        os.replace(tmp, path)
    except BaseException:
        _discard(tmp)
        raise


def _discard(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass


def _stage(path: Path, data: bytes) -> str:
    """A temporary file beside `path` holding `data`, fsynced, with the mode `path` gets (_mode_for);
    nothing left behind when this fails (an OSError naming `path`)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent)
    except OSError as exc:
        exc.filename = exc.filename or str(path)
        raise
    try:
        os.fchmod(fd, _mode_for(path))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as exc:
        _discard(tmp)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)
        raise
    return tmp


def atomic_write_all(files: dict) -> None:
    """Write each {path: bytes} as atomic_write_bytes does, all or none: every file is staged (written and
    fsynced beside its path) before the first rename, and a failure while staging removes what was
    staged and leaves every path as it was. An OSError names the path it was writing."""
    staged: list = []
    try:
        for path, data in files.items():
            check_interrupt()
            staged.append((_stage(Path(path), data), Path(path)))
        check_interrupt()
    except BaseException:
        for tmp, _ in staged:
            _discard(tmp)
        raise
    for tmp, path in staged:
        os.replace(tmp, path)


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists (on this machine); unknown counts as alive."""
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process, or we may not ask: leave its files alone
    return True


def clean_stale(target) -> list:
    """Remove what killed runs (kill -9, a power cut) left beside `target`: the hidden temporary
    `.NAME.tmp-PID...` and `.NAME.old-PID` files and folders of processes that no longer exist. Never
    touches the temporary files of a live process. Returns the paths removed."""
    import shutil

    target = Path(target)
    pat = re.compile(r"^\." + re.escape(target.name) + r"\.(?:tmp|old)-(\d+)(?:-.*)?$")
    removed = []
    try:
        entries = list(target.parent.iterdir())
    except OSError:
        return removed
    for p in entries:
        m = pat.match(p.name)
        if not m or int(m.group(1)) == os.getpid() or pid_alive(int(m.group(1))):
            continue
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


def write_output(path, text: str, option: str = "--output") -> None:
    """Write a user-requested output file atomically; UserError when it cannot be written."""
    check_writable(path, option)
    try:
        atomic_write_bytes(Path(path), text.encode("utf-8"))
    except OSError as exc:
        raise UserError(f"cannot write {option} {path}: {exc.strerror or exc}; {fix_for(exc)}") from None


def fix_for(exc: OSError) -> str:
    """What to do about an OSError met while writing, in words."""
    import errno

    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return "free some space (or raise the quota), or write somewhere else"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "choose a writable location"
    if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOMEM):
        return "close other programs or raise the limit (ulimit -n), then run it again"
    if exc.errno == errno.ENOENT:
        return "check that the folder exists and was not removed while running"
    return "check the disk and the location, then run it again"


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
    check_interrupt()
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
