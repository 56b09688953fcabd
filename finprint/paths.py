"""Where the project's bundled files are when running from a checkout."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def default_model_repository() -> Path:
    """The Triton model repository shipped with the project (``model_repository/``)."""
    return PROJECT_ROOT / "model_repository"
