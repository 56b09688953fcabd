"""Individuals scored by their best image and their images' centroid: the matcher and the offline
evaluation (``finprint_train.metrics.rank_individuals``) rank alike, on flat and IVF indexes,
through writes that move, replace and remove images."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import unit

from finprint.schemas.embeddings import EmbeddingRecord, encode_vector
from finprint_train.metrics import rank_individuals
from services.matcher.domain.gallery import Gallery, ShardOwnership
from services.matcher.domain.index import IndexPolicy
from services.matcher.domain.placement import Placement
from services.matcher.domain.ranking import IndividualScoring

KEY = {"org_id": "org-a", "species_group": "beluga", "model_version": "finprint_embedder:9"}


def record(embedding_id: str, individual_id: str | None, vector: np.ndarray, seq: int) -> EmbeddingRecord:
    return EmbeddingRecord(**KEY, embedding_id=embedding_id, individual_id=individual_id,
                           vector=encode_vector(vector), seq=seq)


def clustered(rng: np.random.Generator, individuals: int, per_individual: int, dim: int = 512) -> tuple[np.ndarray, list[str]]:
    centres = rng.standard_normal((individuals, dim))
    vectors = np.repeat(centres, per_individual, axis=0) + 1.2 * rng.standard_normal((individuals * per_individual, dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32), [f"ind-{i // per_individual}" for i in range(individuals * per_individual)]


@pytest.mark.parametrize("approximate_min_size", [10_000, 64])  # flat, then IVF probing every list
def test_matcher_ranks_as_the_offline_rule(rng: np.random.Generator, approximate_min_size: int) -> None:
    vectors, ids = clustered(rng, individuals=40, per_individual=3)
    policy = IndexPolicy(approximate_min_size=approximate_min_size, ivf_nlist=4, ivf_nprobe=4)
    g = Gallery(policy, Placement.choose("never"), ShardOwnership())
    g.upsert([record(f"e{i}", who, v, i + 1) for i, (v, who) in enumerate(zip(vectors, ids))])
    # Writes the bookkeeping must follow: an image moved to another individual, one replaced, one removed.
    ids[5] = "ind-7"
    vectors[9] = unit(rng.standard_normal(512)).astype(np.float32)
    g.upsert([record("e5", ids[5], vectors[5], 1000), record("e9", ids[9], vectors[9], 1001)])
    g.delete("e11", 1002)
    kept = [i for i in range(len(ids)) if i != 11]
    queries = vectors[[0, 20, 47, 90]] + 0.5 * rng.standard_normal((4, 512)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    for weight in (0.0, 0.5):
        expected = rank_individuals(queries, vectors[kept], [ids[i] for i in kept], weight)
        results, _ = g.search(record("q", None, queries[0], 0), queries, 5, IndividualScoring(weight))
        for got, want_ids, want_scores in zip(results, expected.ids, expected.scores):
            assert [c.individual_id for c in got] == want_ids[:5]
            assert [c.score for c in got] == pytest.approx(want_scores[:5].tolist(), abs=1e-5)


def test_the_centroid_lifts_an_individual_whose_images_all_agree(rng: np.random.Generator) -> None:
    query = unit(rng.standard_normal(512)).astype(np.float32)
    lucky = unit(query + 0.35 * unit(rng.standard_normal(512))).astype(np.float32)  # one very close image
    steady = [unit(query + 0.6 * unit(rng.standard_normal(512))).astype(np.float32) for _ in range(3)]
    noise = [unit(rng.standard_normal(512)).astype(np.float32) for _ in range(2)]
    g = Gallery(IndexPolicy(), Placement.choose("never"), ShardOwnership())
    g.upsert([record("l1", "lucky", lucky, 1), record("l2", "lucky", noise[0], 2), record("l3", "lucky", noise[1], 3)]
             + [record(f"s{i}", "steady", v, 10 + i) for i, v in enumerate(steady)])
    best_image, _ = g.search(record("q", None, query, 0), query[None], 2, IndividualScoring(0.0))
    mixed, _ = g.search(record("q", None, query, 0), query[None], 2, IndividualScoring(0.5))
    assert best_image[0][0].individual_id == "lucky"
    assert mixed[0][0].individual_id == "steady"
