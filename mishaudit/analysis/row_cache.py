"""The row cache: what an audit computes for one formulation in one format (its compare row and its
special-input checks), kept on disk (cache.py: atomic, checksummed) so that a rerun evaluates and
encloses only the formulations whose bits may have changed.

A row's key holds everything that decides its bits: the formulation (id, digest: its text and --set
values, spec), the format, the policy (compute dtype, ftz, libm model, device), the domain, samples
and seed, the input set (its strategy and a digest of its input bits), whether the formula error is
enclosed, the reference's version, mishaudit's version and a digest of mishaudit's own source (every
.py of the package and every shipped formula file: any code change invalidates every row), and for a
libm model other than cr what its bits depend on here (libm.build: numpy's dispatch, the C library,
torch's build). Framework kernels are never cached (their bits are their framework's).

A file is named by the row's configuration (formulation id, format, policy, domain, samples, seed,
formula error) and holds the full key: a rerun after an edit (of the formula, of mishaudit) finds the
old file, sees another key and overwrites it, so the folder grows with the configurations run, not
with the edits. A damaged file is reported (one line on stderr) and recomputed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from mishaudit import cache

ROW_CACHE_VERSION = 1
_warned_write = False


@functools.lru_cache(maxsize=1)
def source_digest() -> str:
    """A digest of mishaudit's own source: every .py under the package and every shipped formula file
    (computed once per process)."""
    from mishaudit.lang.registry import builtin_files

    h = hashlib.sha256()
    pkg = Path(__file__).resolve().parents[1]
    for p in sorted(pkg.rglob("*.py")):
        h.update(p.relative_to(pkg).as_posix().encode() + b"\0")
        h.update(p.read_bytes() + b"\0")
    for text, src, _ in builtin_files():
        h.update(src.encode() + b"\0" + text.encode() + b"\0")
    return h.hexdigest()[:32]


def input_digest(x: np.ndarray) -> str:
    """A digest of the input values' binary64 bits (in their order)."""
    return hashlib.sha256(np.ascontiguousarray(x, dtype=np.float64).view(np.uint64).tobytes()).hexdigest()[:32]


def _config(formula, policy, domain, samples: int, seed: int, with_formula_error: bool) -> dict:
    return {"formula": formula.id, "dtype": policy.storage.name, "compute_dtype": policy.work.name,
            "ftz": policy.ftz, "libm": policy.libm, "device": policy.device, "domain": repr(domain),
            "samples": samples, "seed": seed, "with_formula_error": bool(with_formula_error)}


def row_key(formula, policy, domain, samples: int, seed: int, inputs, with_formula_error: bool) -> dict:
    """The key of `formula`'s row under `policy` on InputSet `inputs` (module docstring)."""
    from mishaudit.eval import libm
    from mishaudit.reference.table import REF_VERSION
    from mishaudit.version import __version__

    return {"row_cache": ROW_CACHE_VERSION, **_config(formula, policy, domain, samples, seed, with_formula_error),
            "digest": formula.digest, "spec": formula.spec.key, "strategy": inputs.strategy,
            "inputs": len(inputs.x), "input_digest": input_digest(inputs.x), "reference": REF_VERSION,
            "mishaudit": __version__, "source": source_digest(),
            "libm_build": None if policy.libm == "cr" else libm.build(policy.libm)}


def path_for(formula, policy, domain, samples: int, seed: int, with_formula_error: bool) -> Path:
    """The row's file: named by its configuration (module docstring), not by its full key."""
    cfg = json.dumps(_config(formula, policy, domain, samples, seed, with_formula_error), sort_keys=True)
    name = hashlib.sha256(cfg.encode()).hexdigest()[:24]
    return cache.cache_dir() / "rows" / f"row-{policy.storage.name}-{name}.npz"


def place(formula, policy, domain, samples: int, seed: int, inputs, with_formula_error: bool) -> tuple[Path, dict]:
    """(file, key) of `formula`'s row under `policy` on InputSet `inputs`: what load and save take."""
    return (path_for(formula, policy, domain, samples, seed, with_formula_error),
            row_key(formula, policy, domain, samples, seed, inputs, with_formula_error))


def load(path: Path, key: dict):
    """(row, specials) stored under `key` at `path`, None when absent or stored under another key; a
    damaged file is reported on stderr and counts as absent."""
    try:
        got = cache.load(path)
    except cache.Damaged:
        print(f"mishaudit: warning: row cache {path} is corrupt or truncated; recomputing it", file=sys.stderr)
        return None
    if got is None:
        return None
    meta = got[1]
    if not isinstance(meta, dict) or meta.get("key") != key or not isinstance(meta.get("row"), dict) \
            or not isinstance(meta.get("specials"), list):
        return None
    return meta["row"], meta["specials"]


def save(path: Path, key: dict, row: dict, specials: list) -> None:
    """Store (row, specials) under `key`; a folder that cannot be written is reported once per process."""
    global _warned_write
    try:
        cache.save(path, {}, {"key": key, "row": plain(row), "specials": plain(specials)})
    except OSError as exc:
        if not _warned_write:
            _warned_write = True
            print(f"mishaudit: warning: cannot write the row cache {path.parent} ({exc.strerror}); "
                  "set MISHAUDIT_CACHE_DIR to a writable folder to keep it", file=sys.stderr)


def plain(value):
    """`value` with numpy scalars as Python ones (what the cache stores and gives back: JSON's values)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
