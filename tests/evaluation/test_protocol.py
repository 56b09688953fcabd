"""The identification protocol on the real split: what a gallery and its queries may and may not hold."""

from __future__ import annotations

from pathlib import Path

import pytest

from finprint_train.evaluation.protocol import Protocol, ProtocolConfig, load_protocol, protocol_digest
from finprint_train.data import SplitConfig, load_datasets, split_by_individual
from finprint_train.evaluation.protocol import DEFAULT_DATASETS
from finprint_train.metrics import NEW_INDIVIDUAL


@pytest.fixture(scope="module")
def protocols(shared_data: Path) -> dict[str, Protocol]:
    return {which: load_protocol(shared_data, which) for which in ("val", "test")}


def test_every_species_has_known_new_and_distractor_individuals(protocols: dict[str, Protocol]) -> None:
    for protocol in protocols.values():
        assert set(protocol.species) == {"beluga", "humpback_whale", "north_atlantic_right_whale"}
        for sp in protocol.species.values():
            counts = sp.counts()
            assert counts["known_individuals"] >= 20 and counts["new_individuals"] >= 5
            assert counts["distractor_individuals"] >= counts["known_individuals"]
            assert 0.15 < counts["new_queries"] / counts["queries"] < 0.35


def test_queries_never_meet_their_own_photo_and_new_ones_are_absent(protocols: dict[str, Protocol]) -> None:
    for sp in protocols["test"].species.values():
        gallery_photos = {photo.path for photo, _ in sp.gallery_photos}
        gallery_ids = {ind.individual_id for ind in sp.gallery}
        distractors = {ind.individual_id for ind in sp.gallery if ind.distractor}
        assert not gallery_photos & {q.path for q in sp.queries}
        for query, truth in zip(sp.queries, sp.truths):
            assert query.species == sp.species
            if truth == NEW_INDIVIDUAL:
                assert query.individual_id not in gallery_ids
            else:
                assert truth == query.individual_id and truth in gallery_ids and truth not in distractors
        assert all(len(ind.photos) <= (2 if ind.distractor else 3) for ind in sp.gallery)


def test_distractors_are_the_other_splits_individuals_and_none_trained(shared_data: Path,
                                                                       protocols: dict[str, Protocol]) -> None:
    split = split_by_individual(load_datasets(shared_data, DEFAULT_DATASETS), SplitConfig())
    trained = {(s.species, s.individual_id) for s in split.train if s.individual_id}
    for which, other in (("test", "val"), ("val", "test")):
        for name, sp in protocols[which].species.items():
            held = split.val if other == "val" else split.test
            others = {s.individual_id for s in held[name].gallery + held[name].queries}
            distractors = {ind.individual_id for ind in sp.gallery if ind.distractor}
            assert distractors == others
            everyone = {ind.individual_id for ind in sp.gallery} | {q.individual_id for q in sp.queries}
            assert not {(name, i) for i in everyone} & trained


def test_the_same_protocol_every_run_and_a_smaller_one_is_a_subset(shared_data: Path,
                                                                  protocols: dict[str, Protocol]) -> None:
    again = load_protocol(shared_data, "test")
    assert protocol_digest(again) == protocol_digest(protocols["test"])
    small = load_protocol(shared_data, "test", ProtocolConfig(max_known=10))
    for name, sp in small.species.items():
        assert sp.counts()["known_individuals"] == 10
        full_queries = {q.path for q in protocols["test"].species[name].queries}
        assert {q.path for q in sp.queries} <= full_queries
    assert protocol_digest(small) != protocol_digest(protocols["test"])
