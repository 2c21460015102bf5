"""The import graph, read from the source (every import, also those inside functions; not those under
``if TYPE_CHECKING:``; attnres/cli.py's imports by name from its COMMANDS table): each layer imports
only the layers below it, and no modules import each other in a circle. ``from a.b import X`` counts
as an edge to a.b, not to package a's __init__ (a package importing its own submodules is not a
circle). docs/ARCHITECTURE.md describes the layers this test keeps."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# layer -> the layers it may import. records is the torch-free bottom (artifacts, config, units);
# corpus (data preparation) and harness (the compute node) both stand on it alone; the analysis
# reads parquet and uses harness's torch-free accounting for synthetic data; sweeps plan, launch
# and collect, and `plan --power` asks the analysis; attnres/cli.py sits on top of everything.
ALLOWED: dict[str, set[str]] = {
    "records": set(),
    "corpus": {"records"},
    "harness": {"records"},
    "analysis": {"records", "harness"},
    "sweeps": {"records", "harness", "analysis"},
    "attnres": {"records", "corpus", "harness", "analysis", "sweeps"},
}


def _modules() -> dict[str, Path]:
    mods = {}
    for layer in ALLOWED:
        for p in (ROOT / layer).rglob("*.py"):
            name = ".".join(p.relative_to(ROOT).with_suffix("").parts)
            mods[name.removesuffix(".__init__")] = p
    return mods


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, mods: dict[str, Path]) -> set[str]:
    """Project modules imported anywhere in ``tree`` (``from a import b`` counts as a.b when that is
    a module, else as a)."""
    out: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"relative import (line {node.lineno}): the layer check reads absolute ones only")
        if isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                out.add(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in mods else node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        stack.extend(ast.iter_child_nodes(node))
    return {m for m in out if m.split(".")[0] in ALLOWED}


def _graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports; attnres.cli's imports by name (COMMANDS) included."""
    from attnres.cli import COMMANDS

    mods = _modules()
    graph = {m: _imports(ast.parse(p.read_text()), mods) for m, p in mods.items()}
    graph["attnres.cli"] |= {module for module, _ in COMMANDS.values()}
    return graph


def _violations(graph: dict[str, set[str]]) -> list[str]:
    return [f"{m} imports {d}" for m, deps in graph.items() for d in deps
            if d.split(".")[0] != m.split(".")[0] and d.split(".")[0] not in ALLOWED[m.split(".")[0]]]


def test_each_layer_imports_only_the_layers_below_it():
    bad = _violations(_graph())
    assert bad == [], "\n".join(bad)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root] & graph.keys())))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w] & graph.keys()))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_the_checks_can_fail():
    """The graph holds imports made inside functions and leaves out type-only ones, and a planted
    circle and a planted layer violation are found."""
    g = _graph()
    assert "sweeps.collect" in g["sweeps.cli"]          # imported inside collect's command function
    assert "sweeps.expand" not in g["sweeps.budget"]    # under `if TYPE_CHECKING:` only
    assert "harness.accounting" in g["sweeps.budget"]   # ... while the module's other imports count
    assert "sweeps.cli" in g["attnres.cli"]              # imported by name (COMMANDS)
    g["records.config"].add("records.rundir")
    g["records.rundir"].add("records.config")
    assert any({"records.config", "records.rundir"} <= set(c) for c in _cycles(g))
    g["harness.model"].add("sweeps.spec")
    assert _violations(g) == ["harness.model imports sweeps.spec"]
