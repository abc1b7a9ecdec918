"""Command output checked for content against independent computations (MPFR, bit patterns, the FPCore
files as text), not only for an exit code."""

import functools
import json
import re
from pathlib import Path

import gmpy2
import numpy as np
import pytest
from click.testing import CliRunner

from mishaudit.cli import main

_HI = gmpy2.context(precision=200, emin=-(1 << 24), emax=1 << 24)
_C16 = gmpy2.context(precision=11, emin=-23, emax=16, subnormalize=True, round=gmpy2.RoundToNearest)  # RN16
_M = gmpy2.mpfr
FORMULAS = Path(__file__).resolve().parent.parent / "formulas"


def lattice16() -> np.ndarray:
    """Every finite binary16 value in increasing order, -0 before +0, from the bit patterns."""
    neg = np.arange(0xFBFF, 0x7FFF, -1, dtype=np.uint16)
    pos = np.arange(0x0000, 0x7C00, dtype=np.uint16)
    return np.concatenate([neg, pos]).view(np.float16).astype(np.float64)


def ord16(v: np.ndarray) -> np.ndarray:
    """The position of binary16 values in the ordered lattice (-0 and +0 adjacent)."""
    b = np.asarray(v, dtype=np.float64).astype(np.float16).view(np.int16).astype(np.int64)
    return np.where(b < 0, -(b & 0x7FFF) - 1, b)


def registry_ids() -> set:
    """The formulation ids, read from the FPCore files as text: `(FPCore id (x)`, else the file name."""
    ids = set()
    for p in FORMULAS.rglob("*.fpcore"):  # formulas/libm/ too
        m = re.search(r"\(FPCore\s+([^\s()]+)\s*\(", p.read_text())
        ids.add(m.group(1) if m else p.stem)
    return ids


@functools.lru_cache(maxsize=1)
def softplus_tanh_fp16():
    """(x, y, exact mish) of softplus-tanh over every fp16 input: each operation by MPFR rounded once to
    binary16 (the default cr libm and native fp16 arithmetic), mish by MPFR at 200 bits."""
    x = lattice16()
    ys, rs = [], []
    for xi in x.tolist():
        v = _M(xi)
        ys.append(float(_C16.mul(v, _C16.tanh(_C16.log1p(_C16.exp(v))))))
        rs.append(_HI.mul(v, _HI.tanh(_HI.log1p(_HI.exp(v)))))
    return x, np.array(ys), rs


def test_compare_row_for_softplus_tanh_fp16_equals_an_independent_evaluation():
    """Every figure of the compare JSON row of softplus-tanh in fp16 that an independent evaluation fixes:
    worst_x (the argmax of |y - r| / ulp(r) with DESIGN.md's ulp), worst_y, worst_ref, max_ulp, mean_ulp,
    cr_frac, faithful_frac, the dulp buckets (ordinal distance from RN(r)), nonfinite, signed zeros. A wrong
    argmax, ulp, rounding, bucket or share fails."""
    r = CliRunner().invoke(main, ["compare", "--dtype", "fp16", "--formula", "softplus-tanh", "--format", "json"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.output)[0]
    x, y, exact = softplus_tanh_fp16()
    rn = np.array([float(_C16.plus(v)) for v in exact])
    ulp_err = np.empty(len(x))
    for i, (yi, v) in enumerate(zip(y.tolist(), exact)):
        E = -14 if gmpy2.is_zero(v) else max(gmpy2.get_exp(v) - 1, -14)
        ulp_err[i] = float(gmpy2.mul_2exp(abs(_HI.sub(_M(yi), v)), 10 - E))
    w = int(np.argmax(ulp_err))
    assert np.sum(ulp_err == ulp_err[w]) == 1  # a unique worst input
    assert row["inputs"] == 63488 and row["nonfinite"] == 0 and row["strategy"] == "exhaustive"
    assert row["worst_x"] == x[w] and row["worst_y"] == y[w]
    assert row["worst_ref"] == float(exact[w])
    assert abs(row["max_ulp"] - ulp_err[w]) <= 1e-9 * ulp_err[w]
    assert abs(row["mean_ulp"] - ulp_err.mean()) <= 1e-9 * ulp_err.mean()
    cr = (y == rn) & (np.signbit(y) == np.signbit(rn))
    assert row["cr_frac"] == cr.sum() / len(x)
    lo = np.array([float(gmpy2.context(_C16, round=gmpy2.RoundDown).plus(v)) for v in exact])
    hi = np.array([float(gmpy2.context(_C16, round=gmpy2.RoundUp).plus(v)) for v in exact])
    assert row["faithful_frac"] == ((y == lo) | (y == hi)).sum() / len(x)
    dist = np.abs(ord16(y) - ord16(rn))
    assert [row[f"dulp_{k}"] for k in range(4)] + [row["dulp_gt3"]] == \
        [int((dist == k).sum()) for k in range(4)] + [int((dist > 3).sum())]
    zeros = (y == 0) & (rn == 0)
    assert row["signed_zero_mismatch"] == int((zeros & (np.signbit(y) != np.signbit(rn))).sum())


@pytest.mark.parametrize("fmt", ["table", "markdown", "csv", "json"])
def test_list_names_every_formulation_file(fmt):
    """`list` shows every formulation of the registry folder (ids read from the files as text)."""
    r = CliRunner().invoke(main, ["list", "--format", fmt])
    assert r.exit_code == 0, r.output
    ids = registry_ids()
    assert len(ids) >= 20
    if fmt == "json":
        listed = {row["id"] for row in json.loads(r.output)}
        assert ids <= listed and all(":" in i for i in listed - ids)  # the rest: framework kernels
    else:
        missing = [i for i in ids if not re.search(rf"(?<![\w-]){re.escape(i)}(?![\w-])", r.output)]
        assert not missing, missing
