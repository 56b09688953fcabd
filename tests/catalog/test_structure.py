"""The catalog's layout keeps its shape: packages by domain that import each other without cycles, and
an app factory that builds the app from every domain's routers and that nothing else imports."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from fastapi import APIRouter

REPO = Path(__file__).resolve().parents[2]
CATALOG = REPO / "services" / "catalog"

ImportGraph = dict[str, set[str]]


def _module_name(path: Path, root: Path) -> str:
    """The dotted name of a module file below ``root``'s parent folders (a package by its __init__)."""
    parts = path.relative_to(root).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """Every name a module imports, wherever the import stands (TYPE_CHECKING blocks and functions
    included: an import there is a dependency all the same), relative imports made absolute."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph(root: Path, package: str) -> ImportGraph:
    """Module -> the modules of ``package`` it needs loaded: those it imports and their parent packages
    (importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` first)."""
    files = {_module_name(path, root): path for path in (root / package.replace(".", "/")).rglob("*.py")}
    graph: ImportGraph = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        needed: set[str] = set()
        for name in _imported_names(tree, module, path.name == "__init__.py"):
            parts = name.split(".")
            needed |= {".".join(parts[:n]) for n in range(1, len(parts) + 1)} & files.keys()
        parents = module.split(".")
        needed |= {".".join(parents[:n]) for n in range(1, len(parents))} & files.keys()
        graph[module] = needed - {module}
    return graph


def cycles(graph: ImportGraph) -> list[list[str]]:
    """One cycle through each group of modules that import each other (Tarjan's strongly connected
    components), each as the chain of imports that closes it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for needed in sorted(graph.get(module, ())):
            if needed not in index:
                visit(needed)
                low[module] = min(low[module], low[needed])
            elif needed in on_stack:
                low[module] = min(low[module], index[needed])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(_chain(graph, set(component)))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def _chain(graph: ImportGraph, component: set[str]) -> list[str]:
    """A path of imports inside ``component`` from its first module back to itself."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        module = frontier.pop(0)
        for needed in sorted(graph[module] & component):
            if needed == start:
                return [*paths[module], start]
            if needed not in paths:
                paths[needed] = [*paths[module], needed]
                frontier.append(needed)
    raise AssertionError(f"no cycle through {start}")  # a strongly connected component always has one


def test_the_catalog_has_no_import_cycle() -> None:
    found = cycles(import_graph(REPO, "services.catalog"))
    assert not found, "import cycles in services/catalog:\n" + "\n".join(" -> ".join(c) for c in found)


def test_nothing_in_the_catalog_imports_its_app_factory() -> None:
    graph = import_graph(REPO, "services.catalog")
    importers = sorted(module for module, needed in graph.items() if "services.catalog.app" in needed)
    assert not importers, f"the app factory is the top of the graph; these import it: {importers}"


def test_the_app_includes_every_router_of_every_domain() -> None:
    import importlib

    from services.catalog.app import ROUTERS

    defined = {
        f"{module}.{name}": router
        for module in sorted(import_graph(REPO, "services.catalog"))
        if module.endswith(".routes")
        for name, router in vars(importlib.import_module(module)).items()
        if isinstance(router, APIRouter)
    }
    missing = sorted(name for name, router in defined.items() if not any(router is r for r in ROUTERS))
    assert defined and not missing, f"routers the app does not include: {missing}"


def test_the_cycle_check_finds_a_cycle(tmp_path: Path) -> None:
    """The check itself: a cycle through a relative import and a parent package is reported."""
    package = tmp_path / "fake"
    (package / "inner").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "inner" / "__init__.py").write_text("from fake import top\n")
    (package / "inner" / "leaf.py").write_text("X = 1\n")
    (package / "top.py").write_text("from .inner.leaf import X\n")
    (package / "alone.py").write_text("import fake.top\n")
    found = cycles(import_graph(tmp_path, "fake"))
    assert found == [["fake.inner", "fake.top", "fake.inner"]], found
