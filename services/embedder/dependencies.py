"""The embedder's runtime: the chosen backend, its metrics, and the FastAPI dependency for routes."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
from fastapi import Request

from finprint.metrics import ServiceMetrics
from finprint.problems import DependencyUnavailable, Problem
from finprint.schemas.common import ModelInfo
from services.embedder.domain.batching import BatchObserver
from services.embedder.domain.model import EmbedderCard, EmbeddingBackend
from services.embedder.settings import EmbedderSettings

log = logging.getLogger("finprint.embedder")
BATCH_BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 128)


def batch_observer(metrics: ServiceMetrics) -> BatchObserver:
    """Records each inference call's batch size and time (one set of metrics for every served version)."""
    batch_sizes = metrics.histogram(
        "finprint_embedder_batch_size", "Images per inference call sent to the model.", buckets=BATCH_BUCKETS
    )
    latency = metrics.histogram("finprint_embedder_inference_seconds", "Time of one inference call.")

    def observe(images: int, seconds: float) -> None:
        batch_sizes.observe(images)
        latency.observe(seconds)

    return observe


def create_backend(settings: EmbedderSettings, observe: BatchObserver) -> EmbeddingBackend:
    # Each backend's dependencies are imported only when chosen: a CPU node needs no tritonclient.
    if settings.backend == "triton":
        from services.embedder.adapters.triton import TritonBackend

        return TritonBackend(settings, observe)
    from services.embedder.adapters.onnx_runtime import OnnxRuntimeBackend

    return OnnxRuntimeBackend(settings, observe)


class ModelNotServed(Problem):
    def __init__(self, requested: str, served: list[str]) -> None:
        super().__init__(404, f"model version {requested!r} is not served here; served: {served}",
                         slug="model-version-not-served", served_versions=served)


class ServedModel:
    """One model version's backend, started again on demand while it is not up (Triton may come later)."""

    def __init__(self, settings: EmbedderSettings, observe: BatchObserver) -> None:
        self.settings = settings
        self.backend = create_backend(settings, observe)
        self._started = False
        self._error = "not started yet"
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Start the backend; a failure leaves the service up and not ready, with the reason."""
        async with self._lock:
            if self._started:
                return
            try:
                await self.backend.start()
            except Exception as exc:  # reported by /readyz and 503s; retried on the next request
                self._error = f"{type(exc).__name__}: {exc}"[:500]
                log.error("embedder backend failed to start", extra={"fields": {
                    "backend": self.settings.backend, "model_version": self.settings.model_version or "latest",
                    "error": self._error}})
                await self.backend.close()
                return
            self._started = True

    async def card(self) -> EmbedderCard:
        if not self._started:
            await self.start()
        if not self._started or self.backend.card is None:
            raise DependencyUnavailable(f"embedder model ({self.settings.backend})", self._error,
                                        self.settings.retry_after_s)
        return self.backend.card

    @property
    def model(self) -> ModelInfo:
        return self.backend.model


class EmbedderRuntime:
    """The served model versions: the default one, and ``extra_model_versions`` beside it (the version
    a re-embedding moves the catalogue to, or the one a rollback returns to)."""

    def __init__(self, settings: EmbedderSettings, metrics: ServiceMetrics) -> None:
        self.settings = settings
        observe = batch_observer(metrics)
        self.default = ServedModel(settings, observe)
        self.extra = [ServedModel(settings.model_copy(update={"model_version": version}), observe)
                      for version in settings.extra_model_versions]
        self.images = metrics.counter("finprint_embedder_images_total", "Images embedded, by model version.",
                                      ("model_version",))
        self.rejected = metrics.counter(
            "finprint_embedder_rejected_images_total", "Image parts refused before inference, by reason.", ("reason",)
        )

    @property
    def served(self) -> list[ServedModel]:
        return [self.default, *self.extra]

    async def start(self) -> None:
        for served in self.served:
            await served.start()

    async def close(self) -> None:
        for served in self.served:
            await served.backend.close()

    async def check_ready(self) -> dict[str, list[str]]:
        for served in self.served:
            await served.card()
            await served.backend.check_ready()
        return {"served_versions": [served.model.key for served in self.served]}

    def select(self, model_version: str | None) -> ServedModel:
        """The served model of ``model_version`` (its number, or ``name:number``); None: the default."""
        if model_version is None:
            return self.default
        number = model_version.rsplit(":", 1)[-1]
        for served in self.served:
            if served.model.version == number and model_version in {number, served.model.key}:
                return served
        raise ModelNotServed(model_version, [s.model.key for s in self.served])

    async def embed(self, served: ServedModel, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        await served.card()
        embeddings, species = await served.backend.embed(images)
        self.images.labels(served.model.key).inc(len(images))
        return embeddings, species


def embedder_runtime(request: Request) -> EmbedderRuntime:
    """FastAPI dependency: the app's :class:`EmbedderRuntime`."""
    return request.app.state.embedder
