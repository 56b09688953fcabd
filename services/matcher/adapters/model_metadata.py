"""The new-individual threshold calibrated with the embedder, read from its finprint.json."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from services.matcher.domain.calibration import calibration_from_card
from services.matcher.domain.thresholds import ModelThresholds

log = logging.getLogger("finprint.matcher.model")

EMBEDDER_MODEL = "finprint_embedder"


def load_model_thresholds(model_repository: Path, fallback: float, temperature: float) -> ModelThresholds:
    """``new_individual_threshold`` and ``new_individual_thresholds_by_species`` of the embedder model.

    Without the file (no model exported yet) the fallback applies and a warning says so: the
    matcher still serves, with a threshold nobody calibrated.
    """
    path = Path(model_repository) / EMBEDDER_MODEL / "finprint.json"
    try:
        metadata = json.loads(path.read_text())
    except FileNotFoundError:
        log.warning(
            "no embedder metadata; using the fallback threshold",
            extra={"fields": {"path": str(path), "threshold": fallback}},
        )
        return ModelThresholds(default=fallback, temperature=temperature)
    by_species = metadata.get("new_individual_thresholds_by_species") or {}
    thresholds = ModelThresholds(
        default=float(metadata.get("new_individual_threshold", fallback)),
        by_species={str(k): float(v) for k, v in by_species.items()},
        temperature=float(metadata.get("new_individual_temperature", temperature)),
        centroid_weight=float((metadata.get("individual_scoring") or {}).get("centroid_weight", 0.0)),
        calibration=calibration_from_card(metadata),
    )
    log.info(
        "new-individual thresholds loaded",
        extra={
            "fields": {
                "path": str(path),
                "default": thresholds.default,
                "species": len(thresholds.by_species),
                "calibrated_species": len(thresholds.calibration.by_species),
            }
        },
    )
    return thresholds
