"""`mishaudit import`: the Mish of an exported model as FPCore files, and what they equal.

For each Mish found (graphs/graph.py) one FPCore file: the operations of the graph, in the graph's
precisions, with `:mishaudit-source` naming the model file, its nodes, the opset or ML program
version and the precisions it computes in. Beside it, which registered formulation it equals:
- "the same operations": equal FPCore trees once lets and named constants are substituted and the
  operands of + * fmax fmin put in order (the graph's precisions included);
- "the same bits": a registered formulation whose outputs equal the import's bit for bit under
  libm cr on every finite input of the source's format (binary16, bfloat16), or, for binary32 and
  binary64 sources, on every binary16 and bfloat16 value and 2^16 further values spread over the
  format (a sample: said so).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mishaudit.errors import UserError
from mishaudit.graphs import graph as gr
from mishaudit.lang import fpcore as fc

_NAMES = {"binary16": "fp16", "bfloat16": "bf16", "binary32": "fp32", "binary64": "fp64"}


@dataclass(frozen=True)
class Imported:
    ident: str
    file: str  # where it is written (relative to the output folder)
    text: str  # the FPCore file
    nodes: tuple
    precisions: tuple
    source_precision: str
    audit_precision: str  # the narrowest precision it computes in: the format to audit it in
    same_operations: tuple  # registered ids with the same tree
    same_bits: tuple  # registered ids with the same outputs on what was checked
    checked: str  # what "the same bits" was checked on


def read_model(path, keep_fused: bool = False) -> tuple[gr.Graph, list]:
    """The model at `path` as a graph: ONNX (.onnx) or Core ML (.mlpackage, .mlmodel), or a
    coremltools MIL program object."""
    if not isinstance(path, (str, os.PathLike)):
        from mishaudit.graphs import coreml_model

        return coreml_model.read_program(path)
    p = str(path)
    low = p.rstrip("/").lower()
    if low.endswith(".onnx"):
        from mishaudit.graphs import onnx_model

        return onnx_model.read(p, keep_fused)
    if low.endswith((".mlpackage", ".mlmodel")):
        from mishaudit.graphs import coreml_model

        return coreml_model.read(p.rstrip("/"))
    raise UserError(f"{p}: not a model file mishaudit reads: give an .onnx file, an .mlpackage folder or an "
                    ".mlmodel file")


def import_model(path, keep_fused: bool = False, registry: dict | None = None) -> tuple[gr.Graph, list[Imported]]:
    """The graph of `path` and its Mish as Imported files; UserError when there is none."""
    g, order = read_model(path, keep_fused)
    found = gr.find_mish(g, order)
    if not found:
        ops = ", ".join(f"{k} x{v}" for k, v in sorted(g.skipped.items())) or "none"
        raise UserError(f"{g.path}: no Mish found in this {g.kind} model (operations not read as elementwise: "
                        f"{ops}): a Mish is a node Mish or elementwise nodes computing x*tanh(softplus(x))")
    stem = Path(str(g.path).rstrip("/")).name.split(".")[0]
    out = []
    for i, f in enumerate(found):
        ident = gr.identifier(stem, i, len(found))
        src_prec = f.source.precision or "binary32"
        comp = ", ".join(f.precisions) or src_prec
        source = (f"{Path(str(g.path)).name}: {g.kind} nodes {', '.join(f.nodes)} ({g.version}; computes in {comp}; "
                  f"input {f.source.tensor!r} in {src_prec})")
        sem = "; ".join(g.semantics) or "each operation as the graph has it"
        name = fc.to_text(gr.body(f.term, src_prec, f.source))
        text = gr.fpcore_text(f, ident, name, source, sem)
        out.append(_compare(ident, text, f, _narrowest([src_prec, *f.precisions]), registry))
    return g, out


def _narrowest(precs: list) -> str:
    """The narrowest of FPCore precision names (fewest significand bits): the format to audit in."""
    order = {"bfloat16": 0, "binary16": 1, "binary32": 2, "binary64": 3}
    return min((p for p in precs if p in order), key=order.get, default="binary32")


def _compare(ident, text, f, check_prec, registry) -> Imported:
    from mishaudit.lang.registry import load_text

    mine = load_text(text, f"<import {ident}>", ident)
    same_ops, same_bits, checked = [], [], ""
    if registry:
        fmt_name = _NAMES.get(check_prec, "fp32")
        from mishaudit.formats import get_format

        fmt = get_format(fmt_name)
        key = gr.normal(mine.body)
        cands = [r for r in registry.values() if not r.kernel and r.spec.key == "mish"]
        for r in cands:
            if gr.normal(r.body, consts=r.constant_values(fmt)) == key:
                same_ops.append(r.id)
        x, checked = _inputs(fmt)
        y = _run(mine, x, fmt)
        for r in cands:
            yr = _run(r, x, fmt)
            if yr is not None and y is not None and _same(y, yr, fmt):
                same_bits.append(r.id)
    return Imported(ident, f"{ident}.fpcore", text, f.nodes, f.precisions, f.source.precision or "binary32",
                    check_prec, tuple(same_ops), tuple(same_bits), checked)


def _inputs(fmt):
    from mishaudit.formats import BF16, FP16, all_finite

    if fmt.uint.itemsize == 2:
        return all_finite(fmt), f"every finite {fmt.name} input"
    rng = np.random.default_rng(0)
    spread = rng.uniform(-1, 1, 1 << 16) * np.exp2(rng.integers(-20, 8, 1 << 16))
    x = np.concatenate([all_finite(FP16), all_finite(BF16), spread]).astype(fmt.dtype).astype(np.float64)
    return x, f"every finite fp16 and bf16 value and 65,536 values spread over [-128, 128] as {fmt.name} inputs"


def _run(formula, x, fmt):
    from mishaudit.eval.evaluate import evaluate, policy_for

    try:
        return evaluate(formula, x, policy_for(fmt, None, None, "cr")).y
    except UserError:  # a formulation that cannot run in this format
        return None


def _same(a, b, fmt) -> bool:
    """Bit for bit: equal values of equal sign, NaN where NaN."""
    both_nan = np.isnan(a) & np.isnan(b)
    return bool(np.all(both_nan | ((a == b) & (np.signbit(a) == np.signbit(b)))))


def write(items: list[Imported], out_dir) -> list[str]:
    """Write every file into `out_dir` (made if missing), all or none (files.atomic_write_all); the
    paths written."""
    from mishaudit.files import atomic_write_all, fix_for

    d = Path(out_dir)
    try:
        d.mkdir(parents=True, exist_ok=True)
        paths = {d / it.file: it.text.encode("utf-8") for it in items}
        atomic_write_all(paths)
    except OSError as exc:
        raise UserError(f"cannot write --out {out_dir}: {exc.strerror or exc}; {fix_for(exc)}") from None
    return [str(p) for p in paths]
