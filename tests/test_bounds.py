"""Every input is bounded before work starts (issue 21): the readers either accept an input or refuse it
with a one-line UserError, quickly, whatever the text: FPCore files (lang/fpcore.py, lang/registry.py),
--set values, --domain and --range.

Each check runs in a forked child killed after TIME_LIMIT seconds, so a reader that hangs (a literal
like 1e999999999999 once built 10**999999999999) fails the test instead of stalling it.
"""

import os
import pickle
import select
import signal
import subprocess
import sys
import time
from fractions import Fraction

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mishaudit.analysis.tune import parse_range
from mishaudit.cli import main
from mishaudit.errors import UserError
from mishaudit.eval.inputs import parse_domain
from mishaudit.lang import fpcore as fc
from mishaudit.lang.registry import load_registry, load_text, parse_settings

TIME_LIMIT = 2.0  # seconds per example
NAMES_LIMIT = 20.0  # seconds for the 9000 names of test_thousands_of_names_read_in_linear_time
PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                         HealthCheck.data_too_large])


def _outcome(fn, arg):
    """('ok', '') when fn(arg) returns, ('user', message) for a UserError, ('bug', what) for anything else."""
    try:
        fn(arg)
        return "ok", ""
    except UserError as exc:
        return "user", str(exc)
    except BaseException as exc:  # noqa: BLE001 - any other exception is the bug being looked for
        return "bug", f"{type(exc).__name__}: {str(exc)[:300]}"


def _bounded(fn, arg, limit: float = TIME_LIMIT):
    """_outcome(fn, arg) computed in a forked child within `limit` seconds, else ('timeout', ...)."""
    r, w = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: compute, send, leave without running any of pytest's exit handlers
        code = 0
        try:
            os.close(r)
            data = pickle.dumps(_outcome(fn, arg))
            while data:
                data = data[os.write(w, data):]
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    try:
        while True:
            left = limit - (time.monotonic() - start)
            if left <= 0 or not select.select([r], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                return "timeout", f"still running after {limit} s"
            chunk = os.read(r, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    return pickle.loads(b"".join(chunks)) if chunks else ("bug", "the child died")


def _one_line(msg: str) -> bool:
    return bool(msg.strip()) and len(msg.splitlines()) == 1


def assert_bounded(fn, arg):
    """fn(arg) returns or raises a UserError of one line, within TIME_LIMIT; returns (kind, message)."""
    kind, msg = _bounded(fn, arg)
    assert kind in ("ok", "user"), f"{kind}: {msg} (input {fc.abbreviate(repr(arg))})"
    if kind == "user":
        assert _one_line(msg), f"not one line: {msg!r}"
    return kind, msg


def _load(text: str):
    return load_text(text, "f.fpcore", "f")


def _load_bytes(data: bytes):
    """load_registry on a folder holding one file with these bytes (what --formulas DIR reads)."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "f.fpcore"), "wb") as f:
            f.write(data)
        return load_registry((d,), builtin=False)


# ---------------------------------------------------------------- adversarial FPCore text

VOCAB = ["(", ")", "[", "]", "(", ")", "FPCore", "f", "x", "y", "let", "let*", "if", "!", "+", "-", "*", "/", "exp",
         "log1p", "tanh", "fma", "pow", "<", "and", "not", ":name", ":spec", ":pre", ":precision", "binary32",
         ":mishaudit-params", ":mishaudit-constants", "default", '"s"', '"', ";", "\n", "1", "-0.5", "1/3", "0x1p-3",
         "1e999999999999", "0x1p999999999", "INFINITY", "NAN", "TRUE", "E", "1/0", ".", "#", "\\"]

exponents = st.one_of(st.integers(-(10**15), 10**15), st.integers(-20_000, 20_000)).map(str) | \
    st.integers(1, 3000).map(lambda n: "9" * n)
mantissas = st.sampled_from(["1", "-1", "1.5", ".5", "5.", "0", "123456789", "+2"])
decimal_huge = st.builds(lambda m, e, c: f"{m}{c}{e}", mantissas, exponents, st.sampled_from("eE"))
hex_huge = st.builds(lambda m, e: f"{m}p{e}", st.sampled_from(["0x1", "-0x1.8", "0x.8", "0xff"]), exponents)
long_digits = st.integers(1, 100_000).flatmap(lambda n: st.sampled_from([
    "7" * n, "0." + "3" * n, "1" * n + "e-5", "1/" + "3" * n, "3" * n + "/7", "0x" + "f" * n, "0" * n + "1"]))
literals = st.one_of(decimal_huge, hex_huge, long_digits)


def _in_formula(lit: str, where: int) -> str:
    return [f"(FPCore f (x) (+ x {lit}))",
            f"(FPCore f (x) :mishaudit-params ([t {lit}]) (+ x t))",
            f"(FPCore f (x) :mishaudit-constants ([c (binary16 {lit}) (default 1)]) (* x c))",
            f"(FPCore f (x) :pre (< x {lit}) x)",
            f"(FPCore f (x) :spec (* x {lit}) x)",
            f"(FPCore f (x) :note ({lit}) x)"][where]


def _deep(n: int, shape: int) -> str:
    return ["(" * n,
            "(FPCore f (x) " + "(- " * n + "x" + ")" * n + ")",
            "(FPCore f (x) " + "(let ([a " * n + "x" + "]) a)" * n + ")",
            "(FPCore f (x) :spec " + "(exp " * n + "x" + ")" * n + " x)",
            "(FPCore f (x) :note " + "(" * n + ")" * n + " x)",
            "(FPCore f (x) " + "(if (< x 0) x " * n + "x" + ")" * n + ")",
            "[(" * n + ")]" * n][shape]


def _many_names(k: int, used: bool) -> str:
    """k parameters, each compared with x (once a check per name walked the whole body: k^2)."""
    names = [f"p{i}" for i in range(k)]
    return ("(FPCore f (x) :mishaudit-params (" + " ".join(f"[{n} 1]" for n in names) + ") (if (and "
            + " ".join(f"(< x {n})" for n in names[: k if used else k - 1]) + " (< x 1)) x 1))")


deep = st.builds(_deep, st.integers(1, 5000), st.integers(0, 6))
many_names = st.builds(_many_names, st.integers(1, 9000), st.booleans())
huge_literals = st.builds(_in_formula, literals, st.integers(0, 5))
unbalanced = st.lists(st.sampled_from(["(", ")", "[", "]", "x", "(FPCore f (x)", "(+ x", "1"]), max_size=60).map(" ".join)
unterminated = st.builds(lambda pre, s: pre + '"' + s, st.sampled_from(["", "(FPCore f (x) :name ", '(FPCore "a" "']),
                         st.text(max_size=200))
token_soup = st.lists(st.sampled_from(VOCAB), max_size=80).map(" ".join)
near_valid = st.builds(lambda a, b: f"(FPCore f (x) {a} {b})", token_soup, token_soup)
adversarial = st.one_of(deep, huge_literals, unbalanced, unterminated, token_soup, near_valid, many_names)


@PROPS
@given(text=st.text(max_size=300))
def test_random_text_parses_or_fails_in_one_line(text):
    assert_bounded(fc.parse, text)
    assert_bounded(_load, text)


@settings(PROPS, max_examples=150)
@given(text=adversarial)
def test_adversarial_text_parses_or_fails_in_one_line(text):
    assert_bounded(fc.parse, text)
    assert_bounded(_load, text)


@PROPS
@given(text=st.one_of(deep, huge_literals))
def test_deep_and_huge_literals_are_refused_or_read(text):
    """The two bounds issue 21 names: nesting beyond MAX_DEPTH and literals beyond the number limits."""
    kind, msg = assert_bounded(_load, text)
    if kind == "user" and "beyond the reader's limits" in msg:
        assert msg.startswith("f.fpcore:") and ("write " in msg or "round it " in msg)  # located, with the fix


@PROPS
@given(data=st.one_of(st.binary(max_size=200), st.text(max_size=100).map(lambda s: s.encode("utf-8") + b"\xff"),
                      adversarial.map(lambda s: s.encode("utf-8"))))
def test_formula_files_parse_or_fail_in_one_line(data):
    """The bytes of a --formulas file, through load_registry (what the CLI reads)."""
    kind, msg = assert_bounded(_load_bytes, data)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        assert kind == "user" and "is not UTF-8 text" in msg and f"byte {exc.start} " in msg and "save it as UTF-8" in msg


# ---------------------------------------------------------------- the limits, exactly

def _depth_text(levels: int) -> str:
    """An FPCore form whose brackets nest `levels` deep, the form itself counted."""
    n = levels - 1
    return "(FPCore f (x) " + "(- " * n + "x" + ")" * n + ")"


def test_depth_limit_is_exact_and_located():
    assert _load(_depth_text(fc.MAX_DEPTH)).id == "f"
    with pytest.raises(UserError, match=rf"^f\.fpcore:1:{14 + 3 * (fc.MAX_DEPTH - 1) + 1}: brackets nested deeper "
                                        rf"than {fc.MAX_DEPTH} levels: flatten the expression"):
        _load(_depth_text(fc.MAX_DEPTH + 1))


@pytest.mark.parametrize("ok, bad", [
    ("9" * fc.MAX_DIGITS, "9" * (fc.MAX_DIGITS + 1)),
    ("0.000" + "9" * fc.MAX_DIGITS, "0." + "9" * (fc.MAX_DIGITS + 1)),  # leading zeros are not significant
    ("1" * fc.MAX_DIGITS + "/" + "3" * fc.MAX_DIGITS, "1/" + "3" * (fc.MAX_DIGITS + 1)),
    ("0x" + "f" * fc.MAX_DIGITS, "0x" + "f" * (fc.MAX_DIGITS + 1)),
    (f"9.99e{fc.MAX_EXP10}", f"1e{fc.MAX_EXP10 + 1}"),
    (f"-1e-{fc.MAX_EXP10}", f"-9.9e-{fc.MAX_EXP10 + 1}"),
    (f"0.01e{fc.MAX_EXP10 + 2}", f"10e{fc.MAX_EXP10}"),  # the magnitude counts, not the exponent written
    (f"1e-000{fc.MAX_EXP10}", "1e999999999999"),
    ("0e999999999999", "1e-" + "9" * 5000),  # zero with any exponent is zero
    (f"0x1.fp{fc.MAX_EXP2}", f"0x1p{fc.MAX_EXP2 + 1}"),
    (f"0x.8p-{fc.MAX_EXP2 - 1}", f"0x.8p-{fc.MAX_EXP2}"),
    (f"0x1p-{fc.MAX_EXP2}", "-0x1p-" + "9" * 5000),
])
def test_number_limits_are_exact(ok, bad):
    assert _bounded(lambda t: isinstance(fc.parse_number(t), Fraction) or 1 / 0, ok) == ("ok", "")
    kind, msg = _bounded(fc.parse_number, bad)
    assert kind == "user" and "beyond the reader's limits" in msg, (kind, msg)
    kind, msg = _bounded(fc.parse, f"(FPCore (x)\n  (+ x {bad}))")
    assert kind == "user" and msg.startswith("<string>:2:8: number ") and "is beyond the reader's limits (" in msg


def test_number_messages():
    def msg(text):
        kind, out = _bounded(_load, f"(FPCore f (x) (+ x {text}))")
        assert kind == "user", (kind, out)
        return out

    assert msg("1e999999999999") == ("f.fpcore:1:20: number 1e999999999999 is beyond the reader's limits (magnitude "
                                     "1e-10000 <= |x| < 1e10001): write INFINITY or 0, or a number in that range")
    assert msg("0x1p-50000") == ("f.fpcore:1:20: number 0x1p-50000 is beyond the reader's limits (magnitude "
                                 "0x1p-40000 <= |x| < 0x1p40001): write INFINITY or 0, or a number in that range")
    assert msg("1" * 100_000) == ("f.fpcore:1:20: number 11111111111111111111...11111111111111111111 (100000 "
                                  "characters) is beyond the reader's limits (at most 4000 significant digits, not "
                                  "100000): round it to at most 4000 significant digits (17 pin down a binary64 value)")
    assert msg("1/" + "3" * 4001).endswith("(at most 4000 significant digits in each of p and q of p/q, not 4001): "
                                           "round it to at most 4000 significant digits (17 pin down a binary64 value)")


def test_thousands_of_names_read_in_linear_time():
    """A file may declare thousands of parameters (once each name's check walked the whole body).
    The limit is NAMES_LIMIT, not TIME_LIMIT: a linear read takes about 0.6 s here; the quadratic one
    walked the 27,000-node body once per name (2.4e8 node visits; one walk takes 0.01-0.1 s, so 1.5-15
    min). 20 s tells them apart with room for a machine under full load (this test once ran past 2 s
    beside a busy suite)."""
    assert _bounded(_load, _many_names(9000, True), NAMES_LIMIT) == ("ok", "")
    kind, msg = _bounded(_load, _many_names(9000, False), NAMES_LIMIT)
    assert kind == "user" and msg == "f.fpcore: 'p8999' is declared but the body never uses it: use it or remove it"


@settings(max_examples=200, deadline=None)
@given(st.builds(lambda s, i, f, e: f"{s}{i}{f}{e}", st.sampled_from(["", "+", "-"]),
                 st.text("0123456789", min_size=1, max_size=30), st.sampled_from(["", ".", ".25", ".0001"]),
                 st.sampled_from(["", "e0", "e-7", "E+12", "e-300", "e400"])))
def test_decimal_values_are_unchanged(s):
    """Inside the limits the exact value is Fraction's own reading of the decimal."""
    assert fc.parse_number(s) == Fraction(s)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(literals)
def test_every_value_read_prints_back_to_itself(s):
    """The printer writes each value the reader accepts as text the reader reads back (the limits are on
    the value: its significant digits and its order of magnitude, not on the way it is written)."""
    def round_trip(s):
        v = fc.parse_number(s)
        if v is not None:
            text = fc.format_number(v)
            assert fc.parse_number(text) == v and len(text) <= fc.MAX_DIGITS + 12, text

    kind, msg = _bounded(round_trip, s)
    assert kind == "ok" or (kind == "user" and "beyond the reader's limits" in msg), (kind, msg)


def test_beyond_binary64_is_still_exact():
    assert fc.parse_number("1e400") == 10**400
    assert fc.parse_real("1e400") == float("inf") and fc.parse_real("-1e400") == float("-inf")
    assert fc.parse_real("1e-400") == 0.0 and fc.parse_real("0x1p-1074") == 5e-324


def test_large_files_are_refused_quickly(tmp_path):
    """A file of megabytes is refused before it is read whole; MAX_CHARS of anything reads in a moment."""
    for name, data in [("spaces", b" " * 10_000_000), ("comments", b"; comment\n" * 1_000_000)]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "f.fpcore").write_bytes(data)
        kind, msg = assert_bounded(load_registry, (str(tmp_path / name),))
        assert kind == "user" and "larger than" in msg
    for text in [" " * fc.MAX_CHARS, ";\n" * (fc.MAX_CHARS // 2), "(FPCore f (x) (+ " + "x " * (fc.MAX_CHARS // 2 - 20)
                 + "))", '(FPCore f (x) :name "' + "\\a" * (fc.MAX_CHARS // 2 - 20) + '" x)']:
        kind, msg = assert_bounded(_load, text)
    assert_bounded(_load, " " * (fc.MAX_CHARS + 1))[1].endswith("give one formula per file (a formula file is "
                                                                 "about 1,000 characters)")


def test_non_utf8_file_says_so(tmp_path):
    (tmp_path / "f.fpcore").write_bytes(b"(FPCore f (x) :name \"caf\xe9\" x)")
    with pytest.raises(UserError) as e:
        load_registry((str(tmp_path),), builtin=False)
    assert str(e.value) == f"formula file {tmp_path / 'f.fpcore'} is not UTF-8 text (byte 24 is 0xe9): save it as UTF-8"


def test_byte_order_mark_and_crlf_are_read(tmp_path):
    (tmp_path / "f.fpcore").write_bytes(b"\xef\xbb\xbf(FPCore f (x)\r\n  :name \"m\"\r\n  x)\r\n")
    f = load_registry((str(tmp_path),), builtin=False)["f"]
    assert f.text == "(FPCore f (x)\n  :name \"m\"\n  x)\n"


# ---------------------------------------------------------------- options: --set, --domain, --range

option_values = st.one_of(literals, st.text(max_size=40), st.sampled_from(
    ["nan", "-nan", "NaN", "inf", "-inf", "+inf", "Infinity", "", " ", "1_000", "1/0", "0x", "1e", "--1", "١٢"]))
pairs = st.builds(lambda a, b, sep: f"{a}{sep}{b}", option_values, option_values, st.sampled_from([":", ":", "::", ""]))


_DECIMAL = r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?"


def _beyond(s: str) -> bool:
    """Whether `s` is a decimal literal beyond the limits, judged by the decimal module (which keeps the
    exponent apart: 1e999999999999 costs nothing), independently of the reader."""
    import decimal
    import re

    if not re.fullmatch(_DECIMAL, s.strip()):
        return False
    mantissa = re.split("[eE]", s.strip())[0]
    if not mantissa.strip("+-.0"):
        return False  # zero, whatever the exponent
    with decimal.localcontext() as ctx:
        ctx.Emax, ctx.Emin, ctx.prec = decimal.MAX_EMAX, decimal.MIN_EMIN, decimal.MAX_PREC
        try:
            d = decimal.Decimal(s.strip())
        except decimal.InvalidOperation:  # an exponent beyond even the decimal module's 10^18
            return True
        return len(d.as_tuple().digits) > fc.MAX_DIGITS or abs(d.adjusted()) > fc.MAX_EXP10


def _refused_when_beyond(kind: str, msg: str, parts) -> None:
    """A literal beyond the limits is refused (never read as inf or 0), and said to be where the other
    parts are plain decimals (else their own error may come first)."""
    import re

    if any(_beyond(p) for p in parts):
        assert kind == "user", (kind, msg)
        if all(_beyond(p) or re.fullmatch(_DECIMAL, p.strip()) or not p.strip() for p in parts):
            assert "beyond the reader's limits" in msg, msg


@PROPS
@given(value=option_values, name=st.one_of(st.just("threshold"), st.text(max_size=10)))
def test_set_values_are_bounded(value, name):
    kind, msg = assert_bounded(parse_settings, [f"{name}={value}"])
    if kind == "user":
        assert msg.startswith("--set ")
    if name == "threshold":
        _refused_when_beyond(kind, msg, [value])


@pytest.mark.parametrize("parse, option", [(parse_domain, "--domain "), (parse_range, "--range ")],
                         ids=["domain", "range"])
@settings(PROPS, max_examples=100)
@given(text=pairs)
def test_domains_and_ranges_are_bounded(parse, option, text):
    kind, msg = assert_bounded(parse, text)
    if kind == "user":
        assert msg.startswith(option)
    _refused_when_beyond(kind, msg, text.split(":") if text.count(":") == 1 else [])


@pytest.mark.parametrize("fn, text, want", [
    (parse_domain, "nan:1", "a bound is NaN"),
    (parse_domain, "5:1", "LO is greater than HI"),
    (parse_domain, "1e999999999999:", "a bound is beyond the reader's limits (magnitude 1e-10000 <= |x| < 1e10001): "
                                      "give a bound in that range (or inf, -inf, 0)"),
    (parse_domain, "1" * 100_000 + ":", "(at most 4000 significant digits, not 100000): round it to at most 4000 "
                                        "significant digits"),
    (parse_domain, "a:b", "bounds must be numbers"),
    (parse_domain, "1:2:3", "write it as LO:HI"),
    (parse_range, "nan:1", "write LO:HI with finite numbers"),
    (parse_range, "2:1", "LO is greater than HI"),
    (parse_range, "", "write LO:HI with finite numbers"),
    (parse_range, "0x1p999999999:1", "(magnitude 0x1p-40000 <= |x| < 0x1p40001): give values in that range"),
    (parse_range, "1:" + "9" * 100_000, "(at most 4000 significant digits, not 100000)"),
    (lambda t: parse_settings([t]), "t=1e999999999999", "--set 't=1e999999999999': the value is beyond the reader's "
                                                         "limits (magnitude 1e-10000 <= |x| < 1e10001): give a value "
                                                         "in that range (or 0)"),
    (lambda t: parse_settings([t]), "t=" + "1" * 100_000, "(at most 4000 significant digits, not 100000): round it"),
    (lambda t: parse_settings([t]), "a\nb=1", "--set 'a\\nb=1': 'a\\nb' is not a parameter name"),
])
def test_option_messages(fn, text, want):
    kind, msg = assert_bounded(fn, text)
    assert kind == "user" and want in msg


def test_option_values_keep_their_meaning():
    assert (parse_domain("-20:20").lo, parse_domain(":").hi, parse_domain("-inf:1e400").hi) == (-20, float("inf"),
                                                                                              float("inf"))
    assert parse_domain("0x1p-3:1/3").lo == 0.125 and parse_domain(" -1.5 : 2 ").lo == -1.5
    assert parse_range("5:40") == (5.0, 40.0) and parse_range("1/4:0x1p4") == (0.25, 16.0)
    assert parse_settings(["threshold = 0x1p4", "b=1/3"]) == {"threshold": 16, "b": Fraction(1, 3)}


# ---------------------------------------------------------------- the whole pipeline at the depth limit

def _at_limit(tmp_path):
    """Formula files nesting exactly MAX_DEPTH deep, in the shapes the tree walks recurse through."""
    n = fc.MAX_DEPTH - 1  # levels under (FPCore ...)
    shapes = {
        "neg": "(- " * n + "x" + ")" * n,
        "if": "(if (< x 0) x " * (n - 1) + "x" + ")" * (n - 1),
        "cond": "(if " + "(and (< x 1) " * (n - 2) + "(< x 2)" + ")" * (n - 2) + " x (- x))",
        "letbody": "(let ([a x]) " * (n - 2) + "a" + ")" * (n - 2),
        "letbind": "(let ([a " * ((n - 1) // 3) + "(- " * (n - 3 * ((n - 1) // 3)) + "x"
                   + ")" * (n - 3 * ((n - 1) // 3)) + "]) a)" * ((n - 1) // 3),
        "annot": "(! :precision binary32 " * n + "x" + ")" * n,
        "mish": "(* x (tanh (log1p (exp " + "(+ 0 " * (n - 4) + "x" + ")" * (n - 4) + "))))",
    }
    for k, body in shapes.items():
        (tmp_path / f"deep-{k}.fpcore").write_text(f"(FPCore deep-{k} (x) {body})")
    (tmp_path / "deep-prop.fpcore").write_text("(FPCore deep-prop (x) :pre " + "(and (< x 1) " * (n - 1) + "(< x 2)"
                                               + ")" * (n - 1) + " :note " + "(" * n + "a" + ")" * n + " x)")
    (tmp_path / "deep-params.fpcore").write_text("(FPCore deep-params (x) :mishaudit-params ([t 1]) "
                                                 + "(+ x " * n + "t" + ")" * n + ")")
    return [f"deep-{k}" for k in [*shapes, "prop", "params"]]


def _stack_depth() -> int:
    f, n = sys._getframe(), 0
    while f is not None:
        f, n = f.f_back, n + 1
    return n


def test_pipeline_runs_at_the_depth_limit_with_room_to_spare(tmp_path):
    """compare, overflow and list on formulas nested exactly MAX_DEPTH deep (several at once: they are
    pickled for worker processes, 4 frames a level), with a recursion limit of 500 frames above the test
    (half of Python's default): a tree walk taking more than ~4 frames a level fails here."""
    ids = _at_limit(tmp_path)
    for text in (tmp_path / f"{i}.fpcore" for i in ids):
        depth = max_depth = 0
        for c in text.read_text():
            depth += (c in "([") - (c in ")]")
            max_depth = max(max_depth, depth)
        assert max_depth == fc.MAX_DEPTH, text.name
    picked = [a for i in ids for a in ("--formula", i)]
    runs = [["list", "--formulas", str(tmp_path), "--format", "json"],
            ["compare", "--dtype", "fp16", "--domain", "-2:-1", "--formulas", str(tmp_path), *picked, "--set", "t=2"],
            ["overflow", "--dtype", "fp16", "--domain", "-2:-1", "--formulas", str(tmp_path), *picked]]
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(_stack_depth() + 500)
    try:
        for args in runs:
            r = CliRunner().invoke(main, args)
            assert r.exit_code == 0, (args[0], r.output[-2000:], r.exception)
    finally:
        sys.setrecursionlimit(old)


# ---------------------------------------------------------------- the CLI, as a user sees it

CLI_CASES = {
    "huge-exponent": (b"(FPCore f (x) (* x 1e999999999999))", ["compare"], "beyond the reader's limits"),
    "hex-exponent": (b"(FPCore f (x) (* x 0x1p999999999999))", ["compare"], "beyond the reader's limits"),
    "many-digits": (b"(FPCore f (x) (* x " + b"7" * 100_000 + b"))", ["list"], "at most 4000 significant digits"),
    "deep": (b"(FPCore f (x) " + b"(- " * 5000 + b"x" + b")" * 5000 + b")", ["compare"], "nested deeper than"),
    "not-utf8": (b"(FPCore f (x) :name \"\xff\" x)", ["list"], "is not UTF-8 text (byte 21 is 0xff)"),
    "megabytes": (b";" * 10_000_000, ["list"], "larger than"),
    "unterminated": (b"(FPCore f (x) :name \"x", ["list"], "unterminated string"),
    "set-exponent": (b"(FPCore f (x) :mishaudit-params ([t 1]) (* x t))", ["compare", "--set", "t=1e999999999999"],
                     "(--set) 't=1e999999999999': the value is beyond the reader's limits"),
    "domain-digits": (b"(FPCore f (x) x)", ["compare", "--domain", "1" * 100_000 + ":"],
                      "(--domain) '1111111111111111111...111111111111111111:' (100003 characters): a bound is beyond"),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_cli_refuses_in_one_line(tmp_path, case):
    data, args, want = CLI_CASES[case]
    (tmp_path / "f.fpcore").write_bytes(data)
    cmd = [sys.executable, "-m", "mishaudit.cli", args[0], "--formulas", str(tmp_path), *args[1:]]
    if args[0] == "compare":
        cmd += ["--formula", "f", "--dtype", "fp16"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})
    lines = p.stderr.splitlines()
    assert p.returncode == 2, p.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("mishaudit: error: ") and want in lines[0], p.stderr[-2000:]
    assert "Traceback" not in p.stderr + p.stdout and p.stdout == ""
