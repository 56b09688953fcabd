"""Turning the services' answers into the public identify result.

Pure functions: no HTTP here. The matcher speaks in catalogue ids; partners see catalogue codes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from finprint.schemas.common import SpeciesScore
from finprint.schemas.detector import Detection
from finprint.schemas.gateway import IdentifyCandidate, IdentifyResult
from finprint.schemas.matcher import NEW_INDIVIDUAL, QueryResult

NOT_CETACEAN = "not_cetacean"
RANKING_LENGTH = 5


def species_group(species: Sequence[SpeciesScore]) -> str:
    """The index an animal is searched in: its most probable cetacean species."""
    for score in species:
        if score.species != NOT_CETACEAN:
            return score.species
    raise ValueError("the model returned no cetacean species")


def public_ranking(match: QueryResult | None, codes: Mapping[str, str]) -> list[str]:
    """The matcher's ranking in catalogue codes; with no index yet, the animal is simply new."""
    if match is None:
        return [NEW_INDIVIDUAL]
    return [label if label == NEW_INDIVIDUAL else codes.get(label, label) for label in match.ranking][:RANKING_LENGTH]


def public_candidates(match: QueryResult | None, codes: Mapping[str, str],
                      names: Mapping[str, str | None]) -> list[IdentifyCandidate]:
    """The matcher's candidates as partners see them: catalogue codes and names."""
    return [] if match is None else [
        IdentifyCandidate(individual_id=codes.get(c.individual_id, c.individual_id), score=round(c.score, 6),
                          name=names.get(c.individual_id))
        for c in match.candidates[:RANKING_LENGTH]
    ]


def identify_result(
    detection: Detection,
    species: Sequence[SpeciesScore],
    match: QueryResult | None,
    codes: Mapping[str, str],
    names: Mapping[str, str | None],
    model_version: str | None = None,
) -> IdentifyResult:
    return IdentifyResult(
        box=[float(v) for v in detection.box],
        view=detection.view,
        detection_score=detection.score,
        species=list(species),
        candidates=public_candidates(match, codes, names),
        new_individual=1.0 if match is None else match.new_individual,
        top_candidate_probability=None if match is None else match.top_candidate_probability,
        ranking=public_ranking(match, codes),
        model_version=model_version,
    )


def fused_embedding(vectors: Sequence[np.ndarray]) -> np.ndarray:
    """One embedding for photos of one animal: the normalised mean of their unit vectors.

    Measured on the validation and test individuals (docs/models.md), searching with the mean of an
    encounter's photos ranks the animal far better than any one of its photos does.
    """
    mean = np.mean(np.stack(vectors), axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)


def mean_species(per_photo: Sequence[Sequence[SpeciesScore]]) -> list[SpeciesScore]:
    """Species probabilities averaged over photos, best first."""
    totals: dict[str, float] = defaultdict(float)
    for scores in per_photo:
        for score in scores:
            totals[score.species] += score.score / len(per_photo)
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    return [SpeciesScore(species=name, score=min(1.0, round(value, 6))) for name, value in ranked]
