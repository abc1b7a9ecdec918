"""The package reads as the pipeline, one direction (README, "The code"): every import of every module,
at module level or inside a function, goes to the same layer or an earlier one, and no modules import
each other round a cycle. Function-local imports count: they are how a cycle hides.

The graph is read from the source with `ast` (every Import and ImportFrom, and import_module /
__import__ of a constant name), not from sys.modules, so an import that runs only on some path is
checked as well as one that runs on every import."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

import mishaudit

ROOT = Path(mishaudit.__file__).parent

# The layers, earliest first. A module's layer is that of its top-level name under mishaudit
# (mishaudit.eval.libm: "eval"); "__init__" is the package itself (mishaudit/__init__.py).
LAYERS = (
    ("base", ("errors", "version", "formats", "files", "cache", "heap", "pool", "progress", "cluster")),
    ("lang", ("lang",)),
    ("eval", ("eval",)),
    ("emit", ("emit",)),  # emit/ uses the evaluator's constant rounding (eval/evaluate.py)
    ("reference", ("reference",)),
    ("measure", ("measure",)),
    ("analysis", ("analysis",)),
    ("graphs", ("graphs",)),
    ("gate", ("gate",)),
    ("output", ("output",)),
    ("arguments", ("arguments",)),
    ("api", ("api",)),
    ("cli", ("cli",)),
    ("package", ("__init__",)),
)

# Edges allowed to run back up the pipeline: (importer, imported) -> why. None today; an entry
# that no longer matches an import fails the test (so the list cannot go stale).
EXCEPTIONS: dict[tuple[str, str], str] = {}

# Layers that may not import another, though it is earlier: output renders what analysis computed
# (analysis/report_data.py collects the report's data; the CLI and the API pass it in).
FORBIDDEN = {("output", "analysis"): "output/ renders only: compute in analysis/ and pass the result in"}

_RANK = {top: i for i, (_, tops) in enumerate(LAYERS) for top in tops}
_NAME = [name for name, _ in LAYERS]


def _modules() -> dict[str, Path]:
    """Module name -> file, for every module of the package."""
    out = {}
    for p in sorted(ROOT.rglob("*.py")):
        parts = ("mishaudit",) + p.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


MODULES = _modules()


class Edge:
    def __init__(self, src: str, dst: str, path: Path, line: int, local: bool):
        self.src, self.dst, self.path, self.line, self.local = src, dst, path, line, local

    def where(self) -> str:
        rel = self.path.relative_to(ROOT.parent)
        return f"{rel}:{self.line}: {self.src} imports {self.dst}" + (" (inside a function)" if self.local else "")


def _layer(module: str) -> int:
    parts = module.split(".")
    top = "__init__" if len(parts) == 1 else parts[1]
    assert top in _RANK, (f"module {module} has no layer: add {top!r} to LAYERS in tests/test_layers.py, "
                          "where it sits in the pipeline")
    return _RANK[top]


def _imports(module: str, path: Path, unresolved: list) -> list[Edge]:
    """Every import of mishaudit modules in one file, with its line and whether it is function-local
    (an import of a name that is no module of the package goes to `unresolved`)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    local = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
             for n in ast.walk(f)}
    edges = []

    def add(target: str, node):
        if target == "mishaudit" or target.startswith("mishaudit."):
            e = Edge(module, target, path, node.lineno, id(node) in local)
            if target not in MODULES:
                unresolved.append(e.where() + ", which is no module of the package")
            elif target != module:
                edges.append(e)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                add(a.name, node)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for a in node.names:  # `from P import m`: the submodule P.m where there is one, else P itself
                add(f"{source}.{a.name}" if f"{source}.{a.name}" in MODULES else source, node)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
            if name in ("import_module", "__import__"):
                add(node.args[0].value, node)
    return edges


@functools.cache
def _graph() -> tuple[list[Edge], list[str]]:
    unresolved: list[str] = []
    return [e for m, p in MODULES.items() for e in _imports(m, p, unresolved)], unresolved


def test_the_graph_is_read():
    """The walk sees the package: every module, each in a layer, every import resolved to a module, and
    imports both at module level and inside functions."""
    edges, unresolved = _graph()
    assert not unresolved, "imports the walk cannot place:\n" + "\n".join(unresolved)
    assert {"mishaudit", "mishaudit.api", "mishaudit.eval.evaluate", "mishaudit.analysis.sweep"} <= set(MODULES)
    pairs = {(e.src, e.dst) for e in edges}
    assert ("mishaudit.analysis.audit", "mishaudit.eval.evaluate") in pairs  # module level
    assert ("mishaudit.eval.libm", "mishaudit.eval.kernels") in pairs  # inside a function (torch, lazily)
    assert any(e.local for e in edges) and any(not e.local for e in edges)
    for m in MODULES:
        _layer(m)


def test_no_import_runs_back_up_the_pipeline():
    order = " -> ".join(_NAME)
    bad = []
    used = set()
    for e in _graph()[0]:
        a, b = _layer(e.src), _layer(e.dst)
        if b > a:
            if (e.src, e.dst) in EXCEPTIONS:
                used.add((e.src, e.dst))
                continue
            bad.append(f"{e.where()}: layer {_NAME[a]} reaches up into layer {_NAME[b]}")
        elif (_NAME[a], _NAME[b]) in FORBIDDEN:
            bad.append(f"{e.where()}: {FORBIDDEN[(_NAME[a], _NAME[b])]}")
    if bad:
        pytest.fail(f"imports against the pipeline ({order}):\n" + "\n".join(dict.fromkeys(bad)), pytrace=False)
    stale = set(EXCEPTIONS) - used
    assert not stale, f"EXCEPTIONS no import needs any more (drop them): {sorted(stale)}"


def _cycles(edges: list[Edge]) -> list[list[Edge]]:
    """One shortest cycle through each group of modules that import each other round a cycle (each
    strongly connected component of more than one module, Tarjan), as its edges."""
    out_edges: dict[str, list[Edge]] = {}
    for e in edges:
        out_edges.setdefault(e.src, []).append(e)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set] = []

    def connect(m: str):
        index[m] = low[m] = len(index)
        stack.append(m)
        for e in out_edges.get(m, ()):
            if e.dst not in index:
                connect(e.dst)
                low[m] = min(low[m], low[e.dst])
            elif e.dst in stack:
                low[m] = min(low[m], index[e.dst])
        if low[m] == index[m]:
            group = set()
            while True:
                group.add(stack.pop())
                if m in group:
                    break
            if len(group) > 1:
                groups.append(group)

    for m in sorted(MODULES):
        if m not in index:
            connect(m)
    cycles = []
    for group in groups:  # breadth first from the group's first module back to it, inside the group
        start = min(group)
        came: dict[str, Edge | None] = {start: None}
        todo, back = [start], None
        while todo and back is None:
            m = todo.pop(0)
            for e in out_edges.get(m, ()):
                if e.dst == start:
                    back = e
                    break
                if e.dst in group and e.dst not in came:
                    came[e.dst] = e
                    todo.append(e.dst)
        path = [back]
        while came[path[0].src] is not None:
            path.insert(0, came[path[0].src])
        cycles.append(path)
    return cycles


def test_no_import_cycle():
    """No modules import each other round a cycle. Each cycle found is named edge by edge; its edges
    are then set aside and the search repeated, so cycles sharing modules show up one by one."""
    edges, cycles = list(_graph()[0]), []
    for _ in range(20):
        found = _cycles(edges)
        if not found:
            break
        cycles += found
        gone = {id(e) for c in found for e in c}
        edges = [e for e in edges if id(e) not in gone]
    if cycles:
        pytest.fail("\n".join("import cycle:\n" + "\n".join("  " + e.where() for e in c) for c in cycles),
                    pytrace=False)


def test_package_inits_import_only_the_base():
    """Importing any module runs its packages' __init__ first: what they import at module level (not
    inside a function) is imported by everything, so it must be base utilities."""
    bad = [e.where() for e in _graph()[0] if MODULES[e.src].name == "__init__.py" and not e.local and _layer(e.dst) > 0]
    assert not bad, "a package __init__ pulls in more than the base layer:\n" + "\n".join(bad)
