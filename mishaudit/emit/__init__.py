"""Source code of a formulation: C99, CUDA, PyTorch or numpy, performing exactly the evaluator's operations.

`emit(formula, lang, fmt)` lowers the formula's FPCore tree (lower.py: the walk of eval/evaluate.py,
one statement per operation, each rounded once to its format, constants rounded where they stand) and
prints it (c.py: C and CUDA; python.py: numpy and torch). What the output equals:

- c: the evaluator under `--libm glibc`, bit for bit (tests/test_emit.py compiles it with gcc and
  compares every finite fp16 and bf16 input, an fp32 and an fp64 sample);
- numpy: the evaluator under `--libm numpy`; torch: under `--libm torch` (both run in the tests);
- cuda: the same statements with CUDA's libm (CUDA's expf is not glibc's), checked for structure (and
  compiled where nvcc is installed), never run by the tests.

Refused with a one-line UserError: framework kernels, the runtime primitives softplus and mish (one
correctly rounded operation each, which no library function computes), an unknown `:precision`.
Supported: every other operation of lang/operators.py, let/let*, if, comparisons and and/or/not, named
constants and parameters (at their values for the format), `(! :precision F e)` in any of the four
formats. Only the formula's id (as an identifier) and its :name (in a comment, escaped) are taken
from the file; every number is written as an exact literal.
"""

from __future__ import annotations

from mishaudit.errors import UserError

LANGS = ("c", "cuda", "torch", "numpy")


def emit(formula, lang: str, fmt) -> str:
    """The source text of `formula` (a registry Formula) in `lang` (one of LANGS) for format `fmt`."""
    from mishaudit.emit import lower

    if lang not in LANGS:
        raise UserError(f"unknown language {lang!r} for emit: give one of {', '.join(LANGS)}")
    low = lower.lower(formula, fmt)
    if lang in ("c", "cuda"):
        from mishaudit.emit import c

        return c.render(formula, fmt, low, cuda=lang == "cuda")
    from mishaudit.emit import python

    return python.render(formula, fmt, low, torch=lang == "torch")
