"""The embedder's runtime: the chosen backend, its metrics, and the FastAPI dependency for routes."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
from fastapi import Request

from finprint.metrics import ServiceMetrics
from finprint.problems import DependencyUnavailable
from finprint.schemas.common import ModelInfo
from services.embedder.domain.model import EmbedderCard, EmbeddingBackend
from services.embedder.settings import EmbedderSettings

log = logging.getLogger("finprint.embedder")
BATCH_BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 128)


def create_backend(settings: EmbedderSettings, metrics: ServiceMetrics) -> EmbeddingBackend:
    batch_sizes = metrics.histogram(
        "finprint_embedder_batch_size", "Images per inference call sent to the model.", buckets=BATCH_BUCKETS
    )
    latency = metrics.histogram("finprint_embedder_inference_seconds", "Time of one inference call.")

    def observe(images: int, seconds: float) -> None:
        batch_sizes.observe(images)
        latency.observe(seconds)

    # Each backend's dependencies are imported only when chosen: a CPU node needs no tritonclient.
    if settings.backend == "triton":
        from services.embedder.adapters.triton import TritonBackend

        return TritonBackend(settings, observe)
    from services.embedder.adapters.onnx_runtime import OnnxRuntimeBackend

    return OnnxRuntimeBackend(settings, observe)


class EmbedderRuntime:
    """Starts the backend, and starts it again on demand while it is not up (Triton may come later)."""

    def __init__(self, settings: EmbedderSettings, metrics: ServiceMetrics) -> None:
        self.settings = settings
        self.backend = create_backend(settings, metrics)
        self._started = False
        self._error = "not started yet"
        self._lock = asyncio.Lock()
        self.images = metrics.counter("finprint_embedder_images_total", "Images embedded.")
        self.rejected = metrics.counter(
            "finprint_embedder_rejected_images_total", "Image parts refused before inference, by reason.", ("reason",)
        )

    async def start(self) -> None:
        """Start the backend; a failure leaves the service up and not ready, with the reason."""
        async with self._lock:
            if self._started:
                return
            try:
                await self.backend.start()
            except Exception as exc:  # reported by /readyz and 503s; retried on the next request
                self._error = f"{type(exc).__name__}: {exc}"[:500]
                log.error("embedder backend failed to start", extra={"fields": {"backend": self.settings.backend,
                                                                                  "error": self._error}})
                await self.backend.close()
                return
            self._started = True

    async def close(self) -> None:
        await self.backend.close()

    async def _ensure_started(self) -> EmbedderCard:
        if not self._started:
            await self.start()
        if not self._started or self.backend.card is None:
            raise DependencyUnavailable(f"embedder model ({self.settings.backend})", self._error, self.settings.retry_after_s)
        return self.backend.card

    async def check_ready(self) -> None:
        await self._ensure_started()
        await self.backend.check_ready()

    async def card(self) -> EmbedderCard:
        return await self._ensure_started()

    @property
    def model(self) -> ModelInfo:
        return self.backend.model

    async def embed(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        await self._ensure_started()
        embeddings, species = await self.backend.embed(images)
        self.images.inc(len(images))
        return embeddings, species


def embedder_runtime(request: Request) -> EmbedderRuntime:
    """FastAPI dependency: the app's :class:`EmbedderRuntime`."""
    return request.app.state.embedder
