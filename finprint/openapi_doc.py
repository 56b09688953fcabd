"""Every service's OpenAPI document, as committed contract files (docs/openapi/<service>.json).

The documents are the services' HTTP contracts; keeping them in the repository makes every change
to a contract a visible diff (``make docs`` regenerates them, a test fails when they are stale).
They are built from the apps with default settings, without starting them.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from finprint.embedded import embedded_environment
from finprint.services import SERVICES, app_factory


@contextmanager
def _default_settings() -> Iterator[None]:
    """The embedded default's settings where the environment sets none, for the duration."""
    saved = dict(os.environ)
    with tempfile.TemporaryDirectory() as data_dir:
        for name, value in embedded_environment(Path(data_dir)).items():
            os.environ.setdefault(name, value)
        os.environ.setdefault("FINPRINT_GATEWAY_JWT_SECRET", "openapi-doc-" + "x" * 32)
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)


def openapi_documents() -> dict[str, dict[str, Any]]:
    with _default_settings():
        return {service: app_factory(service)().openapi() for service in SERVICES}


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def write_openapi_documents(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for service, document in openapi_documents().items():
        path = folder / f"{service}.json"
        path.write_text(render(document))
        written.append(path)
    return written
