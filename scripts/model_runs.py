"""Export and convert Mish the ways users do, import each model with `mishaudit import`, and keep what it
wrote: reports/models/*.fpcore (the imported formulations) and reports/model-runs.json (what the import said).
scripts/readme.py audits the imported files (every fp16 input, the ranges of coremltools PR #2618's test)
for the README's "What your model runs".

    .venv/bin/python scripts/model_runs.py        (about a minute: torch, onnx, onnxscript, coremltools)

The models, made here from code (nothing downloaded):
- nn.Mish exported by torch.onnx.export both ways, in float32 and float16: the default exporter
  (dynamo=True: one Mish node) and the TorchScript exporter (dynamo=False, opset 17: Softplus, Tanh, Mul);
- the model of coremltools PR #2618's test (Conv2d(3, 8, 3), Mish, Flatten, Linear; torch.manual_seed(0)
  weights), traced and converted by coremltools 9.0 to an ML program under compute_precision FLOAT16
  (iOS15: casts around fp16 operations; iOS16: fp16 throughout) and FLOAT32;
- the operations PR #2618's final commit emits for Mish (clip(x, -100, inf), exp, add 2, mul,
  real_div(2, .), add 1, real_div), built with coremltools' MIL builder and converted the same ways.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "reports" / "models"
JSON = ROOT / "reports" / "model-runs.json"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def onnx_models(d: Path) -> list[tuple[Path, str]]:
    import torch

    out = []
    for dtype, tag in ((torch.float32, "fp32"), (torch.float16, "fp16")):
        m = torch.nn.Mish().eval().to(dtype)
        x = torch.linspace(-5, 5, 16, dtype=dtype).reshape(1, 16)
        p = d / f"onnx-dynamo-{tag}.onnx"
        torch.onnx.export(m, (x,), str(p), dynamo=True, verbose=False)
        out.append((p, f"torch.onnx.export(nn.Mish().to({tag}), dynamo=True) (torch {torch.__version__})"))
        p = d / f"onnx-torchscript-{tag}.onnx"
        torch.onnx.export(m, (x,), str(p), dynamo=False, opset_version=17)
        out.append((p, f"torch.onnx.export(nn.Mish().to({tag}), dynamo=False, opset_version=17)"))
    return out


def pr_test_model():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Mish(), torch.nn.Flatten(),
                               torch.nn.Linear(8 * 6 * 6, 4)).eval()


def pr_sequence_program():
    """PR #2618's final commit's MIL operations for Mish, on a (1, 16) fp32 input."""
    import numpy as np
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 16))])
    def prog(x):
        xc = mb.clip(x=x, alpha=np.float32(-100.0), beta=np.float32(np.inf))
        e = mb.exp(x=xc)
        n = mb.mul(x=e, y=mb.add(x=e, y=np.float32(2.0)))
        return mb.real_div(x=xc, y=mb.add(x=mb.real_div(x=np.float32(2.0), y=n), y=np.float32(1.0)))

    return prog


def coreml_models(d: Path) -> list[tuple[Path, str]]:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import coremltools as ct
    out = []
    x = torch.linspace(-0.9, 0.9, 3 * 8 * 8).reshape(1, 3, 8, 8)
    traced = torch.jit.trace(pr_test_model(), x)
    runs = (("fp16-ios15", ct.precision.FLOAT16, ct.target.iOS15), ("fp16-ios16", ct.precision.FLOAT16, ct.target.iOS16),
            ("fp32-ios15", ct.precision.FLOAT32, ct.target.iOS15))
    for tag, prec, target in runs:
        m = ct.convert(traced, inputs=[ct.TensorType(name="x", shape=x.shape)], convert_to="mlprogram",
                       compute_precision=prec, minimum_deployment_target=target)
        p = d / f"coreml-{tag}.mlpackage"
        m.save(str(p))
        out.append((p, f"coremltools {ct.__version__} convert of the PR #2618 test model, compute_precision="
                       f"{prec.name}, minimum_deployment_target={target.name}"))
    for tag, prec, target in runs[0:1] + runs[2:]:
        m = ct.convert(pr_sequence_program(), convert_to="mlprogram", compute_precision=prec,
                       minimum_deployment_target=target)
        p = d / f"coreml-pr2618-{tag}.mlpackage"
        m.save(str(p))
        out.append((p, f"PR #2618's MIL operations for Mish (mb.program), coremltools {ct.__version__} convert, "
                       f"compute_precision={prec.name}, minimum_deployment_target={target.name}"))
    return out


def main() -> None:
    import mishaudit

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        models = onnx_models(d) + coreml_models(d)
        staging = d / "out"
        for path, how in models:
            df = mishaudit.import_model(str(path), str(staging))
            for r in df.to_dict("records"):
                rows.append({"model": path.name, "how": how, "kind": df.attrs["kind"], "version": df.attrs["version"],
                             "semantics": df.attrs["semantics"], **{k: r[k] for k in r if k not in ("text", "file")}})
        OUT.mkdir(parents=True, exist_ok=True)
        for old in OUT.glob("*.fpcore"):
            old.unlink()
        for f in sorted(staging.glob("*.fpcore")):
            (OUT / f.name).write_text(f.read_text())
    JSON.write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    print(f"wrote {len(rows)} imports to {OUT.relative_to(ROOT)} and {JSON.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
