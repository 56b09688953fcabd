"""The layout tells the architecture: services meet only through HTTP and finprint's shared code;
the model pipeline (finprint_train) and the test fixtures (finprint_testing) stay out of both."""

from __future__ import annotations

import ast
import subprocess
import sys
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


# What runs in production: the kernel and the five services. Neither imports the model pipeline
# (torch, training data) nor the real-server fixtures; `finprint train|evaluate|export` reach the
# pipeline only through the CLI's optional-command table (a module name, imported when installed).
RUNTIME_PACKAGES = ("finprint", "services")
OFFLINE_PACKAGES = ("finprint_train", "finprint_testing")


@pytest.mark.parametrize("package", RUNTIME_PACKAGES)
def test_runtime_code_imports_neither_the_model_pipeline_nor_the_fixtures(package: str) -> None:
    offenders = [
        f"{path.relative_to(REPO)} imports {module}"
        for path in (REPO / package).rglob("*.py")
        for module in _imported_modules(path)
        if any(module == p or module.startswith(p + ".") for p in OFFLINE_PACKAGES)
    ]
    assert not offenders, offenders


def test_services_and_cli_load_without_the_model_pipeline_or_torch() -> None:
    """Every service's app, and the CLI's parser, with finprint_train, finprint_testing and torch
    unimportable (as in a service image): the training commands are then simply absent."""
    apps = "; ".join(f"import services.{s}.app" for s in SERVICES)
    code = (
        "import sys\n"
        "for name in ('torch', 'finprint_train', 'finprint_testing'): sys.modules[name] = None\n"
        f"{apps}\n"
        "from finprint.cli import build_parser\n"
        "commands = build_parser()._subparsers._group_actions[0].choices\n"
        "assert 'train' not in commands and 'serve' in commands, sorted(commands)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_the_evaluation_and_the_training_cli_import_without_torch() -> None:
    """The identification protocol (through the API, and offline with onnxruntime) needs no torch;
    nor do the training commands until one runs."""
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "import finprint_train.evaluation.run, finprint_train.evaluation.api, finprint_train.evaluation.offline\n"
        "import finprint_train.cli, finprint_train.data, finprint_train.metrics, finprint_train.config\n"
        "from finprint.cli import build_parser\n"
        "commands = build_parser()._subparsers._group_actions[0].choices\n"
        "assert {'train', 'evaluate', 'export', 'train-detector'} <= set(commands), sorted(commands)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# Packaged by domain: a package per domain holding its routes.py and its service functions (the
# catalog, the largest service; tests/catalog/test_structure.py keeps its imports free of cycles).
DOMAIN_PACKAGED = {"catalog"}


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_has_the_standard_parts(service: str) -> None:
    root = REPO / "services" / service
    for part in ("app.py", "settings.py", "adapters"):
        assert (root / part).exists(), f"services/{service}/{part} is missing"
    # Its image is the shared services/Dockerfile with its build arguments (tests/foundation/test_compose.py).
    assert not (root / "Dockerfile").exists(), f"services/{service}/Dockerfile: build services/Dockerfile instead"
    if service in DOMAIN_PACKAGED:
        assert [*root.glob("*/routes.py"), *root.glob("*/*/routes.py")], f"services/{service} has no domain routes"
        assert not (root / "domain").exists() and not (root / "routes.py").exists(), "one layout, not two"
        return
    assert (root / "domain").exists(), f"services/{service}/domain is missing"
    # A service's HTTP contract: routes.py, or a routes/ package when it has many areas (the gateway).
    assert (root / "routes.py").is_file() or (root / "routes" / "__init__.py").is_file()
