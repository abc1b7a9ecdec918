"""The formula files say what their sources compute, and coreml-2725 computes what coremltools PR #2725 does.

coreml-2725 is checked on every finite fp16 input against an evaluation that shares no code with
mishaudit: numpy float16 arithmetic for the exact operations (numpy computes float16 + and * in
float32 and rounds once; p = 24 >= 2 * 11 + 2, so that is the correctly rounded result), and exp, log
and tanh from mpmath at 80 bits, rounded to the nearest float16 by comparing exact neighbours.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from mishaudit.eval.evaluate import Policy, evaluate
from mishaudit.formats import FP16
from mishaudit.lang.registry import load_registry

REG = load_registry()
FP16_MAX = mpmath.mpf(65504)
FP16_OVERFLOW = mpmath.mpf(65520)  # max + half an ulp (2^4): from here on RN is inf


def rn16(v: mpmath.mpf) -> np.float16:
    """The float16 nearest to the (finite, exact enough) value v, ties to even, overflow to inf."""
    if abs(v) >= FP16_OVERFLOW:
        return np.float16(np.inf if v > 0 else -np.inf)
    guess = np.float16(float(v))  # within one float16 step of RN(v)
    with np.errstate(over="ignore"):  # nextafter of the largest value is inf: left out below
        up, down = np.nextafter(guess, np.float16(np.inf)), np.nextafter(guess, np.float16(-np.inf))
    cands = {guess, up, down}
    cands = [c for c in cands if np.isfinite(c)]

    def key(c):
        even = int(np.array(c).view(np.uint16)) & 1  # ties go to the even significand
        return (abs(mpmath.mpf(float(c)) - v), even)

    best = min(cands, key=key)
    if best == 0:  # sign of a zero result: the sign of v
        best = np.float16(-0.0) if v < 0 else np.float16(0.0)
    return best


def cr16(fn, a: np.float16, memo: dict) -> np.float16:
    """A correctly rounded elementary function of a float16 value (mpmath at 80 bits, then rn16)."""
    a = np.float16(a)
    key = (fn, a.tobytes())
    if key not in memo:
        if np.isnan(a):
            memo[key] = np.float16(np.nan)
        elif np.isinf(a):
            memo[key] = {"exp": np.float16(np.inf) if a > 0 else np.float16(0.0),
                         "log": np.float16(np.inf) if a > 0 else np.float16(np.nan),
                         "tanh": np.float16(1.0 if a > 0 else -1.0)}[fn]
        elif fn == "log" and a == 0:
            memo[key] = np.float16(-np.inf)
        else:
            with mpmath.workprec(80):
                v = getattr(mpmath, fn)(mpmath.mpf(float(a)))
                memo[key] = rn16(v)
    return memo[key]


def coreml_2725_by_hand(x: np.float16, memo: dict) -> np.float16:
    """PR #2725 op for op: abs -> mul -1 -> exp -> add 1 -> log -> maximum(x, 0) -> add -> tanh -> mul."""
    one, zero = np.float16(1), np.float16(0)
    t = np.float16(np.float16(-1) * np.abs(x))
    e = cr16("exp", t, memo)
    s = np.float16(e + one)
    lg = cr16("log", s, memo)
    m = np.float16(x) if x > zero else zero  # maximum(x, 0); x is never NaN here
    sp = np.float16(m + lg)
    return np.float16(x * cr16("tanh", sp, memo))


def every_finite_fp16() -> np.ndarray:
    v = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    return v[np.isfinite(v)]


def body_text(fid: str) -> str:
    """The FPCore body of a shipped file (after its properties), comments dropped."""
    lines = [ln.split(";", 1)[0] for ln in REG[fid].text.splitlines()]
    return "\n".join(ln for ln in lines if ln.strip() and not ln.strip().startswith((":", "(FPCore")))


def test_coreml_2725_is_registered_with_its_source():
    f = REG["coreml-2725"]
    assert f.id == "coreml-2725" and f.spec.key == "mish"
    assert "2725" in f.source and "coremltools-pr-2725" in str(f.core.prop(":cite"))
    # it takes log of 1 + exp(-|x|), not log1p (MIL has no log1p), and clamps nothing
    assert "(log (+ (exp (* -1 (fabs x))) 1))" in body_text("coreml-2725")
    assert "log1p" not in body_text("coreml-2725") and not f.params


def test_coreml_2725_fp16_equals_an_independent_evaluation_on_every_input():
    xs = every_finite_fp16()
    assert xs.size == 63488
    got = evaluate(REG["coreml-2725"], xs.astype(np.float64), Policy(FP16)).y
    memo: dict = {}
    want = np.array([coreml_2725_by_hand(x, memo) for x in xs], dtype=np.float16)
    got16 = got.astype(np.float16)
    same = (got16.view(np.uint16) == want.view(np.uint16)) | (np.isnan(got16) & np.isnan(want))
    bad = np.flatnonzero(~same)
    assert bad.size == 0, [(float(xs[i]), float(got16[i]), float(want[i])) for i in bad[:5]]
    # what the transcription shows: below ln(2^-11) = -7.62, exp(x) is under half an ulp of 1, 1 + exp(x)
    # rounds to 1 in fp16, the log is 0 and the output -0 where mish(x) is still a normal number
    assert want[xs == np.float16(-10.6875)][0] == 0 and want[xs == np.float16(-7.5)][0] != 0


@pytest.mark.parametrize("fid,phrase", [
    ("exp-rational-clamped", "mb.clip(x, -100, inf)"),
    ("exp-rational-clamped", "unmerged in coremltools 9.0"),
    ("exp-rational", "unmerged in coremltools 9.0"),
    ("tf-softplus", "Keras 3"),
    ("stable-softplus", "log1p"),
])
def test_sources_say_what_the_code_they_cite_does(fid, phrase):
    f = REG[fid]
    assert phrase in f.source + " " + f.used_by + " " + f.text, (fid, phrase)


def test_no_file_credits_what_it_does_not_compute():
    # PR #2725 computes log(1 + exp(-|x|)) (no log1p): stable-softplus (log1p) must not claim it as a user
    assert "2725" not in REG["stable-softplus"].core.prop(":cite")
    assert "Core ML (PR #2725" not in REG["stable-softplus"].used_by
    # Keras 3 mish goes through TensorFlow's softplus kernel; TF Addons is not what tf-softplus transcribes
    assert "Addons" not in REG["tf-softplus"].source + REG["tf-softplus"].used_by
    # PR #2618 clips with mb.clip, not mb.maximum
    assert "mb.maximum" not in REG["exp-rational-clamped"].source
