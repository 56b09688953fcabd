"""Suite-wide fixtures. The real-server fixtures live in finprint_testing/ (also used by bench/)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# The real-server fixtures (each module of finprint_testing is a pytest plugin).
pytest_plugins = [
    "finprint_testing.postgres",
    "finprint_testing.s3",
    "finprint_testing.triton",
    "finprint_testing.prometheus",
]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The labelled photographs in ../shared/data (never copied into the repo)."""
    path = Path(os.environ.get("FINPRINT_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.fail(f"the shared photo data is missing at {path}; set FINPRINT_DATA_DIR")
    return path
