"""The detector's runtime state and the FastAPI dependency that hands it to routes."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from fastapi import Request

from finprint.metrics import ServiceMetrics
from finprint.problems import DependencyUnavailable
from services.detector.adapters.onnx_runtime import OnnxDetector
from services.detector.domain.detection import DetectorOutput
from services.detector.settings import DetectorSettings

log = logging.getLogger("finprint.detector")


class DetectorRuntime:
    """The loaded model, the thread its inferences run on, and the detector's metrics.

    One inference thread: onnxruntime already spreads one inference over the cores, and
    concurrent sessions would only fight for them. Decoding runs on other threads meanwhile.
    """

    def __init__(self, settings: DetectorSettings, metrics: ServiceMetrics) -> None:
        self.settings = settings
        self._detector: OnnxDetector | None = None
        self.load_error: str | None = "not loaded yet"
        self._lock = asyncio.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="detector-inference")
        self.latency = metrics.histogram("finprint_detector_inference_seconds", "Detector model inference time.")
        self.photos = metrics.counter(
            "finprint_detector_photos_total", "Photos examined, by result (cetacean, no_cetacean).", ("result",)
        )
        self.rejected = metrics.counter(
            "finprint_detector_rejected_images_total", "Uploads refused before inference, by reason.", ("reason",)
        )

    async def load(self) -> None:
        """Load the model off the event loop; a failure leaves the service up, not ready, and
        the next request or readiness probe tries again (the model may be copied in later)."""
        async with self._lock:
            if self._detector is not None:
                return
            try:
                self._detector = await asyncio.get_running_loop().run_in_executor(
                    self._executor, OnnxDetector, self.settings
                )
                self.load_error = None
            except Exception as exc:  # any failure to load is reported by /readyz and 503s
                self.load_error = f"{type(exc).__name__}: {exc}"[:500]
                log.error("detector model failed to load", extra={"fields": {"error": self.load_error}})

    async def start(self) -> None:
        await self.load()

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def loaded(self) -> OnnxDetector:
        """The model, loading it if an earlier attempt failed; 503 while it cannot be loaded."""
        if self._detector is None:
            await self.load()
        if self._detector is None:
            raise DependencyUnavailable("detector model", self.load_error or "not loaded", self.settings.retry_after_s)
        return self._detector

    async def check_ready(self) -> None:
        await self.loaded()

    async def infer(self, detector: OnnxDetector, pixels: np.ndarray) -> DetectorOutput:
        started = time.perf_counter()
        output = await asyncio.get_running_loop().run_in_executor(self._executor, detector.detect, pixels)
        self.latency.observe(time.perf_counter() - started)
        return output


def detector_runtime(request: Request) -> DetectorRuntime:
    """FastAPI dependency: the app's :class:`DetectorRuntime`."""
    return request.app.state.detector
