"""The embedder model on a Triton Inference Server, through tritonclient (gRPC or HTTP, asyncio).

uint8 images go on the wire (a 192 px crop is 110 KB, a quarter of float32) and Triton's
dynamic batching (``config.pbtxt``) gathers requests server-side, so nothing is batched here
beyond splitting a request larger than ``max_batch_size``. The model version is pinned at
startup, so every result is reported with the version that produced it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import numpy as np
import tritonclient.grpc.aio as grpc_client
import tritonclient.http.aio as http_client

from finprint.model_repository import locate_model
from finprint.problems import DependencyUnavailable
from finprint.schemas.common import ModelInfo
from services.embedder.adapters.model_files import load_card
from services.embedder.domain.batching import BatchObserver
from services.embedder.domain.model import EMBEDDING_OUTPUT, INPUT_NAME, SPECIES_OUTPUT, EmbedderCard
from services.embedder.settings import EmbedderSettings

log = logging.getLogger("finprint.embedder.triton")


class TritonBackend:
    def __init__(self, settings: EmbedderSettings, observe: BatchObserver | None = None) -> None:
        self.settings = settings
        self._observe = observe
        self._protocol = grpc_client if settings.triton_protocol == "grpc" else http_client
        self._client: Any = None
        self.model = ModelInfo(name=settings.model_name, version=settings.model_version)
        self.card: EmbedderCard | None = None

    def _new_client(self) -> Any:
        if self.settings.triton_protocol == "grpc":
            return grpc_client.InferenceServerClient(self.settings.triton_url)
        return http_client.InferenceServerClient(self.settings.triton_url, conn_timeout=self.settings.triton_timeout_s)

    async def start(self) -> None:
        """Connect, pin the version Triton serves and read its card; raises if Triton is not there."""
        self._client = self._new_client()
        metadata = await self._call(
            self._client.get_model_metadata(self.settings.model_name, self.settings.model_version, **self._json())
        )
        version = self.settings.model_version or str(max(int(v) for v in metadata["versions"]))
        self.model = ModelInfo(name=self.settings.model_name, version=version)
        files = locate_model(self.settings.model_repository, self.settings.model_name, version)
        self.card = load_card(files.card)
        (model_input,) = [i for i in metadata["inputs"] if i["name"] == INPUT_NAME]
        served_size = [int(d) for d in model_input["shape"]][1:3]
        if served_size != [self.card.input_size] * 2:
            raise RuntimeError(
                f"Triton serves {self.model.name}:{version} with input {served_size}, "
                f"but {files.card} says {self.card.input_size}: the repository copies differ"
            )
        log.info(
            "embedder model served by Triton",
            extra={"fields": {"model": f"{self.model.name}:{version}", "url": self.settings.triton_url,
                              "protocol": self.settings.triton_protocol}},
        )

    def _json(self) -> dict[str, Any]:
        return {"as_json": True} if self.settings.triton_protocol == "grpc" else {}

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def check_ready(self) -> None:
        if self._client is None or self.card is None:
            raise RuntimeError("not connected to Triton")
        if not await self._call(self._client.is_model_ready(self.model.name, self.model.version)):
            raise RuntimeError(f"Triton reports {self.model.name}:{self.model.version} not ready")

    async def _call(self, call: Any) -> Any:
        try:
            return await asyncio.wait_for(call, self.settings.triton_timeout_s)
        except TimeoutError as exc:
            raise DependencyUnavailable("triton", "timed out", self.settings.retry_after_s) from exc
        except Exception as exc:  # tritonclient, grpc and aiohttp each raise their own types
            raise DependencyUnavailable("triton", f"{type(exc).__name__}: {exc}"[:300], self.settings.retry_after_s) from exc

    async def _infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        model_input = self._protocol.InferInput(INPUT_NAME, list(images.shape), "UINT8")
        model_input.set_data_from_numpy(images)
        outputs = [self._protocol.InferRequestedOutput(EMBEDDING_OUTPUT), self._protocol.InferRequestedOutput(SPECIES_OUTPUT)]
        loop = asyncio.get_running_loop()
        started = loop.time()
        result = await self._call(
            self._client.infer(self.model.name, [model_input], model_version=self.model.version, outputs=outputs)
        )
        if self._observe is not None:
            self._observe(len(images), loop.time() - started)
        return result.as_numpy(EMBEDDING_OUTPUT), result.as_numpy(SPECIES_OUTPUT)

    async def embed(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._client is None:
            raise DependencyUnavailable("triton", "not connected", self.settings.retry_after_s)
        size = self.settings.max_batch_size
        parts = await asyncio.gather(*(self._infer(images[i : i + size]) for i in range(0, len(images), size)))
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
