"""The layout tells the architecture: services meet only through HTTP and finprint's shared code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from finprint.services import SERVICES

REPO = Path(__file__).resolve().parents[2]


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_no_other_service(service: str) -> None:
    others = [s for s in SERVICES if s != service]
    offenders = []
    for path in (REPO / "services" / service).rglob("*.py"):
        for module in _imported_modules(path):
            if any(module == f"services.{o}" or module.startswith(f"services.{o}.") for o in others):
                offenders.append(f"{path.relative_to(REPO)} imports {module}")
    assert not offenders, offenders


def test_shared_code_imports_no_service_statically() -> None:
    offenders = [
        f"{path.relative_to(REPO)} imports {module}"
        for path in (REPO / "finprint").rglob("*.py")
        for module in _imported_modules(path)
        if module == "services" or module.startswith("services.")
    ]
    assert not offenders, offenders


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_has_the_standard_parts(service: str) -> None:
    root = REPO / "services" / service
    for part in ("app.py", "settings.py", "domain", "adapters", "Dockerfile"):
        assert (root / part).exists(), f"services/{service}/{part} is missing"
    # A service's HTTP contract: routes.py, or a routes/ package when it has many areas (the gateway).
    assert (root / "routes.py").is_file() or (root / "routes" / "__init__.py").is_file()
