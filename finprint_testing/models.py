"""Model repositories for tests that need two real versions of the embedder."""

from __future__ import annotations

import shutil
from pathlib import Path

from finprint.model_repository import MODEL_FILE, latest_version
from finprint.paths import default_model_repository

EMBEDDER = "finprint_embedder"


def two_embedder_versions(destination: Path, data_dir: Path) -> tuple[str, str]:
    """A repository holding the shipped embedder (linked, not copied) and a second version exported from it:
    its int8 quantization (``finprint quantize``, calibrated on 16 training-split photos). Both are real
    models whose embeddings differ; returns their versions as ``name:N``."""
    from finprint_train.quantize import QuantizeOptions, quantize_model

    shipped = default_model_repository()
    version = latest_version(shipped, EMBEDDER)
    model_dir = destination / EMBEDDER
    (model_dir / version).mkdir(parents=True)
    (model_dir / version / MODEL_FILE).symlink_to(shipped / EMBEDDER / version / MODEL_FILE)
    for card in (shipped / EMBEDDER).iterdir():
        if card.is_file():
            shutil.copy(card, model_dir / card.name)
    report = quantize_model(shipped, EMBEDDER, destination, data_dir, QuantizeOptions(calibration_photos=16),
                            version=version)
    return f"{EMBEDDER}:{version}", f"{EMBEDDER}:{report.version}"
