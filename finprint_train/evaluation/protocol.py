"""The identification protocol: a gallery with distractors, and queries of known and new animals.

Per species, from the held-out individuals of a training run's split (never seen in training):

- each *known* individual enrols up to ``gallery_photos`` photos (one fewer than it has) and
  is queried with up to ``queries_per_individual`` of the others;
- each *new* individual (a quarter of them, as the split decided) is only queried: the right
  answer is ``new_individual``;
- the *distractor* individuals enrol up to ``distractor_photos`` photos each and are never
  queried. They are the held-out individuals of the other evaluation set (validation's for the
  test protocol, test's for validation), so they are unseen by the model too, as a real
  catalogue's other animals are; a gallery of the queried individuals alone flatters a model.

Negatives (no cetacean) are the split's held-back photos of each negatives folder.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from finprint_train.data import EvalSet, Sample, Split, SplitConfig, load_datasets, split_by_individual
from finprint_train.metrics import NEW_INDIVIDUAL

SplitName = Literal["val", "test"]
OTHER_SPLIT: dict[SplitName, SplitName] = {"val": "test", "test": "val"}

# The embedder's training data, and the split every shipped model kept unseen (seed 0).
DEFAULT_DATASETS = [
    "kaggle_humpback2019",
    "noaa_rightwhale_heads",
    "beluga_2022",
    "bottlenose_1056",
    "field_negatives",
    "imagenet_samples_negatives",
]


# Individuals scored 0.5 by their best photo and 0.5 by their photos' centroid: better than the best
# photo alone on the validation individuals of every species (docs/models.md). The matcher applies
# what the model card says; evaluations that choose a card's thresholds use this.
DEFAULT_CENTROID_WEIGHT = 0.5


@dataclass(frozen=True)
class ProtocolConfig:
    gallery_photos: int = 3
    distractor_photos: int = 2
    queries_per_individual: int = 4
    """Up to this many query photos per individual: more queries, less noise (a known individual
    keeps its gallery photos first)."""
    max_known: int | None = None
    """Keep at most this many known individuals (and new and distractor ones in proportion): the
    small version that runs in the test suite."""
    seed: int = 0


@dataclass
class GalleryIndividual:
    individual_id: str
    photos: list[Sample]
    distractor: bool


@dataclass
class SpeciesProtocol:
    species: str
    gallery: list[GalleryIndividual] = field(default_factory=list)
    queries: list[Sample] = field(default_factory=list)
    truths: list[str] = field(default_factory=list)
    """Per query: its individual id, or ``new_individual``."""

    @property
    def gallery_photos(self) -> list[tuple[Sample, str]]:
        return [(photo, ind.individual_id) for ind in self.gallery for photo in ind.photos]

    def counts(self) -> dict[str, int]:
        known = sum(not ind.distractor for ind in self.gallery)
        return {
            "known_individuals": known,
            "new_individuals": len({q.individual_id for q, t in zip(self.queries, self.truths) if t == NEW_INDIVIDUAL}),
            "distractor_individuals": len(self.gallery) - known,
            "gallery_photos": len(self.gallery_photos),
            "queries": len(self.queries),
            "new_queries": sum(t == NEW_INDIVIDUAL for t in self.truths),
        }


@dataclass
class Protocol:
    split: SplitName
    species: dict[str, SpeciesProtocol]
    negatives: dict[str, list[Sample]]
    """Held-back photos of each negatives folder, by folder name."""
    config: ProtocolConfig


def _by_individual(eval_set: EvalSet) -> tuple[dict[str, list[Sample]], set[str]]:
    photos: dict[str, list[Sample]] = defaultdict(list)
    for sample in eval_set.gallery + eval_set.queries:
        photos[sample.individual_id].append(sample)
    known = {s.individual_id for s in eval_set.gallery}
    return dict(photos), known


def _shuffled(photos: list[Sample], seed: str) -> list[Sample]:
    """The photos in an order fixed by the seed and the individual alone, so a smaller protocol's
    choices are the larger one's."""
    photos = sorted(photos, key=lambda s: s.path.name)
    random.Random(seed).shuffle(photos)
    return photos


def _limited(ids: list[str], limit: int | None) -> list[str]:
    return ids if limit is None else ids[: max(1, limit)]


def species_protocol(species: str, queried: EvalSet, distractors: EvalSet, cfg: ProtocolConfig) -> SpeciesProtocol:
    """One species' gallery and queries; photo choices are seeded, so every run sees the same ones."""
    photos, known = _by_individual(queried)
    known_ids = sorted(i for i in photos if i in known)
    new_ids = sorted(i for i in photos if i not in known)
    distractor_photos, _ = _by_individual(distractors)
    distractor_ids = sorted(distractor_photos)
    if cfg.max_known is not None:
        share = cfg.max_known / max(1, len(known_ids))
        new_ids = _limited(new_ids, round(len(new_ids) * share))
        distractor_ids = _limited(distractor_ids, round(len(distractor_ids) * share))
        known_ids = _limited(known_ids, cfg.max_known)
    out = SpeciesProtocol(species)
    for individual in known_ids:
        mine = _shuffled(photos[individual], f"{cfg.seed}:{species}:{individual}")
        # The gallery first, so that asking more queries never shrinks what the catalogue holds.
        n_gallery = min(cfg.gallery_photos, len(mine) - 1)
        queries = mine[n_gallery : n_gallery + cfg.queries_per_individual]
        out.queries += queries
        out.truths += [individual] * len(queries)
        out.gallery.append(GalleryIndividual(individual, mine[:n_gallery], False))
    for individual in new_ids:
        mine = _shuffled(photos[individual], f"{cfg.seed}:{species}:{individual}")[: cfg.queries_per_individual]
        out.queries += mine
        out.truths += [NEW_INDIVIDUAL] * len(mine)
    for individual in distractor_ids:
        mine = _shuffled(distractor_photos[individual], f"{cfg.seed}:{species}:{individual}")[: cfg.distractor_photos]
        out.gallery.append(GalleryIndividual(individual, mine, True))
    return out


def build_protocol(split: Split, which: SplitName, cfg: ProtocolConfig = ProtocolConfig()) -> Protocol:
    queried = split.test if which == "test" else split.val
    distractors = split.val if which == "test" else split.test
    species = {
        sp: species_protocol(sp, queried[sp], distractors.get(sp, EvalSet()), cfg) for sp in sorted(queried)
    }
    negatives_list = split.negatives_test if which == "test" else split.negatives_val
    negatives: dict[str, list[Sample]] = defaultdict(list)
    for sample in negatives_list:
        negatives[sample.dataset].append(sample)
    if cfg.max_known is not None:
        negatives = {k: v[: max(10, cfg.max_known)] for k, v in negatives.items()}
    return Protocol(which, species, dict(negatives), cfg)


def load_protocol(
    data_dir: Path,
    which: SplitName = "test",
    cfg: ProtocolConfig = ProtocolConfig(),
    datasets: list[str] | None = None,
    split_config: SplitConfig = SplitConfig(),
) -> Protocol:
    """The protocol on the split the shipped models were trained with (same folders, same seed)."""
    samples = load_datasets(data_dir, datasets or DEFAULT_DATASETS)
    return build_protocol(split_by_individual(samples, split_config), which, cfg)


def protocol_digest(protocol: Protocol) -> str:
    """Names one protocol's photos: two reports compare only when their digests are equal."""
    h = hashlib.sha256()
    for sp, p in sorted(protocol.species.items()):
        h.update(sp.encode())
        for photo, who in p.gallery_photos:
            h.update(f"g{photo.path.name}{who}".encode())
        for query, truth in zip(p.queries, p.truths):
            h.update(f"q{query.path.name}{truth}".encode())
    return h.hexdigest()[:12]
