"""mishaudit: audit the numerical accuracy of formulations of Mish, mish(x) = x * tanh(softplus(x)).

The package reads as the pipeline: lang (FPCore formulas, the registry) -> eval (the evaluator,
libm models, input sets) -> reference (the exact values) -> measure (errors, summaries,
approximation error) -> analysis (audits, sweeps, overflow events, attribution), graphs (exported models read as terms)
-> output
(tables, plots, reports) and gate (thresholds, verdicts); api.py and cli.py at the edge.

Python API (pandas DataFrames): compare, overflow, identify, tune, check, load_formulas, import_model (api.py).
"""

from mishaudit.errors import UserError
from mishaudit.version import __version__

__all__ = ["compare", "overflow", "identify", "tune", "check", "load_formulas", "import_model", "UserError",
           "__version__"]


def __getattr__(name: str):
    """The API functions, imported on first use (pandas is slow to import and the CLI rarely needs it)."""
    if name in ("compare", "overflow", "identify", "tune", "check", "load_formulas", "import_model"):
        from mishaudit import api

        return getattr(api, name)
    raise AttributeError(f"module 'mishaudit' has no attribute {name!r}")
