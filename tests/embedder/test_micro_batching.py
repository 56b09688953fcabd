"""The micro-batcher on its own: concurrent submissions share calls, big ones split, failures reach everyone."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from services.embedder.domain.batching import MicroBatcher, Outputs


class RecordingModel:
    """Doubles each image's first pixel and remembers the batch sizes it was called with."""

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[int] = []
        self.fail = fail

    async def __call__(self, images: np.ndarray) -> Outputs:
        self.batches.append(len(images))
        await asyncio.sleep(0.01)
        if self.fail:
            raise RuntimeError("model exploded")
        return (images[:, 0, 0, 0].astype(np.float32) * 2, images[:, 0, 0, 1].astype(np.float32))


def _images(first: int, count: int) -> np.ndarray:
    images = np.zeros((count, 2, 2, 3), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(first, first + count)
    return images


async def _running(model: RecordingModel, max_batch_size: int, max_wait_s: float) -> MicroBatcher:
    batcher = MicroBatcher(model, max_batch_size, max_wait_s)
    batcher.start()
    return batcher


async def test_concurrent_submissions_share_one_call_and_get_their_own_rows() -> None:
    model = RecordingModel()
    batcher = await _running(model, max_batch_size=32, max_wait_s=0.2)
    results = await asyncio.gather(*(batcher.submit(_images(10 * i, 3)) for i in range(5)))
    await batcher.close()
    assert model.batches == [15]
    for i, (doubled, _) in enumerate(results):
        np.testing.assert_array_equal(doubled, np.arange(10 * i, 10 * i + 3) * 2)


async def test_batches_never_exceed_the_limit_and_large_requests_are_split() -> None:
    model = RecordingModel()
    batcher = await _running(model, max_batch_size=4, max_wait_s=0.05)
    big, small = await asyncio.gather(batcher.submit(_images(0, 10)), batcher.submit(_images(100, 3)))
    await batcher.close()
    assert max(model.batches) <= 4
    assert sum(model.batches) == 13
    np.testing.assert_array_equal(big[0], np.arange(10) * 2)
    np.testing.assert_array_equal(small[0], np.arange(100, 103) * 2)


async def test_a_lone_request_waits_at_most_the_batch_timeout() -> None:
    model = RecordingModel()
    batcher = await _running(model, max_batch_size=32, max_wait_s=0.0)
    doubled, _ = await batcher.submit(_images(7, 1))
    await batcher.close()
    assert model.batches == [1]
    assert doubled.tolist() == [14.0]


async def test_a_model_failure_reaches_every_waiting_request_and_the_batcher_goes_on() -> None:
    model = RecordingModel(fail=True)
    batcher = await _running(model, max_batch_size=32, max_wait_s=0.05)
    outcomes = await asyncio.gather(*(batcher.submit(_images(i, 1)) for i in range(3)), return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    model.fail = False
    doubled, _ = await batcher.submit(_images(5, 1))
    await batcher.close()
    assert doubled.tolist() == [10.0]


async def test_a_caller_that_gives_up_does_not_disturb_the_others() -> None:
    model = RecordingModel()
    batcher = await _running(model, max_batch_size=32, max_wait_s=0.1)
    impatient = asyncio.create_task(batcher.submit(_images(0, 2)))
    patient = asyncio.create_task(batcher.submit(_images(50, 2)))
    await asyncio.sleep(0)
    impatient.cancel()
    doubled, _ = await patient
    await batcher.close()
    assert doubled.tolist() == [100.0, 102.0]
    with pytest.raises(asyncio.CancelledError):
        await impatient
