"""The FPCore reader: round trips (property), exact numbers, error positions."""

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mishaudit.errors import UserError
from mishaudit.lang import fpcore as fc
from mishaudit.lang.registry import builtin_files, load_registry, load_text

names = st.sampled_from(["x", "y", "e", "n", "sp", "t"])
numbers = st.fractions(min_value=-(10**6), max_value=10**6, max_denominator=10**6).map(lambda v: fc.Num(v))


def exprs():
    leaves = st.one_of(numbers, names.map(fc.Var), st.sampled_from(["E", "PI", "INFINITY"]).map(fc.Const))

    def extend(sub):
        unary = st.builds(lambda o, a: fc.Op(o, (a,)), st.sampled_from(["exp", "log1p", "tanh", "fabs", "-", "sqrt"]), sub)
        binary = st.builds(lambda o, a, b: fc.Op(o, (a, b)), st.sampled_from(["+", "-", "*", "/", "fmax", "pow"]), sub, sub)
        fma = st.builds(lambda a, b, c: fc.Op("fma", (a, b, c)), sub, sub, sub)
        cond = st.builds(lambda o, a, b: fc.Op(o, (a, b)), st.sampled_from(["<", "<=", ">", "=="]), sub, sub)
        iff = st.builds(fc.If, cond, sub, sub)
        let = st.builds(lambda n, v, b, s: fc.Let(((n, v),), b, s), names, sub, sub, st.booleans())
        annot = st.builds(lambda b: fc.Annot(((":precision", fc.Symbol("binary32")),), b), sub)
        return st.one_of(unary, binary, fma, iff, let, annot)

    return st.recursive(leaves, extend, max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(e=exprs())
def test_print_then_parse_gives_the_same_tree(e):
    core = fc.FPCore("f", ("x",), ((":name", "a \"quoted\" name"),), e)
    again = fc.parse(fc.core_to_text(core))
    assert again == core


@settings(max_examples=300, deadline=None)
@given(v=st.fractions())
def test_numbers_print_exactly(v):
    assert fc.parse_number(fc.format_number(v)) == v


def test_number_syntaxes():
    assert fc.parse_number("0x1.8p3") == 12
    assert fc.parse_number("-0x1p-10") == Fraction(-1, 1024)
    assert fc.parse_number("1/3") == Fraction(1, 3)
    assert fc.parse_number("44.3614159") == Fraction(443614159, 10**7)
    assert fc.parse_number("1e-3") == Fraction(1, 1000)
    assert fc.parse_number("x1") is None


@pytest.mark.parametrize("text, where, words", [
    ("(FPCore (x)\n  (+ x 1)", "1:1", "never closed"),
    ("(FPCore (x)\n  (frob x))", "2:4", "unknown operator"),
    ("(FPCore (x)\n  (+ x))", "2:4", "takes 2"),
    ("(FPCore (x) (let ([y 1) y))", "1:23", "closes"),
    ("(FPCore (x) :name)", "1:13", "no value"),
    ('(FPCore (x) "s")', "1:13", "string"),
    ("(FPCore (x) (if (< x 1) x))", "1:13", "three parts"),
])
def test_errors_name_line_and_column(text, where, words):
    with pytest.raises(UserError) as exc:
        fc.parse(text, "f.fpcore")
    msg = str(exc.value)
    assert msg.startswith(f"f.fpcore:{where}:"), msg
    assert words in msg


def test_unknown_variable_is_located():
    with pytest.raises(UserError, match=r"g.fpcore:3:8: unknown variable 'y'"):
        load_text("(FPCore g (x)\n  :name \"g\"\n  (+ x y))", "g.fpcore", "g")


def test_registry_has_every_context_formulation():
    ids = {"softplus-tanh", "softplus-threshold", "log-exp-plus-one", "exp-rational", "exp-rational-clamped",
           "pytorch-75251", "darknet-cpu", "yashas2", "yashas", "njuffa", "opencv-cpu", "onednn-jit",
           "openvino-gpu", "tf-softplus", "stable-softplus", "coreml-2359-workaround", "coreml-2725"}
    grads = {"pytorch-cpu-grad", "mish-cuda-grad", "darknet-cpu-grad", "darknet-gpu-grad", "onednn-grad"}
    elementary = {"exp", "expm1", "log", "log1p", "tanh"}  # formulas/libm/: the function itself, its own spec
    # written by `mishaudit synthesize` (the command in :mishaudit-source), cited by nothing
    synthesized = {f"mishaudit-{g}{d}" for g in ("", "grad-") for d in ("fp16", "bf16", "fp32")}
    reg = load_registry()
    assert set(reg) == ids | grads | elementary | synthesized
    for f in reg.values():
        assert f.core.ident == f.id  # the id users type is the FPCore identifier
        assert f.source and f.used_by and f.description
        if f.id in synthesized:
            assert f.source.startswith("mishaudit synthesize --dtype " + f.id.rsplit("-", 1)[1])
            assert f.spec.key == ("mish'" if "grad" in f.id else "mish")
            continue
        if f.id in elementary:
            assert f.path == f"formulas/libm/{f.id}.fpcore" and f.spec.op == f.id and fc.to_text(f.body) == f"({f.id} x)"
            continue
        assert f.core.prop(":cite")
        assert f.spec.key == ("mish'" if f.id in grads else "mish")  # the derivative files state :spec mish'
    assert len(builtin_files()) == 33


def test_id_clash_and_user_dirs(tmp_path):
    (tmp_path / "a.fpcore").write_text("(FPCore softplus-tanh (x) (* x 1))")
    with pytest.raises(UserError, match="defined twice"):
        load_registry((str(tmp_path),))
    (tmp_path / "a.fpcore").write_text("(FPCore (x) (* x 1))")  # no id: the file name
    assert "a" in load_registry((str(tmp_path),))


def test_the_registry_finds_the_shipped_formulas_from_a_source_checkout(tmp_path):
    """Run from the repository (the package imported from the source tree, not from an installed copy),
    the shipped formulas are the top-level formulas/ folder."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    code = ("import sys; sys.modules.pop('mishaudit.formulas', None);"
            "import importlib.resources as r; from mishaudit.lang import registry;"
            "r.files = lambda name: (_ for _ in ()).throw(ModuleNotFoundError(name));"
            "print(len(registry.builtin_files()))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert p.returncode == 0, p.stderr
    assert int(p.stdout) == len(list((root / "formulas").rglob("*.fpcore"))) >= 16
