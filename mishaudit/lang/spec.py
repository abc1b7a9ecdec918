"""What a formulation approximates: its spec, a real function of one argument (FPBench's `:spec`).

A formula file may state `:spec EXPR`, an FPCore expression in its argument read in real
arithmetic (no rounding, constants exact); without one the spec is mish. The reference is
RN(spec(x)) (reference/table.py), so any unary function a user describes can be audited.
Two specs are built in, recognised by their text (argument renamed to x), with fast proven
references for the fp32 sweep and known values at the special inputs:

    mish   (* x (tanh (log1p (exp x))))
    mish'  (let* ([t (tanh (log1p (exp x)))])
             (+ t (* (* x (/ 1 (+ 1 (exp (- x))))) (- 1 (* t t)))))
           i.e. mish'(x) = tanh(sp) + x sigmoid(x) (1 - tanh(sp)^2), sp = log1p(exp(x))

(the mish' text without the let, t written out twice, is recognised too). Any other spec is
evaluated by MPFR interval enclosures in Ziv's loop (reference/specref.py); its value at the
special inputs is checked only for NaN (NaN in, NaN out), as limits at +-inf are not derived
from an expression.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from mishaudit.formats import round_to
from mishaudit.lang import fpcore as fc

MISH_TEXT = "(* x (tanh (log1p (exp x))))"
MISH_GRAD_TEXT = ("(let* ([t (tanh (log1p (exp x)))]) "
                  "(+ t (* (* x (/ 1 (+ 1 (exp (- x))))) (- 1 (* t t)))))")
_T = "(tanh (log1p (exp x)))"
MISH_GRAD_FLAT = f"(+ {_T} (* (* x (/ 1 (+ 1 (exp (- x))))) (- 1 (* {_T} {_T}))))"


@dataclass(frozen=True)
class Spec:
    """A unary real function given as an FPCore expression in `arg`."""

    key: str  # "mish", "mish'" or "spec-<12 hex digits>": identifies it in caches and thresholds
    arg: str
    body: fc.Expr
    text: str  # the expression's FPCore text

    @property
    def name(self) -> str:
        """What tables print: mish, mish', or the expression itself."""
        return self.key if self.builtin else self.text

    @property
    def op(self) -> str | None:
        """The operation when the spec is one elementary operation of its argument, (exp x) say."""
        from mishaudit.lang.operators import ELEMENTARY

        b = self.body
        if isinstance(b, fc.Op) and b.op in ELEMENTARY and len(b.args) == 1 and b.args[0] == fc.Var(self.arg):
            return b.op
        return None

    @property
    def builtin(self) -> bool:
        return self.key in ("mish", "mish'")

    def constant_values(self, storage) -> dict:
        """(For the enclosure walker, which reads a formula's constants: a spec has none.)"""
        return {}

    def special(self, x: float, storage) -> float | None:
        """The expected output at a special input (+-0, +-inf, NaN), or None where it is not checked."""
        if math.isnan(x):
            return math.nan
        if self.key == "mish":  # mish(+inf) = +inf, mish(-inf) = -0 (the limit from below), mish(+-0) = +-0
            return math.inf if x == math.inf else -0.0 if x == -math.inf else x
        if self.key == "mish'":  # mish'(+inf) = 1, mish'(-inf) = -0 (x e^x -> 0 from below), mish'(0) = 3/5
            return 1.0 if x == math.inf else -0.0 if x == -math.inf else float(round_to(np.array([0.6]), storage)[0])
        if self.op is not None:  # one operation: its IEEE 754 values at the specials (lang/operators.py)
            from mishaudit.lang.operators import OPERATORS

            return OPERATORS[self.op].special(x)
        return None


def _parse(text: str) -> fc.Expr:
    return fc.parse(f"(FPCore (x) {text})", "<spec>").body


def _make(text: str, key: str) -> Spec:
    return Spec(key, "x", _parse(text), fc.to_text(_parse(text)))


MISH = _make(MISH_TEXT, "mish")
MISH_GRAD = _make(MISH_GRAD_TEXT, "mish'")
_KNOWN = {fc.to_text(_parse(t)): s for t, s in ((MISH_TEXT, MISH), (MISH_GRAD_TEXT, MISH_GRAD),
                                               (MISH_GRAD_FLAT, MISH_GRAD))}


def _names(e) -> set:
    """Every name in e: variables and let binders."""
    out = {e.name} if isinstance(e, fc.Var) else set()
    if isinstance(e, fc.Let):
        out |= {n for n, _ in e.bindings}
    for c in fc.children(e):
        out |= _names(c)
    return out


def _rename(e, old: str, new: str):
    """e with every occurrence of the name `old` (variables and binders) written `new`."""
    if isinstance(e, fc.Var):
        return fc.Var(new, pos=e.pos) if e.name == old else e
    if isinstance(e, fc.Op):
        return fc.Op(e.op, tuple(_rename(a, old, new) for a in e.args), pos=e.pos)
    if isinstance(e, fc.If):
        return fc.If(*(_rename(a, old, new) for a in (e.cond, e.then, e.other)), pos=e.pos)
    if isinstance(e, fc.Let):
        return fc.Let(tuple((new if n == old else n, _rename(v, old, new)) for n, v in e.bindings),
                      _rename(e.body, old, new), e.sequential, pos=e.pos)
    if isinstance(e, fc.Annot):
        return fc.Annot(e.props, _rename(e.body, old, new), pos=e.pos)
    return e


def spec_of(arg: str, body: fc.Expr | None) -> Spec:
    """The Spec of a formula with argument `arg` and `:spec` expression `body` (None: mish)."""
    if body is None:
        return MISH
    canon = body if arg == "x" else (_rename(body, arg, "x") if "x" not in _names(body) else None)
    if canon is not None and fc.to_text(canon) in _KNOWN:
        return _KNOWN[fc.to_text(canon)]
    text = fc.to_text(body)
    key = "spec-" + hashlib.sha256(f"{arg}|{text}".encode()).hexdigest()[:12]
    return Spec(key, arg, body, text)
