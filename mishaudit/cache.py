"""The on-disk cache: one folder (MISHAUDIT_CACHE_DIR, else the user's cache folder) of checksummed
npz files, each a set of arrays plus JSON metadata, written atomically. The reference keeps its
exact values there, the exhaustive sweep its checkpoints."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np

from mishaudit.files import atomic_write_bytes


class Damaged(Exception):
    """A cache file that is truncated, corrupt or not ours."""


def cache_dir() -> Path:
    env = os.environ.get("MISHAUDIT_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("mishaudit"))


def _checksum(arrays: dict, meta_bytes: bytes) -> str:
    h = hashlib.sha256(meta_bytes)
    for k in sorted(arrays):
        h.update(k.encode())
        h.update(np.ascontiguousarray(arrays[k]).tobytes())
    return h.hexdigest()


def save(path, arrays: dict, meta: dict | None = None) -> None:
    """Write `arrays` (name -> numpy array) and `meta` (JSON-able) to `path` atomically; OSError when the
    folder cannot be written."""
    meta_bytes = json.dumps(meta or {}).encode()
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.frombuffer(meta_bytes, dtype=np.uint8),
             __sum__=np.array(_checksum(arrays, meta_bytes)), **arrays)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())


def load(path) -> tuple[dict, dict] | None:
    """(arrays, meta) from `path`, None when there is no file; Damaged when it is not intact."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if k not in ("__meta__", "__sum__")}
            meta_bytes = bytes(z["__meta__"])
            stored = str(z["__sum__"])
        if stored != _checksum(arrays, meta_bytes):
            raise ValueError("checksum mismatch")
        return arrays, json.loads(meta_bytes.decode())
    except Exception as exc:  # truncated zip, missing members, bad JSON, wrong checksum
        raise Damaged(str(exc)) from None
