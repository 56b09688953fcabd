"""``finprint calibrate``: choose a shipped embedder's ``new_individual`` thresholds on the
validation individuals, under the matcher's scoring rule, and write them into its model card.

Runs the ONNX model (onnxruntime, photos decoded as the gateway decodes them) on the validation
protocol (``protocol.py``: a gallery with distractor individuals), so what is chosen is what the
product will apply; the test protocol is scored with the chosen thresholds, for the record, and
never used to choose.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from finprint.model_repository import locate_model
from finprint_train.evaluation.offline import EMBEDDER, OfflineEmbedder
from finprint_train.evaluation.protocol import (
    DEFAULT_CENTROID_WEIGHT,
    Protocol,
    ProtocolConfig,
    SpeciesProtocol,
    load_protocol,
    protocol_digest,
)
from finprint_train.metrics import THRESHOLDS, map_at_5, predictions_with_new, rank_individuals

log = logging.getLogger("finprint.evaluation")


@dataclass(frozen=True)
class SpeciesCurve:
    """MAP@5 at every candidate threshold."""

    map5: np.ndarray

    @property
    def best_threshold(self) -> float:
        return float(THRESHOLDS[int(np.argmax(self.map5))])

    def at(self, threshold: float) -> float:
        return float(self.map5[int(np.argmin(np.abs(THRESHOLDS - threshold)))])


def threshold_curve(offline: OfflineEmbedder, protocol: SpeciesProtocol, centroid_weight: float) -> SpeciesCurve:
    gallery = offline.embed([photo.path for photo, _ in protocol.gallery_photos], "service")
    queries = offline.embed([q.path for q in protocol.queries], "service")
    ranking = rank_individuals(queries, gallery, [who for _, who in protocol.gallery_photos], centroid_weight)
    return SpeciesCurve(np.array([map_at_5(predictions_with_new(ranking, float(t)), protocol.truths)
                                  for t in THRESHOLDS]))


def calibrate(repository: Path, data_dir: Path, centroid_weight: float = DEFAULT_CENTROID_WEIGHT,
              config: ProtocolConfig = ProtocolConfig(), write: bool = True) -> dict[str, Any]:
    """Thresholds chosen on validation; the card is rewritten when ``write``. Returns the record."""
    offline = OfflineEmbedder(repository)
    protocols: dict[str, Protocol] = {which: load_protocol(data_dir, which, config) for which in ("val", "test")}
    before = offline.card
    curves = {which: {sp: threshold_curve(offline, p, centroid_weight) for sp, p in protocol.species.items()}
              for which, protocol in protocols.items()}
    by_species = {sp: curve.best_threshold for sp, curve in curves["val"].items()}
    overall = SpeciesCurve(np.mean([c.map5 for c in curves["val"].values()], axis=0)).best_threshold
    record = {
        "model": before.version,
        "centroid_weight": centroid_weight,
        "protocol": {"config": config.__dict__, "val": protocol_digest(protocols["val"]),
                     "test": protocol_digest(protocols["test"])},
        "new_individual_threshold": overall,
        "new_individual_thresholds_by_species": by_species,
        "val_map5": {sp: round(c.at(by_species[sp]), 4) for sp, c in curves["val"].items()},
        "test_map5": {sp: round(c.at(by_species[sp]), 4) for sp, c in curves["test"].items()},
    }
    if write:
        write_card(repository, record)
    return record


def write_card(repository: Path, record: dict[str, Any]) -> None:
    """The thresholds, the scoring rule and how they were chosen, into the embedder's finprint.json."""
    card_path = locate_model(repository, EMBEDDER).card
    card = json.loads(card_path.read_text())
    card["new_individual_threshold"] = record["new_individual_threshold"]
    card["new_individual_thresholds_by_species"] = record["new_individual_thresholds_by_species"]
    card["individual_scoring"] = {"centroid_weight": record["centroid_weight"]}
    card["calibration"] = {k: record[k] for k in ("protocol", "val_map5", "test_map5")}
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    log.info("calibrated %s: %s", record["model"], json.dumps(record))
