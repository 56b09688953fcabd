"""Search ranks INDIVIDUALS by their best image, and says where "new individual" belongs."""

from __future__ import annotations

import numpy as np
from conftest import near, unit

from finprint.schemas.embeddings import EmbeddingRecord, encode_vector
from finprint.schemas.matcher import NEW_INDIVIDUAL
from services.matcher.domain.gallery import Gallery, ShardOwnership
from services.matcher.domain.index import IndexPolicy
from services.matcher.domain.placement import Placement
from services.matcher.domain.ranking import IndividualScore, NewIndividualRule

KEY = {"org_id": "org-a", "species_group": "humpback_whale", "model_version": "finprint_embedder:1"}


def record(embedding_id: str, individual_id: str | None, vector: np.ndarray, seq: int = 1) -> EmbeddingRecord:
    return EmbeddingRecord(
        **KEY, embedding_id=embedding_id, individual_id=individual_id, vector=encode_vector(vector), seq=seq
    )


def gallery(policy: IndexPolicy | None = None) -> Gallery:
    return Gallery(policy or IndexPolicy(), Placement.choose("never"), ShardOwnership())


def search(g: Gallery, query: np.ndarray, k: int) -> list[IndividualScore]:
    results, _ = g.search(record("q", None, query), query[None, :], k)
    return results[0]


def test_two_images_of_one_individual_count_once(rng: np.random.Generator) -> None:
    query = unit(rng.standard_normal(512))
    g = gallery()
    g.upsert(
        [
            record("a-1", "ind-a", near(query, 0.95, rng)),
            record("a-2", "ind-a", near(query, 0.90, rng)),
            record("b-1", "ind-b", near(query, 0.80, rng)),
            record("c-1", "ind-c", near(query, 0.30, rng)),
        ]
    )

    ranked = search(g, query, k=3)

    assert [c.individual_id for c in ranked] == ["ind-a", "ind-b", "ind-c"]
    assert ranked[0].best_embedding_id == "a-1"
    assert abs(ranked[0].score - 0.95) < 1e-5  # the individual's BEST image, not an average


def test_search_widens_until_it_finds_k_individuals(rng: np.random.Generator) -> None:
    # One individual with far more close images than the first FAISS request asks for.
    query = unit(rng.standard_normal(512))
    g = gallery(IndexPolicy(min_search_width=8))
    g.upsert([record(f"a-{i}", "ind-a", near(query, 0.9, rng)) for i in range(200)])
    g.upsert([record("b-1", "ind-b", near(query, 0.5, rng)), record("c-1", "ind-c", near(query, 0.4, rng))])

    ranked = search(g, query, k=3)

    assert [c.individual_id for c in ranked] == ["ind-a", "ind-b", "ind-c"]


def test_fewer_individuals_than_k_returns_them_all(rng: np.random.Generator) -> None:
    query = unit(rng.standard_normal(512))
    g = gallery()
    g.upsert([record("a-1", "ind-a", near(query, 0.9, rng)), record("a-2", "ind-a", near(query, 0.8, rng))])

    assert [c.individual_id for c in search(g, query, k=5)] == ["ind-a"]


def test_batch_search_answers_each_query_in_order(rng: np.random.Generator) -> None:
    centers = [unit(rng.standard_normal(512)) for _ in range(3)]
    g = gallery()
    g.upsert([record(f"e-{i}", f"ind-{i}", near(c, 0.9, rng)) for i, c in enumerate(centers)])

    results, _ = g.search(record("q", None, centers[0]), np.stack(centers[::-1]), 1)

    assert [r[0].individual_id for r in results] == ["ind-2", "ind-1", "ind-0"]


def test_approximate_index_keeps_the_exact_ranking(rng: np.random.Generator) -> None:
    """Past approximate_min_size the index goes IVF; recall@5 of individuals vs exact stays >= 0.99.

    Individuals belong to populations (as embeddings of one species and viewpoint do), which is
    the structure the inverted lists exploit; see bench/bench_matcher.py for the measurements.
    """
    populations = [unit(rng.standard_normal(512)) for _ in range(16)]
    centers = [near(populations[i % 16], 0.55, rng) for i in range(800)]
    records = [record(f"e-{i:05d}", f"ind-{i % 800}", near(centers[i % 800], 0.7, rng)) for i in range(4000)]
    exact, approximate = gallery(), gallery(IndexPolicy(approximate_min_size=2000, ivf_nprobe=16))
    exact.load_records(records)
    approximate.load_records(records)
    queries = np.stack([near(centers[i], 0.7, rng) for i in range(200)])

    exact_results, exact_info = exact.search(records[0], queries, 5)
    approx_results, approx_info = approximate.search(records[0], queries, 5)

    assert (exact_info.kind, approx_info.kind) == ("flat", "ivf")
    overlap = [
        len({c.individual_id for c in a} & {c.individual_id for c in e}) / 5
        for a, e in zip(approx_results, exact_results)
    ]
    assert np.mean(overlap) >= 0.99


def test_approximate_index_deletes_and_replaces_in_place(rng: np.random.Generator) -> None:
    centers = [unit(rng.standard_normal(512)) for _ in range(300)]
    g = gallery(IndexPolicy(approximate_min_size=1000))
    g.load_records(
        [record(f"e-{i:05d}", f"ind-{i % 300}", near(centers[i % 300], 0.7, rng)) for i in range(1500)]
    )
    assert g.infos()[0].kind == "ivf"

    g.delete("e-00000", None)
    g.upsert([record("e-00300", "ind-renamed", near(centers[0], 0.99, rng), seq=2)])

    ranked = search(g, centers[0], k=2)
    assert ranked[0].individual_id == "ind-renamed"
    assert "e-00000" not in {c.best_embedding_id for c in ranked}
    assert g.infos()[0].size == 1499


class TestNewIndividualRule:
    rule = NewIndividualRule(threshold=0.6, temperature=0.05)

    @staticmethod
    def scores(*values: float) -> list[IndividualScore]:
        return [IndividualScore(f"ind-{i}", v, f"e-{i}") for i, v in enumerate(values)]

    def test_new_individual_goes_where_the_similarity_falls_below_the_threshold(self) -> None:
        assert self.rule.ranking(self.scores(0.8, 0.55, 0.5, 0.4, 0.3), 5) == [
            "ind-0",
            NEW_INDIVIDUAL,
            "ind-1",
            "ind-2",
            "ind-3",
        ]

    def test_new_individual_comes_first_when_nothing_is_close(self) -> None:
        assert self.rule.ranking(self.scores(0.5, 0.4, 0.3, 0.2, 0.1), 5)[0] == NEW_INDIVIDUAL

    def test_new_individual_is_left_out_when_k_individuals_clear_the_threshold(self) -> None:
        assert NEW_INDIVIDUAL not in self.rule.ranking(self.scores(0.9, 0.8, 0.7, 0.65, 0.61), 5)

    def test_new_individual_follows_a_short_list_of_confident_matches(self) -> None:
        assert self.rule.ranking(self.scores(0.9), 5) == ["ind-0", NEW_INDIVIDUAL]

    def test_probability_is_one_half_at_the_threshold_and_falls_with_similarity(self) -> None:
        assert abs(self.rule.probability(0.6) - 0.5) < 1e-9
        assert self.rule.probability(0.4) > 0.95
        assert self.rule.probability(0.8) < 0.05
        assert self.rule.probability(None) == 1.0
