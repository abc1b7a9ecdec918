"""Input sets: every binade of both signs, neighbourhoods of thresholds and exp edges, domains."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mishaudit.errors import UserError
from mishaudit.eval.inputs import (
    Domain,
    formula_thresholds,
    input_set,
    parse_domain,
    sample,
)
from mishaudit.formats import FP32, FP64, ordinal
from mishaudit.lang.registry import load_registry


@pytest.mark.parametrize("fmt", [FP32, FP64], ids=lambda f: f.name)
def test_sample_covers_every_binade_of_both_signs(fmt):
    s = sample(fmt, 1 << 14, 0)
    assert s.strategy == "sampled" and np.isfinite(s.x).all()
    nz = s.x[s.x != 0]
    e = np.frexp(np.abs(nz))[1] - 1  # floor(log2|x|)
    for sign in (1, -1):
        got = set(np.maximum(e[np.sign(nz) == sign], fmt.emin - 1).tolist())
        assert got == set(range(fmt.emin - 1, fmt.emax + 1))  # emin-1 stands for the subnormals
    assert -fmt.max in s.x and fmt.max in s.x


def test_sample_holds_neighbourhoods_of_thresholds_and_exp_edges():
    reg = load_registry()
    f = reg["softplus-threshold"]
    s = input_set(FP32, Domain(), 1 << 12, 1, f)
    o = set(ordinal(s.x, FP32).tolist())
    o20 = int(ordinal(np.array([20.0]), FP32)[0])
    assert all(o20 + k in o for k in range(-16, 17))
    # exp overflows in fp32 just above ln(FLT_MAX) = 88.7228...: its neighbourhood is in the set
    edge = float(np.float32(math.log(FP32.max)))
    oe = int(ordinal(np.array([edge]), FP32)[0])
    assert all(oe + k in o for k in range(-16, 17))
    assert formula_thresholds(f, FP32) == [20.0]


def test_a_formulations_sample_holds_its_own_thresholds_only():
    """The sample of one formulation does not depend on which others run (DESIGN.md): it holds
    the neighbours of its own thresholds, never those of another formulation."""
    reg = load_registry()
    a = input_set(FP32, Domain(), 1 << 12, 1, reg["softplus-threshold"]).x
    b = input_set(FP32, Domain(), 1 << 12, 1, reg["openvino-gpu"]).x  # threshold 9.9
    o = set(ordinal(a, FP32).tolist())
    o99 = int(ordinal(np.array([float(np.float32(9.9))]), FP32)[0])
    assert not all(o99 + k in o for k in range(-16, 17))  # 9.9's neighbourhood is openvino's, not ours
    assert all(o99 + k in set(ordinal(b, FP32).tolist()) for k in range(-16, 17))
    again = input_set(FP32, Domain(), 1 << 12, 1, reg["softplus-threshold"]).x
    assert np.array_equal(a, again)


def test_sample_is_deterministic_and_seeded():
    a, b, c = sample(FP32, 5000, 3), sample(FP32, 5000, 3), sample(FP32, 5000, 4)
    assert np.array_equal(a.x, b.x) and not np.array_equal(a.x, c.x)


def test_small_domain_is_enumerated():
    s = sample(FP32, 1 << 16, 0, Domain(1.0, 1.0 + 1000 * 2.0**-23))
    assert s.strategy == "exhaustive" and len(s.x) == 1001


@settings(max_examples=200, deadline=None)
@given(lo=st.floats(-1e6, 1e6), hi=st.floats(-1e6, 1e6))
def test_parse_domain_accepts_ordered_and_rejects_inverted(lo, hi):
    text = f"{lo!r}:{hi!r}"
    if lo > hi:
        with pytest.raises(UserError, match="greater than HI"):
            parse_domain(text)
    else:
        d = parse_domain(text)
        assert (d.lo, d.hi) == (lo, hi)


def test_an_inputs_file_literal_beyond_the_reader_limits_is_one_line_naming_the_line(tmp_path):
    """1e-999999999999 would take the exact reader forever (10^12 digits): refused at once, with FILE:line."""
    import time

    from click.testing import CliRunner

    from mishaudit.cli import main

    f = tmp_path / "x.txt"
    f.write_text("1.0\n2 1e-999999999999\n")
    t0 = time.monotonic()
    r = CliRunner().invoke(main, ["compare", "--inputs", str(f), "--formula", "softplus-tanh"])
    assert time.monotonic() - t0 < 20
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{f}:2: 1e-999999999999 is beyond the reader's limits" in lines[0]


_TOKENS = ["1", "-2.5", "1e-999999999999", "1e400", "0x1p-30", "3/4", "nan", "inf", "-inf", "1_000", "abc", "#", ",",
           "\n", " ", "\t", "1" * 5000, "+0", "-0", "9" * 30 + "e-40", "\xff", "", "1/0", "0x", ".", "e5"]


@settings(max_examples=40, deadline=None)
@given(body=st.one_of(st.text(max_size=200), st.lists(st.sampled_from(_TOKENS), max_size=30).map(" ".join),
                      st.binary(max_size=100).map(lambda b: b.decode("latin-1"))))
def test_any_inputs_file_is_audited_or_refused_in_one_line(tmp_path_factory, body):
    """Property: whatever an --inputs text file holds, compare either audits it (exit 0) or gives one line,
    exit 2, within seconds (a hang guard, not a speed figure); never a traceback."""
    import time

    from click.testing import CliRunner

    from mishaudit.cli import main

    f = tmp_path_factory.mktemp("in") / "x.txt"
    f.write_bytes(body.encode("utf-8", "surrogatepass") if "\xff" not in body else body.encode("latin-1", "replace"))
    t0 = time.monotonic()
    r = CliRunner().invoke(main, ["compare", "--inputs", str(f), "--formula", "softplus-tanh", "--format", "json"])
    assert time.monotonic() - t0 < 30
    assert r.exit_code in (0, 2), (body, r.exit_code, r.stderr, r.exception)
    if r.exit_code == 2:
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mishaudit: error: "), (body, r.stderr)
    assert "Traceback" not in r.stderr
