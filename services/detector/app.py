"""The detector app factory."""

from __future__ import annotations

from fastapi import FastAPI

from finprint.app import Transports, create_runtime_app
from services.detector.dependencies import DetectorRuntime
from services.detector.routes import router
from services.detector.settings import DetectorSettings

DESCRIPTION = """Finds the cetacean in a photo: its box, its view (fluke, dorsal fin, head, other) and
the detection score, or a clear "no cetacean" answer. Photos are checked (type sniffed from the
bytes, size and pixel limits) before anything is decoded."""


def create_app(settings: DetectorSettings | None = None, transports: Transports | None = None) -> FastAPI:
    return create_runtime_app("detector", settings or DetectorSettings(), DetectorRuntime,
                              title="Finprint detector", description=DESCRIPTION, routers=[router])
