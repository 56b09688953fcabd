"""The embedder model in this process through onnxruntime, with server-side micro-batching."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnxruntime as ort

from finprint.model_repository import create_session, locate_model
from finprint.schemas.common import ModelInfo
from services.embedder.adapters.model_files import load_card
from services.embedder.domain.batching import BatchObserver, MicroBatcher, Outputs
from services.embedder.domain.model import EMBEDDING_OUTPUT, INPUT_NAME, SPECIES_OUTPUT, EmbedderCard
from services.embedder.settings import EmbedderSettings


class OnnxRuntimeBackend:
    """One session; batches gathered by a :class:`MicroBatcher` run on a single inference thread
    (onnxruntime spreads one inference over the cores; concurrent runs would fight for them)."""

    def __init__(self, settings: EmbedderSettings, observe: BatchObserver | None = None) -> None:
        self.settings = settings
        self.model = ModelInfo(name=settings.model_name, version=settings.model_version)
        self.card: EmbedderCard | None = None
        self._session: ort.InferenceSession | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._batcher = MicroBatcher(self._run_batch, settings.max_batch_size, settings.batch_timeout_ms / 1000, observe)

    def _load(self) -> None:
        files = locate_model(self.settings.model_repository, self.settings.model_name, self.settings.model_version)
        card = load_card(files.card)
        session = create_session(files, self.settings)
        self.model = ModelInfo(name=self.settings.model_name, version=files.version)
        self.card, self._session = card, session

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder-inference")
        await asyncio.get_running_loop().run_in_executor(self._executor, self._load)
        self._batcher.start()

    async def close(self) -> None:
        await self._batcher.close()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def check_ready(self) -> None:
        if self._session is None:
            raise RuntimeError("model not loaded")

    def _infer(self, images: np.ndarray) -> Outputs:
        assert self._session is not None, "start() loads the session before the batcher runs"
        return tuple(self._session.run([EMBEDDING_OUTPUT, SPECIES_OUTPUT], {INPUT_NAME: images}))

    async def _run_batch(self, images: np.ndarray) -> Outputs:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._infer, images)

    async def embed(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        embeddings, species = await self._batcher.submit(images)
        return embeddings, species
