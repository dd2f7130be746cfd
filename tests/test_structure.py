"""The package's import structure: no module reaches into another's private names, no import loop.

Both are read from the source with ``ast``, every import counted (those inside functions
too: a lazy import that closes a loop is still a loop, only a later one).
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "sertiny"


def _modules():
    """``{dotted name: path}`` of every module of the package."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _imports(name, path):
    """``(imported module, imported name or None, line)`` of every sertiny import in a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "sertiny":
                    yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "sertiny":
                continue
            for alias in node.names:
                if f"{source}.{alias.name}" in MODULES:  # `from . import graph`: a module
                    yield f"{source}.{alias.name}", None, node.lineno
                else:
                    yield source, alias.name, node.lineno


GRAPH = {name: sorted({module for module, _, _ in _imports(name, path) if module in MODULES} - {name})
         for name, path in MODULES.items()}


def test_no_module_imports_another_modules_private_names():
    found = [f"{MODULES[name].relative_to(PACKAGE.parent)}:{line}: from {module} import {imported}"
             for name, path in MODULES.items() for module, imported, line in _imports(name, path)
             if imported and imported.startswith("_") and not imported.startswith("__") and module != name]
    assert not found, "private names imported across modules:\n" + "\n".join(found)


def _cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph[node]:
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return cycles


def test_no_import_cycles():
    assert _cycles(GRAPH) == []


def test_the_checks_see_what_they_look_for():
    # The walk finds the package's own modules and imports, lazy ones included...
    assert "sertiny.export.lstm_ops" in GRAPH["sertiny.export.baseline_graphs"]
    assert "sertiny.export.baseline_graphs" in GRAPH["sertiny.export.graph"]  # inside fold_weights
    # ...and the cycle finder finds a loop.
    assert _cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]
