"""Framework kernels: a framework's own Mish run as a black box, beside the FPCore formulations.

A kernel maps an array of a format to an array of the same format, as the framework computes it
(whatever its internal precision, vectorisation and elementary functions). It is audited like a
formulation (the same tables, plots, gate and sweeps) but has no intermediates, so no overflow
map and no approximation error. Its bits depend on the framework's version and on the CPU
(torch dispatches its CPU kernels by capability, AVX2 or AVX512), which `digest` and `describe`
record.

    torch:mish           torch.nn.functional.mish
    torch:softplus-tanh  x * torch.tanh(torch.nn.functional.softplus(x)), as users write it
                         (softplus's default threshold 20 included)
    onnxruntime:Mish     a one-node opset-18 model built in memory with onnx, run by an ONNX
                         Runtime CPU session (binary16, binary32, binary64: ONNX Mish has no
                         bfloat16 kernel)
    jax:mish             jax.nn.mish, jitted on the CPU (x64 enabled for binary64)
    torch:mish-grad      the gradient torch computes for F.mish: aten.mish_backward with
                         grad_output = 1 (what autograd calls), spec mish'
    jax:mish-grad        jax.vmap(jax.grad(jax.nn.mish)), jitted on the CPU, spec mish'
    openvino:Mish        an opset-4 Mish op, a one-op ov.Model built in memory, compiled for the
                         OpenVINO CPU plugin (one inference thread, INFERENCE_PRECISION_HINT = the
                         format, denormals optimisation off); binary16, bfloat16, binary32
    tensorflow:mish      tf.keras.activations.mish (Keras 3: x * tanh(softplus(x)), TensorFlow's
                         softplus kernel), eager, one intra-op thread
    tensorflow:mish-xla  the same under tf.function(jit_compile=True): XLA's CPU code

OpenVINO's CPU plugin runs a format in another precision where the CPU lacks it, and says so only
in the compiled model: each compiled model's INFERENCE_PRECISION_HINT and the runtimePrecision /
primitiveType of the runtime model's nodes are read back and recorded in describe('openvino'), per
format (and so in the digest). Measured on an AVX-512 CPU with AVX512_BF16 and no AVX512_FP16/AMX:
binary32 runs as oneDNN's jit eltwise (jit_avx512_f32), bit for bit e = exp(min(x, 44.3614)) with
oneDNN's own exp (a degree-5 polynomial, 0 below ln(FLT_MIN)), w = (e + 1)^2, x * ((w - 1)/(w + 1));
binary16 is converted to binary32, run so, and rounded once (the f16 hint reads back as bf16);
bfloat16 runs in jit_avx512_bf16: that binary32 computation rounded once to bfloat16 by
vcvtneps2bf16, which flushes a binary32 result below 2^-126 to zero; binary64 is converted to
binary32 and back (not offered: it is no binary64 kernel). Measured on an AVX2 CPU (no AVX-512):
binary32 runs in jit_avx2_f32 with the same bits; binary16 and bfloat16 run in binary32 between
Converts (both hints read back f32), binary16 rounded once by RN, bfloat16 by OpenVINO's own
conversion, bits b -> (b + ((b & 0x10000) >> 1)) >> 16: it rounds up only when the last kept bit
is 1, so it truncates about half the inexact results (not RN), and it keeps subnormals.

TensorFlow's kernels flush subnormals to zero (the calling thread is left under IEEE gradual
underflow: measured, and checked after each run): binary32 mish is -0 below x = -126 ln 2 = -87.3365,
where exp(x) would be subnormal, though mish(x) is a normal float down to -91.8 and RN(mish(x)) a
nonzero subnormal down to -108.6; binary64 likewise below -1022 ln 2; bfloat16 (computed in binary32)
flushes too, binary16 does not. That is the kernel's behaviour and is audited as such (identify ranks
the formulations under eval/ftz.py's flush models too, and a flushing kernel matches best there).
Eigen's scalar code, which takes the elements of a tensor's last partial packet, gives other bits
than its vector code in binary32 and binary64 (an element's result depends on its position in the
tensor): the runners pad to whole blocks so every input takes the vector path, the one almost every
element of a real tensor takes.

Frameworks are optional (extras mishaudit[torch], [onnx], [jax], [openvino], [tensorflow]); a
kernel whose framework is missing is listed as unavailable with the command that installs it. torch
kernels take a device (`cuda` where CUDA is present; untested by this project's CI, which has no GPU).
No kernel may leave the process flushing subnormals (eval/ftz.py): the runners check after each run.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
from dataclasses import dataclass, field

import numpy as np

from mishaudit.errors import UserError
from mishaudit.formats import BF16, FP32, Format
from mishaudit.lang.spec import MISH, MISH_GRAD, Spec

EXTRAS = {"torch": "torch", "onnxruntime": "onnx", "jax": "jax", "openvino": "openvino", "tensorflow": "tensorflow"}
MODULES = {"torch": "torch", "onnxruntime": "onnxruntime", "jax": "jax", "openvino": "openvino",
           "tensorflow": "tensorflow"}
SLOW_IMPORTS = ("tensorflow",)  # seconds to import, and noisy: its version read from the package metadata


@dataclass(frozen=True)
class Kernel:
    id: str
    framework: str  # torch, onnxruntime, jax, openvino, tensorflow
    description: str
    formats: tuple  # names of the formats the framework runs it in
    why_not: dict = field(default_factory=dict)  # format name -> why it is unsupported
    spec: Spec = MISH  # what it computes: mish, or mish' for a gradient
    kernel = True  # (an FPCore Formula has kernel = False)

    @property
    def name(self) -> str:
        return self.description

    @property
    def source(self) -> str:
        return f"{self.framework} {framework_version(self.framework) or '(not installed)'}"

    @property
    def used_by(self) -> str:
        return self.framework

    @property
    def path(self) -> str:
        return self.source

    @property
    def digest(self) -> str:
        """What its bits depend on: the framework's version and the CPU capability it dispatched to."""
        return hashlib.sha256(describe(self.framework).encode()).hexdigest()[:16]

    def available(self) -> bool:
        return framework_version(self.framework) is not None

    def require(self) -> None:
        if not self.available():
            raise UserError(f"kernel {self.id} needs {self.framework}, which is not installed: "
                            f"pip install 'mishaudit[{EXTRAS[self.framework]}]'")

    def supports(self, fmt: Format) -> bool:
        return fmt.name in self.formats

    def run32(self, x32: np.ndarray, device: str = "cpu") -> np.ndarray:
        """run() for binary32 inputs given and returned as float32 arrays (the sweep's blocks), without
        the round trips through float64."""
        if self.framework == "torch":
            import torch

            _to_torch(x32[:0].astype(np.float64), FP32, "cpu")  # thread setup in workers
            with torch.no_grad():
                t = torch.from_numpy(np.ascontiguousarray(x32)).to(_torch_device(device))
                return _TORCH_FNS[self.id](t).cpu().numpy()
        if self.framework == "onnxruntime":
            return _ort_session("fp32").run(None, {"x": np.ascontiguousarray(x32)})[0]
        return self.run(x32.astype(np.float64), FP32, device).astype(np.float32)

    def run(self, x: np.ndarray, fmt: Format, device: str = "cpu") -> np.ndarray:
        """The kernel's outputs for inputs x (float64 values of fmt), as float64 values of fmt."""
        self.require()
        if not self.supports(fmt):
            raise UserError(f"kernel {self.id} does not run in {fmt.name}: {self.why_not.get(fmt.name, 'unsupported')}")
        return _RUNNERS[self.id](np.asarray(x, dtype=np.float64), fmt, device)


KERNELS = {k.id: k for k in (
    Kernel("torch:mish", "torch", "torch.nn.functional.mish", ("fp16", "bf16", "fp32", "fp64")),
    Kernel("torch:softplus-tanh", "torch", "x * torch.tanh(torch.nn.functional.softplus(x)) (threshold 20)",
           ("fp16", "bf16", "fp32", "fp64")),
    Kernel("onnxruntime:Mish", "onnxruntime", "ONNX Mish (opset 18), one-node model on an ONNX Runtime CPU session",
           ("fp16", "fp32", "fp64"), {"bf16": "ONNX Mish has no bfloat16 kernel (type constraint T: float16, "
                                              "float, double)"}),
    Kernel("jax:mish", "jax", "jax.nn.mish, jitted on the CPU", ("fp16", "bf16", "fp32", "fp64")),
    Kernel("torch:mish-grad", "torch", "torch.ops.aten.mish_backward(ones, x): the gradient autograd gives F.mish",
           ("fp16", "bf16", "fp32", "fp64"), spec=MISH_GRAD),
    Kernel("jax:mish-grad", "jax", "jax.vmap(jax.grad(jax.nn.mish)), jitted on the CPU", ("fp16", "bf16", "fp32", "fp64"),
           spec=MISH_GRAD),
    Kernel("openvino:Mish", "openvino", "OpenVINO opset4 Mish, one-op model on the CPU plugin (1 thread, precision "
           "hint = the format; the precision it ran in is read back: fp16 runs in f32 on a CPU without native fp16)",
           ("fp16", "bf16", "fp32"), {"fp64": "the OpenVINO CPU plugin has no f64 Mish: it converts f64 to f32, runs "
                                              "Mish in f32 and converts back (read back from the compiled model)"}),
    Kernel("tensorflow:mish", "tensorflow", "tf.keras.activations.mish (x * tanh(softplus(x))), TensorFlow eager "
           "(flushes subnormals)", ("fp16", "bf16", "fp32", "fp64")),
    Kernel("tensorflow:mish-xla", "tensorflow", "tf.keras.activations.mish under tf.function(jit_compile=True), "
           "XLA CPU", ("fp16", "bf16", "fp32", "fp64")),
)}


@functools.lru_cache(maxsize=None)
def framework_version(framework: str) -> str | None:
    """The installed framework's version, None when it cannot be imported."""
    import importlib

    if framework in SLOW_IMPORTS:  # not imported until it runs (require() then says if it is broken)
        return _installed_version(MODULES[framework])
    try:
        return importlib.import_module(MODULES[framework]).__version__
    except Exception:  # not installed, or broken
        return None


def _installed_version(module: str) -> str | None:
    """The version of the distribution that installs `module` (tensorflow comes as tensorflow,
    tensorflow-cpu, ...), None where the module cannot be found."""
    import importlib.metadata
    import importlib.util

    try:
        if importlib.util.find_spec(module) is None:
            return None
        for dist in (module, f"{module}-cpu"):
            try:
                return importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                pass
        dists = importlib.metadata.packages_distributions().get(module, [])
        return importlib.metadata.version(dists[0]) if dists else None
    except Exception:  # a broken install
        return None


@functools.lru_cache(maxsize=None)
def describe(framework: str) -> str:
    """Framework, version and the CPU capability its kernels dispatch to (their bits depend on both)."""
    v = framework_version(framework)
    if v is None:
        return f"{framework} (not installed)"
    if framework == "torch":
        import torch

        return f"torch {v} (CPU capability {torch.backends.cpu.get_cpu_capability()})"
    if framework == "jax":
        import jaxlib

        return f"jax {v} (jaxlib {jaxlib.__version__}, XLA CPU)"
    try:
        if framework == "openvino":
            return _ov_describe(v)
        if framework == "tensorflow":
            return _tf_describe()
    except UserError:
        raise
    except Exception as e:  # a framework that imports but cannot say: its bits are then undetermined
        return f"{framework} {v} (not probed: {type(e).__name__}: {e})"
    return f"{framework} {v}"


def get(kid: str) -> Kernel:
    if kid not in KERNELS:
        close = [k for k in KERNELS if kid.split(":")[-1].lower() in k.lower()]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserError(f"unknown kernel {kid!r}{hint}: the kernels are {', '.join(KERNELS)}")
    return KERNELS[kid]


def is_kernel(impl) -> bool:
    return getattr(impl, "kernel", False)


# ---------------------------------------------------------------- runners


def _np_dtype(fmt: Format):
    return {"fp16": np.float16, "fp32": np.float32, "fp64": np.float64}[fmt.name]


def _to_torch(x: np.ndarray, fmt: Format, device: str):
    import multiprocessing

    import torch

    if multiprocessing.current_process().name != "MainProcess" and torch.get_num_threads() != 1:
        torch.set_num_threads(1)  # a pool worker: one process per core already

    if fmt is BF16:  # numpy has no bfloat16: pass the bits
        bits = np.ascontiguousarray(x.astype(BF16.dtype)).view(np.int16)
        t = torch.from_numpy(bits.copy()).view(torch.bfloat16)
    else:
        t = torch.from_numpy(np.ascontiguousarray(x.astype(_np_dtype(fmt))))
    return t.to(device)


def _from_torch(t, fmt: Format) -> np.ndarray:
    import torch

    t = t.detach().to("cpu")
    if fmt is BF16:
        return t.view(torch.int16).numpy().view(BF16.dtype).astype(np.float64)
    return t.numpy().astype(np.float64)


def torch_devices() -> list[str]:
    """The devices torch can run kernels on here: cpu, then cuda and cuda:N for each CUDA device, mps."""
    import torch

    out = ["cpu"]
    try:
        if torch.cuda.is_available():
            out += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    except Exception:  # a broken CUDA install: cpu still works
        pass
    try:
        if torch.backends.mps.is_available():
            out.append("mps")
    except Exception:
        pass
    return out


def _torch_device(device: str) -> str:
    """`device` checked: a UserError naming the devices there are when torch cannot use it here."""
    import torch

    have = torch_devices()
    if device in have:
        return device
    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError, TypeError):
        raise UserError(f"--device {device!r}: not a device torch knows; use one of: {', '.join(have)}") from None
    if kind == "cuda":
        why = ("torch sees no CUDA device here (torch.cuda.is_available() is false)" if "cuda" not in have
               else "there is no such CUDA device here")
    else:
        why = f"torch cannot use {kind} devices here"
    raise UserError(f"--device {device}: {why}; use one of: {', '.join(have)}")


def _torch_fn(kid: str):
    import torch

    F = torch.nn.functional
    return {"torch:mish": F.mish, "torch:softplus-tanh": lambda t: t * torch.tanh(F.softplus(t)),
            "torch:mish-grad": lambda t: torch.ops.aten.mish_backward(torch.ones_like(t), t)}[kid]


class _TorchFns(dict):
    def __missing__(self, kid):
        self[kid] = _torch_fn(kid)
        return self[kid]


_TORCH_FNS = _TorchFns()


def _torch_run(kid: str):
    def run(x, fmt, device):
        import torch

        with torch.no_grad():
            return _from_torch(_TORCH_FNS[kid](_to_torch(x, fmt, _torch_device(device))), fmt)

    return run


@functools.lru_cache(maxsize=None)
def _ort_session(fmt_name: str):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    tp = {"fp16": TensorProto.FLOAT16, "fp32": TensorProto.FLOAT, "fp64": TensorProto.DOUBLE}[fmt_name]
    node = helper.make_node("Mish", ["x"], ["y"])
    graph = helper.make_graph([node], "mish", [helper.make_tensor_value_info("x", tp, [None])],
                              [helper.make_tensor_value_info("y", tp, [None])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = min(model.ir_version, 9)
    onnx.checker.check_model(model)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # one process per core already (the sweep); deterministic order
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _ort_mish(x, fmt, device):
    if device != "cpu":
        raise UserError(f"--device {device}: onnxruntime:Mish runs on the CPU session only")
    y = _ort_session(fmt.name).run(None, {"x": np.ascontiguousarray(x.astype(_np_dtype(fmt)))})[0]
    return y.astype(np.float64)


@functools.lru_cache(maxsize=None)
def _jax_fn(grad: bool):
    import jax

    jax.config.update("jax_enable_x64", True)  # binary64 inputs stay binary64
    jax.config.update("jax_platforms", "cpu")
    return jax.jit(jax.vmap(jax.grad(jax.nn.mish)) if grad else jax.nn.mish)


def _jax_run(grad: bool):
    def run(x, fmt, device):
        import jax.numpy as jnp

        if device != "cpu":
            raise UserError(f"--device {device}: jax kernels run on the CPU here")
        dt = {"fp16": jnp.float16, "bf16": jnp.bfloat16, "fp32": jnp.float32, "fp64": jnp.float64}[fmt.name]
        src = x.astype(BF16.dtype) if fmt is BF16 else x.astype(_np_dtype(fmt))
        return np.asarray(_jax_fn(grad)(jnp.asarray(src, dtype=dt))).astype(np.float64)

    return run


def _check_ieee(kid: str) -> None:
    """UserError where running kernel `kid` left this thread flushing subnormals (every figure of the
    process assumes gradual underflow; eval/ftz.py). None of the frameworks here does (measured)."""
    from mishaudit.eval.ftz import flushing

    got = flushing()
    if got:
        raise UserError(f"running {kid} left this process flushing subnormals ({'/'.join(got)} set in the "
                        "floating-point control register): its figures would be wrong; audit it in a process of "
                        "its own")


# ---- OpenVINO

_OV_TYPES = {"fp16": "f16", "bf16": "bf16", "fp32": "f32"}


@functools.lru_cache(maxsize=None)
def _ov_compiled(fmt_name: str):
    """(compiled model, what it runs) for a one-op opset-4 Mish model whose input and output are fmt,
    compiled for the CPU plugin with one inference thread (one process per core already; no pinning),
    INFERENCE_PRECISION_HINT = fmt and the denormals optimisation off (the plugin's threads keep
    IEEE gradual underflow). What it runs is read back: the hint the compiled model reports, and
    each runtime node's layerType, runtimePrecision, outputPrecisions and primitiveType."""
    import openvino as ov
    import openvino.opset4 as ops

    et = getattr(ov.Type, _OV_TYPES[fmt_name])
    x = ops.parameter([-1], et, name="x")
    model = ov.Model([ops.mish(x)], [x], "mish")
    config = {"INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": 1, "ENABLE_CPU_PINNING": False,
              "INFERENCE_PRECISION_HINT": _OV_TYPES[fmt_name], "CPU_DENORMALS_OPTIMIZATION": False}
    cm = _ov_core().compile_model(model, "CPU", config)

    def rt(node, key):
        info = node.get_rt_info()
        return info[key].astype(str) if key in info else "?"

    nodes = [{k: rt(n, k) for k in ("layerType", "runtimePrecision", "outputPrecisions", "primitiveType")}
             for n in cm.get_runtime_model().get_ordered_ops()]
    ran = {"hint": cm.get_property("INFERENCE_PRECISION_HINT").get_type_name(),
           "mish": [n for n in nodes if n["layerType"] not in ("Input", "Output", "Convert")],
           "converts": [n for n in nodes if n["layerType"] == "Convert"]}
    return cm, ran


@functools.lru_cache(maxsize=None)
def _ov_core():
    import openvino as ov

    return ov.Core()


def ov_execution(fmt_name: str) -> dict:
    """What the OpenVINO CPU plugin runs openvino:Mish in for format fmt_name, read back from the
    compiled model: {"requested", "hint" (the INFERENCE_PRECISION_HINT it reports), "precision" (the
    Mish node's runtimePrecision), "primitive" (its primitiveType, e.g. jit_avx512_f32), "converts"
    (the Convert nodes the plugin inserted, as "from->to")}."""
    _, ran = _ov_compiled(fmt_name)
    mish = ran["mish"][0] if ran["mish"] else {"runtimePrecision": "?", "primitiveType": "?"}
    return {"requested": _OV_TYPES[fmt_name], "hint": ran["hint"], "precision": mish["runtimePrecision"],
            "primitive": mish["primitiveType"],
            "converts": [f"{c['runtimePrecision']}->{c['outputPrecisions']}" for c in ran["converts"]]}


def _ov_describe(version: str) -> str:
    core = _ov_core()
    caps = " ".join(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    runs = []
    for name in KERNELS["openvino:Mish"].formats:
        e = ov_execution(name)
        conv = f", via Converts {' '.join(e['converts'])}" if e["converts"] else ""
        runs.append(f"{name} in {e['precision']} ({e['primitive']}){conv}, hint {e['requested']} read back {e['hint']}")
    return (f"openvino {version} (CPU plugin on {core.get_property('CPU', 'FULL_DEVICE_NAME')}, capabilities {caps}; "
            f"Mish runs {'; '.join(runs)})")


def _ov_mish(x, fmt, device):
    import openvino as ov

    if device != "cpu":
        raise UserError(f"--device {device}: openvino:Mish runs on the CPU plugin only")
    if x.size == 0:
        return np.zeros(x.shape)
    cm, _ = _ov_compiled(fmt.name)
    if fmt is BF16:  # numpy has no bfloat16: pass the bits (ml_dtypes' bfloat16 is the same encoding)
        bits = np.ascontiguousarray(x.ravel().astype(BF16.dtype)).view(np.uint16)
        t = ov.Tensor(bits, bits.shape, ov.Type.bf16)
    else:
        t = ov.Tensor(np.ascontiguousarray(x.ravel().astype(_np_dtype(fmt))))
    req = cm.create_infer_request()
    req.infer({0: t})
    out = np.array(req.get_output_tensor(0).data, copy=True)  # a bf16 tensor's data reads as float16: bits
    _check_ieee("openvino:Mish")
    y = out.view(np.uint16).view(BF16.dtype) if fmt is BF16 else out
    return y.astype(np.float64).reshape(x.shape)


# ---- TensorFlow

_TF_BLOCK = 1 << 16  # elements per call: a multiple of every vector width (Eigen's scalar tail never runs)


@contextlib.contextmanager
def _tf_log_filter():
    """TensorFlow writes INFO lines to file descriptor 2 before its logging is set up, which
    TF_CPP_MIN_LOG_LEVEL does not reach: while it loads, those (I..., W... and absl's preamble) are
    dropped and every other line is passed on."""
    import sys
    import tempfile

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no file descriptor 2
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines = tmp.read().decode(errors="replace").splitlines(keepends=True)
            keep = [ln for ln in lines if not re.match(r"[IW]\d{4} |WARNING: All log messages before absl::", ln)]
            if keep:  # where TensorFlow wrote them: file descriptor 2, not sys.stderr
                os.write(2, "".join(keep).encode())


@functools.lru_cache(maxsize=None)
def _tf():
    """tensorflow, imported once: C++ logging below ERROR silenced (TF_CPP_MIN_LOG_LEVEL=2, set only
    where the user has not set it), one intra-op and one inter-op thread (one process per core
    already; where the user's code already started TensorFlow, its settings stay)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        with _tf_log_filter():
            import tensorflow as tf

            try:
                tf.config.threading.set_intra_op_parallelism_threads(1)
                tf.config.threading.set_inter_op_parallelism_threads(1)
            except RuntimeError:  # the user's code initialised the runtime before: its threads stay
                pass
            for dt in (tf.float16, tf.bfloat16, tf.float32, tf.float64):  # the first kernels' log lines
                tf.keras.activations.mish(tf.zeros([64], dt))
    except ImportError as e:
        raise UserError(f"tensorflow is installed but cannot be imported ({e}): "
                        "pip install 'mishaudit[tensorflow]'") from None
    _check_ieee("tensorflow")
    return tf


def _tf_describe() -> str:
    tf = _tf()
    import keras

    try:
        from tensorflow.python.util import _pywrap_util_port

        onednn = "on" if _pywrap_util_port.IsMklEnabled() else "off"
    except Exception:
        onednn = "unknown"
    return (f"tensorflow {tf.__version__} (keras {keras.__version__} on {keras.backend.backend()}, oneDNN ops "
            f"{onednn}, eager Eigen CPU kernels / XLA CPU; flushes subnormals)")


@functools.lru_cache(maxsize=None)
def _tf_fn(xla: bool, fmt_name: str):
    tf = _tf()
    mish = tf.keras.activations.mish
    if not xla:
        return mish
    dt = {"fp16": tf.float16, "bf16": tf.bfloat16, "fp32": tf.float32, "fp64": tf.float64}[fmt_name]
    return tf.function(mish, jit_compile=True, input_signature=[tf.TensorSpec([_TF_BLOCK], dt)])


def _tf_run(xla: bool):
    kid = "tensorflow:mish-xla" if xla else "tensorflow:mish"

    def run(x, fmt, device):
        if device != "cpu":
            raise UserError(f"--device {device}: {kid} runs on the CPU here")
        tf = _tf()
        fn = _tf_fn(xla, fmt.name)
        if x.size == 0:
            return np.zeros(x.shape)
        src = np.concatenate([x.ravel(), np.zeros((-x.size) % _TF_BLOCK)])
        out = []
        with tf.device("/CPU:0"):
            for i in range(0, src.size, _TF_BLOCK):
                blk = src[i:i + _TF_BLOCK]
                if fmt is BF16:  # the bits: tf.bfloat16 and ml_dtypes' bfloat16 are the same encoding
                    t = tf.bitcast(tf.constant(blk.astype(BF16.dtype).view(np.uint16)), tf.bfloat16)
                    y = tf.bitcast(fn(t), tf.uint16).numpy().view(BF16.dtype)
                else:
                    y = fn(tf.constant(blk.astype(_np_dtype(fmt)))).numpy()
                out.append(y.astype(np.float64))
        _check_ieee(kid)
        return np.concatenate(out)[:x.size].reshape(x.shape)

    return run


_RUNNERS = {"torch:mish": _torch_run("torch:mish"), "torch:softplus-tanh": _torch_run("torch:softplus-tanh"),
            "torch:mish-grad": _torch_run("torch:mish-grad"), "onnxruntime:Mish": _ort_mish,
            "jax:mish": _jax_run(False), "jax:mish-grad": _jax_run(True), "openvino:Mish": _ov_mish,
            "tensorflow:mish": _tf_run(False), "tensorflow:mish-xla": _tf_run(True)}


def select(registry: dict, ids) -> list:
    """The formulations and kernels named in `ids` (shell-style patterns allowed: 'torch:*', '*-grad'). When
    `ids` is empty: every formulation of mish, and every formulation read from a user's folder (a
    shipped one of another spec, e.g. the -grad ones, is selected by name). UserError for a name that
    matches nothing, or for a kernel named outright whose framework is not installed (a pattern skips
    such kernels)."""
    import fnmatch
    import re

    if not ids:
        return [registry[k] for k in sorted(registry)
                if registry[k].spec.key == "mish" or not registry[k].path.startswith("formulas/")]
    names = sorted(registry) + list(KERNELS)
    out: list = []
    for i in ids:
        if any(c in i for c in "*?["):
            hits = [n for n in names if fnmatch.fnmatchcase(n, i) and (n in registry or KERNELS[n].available())]
            if not hits:
                raise UserError(f"--formula {i!r} matches no formulation or kernel: run `mishaudit list`")
        elif i in registry or i in KERNELS:
            hits = [i]
        elif ":" in i:
            get(i)
            hits = []
        else:
            close = [k for k in sorted(registry) if re.sub("[^a-z0-9]", "", i.lower()) in re.sub("[^a-z0-9]", "", k)]
            hint = f" (did you mean {', '.join(close[:3])}?)" if close else ""
            raise UserError(f"unknown formula {i!r}{hint}: run `mishaudit list` for the registered ids")
        for n in hits:
            impl = registry[n] if n in registry else KERNELS[n]
            if is_kernel(impl):
                impl.require()
            if impl not in out:
                out.append(impl)
    return out
