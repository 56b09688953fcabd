"""Server-side micro-batching: concurrent requests share one inference call.

Requests put their images on a queue; one worker takes what is waiting, waits at most
``max_wait_s`` for more, up to ``max_batch_size`` images, runs the model once (off the event
loop) and hands each request its rows. A request larger than the batch size is split.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

Outputs = tuple[np.ndarray, ...]
RunBatch = Callable[[np.ndarray], Awaitable[Outputs]]
BatchObserver = Callable[[int, float], None]
"""Called with (images in the batch, seconds the inference took)."""


@dataclass
class _Pending:
    images: np.ndarray
    done: asyncio.Future[Outputs] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class MicroBatcher:
    def __init__(self, run: RunBatch, max_batch_size: int, max_wait_s: float,
                 observe: BatchObserver | None = None) -> None:
        self._run = run
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self._observe = observe
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._held: _Pending | None = None  # taken from the queue but did not fit the last batch
        self._worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._worker = asyncio.create_task(self._work(), name="embedder-micro-batcher")

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        for pending in self._drain():
            pending.done.cancel()

    async def submit(self, images: np.ndarray) -> Outputs:
        """The model's outputs for ``images``, computed in shared batches."""
        if self._worker is None or self._worker.done():
            raise RuntimeError("the micro-batcher is not running")
        chunks = [images[i : i + self.max_batch_size] for i in range(0, len(images), self.max_batch_size)]
        pendings = [_Pending(chunk) for chunk in chunks]
        for pending in pendings:
            self._queue.put_nowait(pending)
        parts = await asyncio.gather(*(p.done for p in pendings))
        return tuple(np.concatenate([part[i] for part in parts]) for i in range(len(parts[0])))

    def _drain(self) -> list[_Pending]:
        drained = [self._held] if self._held else []
        self._held = None
        while not self._queue.empty():
            drained.append(self._queue.get_nowait())
        return drained

    async def _next_batch(self) -> list[_Pending]:
        first = self._held or await self._queue.get()
        self._held = None
        batch, count = [first], len(first.images)
        deadline = time.monotonic() + self.max_wait_s
        while count < self.max_batch_size:
            try:
                if self._queue.empty():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                else:
                    item = self._queue.get_nowait()
            except TimeoutError:
                break
            if count + len(item.images) > self.max_batch_size:
                self._held = item
                break
            batch.append(item)
            count += len(item.images)
        return batch

    async def _work(self) -> None:
        while True:
            batch = [p for p in await self._next_batch() if not p.done.done()]  # callers may have gone
            if not batch:
                continue
            images = batch[0].images if len(batch) == 1 else np.concatenate([p.images for p in batch])
            started = time.perf_counter()
            try:
                outputs = await self._run(images)
            except Exception as exc:  # the model failed: every waiting request gets the error
                for pending in batch:
                    if not pending.done.done():
                        pending.done.set_exception(exc)
                continue
            if self._observe is not None:
                self._observe(len(images), time.perf_counter() - started)
            offset = 0
            for pending in batch:
                n = len(pending.images)
                if not pending.done.done():
                    pending.done.set_result(tuple(output[offset : offset + n] for output in outputs))
                offset += n
