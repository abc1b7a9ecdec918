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

Frameworks are optional (extras mishaudit[torch], [onnx], [jax]); a kernel whose framework is
missing is listed as unavailable with the command that installs it. torch kernels take a device
(`cuda` where CUDA is present; untested by this project's CI, which has no GPU).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field

import numpy as np

from mishaudit.errors import UserError
from mishaudit.formats import BF16, FP32, Format
from mishaudit.lang.spec import MISH, MISH_GRAD, Spec

EXTRAS = {"torch": "torch", "onnxruntime": "onnx", "jax": "jax"}
MODULES = {"torch": "torch", "onnxruntime": "onnxruntime", "jax": "jax"}


@dataclass(frozen=True)
class Kernel:
    id: str
    framework: str  # torch, onnxruntime, jax
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
)}


@functools.lru_cache(maxsize=None)
def framework_version(framework: str) -> str | None:
    """The installed framework's version, None when it cannot be imported."""
    import importlib

    try:
        return importlib.import_module(MODULES[framework]).__version__
    except Exception:  # not installed, or broken
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


_RUNNERS = {"torch:mish": _torch_run("torch:mish"), "torch:softplus-tanh": _torch_run("torch:softplus-tanh"),
            "torch:mish-grad": _torch_run("torch:mish-grad"), "onnxruntime:Mish": _ort_mish,
            "jax:mish": _jax_run(False), "jax:mish-grad": _jax_run(True)}


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
