"""An ONNX model's elementwise operations as terms (graphs/graph.py).

Semantics (the ONNX operator specification, by the opset the model imports):
- An operator the specification defines by a function body (Mish as Softplus, Tanh, Mul; Softplus
  as Log(Exp(X) + 1)) is expanded into that body, as onnx.defs gives it for the model's opset, unless
  `keep_fused`: then Mish and Softplus stay one operation each, a primitive of the operator table
  (one correctly rounded operation; the runtime's own kernel is the onnxruntime:Mish kernel).
- Each operation computes in its output tensor's element type (float16, bfloat16, float, double);
  Cast and CastLike are conversions (round to nearest even).
- Elementwise operators read: Add Sub Mul Div Neg Abs Exp Log Tanh Sqrt Pow Reciprocal Max Min
  Clip Identity Cast CastLike Constant (and initializers, constants of one value). Any other
  node's outputs are sources."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from mishaudit.errors import UserError
from mishaudit.graphs.graph import CUT, Graph, Term, capped

_TYPES = {1: "binary32", 10: "binary16", 11: "binary64", 16: "bfloat16"}  # TensorProto element types
_BINARY = {"Add": "+", "Sub": "-", "Mul": "*", "Div": "/", "Pow": "pow"}
_UNARY = {"Exp": "exp", "Log": "log", "Tanh": "tanh", "Sqrt": "sqrt", "Abs": "fabs"}
_FUSED = {"Mish": "mish", "Softplus": "softplus"}


def read(path: str, keep_fused: bool = False) -> tuple[Graph, list]:
    """(Graph, the tensors in node order) of the ONNX file at `path`; UserError for a file that is
    not an ONNX model or cannot be read."""
    try:
        import onnx
    except ImportError:
        raise UserError("reading an ONNX model needs onnx, which is not installed: pip install 'mishaudit[onnx]'") from None
    try:
        model = onnx.load(path)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}; check the path") from None
    except Exception as exc:  # protobuf's DecodeError and the like: not an ONNX file
        raise UserError(f"{path} is not an ONNX model ({type(exc).__name__}): give an .onnx file "
                        "written by onnx.save or an exporter") from None
    if not model.HasField("graph") or not len(model.graph.node):
        raise UserError(f"{path} is not an ONNX model with a graph (no nodes): give an .onnx file "
                        "written by onnx.save or an exporter")
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    r = _Reader(path, opsets.get("ai.onnx", 0), keep_fused)
    g = model.graph
    for t in g.initializer:
        r.initializer(t)
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        et = vi.type.tensor_type.elem_type if vi.type.HasField("tensor_type") else 0
        r.types.setdefault(vi.name, _TYPES.get(et))
    for vi in g.input:
        if vi.name not in r.terms:
            r.terms[vi.name] = Term("source", precision=r.types.get(vi.name), tensor=vi.name, node=vi.name)
            r.order.append(vi.name)
    for i, node in enumerate(g.node):
        r.node(node, node.name or f"{node.op_type}_{i}", opsets.get(node.domain or "ai.onnx", 0))
    version = ", ".join(f"{d} opset {v}" for d, v in sorted(opsets.items()))
    graph = Graph(path, "ONNX", version, r.terms, r.semantics, r.skipped)
    return graph, r.order


class _Reader:
    def __init__(self, path, opset, keep_fused):
        self.path = path
        self.opset = opset
        self.keep_fused = keep_fused
        self.terms: dict = {}
        self.types: dict = {}
        self.order: list = []
        self.semantics: list = []
        self.skipped: dict = {}
        self.depth: dict = {}  # id(term) -> operations deep (graph.capped)

    def initializer(self, t):
        from onnx import numpy_helper

        arr = numpy_helper.to_array(t)
        prec = _TYPES.get(t.data_type)
        self.types[t.name] = prec
        if arr.size and prec and np.all(arr == arr.flat[0]):
            self.terms[t.name] = Term("const", precision=prec, value=_exact(arr.flat[0]), tensor=t.name, node=t.name)
        else:
            self.terms[t.name] = Term("source", precision=prec, tensor=t.name, node=t.name)

    def source(self, name: str, node: str) -> Term:
        return Term("source", precision=self.types.get(name), tensor=name, node=node)

    def arg(self, name: str, node: str) -> Term:
        if name not in self.terms:  # produced by nothing we read: a source
            self.terms[name] = self.source(name, node)
        return self.terms[name]

    def put(self, out: str, term: Term) -> None:
        term, cut = capped(term, self.depth)
        if cut:
            self._say(CUT)
        self.terms[out] = term
        self.types[out] = term.precision
        self.order.append(out)

    def node(self, node, name: str, opset: int, rename=None, top: str | None = None) -> None:
        """Read one node (its inputs already read); `rename` maps a function body's tensor names to
        the graph's, `top` names the graph's node a function body expands."""
        import onnx
        from onnx import helper

        rn = rename or (lambda s: s)
        ins = [rn(s) for s in node.input]
        outs = [rn(s) for s in node.output]
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            return self._skip(op, outs, name)
        if op in _FUSED and self.keep_fused:
            self._say(f"{op} kept as one operation (a primitive of the operator table: correctly rounded)")
            a = self.arg(ins[0], name)
            return self.put(outs[0], Term(_FUSED[op], (a,), a.precision, tensor=outs[0], node=top or name))
        schema = _schema(op, opset)
        if schema is not None and schema.has_function and op not in _BINARY and op not in _UNARY:
            body = schema.function_body
            self._say(f"{op} expanded into its ONNX function body (opset {schema.since_version}: "
                      + ", ".join(n.op_type for n in body.node) + ")")
            names = dict(zip(body.input, ins)) | dict(zip(body.output, outs))
            for sub in body.node:
                self.node(sub, f"{name}/{sub.op_type}", opset,
                          lambda s, names=names: names.get(s, f"{name}/{s}") if s else s, top or name)
            return None
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        args = [self.arg(s, name) if s else None for s in ins]
        prec = args[0].precision if args and args[0] is not None else None
        if op in _BINARY and len(args) == 2:
            t = Term(_BINARY[op], tuple(args), prec)
        elif op in _UNARY:
            t = Term(_UNARY[op], (args[0],), prec)
        elif op == "Neg":
            t = Term("-", (args[0],), prec)
        elif op == "Reciprocal":
            t = Term("/", (Term("const", precision=prec, value=Fraction(1)), args[0]), prec)
        elif op in ("Max", "Min") and args:
            t = args[0]
            for b in args[1:]:
                t = Term("fmax" if op == "Max" else "fmin", (t, b), prec)
        elif op == "Clip":
            t = args[0]
            lo = args[1] if len(args) > 1 else _attr_const(attrs, "min", prec)
            hi = args[2] if len(args) > 2 else _attr_const(attrs, "max", prec)
            if lo is not None:
                t = Term("fmax", (t, lo), prec)
            if hi is not None:
                t = Term("fmin", (t, hi), prec)
        elif op == "Identity":
            t = args[0]
        elif op == "Cast":
            t = Term("cast", (args[0],), _TYPES.get(attrs.get("to")))
        elif op == "CastLike":
            t = Term("cast", (args[0],), args[1].precision)
        elif op == "Constant":
            t = _constant(attrs, onnx)
            if t is None:
                return self._skip(op, outs, name)
        else:
            return self._skip(op, outs, name)
        if t.op == "cast" and t.args[0].op == "const":  # a constant converted: the constant in that format
            t = Term("const", precision=t.precision, value=_rounded(t.args[0].value, t.precision))
        self.put(outs[0], Term(t.op, t.args, t.precision, t.value, outs[0], top or name))
        return None

    def _skip(self, op, outs, name):
        self.skipped[op] = self.skipped.get(op, 0) + 1
        for o in outs:
            if o:
                self.put(o, self.source(o, name))

    def _say(self, s: str) -> None:
        if s not in self.semantics:
            self.semantics.append(s)


def _schema(op: str, opset: int):
    from onnx import defs

    try:
        return defs.get_schema(op, opset)
    except Exception:  # not an operator of that opset
        return None


def _exact(v) -> Fraction:
    return Fraction(float(v))


def _rounded(v: Fraction, prec: str | None) -> Fraction:
    from mishaudit.formats import get_format, round_fraction

    return Fraction(round_fraction(v, get_format(prec))) if prec else v


def _attr_const(attrs: dict, key: str, prec):
    return Term("const", precision=prec, value=_exact(attrs[key])) if key in attrs else None


def _constant(attrs: dict, onnx) -> Term | None:
    from onnx import numpy_helper

    if "value" in attrs:
        arr = numpy_helper.to_array(attrs["value"])
        prec = _TYPES.get(attrs["value"].data_type)
    elif "value_float" in attrs:
        arr, prec = np.array([attrs["value_float"]], dtype=np.float32), "binary32"
    elif "value_floats" in attrs:
        arr, prec = np.array(attrs["value_floats"], dtype=np.float32), "binary32"
    else:
        return None
    if not arr.size or prec is None or not np.all(arr == arr.flat[0]):
        return None
    return Term("const", precision=prec, value=_exact(arr.flat[0]))
