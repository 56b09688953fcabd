"""The product scores what its model scores: `finprint evaluate --api`'s protocol, small, on the
running system (the embedded default as a new user starts it), against the same ONNX model run
offline on the same photos.

A pipeline that feeds the embedder something else than the model was measured on (the detector's
box instead of the photo, another decoding, a gallery stored from other regions than queries use,
another threshold) makes the API's MAP@5 fall below the model's; 0.05 is far above what float
rounding moves on ~60 queries a species (the rankings are then identical) and far below what
each of those mistakes cost when they happened (0.15-0.30).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from finprint_train.evaluation.protocol import ProtocolConfig
from finprint_train.evaluation.run import ApiTarget, evaluate_api
from finprint.paths import default_model_repository
from finprint_testing.system import embedded_system

pytestmark = [pytest.mark.servers, pytest.mark.slow]

ALLOWED_GAP = 0.05


def test_api_scores_within_005_of_the_model_offline_on_the_same_photos(tmp_path: Path, shared_data: Path) -> None:
    data = tmp_path / "data"
    env = {"FINPRINT_GATEWAY_IDENTIFY_RATE_LIMIT": "100000/minute", "FINPRINT_GATEWAY_RATE_LIMIT": "100000/minute"}
    with embedded_system(data, tmp_path, env=env) as system:
        key = subprocess.run(
            [sys.executable, "-m", "finprint.cli", "apikey", "create", "--org", "evaluation", "--role", "contributor",
             "--data-dir", str(data)], capture_output=True, text=True, check=True,
        ).stdout.strip().splitlines()[-1]
        report = evaluate_api(ApiTarget(system.gateway_url, key, tag="t", concurrency=2), shared_data,
                              default_model_repository(), tmp_path / "report",
                              config=ProtocolConfig(max_known=20))
    assert report["same_model"], report.get("api_models")
    assert (tmp_path / "report" / "report.md").read_text().count("| api |") == 3
    for species, result in report["species"].items():
        stages = result["stages"]
        assert stages["api"]["queries"] >= 40, species
        assert result["api_rejected_queries"] == 0, species
        assert stages["api"]["map5"] >= stages["model"]["map5"] - ALLOWED_GAP, (species, stages)
        assert stages["model"]["map5"] > 0.3, (species, stages)  # a real model, not two equal failures
        encounters = result["encounters"]
        assert encounters["encounters"] >= 5, species
        assert encounters["encounter"]["map5"] >= encounters["single_photo"]["map5"], (species, encounters)
    for folder, rejection in report["rejection"].items():
        assert rejection["rejected"] >= 0.9, (folder, rejection)
