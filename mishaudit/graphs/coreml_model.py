"""A Core ML model's elementwise operations as terms (graphs/graph.py).

Read: an ML program (`.mlpackage`, or an `.mlmodel` holding one) through its protobuf spec, a
neural network `.mlmodel` (its activation, multiply, add and unary layers), or a coremltools MIL
program object (what `coremltools.convert(..., convert_to="milinternal")` returns, Python API
only). Reading needs coremltools (mishaudit[coreml]); predicting does not happen (it is macOS-only).

Semantics (MIL's operator definitions, coremltools/converters/mil/mil/ops/defs):
- each operation computes in its output tensor's data type (fp16, fp32); `cast` converts;
- `softplus` has no decomposition in MIL: it stays one operation, a primitive of the operator table
  (correctly rounded: an upper bound on what the device's kernel can do);
- `log(x, epsilon)` is log(x + epsilon), `inverse(x, epsilon)` 1/(x + epsilon), `rsqrt(x, epsilon)`
  1/sqrt(x + epsilon), with MIL's defaults 1e-45, 1e-4 and 1e-12 in the type of x (1e-45 is 0 in
  fp16) when the program gives none;
- `clip(x, alpha, beta)` is min(max(x, alpha), beta).
A neural network model has no compute precision of its own (the runtime picks fp32 on the CPU,
fp16 on the GPU and Neural Engine): it is read as binary32, and the import says so."""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np

from mishaudit.errors import UserError
from mishaudit.graphs.graph import CUT, Graph, Term, capped

_DTYPES = {"FLOAT16": "binary16", "FLOAT32": "binary32", "FLOAT64": "binary64", "BFLOAT16": "bfloat16",
           "fp16": "binary16", "fp32": "binary32", "fp64": "binary64", "bf16": "bfloat16"}
_BINARY = {"add": "+", "sub": "-", "mul": "*", "real_div": "/", "pow": "pow", "maximum": "fmax", "minimum": "fmin"}
_UNARY = {"exp": "exp", "exp2": "exp2", "tanh": "tanh", "sqrt": "sqrt", "abs": "fabs", "softplus": "softplus"}
_EPSILON = {"log": 1e-45, "inverse": 1e-4, "rsqrt": 1e-12}  # MIL's defaults


def _coremltools():
    """coremltools, imported quietly: it imports TensorFlow and torch where installed, whose C++ start-up
    lines go straight to file descriptor 2, and it logs that it cannot predict off macOS. Descriptor 2
    points at /dev/null while it imports (an error still raises here, after it is restored)."""
    import logging
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as sink, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            os.dup2(sink.fileno(), 2)
            try:
                import coremltools
            finally:
                os.dup2(saved, 2)
    except ImportError:
        raise UserError("reading a Core ML model needs coremltools, which is not installed: "
                        "pip install 'mishaudit[coreml]'") from None
    finally:
        os.close(saved)
    return coremltools


def read(path: str) -> tuple[Graph, list]:
    """(Graph, tensors in operation order) of the Core ML model at `path` (.mlpackage folder or
    .mlmodel file); UserError for anything else."""
    if not os.path.exists(path):
        raise UserError(f"cannot read {path}: no such file or folder; check the path")
    ct = _coremltools()
    try:
        spec = ct.utils.load_spec(path)
    except Exception as exc:
        raise UserError(f"{path} is not a Core ML model ({type(exc).__name__}): give an .mlpackage or .mlmodel "
                        "saved by coremltools") from None
    kind = spec.WhichOneof("Type")
    r = _Reader()
    if kind == "mlProgram":
        fn = spec.mlProgram.functions.get("main") or next(iter(spec.mlProgram.functions.values()), None)
        if fn is None:
            raise UserError(f"{path}: the ML program has no function: give a converted model")
        for i in fn.inputs:
            r.source(i.name, _proto_dtype(i.type))
        block = fn.block_specializations[fn.opset]
        for op in block.operations:
            r.operation(op.type, _proto_name(op), _proto_inputs(op, r), [(o.name, _proto_dtype(o.type))
                                                                          for o in op.outputs], _proto_const(op))
        version = f"ML program {fn.opset} (specification version {spec.specificationVersion})"
    elif kind in ("neuralNetwork", "neuralNetworkClassifier", "neuralNetworkRegressor"):
        nn = getattr(spec, kind)
        for i in spec.description.input:
            r.source(i.name, "binary32")
        for layer in nn.layers:
            r.layer(layer)
        r.say("a neural network model has no compute precision: read as binary32 (the CPU's; the GPU and "
              "Neural Engine compute in fp16)")
        version = f"neural network (specification version {spec.specificationVersion})"
    else:
        raise UserError(f"{path} is a Core ML {kind} model, which has no graph of operations: give an ML program "
                        "or a neural network")
    r.say("softplus kept as one operation (MIL defines no decomposition: a primitive of the operator table, "
          "correctly rounded)") if r.saw_softplus else None
    return Graph(path, "Core ML", version, r.terms, r.semantics, r.skipped), r.order


def read_program(prog, name: str = "<MIL program>") -> tuple[Graph, list]:
    """The same for a coremltools MIL Program object (Python API)."""
    fn = prog.functions.get("main") if hasattr(prog, "functions") else None
    if fn is None:
        raise UserError(f"{name}: not a coremltools MIL program with a main function")
    r = _Reader()
    for n, var in fn.inputs.items():
        r.source(n, _mil_dtype(var))
    for op in fn.operations:
        outs = [(o.name, _mil_dtype(o)) for o in op.outputs]
        val = None
        if op.op_type == "const":
            val = op.outputs[0].val
        ins = {k: [(getattr(v, "name", None), _mil_const(v))] if not isinstance(v, (list, tuple))
               else [(getattr(u, "name", None), _mil_const(u)) for u in v] for k, v in op.inputs.items()}
        r.operation(op.op_type, op.name, ins, outs, val)
    r.say("softplus kept as one operation (MIL defines no decomposition: a primitive of the operator table, "
          "correctly rounded)") if r.saw_softplus else None
    return Graph(name, "Core ML", f"MIL program {getattr(fn, 'opset_version', '')}".strip(), r.terms, r.semantics,
                 r.skipped), r.order


class _Reader:
    def __init__(self):
        self.terms: dict = {}
        self.order: list = []
        self.semantics: list = []
        self.skipped: dict = {}
        self.depth: dict = {}  # id(term) -> operations deep (graph.capped)
        self.consts: dict = {}  # name -> numpy value (const ops: dtype strings, epsilons, clip bounds)
        self.saw_softplus = False

    def say(self, s):
        if s not in self.semantics:
            self.semantics.append(s)

    def source(self, name, prec):
        self.terms[name] = Term("source", precision=prec, tensor=name, node=name)
        self.order.append(name)

    def put(self, name, term):
        term, cut = capped(term, self.depth)
        if cut:
            self.say(CUT)
        self.terms[name] = term
        self.order.append(name)

    def value(self, name, const, prec):
        """The term of an operand: a tensor read before, or a constant (one value)."""
        if name is not None and name in self.terms:
            return self.terms[name]
        v = const if const is not None else self.consts.get(name)
        arr = np.asarray(v) if v is not None else None
        if arr is None or arr.dtype.kind not in "fiu" or not arr.size or not np.all(arr == arr.flat[0]):
            t = Term("source", precision=prec, tensor=name or "?", node=name or "?")
        elif np.isinf(arr.flat[0]):  # +-inf: no Fraction; a constant without a value
            t = Term("const", precision=prec, value=None, tensor=name or "", node="-inf" if arr.flat[0] < 0 else "inf")
        else:
            t = Term("const", precision=prec, value=Fraction(float(arr.flat[0])), tensor=name or "", node=name or "")
        if name is not None:
            self.terms[name] = t
        return t

    def operation(self, op: str, name: str, ins: dict, outs: list, const) -> None:
        """One MIL operation: `ins` param -> [(tensor name or None, constant value or None)]."""
        out, prec = outs[0] if outs else (None, None)
        if op == "const":
            self.consts[out] = const
            if np.asarray(const).dtype.kind in "fiu":
                self.value(out, const, prec)
            return

        def arg(key, default=None):
            if key not in ins:
                if default is None:
                    return None
                return Term("const", precision=prec, value=_rounded(default, prec))
            n, c = ins[key][0]
            return self.value(n, c, prec)

        if op in _BINARY:
            t = Term(_BINARY[op], (arg("x"), arg("y")), prec)
        elif op in _UNARY:
            self.saw_softplus |= op == "softplus"
            t = Term(_UNARY[op], (arg("x"),), prec)
        elif op in _EPSILON:
            eps = arg("epsilon", _EPSILON[op])
            x = arg("x")
            inner = x if eps.op == "const" and eps.value == 0 else Term("+", (x, eps), prec)
            one = Term("const", precision=prec, value=Fraction(1))
            t = {"log": Term("log", (inner,), prec), "inverse": Term("/", (one, inner), prec),
                 "rsqrt": Term("/", (one, Term("sqrt", (inner,), prec)), prec)}[op]
        elif op == "square":
            x = arg("x")
            t = Term("*", (x, x), prec)
        elif op == "clip":  # an infinite bound clips nothing (max(x, -inf) = x for every non-NaN x)
            t = arg("x")
            for bound, rule in ((arg("alpha"), "fmax"), (arg("beta"), "fmin")):
                if not (bound.op == "const" and bound.value is None):
                    t = Term(rule, (t, bound), prec)
        elif op == "cast":
            t = Term("cast", (arg("x"),), prec)
        elif op == "identity":
            t = arg("x")
        else:
            self.skipped[op] = self.skipped.get(op, 0) + 1
            for o, p in outs:
                self.source(o, p)
            return
        self.put(out, Term(t.op, t.args, t.precision, t.value, out, name))

    def layer(self, layer) -> None:
        """One neural network layer, as the MIL operation it means."""
        kind = layer.WhichOneof("layer")
        outs = [(o, "binary32") for o in layer.output]
        ins = {k: [(n, None)] for k, n in zip(("x", "y"), layer.input)}
        if kind == "activation":
            act = layer.activation.WhichOneof("NonlinearityType")
            op = {"softplus": "softplus", "tanh": "tanh"}.get(act)
            return self.operation(op or f"activation {act}", layer.name, ins, outs, None)
        if kind in ("multiply", "add") and len(layer.input) == 2:
            return self.operation({"multiply": "mul", "add": "add"}[kind], layer.name, ins, outs, None)
        if kind == "unary":
            u = layer.unary
            names = {u.EXP: "exp", u.LOG: "log"}
            if u.type in names and u.alpha == 1 and u.scale == 1 and u.shift == 0:
                return self.operation(names[u.type], layer.name, ins | {"epsilon": [(None, u.epsilon)]}, outs, None)
        self.operation(f"layer {kind}", layer.name, ins, outs, None)


def _rounded(v: float, prec) -> Fraction:
    from mishaudit.formats import get_format, round_fraction

    return Fraction(round_fraction(Fraction(v), get_format(prec))) if prec else Fraction(v)


def _proto_dtype(t) -> str | None:
    from coremltools.proto import MIL_pb2

    if t.WhichOneof("type") != "tensorType":
        return None
    return _DTYPES.get(MIL_pb2.DataType.Name(t.tensorType.dataType))


def _proto_name(op) -> str:
    a = op.attributes.get("name")
    if a is not None and a.immediateValue.tensor.strings.values:
        return a.immediateValue.tensor.strings.values[0]
    return op.outputs[0].name if op.outputs else op.type


def _proto_value(v):
    """A MIL Value proto's immediate tensor as a numpy array (strings as an object array)."""
    from coremltools.proto import MIL_pb2

    if v.WhichOneof("value") != "immediateValue":
        return None
    t = v.immediateValue.tensor
    which = t.WhichOneof("value")
    dt = MIL_pb2.DataType.Name(v.type.tensorType.dataType) if v.type.WhichOneof("type") == "tensorType" else ""
    if which == "strings":
        return np.array(list(t.strings.values), dtype=object)
    if which == "bytes":
        raw = t.bytes.values
        return np.frombuffer(raw, dtype={"FLOAT16": np.float16}.get(dt, np.uint8))
    if which in ("floats", "doubles", "ints", "longInts"):
        return np.array(list(getattr(t, which).values))
    return None


def _proto_const(op):
    return _proto_value(op.attributes["val"]) if op.type == "const" and "val" in op.attributes else None


def _proto_inputs(op, r) -> dict:
    out = {}
    for k, arg in op.inputs.items():
        out[k] = [(a.name, None) if a.WhichOneof("binding") == "name" else (None, _proto_value(a.value))
                  for a in arg.arguments]
    return out


def _mil_dtype(var) -> str | None:
    from coremltools.converters.mil.mil import types

    dt = getattr(var, "dtype", None)
    if dt is None:
        return None
    return _DTYPES.get(types.builtin_to_string(dt))


def _mil_const(v):
    val = getattr(v, "val", None)
    return None if val is None or getattr(v, "op", None) is not None and v.op.op_type != "const" else val
