"""Shared fixtures of the training tests: the real photos (the suite's ``shared_data``)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def photos(shared_data: Path) -> Path:
    return shared_data
