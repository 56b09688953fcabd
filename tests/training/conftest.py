"""Shared fixtures: where the real photos are, and skips when they or torch are missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    """``$FINPRINT_DATA_DIR`` or ``../shared/data`` next to the repository."""
    return Path(os.environ.get("FINPRINT_DATA_DIR") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def photos() -> Path:
    path = data_dir()
    if not (path / "noaa_rightwhale_heads" / "labels.csv").exists():
        pytest.skip(f"no photo data at {path} (set FINPRINT_DATA_DIR)")
    return path
