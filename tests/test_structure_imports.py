"""The package's import structure, read from the source with :mod:`ast`.

* No module imports a private name (``_x``) of another module — across modules the
  package talks through public entry points only.
* The library (everything outside ``ntk_theory.cli``) never imports the command line,
  except the modules that drive it (:data:`CLI_CLIENTS`).
* The module import graph is acyclic.  Every import counts — module level and inside
  functions (lazy imports) alike — except the package's own ``__init__`` re-exports
  (``ntk_theory``, ``ntk_theory.compress`` …), which a submodule may import only for a
  dunder such as ``__version__``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ntk_theory"


def _modules() -> dict[str, Path]:
    mods = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute name of the module ``from … import`` reads from."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if path.name != "__init__.py":
        base = base[:-1]  # a plain module's package
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, path: Path) -> list[tuple[str, str | None, int]]:
    """``(source module, imported name or None, line)`` of every ntk_theory import."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            source = _absolute(module, path, node)
            if source == "ntk_theory" or source.startswith("ntk_theory."):
                out += [(source, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.Import):
            out += [(alias.name, None, node.lineno) for alias in node.names
                    if alias.name == "ntk_theory" or alias.name.startswith("ntk_theory.")]
    return out


def _edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for source, name, _ in _imports(module, path):
            target = f"{source}.{name}" if name and f"{source}.{name}" in MODULES else source
            if target == module or target not in MODULES:
                continue
            if MODULES[target].name == "__init__.py" and name and name.startswith("__"):
                continue  # a dunder of a package (__version__): not a dependency on its re-exports
            graph[module].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_scan_sees_the_package():
    """Guard against a vacuous pass: the scan finds the modules and their imports."""
    assert {"ntk_theory.moments", "ntk_theory.expectation", "ntk_theory.cli._common",
            "ntk_theory.compress.solve"} <= set(MODULES)
    graph = _edges()
    assert "ntk_theory.expectation" in graph["ntk_theory.moments"]
    assert "ntk_theory.compress.solve" in graph["ntk_theory.compress.network"]
    assert "ntk_theory.latex" in graph["ntk_theory.display"]


def test_no_private_imports_across_modules():
    bad = []
    for module, path in MODULES.items():
        for source, name, line in _imports(module, path):
            if name is None or not name.startswith("_") or name.startswith("__"):
                continue
            if f"{source}.{name}" in MODULES:
                continue  # a private *module* of the package (ntk_theory._dense, cli._common)
            bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: from {source} import {name}")
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)


#: Modules that drive the command line on purpose: ``python -m ntk_theory`` and the
#: sweep runner, whose jobs are subcommands (their parsers and JSON output).
CLI_CLIENTS = {"ntk_theory.__main__", "ntk_theory.sweep"}


def test_library_does_not_import_the_cli():
    bad = [f"{path.relative_to(PACKAGE.parent)}:{line}: {source}"
           for module, path in MODULES.items()
           if not module.startswith("ntk_theory.cli") and module not in CLI_CLIENTS
           for source, name, line in _imports(module, path)
           if (f"{source}.{name}" if name else source).startswith("ntk_theory.cli")]
    assert not bad, "library modules importing the command line:\n" + "\n".join(bad)


def test_import_graph_is_acyclic():
    cycles = _cycles(_edges())
    assert not cycles, f"import cycles (lazy imports included): {cycles}"


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b"}, "b": {"a"}, "c": set()}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
])
def test_cycle_finder_finds_cycles(graph, expected):
    """The checker itself: a planted cycle is reported, a chain is not."""
    assert _cycles(graph) == expected
