"""The embedder app factory."""

from __future__ import annotations

from fastapi import FastAPI

from finprint.app import Transports, create_runtime_app
from services.embedder.dependencies import EmbedderRuntime
from services.embedder.routes import router
from services.embedder.settings import EmbedderSettings

DESCRIPTION = """Species probabilities and the L2-normalised re-identification embedding of each crop,
with the model name and version that produced them. The model runs in process (onnxruntime, CUDA
when available) or on a Triton Inference Server, chosen by the `backend` setting."""


def create_app(settings: EmbedderSettings | None = None, transports: Transports | None = None) -> FastAPI:
    return create_runtime_app("embedder", settings or EmbedderSettings(), EmbedderRuntime,
                              title="Finprint embedder", description=DESCRIPTION, routers=[router])
