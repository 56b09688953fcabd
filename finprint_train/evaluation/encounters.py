"""Encounter-level identification through the API: several photos of one animal, one answer.

The protocol's queries are grouped into encounters: a known or new individual's query photos of one
encounter (belugas carry an ``encounter_id``; the other sets do not, so an individual's query photos
stand for one encounter). Each encounter of two or more photos is sent to ``POST
/v1/encounters:identify``; its fused ranking is scored against the single-photo rankings of the same
photos (``POST /v1/identify``, already made by the protocol's run).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from typing import Any

from finprint_train.evaluation.api import ApiEvaluation, SpeciesAnswers, with_retries
from finprint_train.evaluation.protocol import SpeciesProtocol
from finprint_train.evaluation.scoring import score
from finprint_train.metrics import NEW_INDIVIDUAL


def encounter_of(data_dir: Path) -> dict[str, str]:
    """Photo name -> encounter id, for the sets whose labels say so."""
    encounters: dict[str, str] = {}
    for labels in data_dir.glob("*/labels.csv"):
        with open(labels, newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get("encounter_id"):
                    encounters[row["image"]] = row["encounter_id"]
    return encounters


def encounter_groups(protocol: SpeciesProtocol, encounters: dict[str, str]) -> list[list[int]]:
    """Query positions grouped by (individual, encounter); only groups of two or more photos."""
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for position, query in enumerate(protocol.queries):
        groups[(query.individual_id, encounters.get(query.path.name, ""))].append(position)
    return [g for g in groups.values() if len(g) >= 2]


def measure(api: ApiEvaluation, protocol: SpeciesProtocol, answers: SpeciesAnswers,
            encounters: dict[str, str]) -> dict[str, Any]:
    """MAP@5 of one photo at a time against one fused answer per encounter, on the same photos."""
    groups = encounter_groups(protocol, encounters)
    codes = api.individual_of_code(protocol)

    def fused_ranking(group: list[int]) -> list[str]:
        response = with_retries(lambda: api.client.identify_encounter([protocol.queries[i].path for i in group]))
        if response.fused is None:
            return []
        return [label if label == NEW_INDIVIDUAL else codes.get(label, label) for label in response.fused.ranking]

    fused = api.map(fused_ranking, groups)
    photos = [i for g in groups for i in g]
    return {
        "encounters": len(groups),
        "photos": len(photos),
        "single_photo": score([answers.queries[i].ranking for i in photos], [protocol.truths[i] for i in photos]).as_dict(),
        "encounter": score(fused, [protocol.truths[g[0]] for g in groups]).as_dict(),
    }
