"""Searches go on while the index is written to, and while it is rebuilt as another kind."""

from __future__ import annotations

import threading

import numpy as np
from conftest import near, unit

from finprint.schemas.embeddings import IndexKey
from services.matcher.domain.index import IndexedImage, IndexPolicy, VectorIndex
from services.matcher.domain.placement import Placement

KEY = IndexKey(org_id="org-a", species_group="humpback_whale", model_version="finprint_embedder:1")


def test_searches_run_while_writes_and_a_flat_to_ivf_rebuild_happen(rng: np.random.Generator) -> None:
    centers = [unit(rng.standard_normal(512)) for _ in range(300)]
    images = [
        IndexedImage(f"e-{i:05d}", f"ind-{i % 300}", near(centers[i % 300], 0.8, rng), 1) for i in range(3000)
    ]
    index = VectorIndex(KEY, IndexPolicy(approximate_min_size=1500), Placement.choose("never"))
    index.upsert_many(images[:300])  # every individual once: from here on ind-0 is always findable
    queries = np.stack([near(centers[0], 0.9, rng) for _ in range(8)])
    writing = threading.Event()
    writing.set()
    failures: list[BaseException] = []
    tops: list[str] = []

    def search_until_done() -> None:
        try:
            while writing.is_set():
                tops.extend(r[0].individual_id for r in index.search(queries, 5))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    readers = [threading.Thread(target=search_until_done) for _ in range(2)]
    for reader in readers:
        reader.start()
    for start in range(300, 3000, 100):
        index.upsert_many(images[start : start + 100])
        index.remove_many([f"e-{i:05d}" for i in range(start, start + 100, 10)])
    writing.clear()
    for reader in readers:
        reader.join()

    assert not failures, failures
    assert tops and set(tops) == {"ind-0"}
    assert index.kind == "ivf" and index.size == 3000 - 270
