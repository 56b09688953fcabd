"""``finprint calibrate``: choose a shipped embedder's ``new_individual`` thresholds on the
validation individuals, under the matcher's scoring rule, fit its calibrated probabilities there
(``probabilities.py``), and write both into its model card.

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
from finprint_train.data import SplitConfig, load_datasets, split_by_individual
from finprint_train.evaluation.calibration_report import calibration_report
from finprint_train.evaluation.duplicates import DUPLICATE_PRECISION, duplicate_calibration
from finprint_train.evaluation.offline import EMBEDDER, OfflineEmbedder
from finprint_train.evaluation.protocol import (
    DEFAULT_CENTROID_WEIGHT,
    DEFAULT_DATASETS,
    Protocol,
    ProtocolConfig,
    SpeciesProtocol,
    load_protocol,
    protocol_digest,
)
from finprint_train.evaluation.probabilities import (
    auto_accept_record,
    outcomes,
    plot_reliability,
    species_calibration,
)
from finprint_train.metrics import THRESHOLDS, Ranking, map_at_5, predictions_with_new, rank_individuals

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


def ranked(offline: OfflineEmbedder, protocol: SpeciesProtocol, centroid_weight: float) -> Ranking:
    gallery = offline.embed([photo.path for photo, _ in protocol.gallery_photos], "service")
    queries = offline.embed([q.path for q in protocol.queries], "service")
    return rank_individuals(queries, gallery, [who for _, who in protocol.gallery_photos], centroid_weight)


def curve_of(ranking: Ranking, truths: list[str]) -> SpeciesCurve:
    return SpeciesCurve(np.array([map_at_5(predictions_with_new(ranking, float(t)), truths) for t in THRESHOLDS]))


def threshold_curve(offline: OfflineEmbedder, protocol: SpeciesProtocol, centroid_weight: float) -> SpeciesCurve:
    return curve_of(ranked(offline, protocol, centroid_weight), protocol.truths)


def calibrate(repository: Path, data_dir: Path, centroid_weight: float = DEFAULT_CENTROID_WEIGHT,
              config: ProtocolConfig = ProtocolConfig(), write: bool = True,
              out_dir: Path | None = None) -> dict[str, Any]:
    """Thresholds chosen on validation, and probabilities fitted there; the card is rewritten when
    ``write``; into ``out_dir`` the reliability diagrams, the record and report.md. Returns the record."""
    offline = OfflineEmbedder(repository)
    protocols: dict[str, Protocol] = {which: load_protocol(data_dir, which, config) for which in ("val", "test")}
    rankings = {which: {sp: ranked(offline, p, centroid_weight) for sp, p in protocol.species.items()}
                for which, protocol in protocols.items()}
    curves = {which: {sp: curve_of(r, protocols[which].species[sp].truths) for sp, r in by_species.items()}
              for which, by_species in rankings.items()}
    by_species = {sp: curve.best_threshold for sp, curve in curves["val"].items()}
    overall = SpeciesCurve(np.mean([c.map5 for c in curves["val"].values()], axis=0)).best_threshold
    fits, measured, curves_accept, accepted = {}, {}, {}, {}
    for sp in rankings["test"]:
        val = outcomes(rankings["val"][sp], protocols["val"].species[sp].truths)
        test = outcomes(rankings["test"][sp], protocols["test"].species[sp].truths)
        fits[sp], measured[sp] = species_calibration(val, test)
        curves_accept[sp], accepted[sp] = auto_accept_record(val, test)
    split = split_by_individual(load_datasets(data_dir, DEFAULT_DATASETS), SplitConfig())
    duplicate_cuts, duplicates_validation, duplicates_measured = duplicate_calibration(
        offline, split.val, split.test, centroid_weight,
        max_individuals=None if config.max_known is None else 2 * config.max_known)
    record = {
        "model": offline.card.version,
        "centroid_weight": centroid_weight,
        "protocol": {"config": config.__dict__, "val": protocol_digest(protocols["val"]),
                     "test": protocol_digest(protocols["test"])},
        "new_individual_threshold": overall,
        "new_individual_thresholds_by_species": by_species,
        "probabilities": fits,
        "auto_accept": curves_accept,
        "duplicate_cuts": duplicate_cuts,
        "duplicates_validation": duplicates_validation,
        "val_map5": {sp: round(c.at(by_species[sp]), 4) for sp, c in curves["val"].items()},
        "test_map5": {sp: round(c.at(by_species[sp]), 4) for sp, c in curves["test"].items()},
        "test_calibration": {sp: {name: m["ece"] for name, m in per.items()} for sp, per in measured.items()},
        "test_auto_accept": accepted,
        "test_duplicates": duplicates_measured,
    }
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        plot_reliability(out_dir / "reliability.png", {
            sp: {name: m["reliability"] for name, m in per.items()} for sp, per in measured.items()})
        (out_dir / "calibration.json").write_text(json.dumps({**record, "test_reliability": measured}, indent=2) + "\n")
        (out_dir / "report.md").write_text(calibration_report(record))
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
    card["probability_calibration"] = {
        "method": "platt on the top candidate's score, per species",
        "by_species": record["probabilities"],
        # Auto-accept: per species, the validation precision of taking the top candidate above each
        # score cut; an organisation's precision target picks the lowest cut that reaches it.
        "auto_accept": {"method": "lowest score cut whose validation precision reaches the target",
                        "by_species": record["auto_accept"]},
    }
    # Possible duplicates: two individuals whose galleries score at least the species' cut (finprint.galleries).
    card["duplicate_calibration"] = {
        "method": "individuals split in two; the lowest gallery-pair cut from which the precision on the "
                  "validation pairs of every species together stays at the target",
        "precision_target": DUPLICATE_PRECISION, "centroid_weight": record["centroid_weight"],
        "validation": record["duplicates_validation"], "by_species": record["duplicate_cuts"],
    }
    card["calibration"] = {k: record[k] for k in ("protocol", "val_map5", "test_map5", "test_calibration",
                                                   "test_auto_accept", "test_duplicates")}
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    log.info("calibrated %s: %s", record["model"], json.dumps(record))
