"""`finprint calibrate` chooses a shipped model's thresholds on the validation individuals under the
matcher's scoring rule, and writes them where the matcher reads them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from finprint.paths import default_model_repository
from finprint_train.evaluation.calibrate import calibrate, threshold_curve
from finprint_train.evaluation.offline import OfflineEmbedder
from finprint_train.evaluation.protocol import ProtocolConfig, load_protocol
from services.matcher.adapters.model_metadata import load_model_thresholds

pytestmark = pytest.mark.slow


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    shutil.copytree(default_model_repository() / "finprint_embedder", tmp_path / "finprint_embedder")
    return tmp_path


def test_thresholds_are_the_best_on_validation_and_reach_the_matcher(repository: Path, shared_data: Path) -> None:
    config = ProtocolConfig(max_known=10)
    before = json.loads((repository / "finprint_embedder" / "finprint.json").read_text())
    record = calibrate(repository, shared_data, centroid_weight=0.5, config=config, out_dir=repository / "report")

    offline = OfflineEmbedder(repository)
    val = load_protocol(shared_data, "val", config)
    for species, threshold in record["new_individual_thresholds_by_species"].items():
        curve = threshold_curve(offline, val.species[species], 0.5)
        assert curve.at(threshold) == pytest.approx(curve.map5.max())
        assert record["val_map5"][species] == pytest.approx(curve.map5.max(), abs=1e-4)
    card = json.loads((repository / "finprint_embedder" / "finprint.json").read_text())
    assert card["individual_scoring"] == {"centroid_weight": 0.5}
    assert card["calibration"]["protocol"]["val"] == record["protocol"]["val"]
    for species, fits in card["probability_calibration"]["by_species"].items():
        # A higher score means the top candidate is more likely right and the animal less likely new.
        assert fits["top_candidate"]["a"] > 0 and fits["new_individual"]["a"] < 0, species
        assert 0 <= card["calibration"]["test_calibration"][species]["top_candidate"] <= 1
    assert (repository / "report" / "reliability.png").stat().st_size > 10_000
    report = (repository / "report" / "report.md").read_text()
    for species in record["test_calibration"]:
        # Its ECE row, and a row per auto-accept target.
        assert f"| {species} | {record['test_calibration'][species]['top_candidate']:.4f} |" in report
        assert report.count(f"| {species} | 0.9") >= 3
    assert card["input_size"] == before["input_size"] and card["species"] == before["species"]
    matcher_view = load_model_thresholds(repository, fallback=0.9, temperature=0.05)
    assert matcher_view.by_species == record["new_individual_thresholds_by_species"]
    assert matcher_view.centroid_weight == 0.5
    # The auto-accept curves: precision rises with the cut (at the top it is the best there is), and the
    # matcher turns a target into the lowest cut whose validation precision reaches it.
    for species, curve in card["probability_calibration"]["auto_accept"]["by_species"].items():
        assert curve["coverage"] == sorted(curve["coverage"], reverse=True), species
        assert max(curve["precision"]) > curve["precision"][0], species
        target = max(curve["precision"])
        calibrated = matcher_view.calibration.of(f"finprint_embedder:{card['version']}", species)
        assert calibrated is not None
        cut = calibrated.auto_accept(target, top_score=1.0)
        assert cut.accepted and cut.cut == curve["cuts"][curve["precision"].index(target)]
        assert record["test_auto_accept"][species]["0.9"]["coverage"] >= 0
    # Possible duplicates: one cut, reaching the target on the validation pairs of all species together,
    # and the matcher reads it for each.
    duplicates = card["duplicate_calibration"]
    assert duplicates["by_species"], "the pooled validation pairs never reached the duplicates' precision target"
    assert duplicates["validation"]["precision"] >= duplicates["precision_target"]
    assert duplicates["validation"]["planted"] > 0
    for species, chosen in duplicates["by_species"].items():
        assert chosen["cut"] == duplicates["validation"]["cut"], species
        assert matcher_view.calibration.duplicate_cut(f"finprint_embedder:{card['version']}", species) == chosen["cut"]
        assert card["calibration"]["test_duplicates"][species]["cut"] == chosen["cut"]
