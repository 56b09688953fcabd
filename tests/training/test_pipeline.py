"""`finprint train` on a ~200-photo subset (a real, small, time-budgeted run), resume,
export to ONNX checked against torch, and evaluation with both baselines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.train, pytest.mark.slow]


@pytest.fixture(scope="module")
def trained(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from finprint.cli import main  # the `finprint` command itself

    out = tmp_path_factory.mktemp("smoke")
    main(["train", "--config", "smoke", "--minutes", "0.4", "--out", str(out), "--data-dir", str(photos), "--cache-dir", str(out / "cache")])
    return out


def stopped_at_the_budget(records: list[dict], budget_minutes: float) -> bool:
    """The run stopped at the first step past its budget, however long the machine made a step
    (read from the unrounded seconds: a step ending at 0.398 min shows as 0.40 in ``minutes``)."""
    budget = budget_minutes * 60
    return all(r["elapsed_s"] < budget for r in records[:-1]) and records[-1]["elapsed_s"] >= budget


def test_train_on_200_photos_within_its_budget(trained: Path) -> None:
    out = trained
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert records and stopped_at_the_budget(records, 0.4)
    assert {r["size"] for r in records} == {96, 128}  # the progressive-resize schedule ran
    assert (out / "final.pt").exists()


def test_resume_continues_from_the_checkpoint(trained: Path, photos: Path) -> None:
    import torch

    from finprint_train.cli import main

    out = trained
    before = torch.load(out / "last.pt", weights_only=False)
    budget = round(before["elapsed"] / 60 + 0.2, 2)  # the first run may end past its 0.4 min on a loaded machine
    main(["train", "--config", "smoke", "--minutes", str(budget), "--resume", "--out", str(out), "--data-dir", str(photos), "--cache-dir", str(out / "cache")])
    after = torch.load(out / "last.pt", weights_only=False)
    assert after["step"] > before["step"] and after["elapsed"] > before["elapsed"]
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    resumed = [r for r in records if r["step"] > before["step"]]
    assert resumed and stopped_at_the_budget(resumed, budget)


def test_export_matches_torch_and_keeps_the_contract(trained: Path, tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    from finprint_train.export import export_embedder

    out = trained
    diffs = export_embedder(out / "final.pt", tmp_path)
    assert max(diffs.values()) < 1e-4
    model_dir = tmp_path / "finprint_embedder"
    onnx_path = model_dir / "1" / "model.onnx"
    assert not list(onnx_path.parent.glob("*.data"))  # one self-contained file
    onnx.checker.check_model(str(onnx_path))
    info = json.loads((model_dir / "finprint.json").read_text())
    assert info["species"] == ["north_atlantic_right_whale", "not_cetacean"]
    assert info["embedding_dim"] == 512
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    size = info["input_size"]
    images = np.random.default_rng(1).integers(0, 256, (5, size, size, 3), dtype=np.uint8)
    embedding, species = session.run(["embedding", "species_probs"], {"images": images})
    assert embedding.shape == (5, 512) and species.shape == (5, 2)
    np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(species.sum(axis=1), 1.0, atol=1e-5)
    config = (model_dir / "config.pbtxt").read_text()
    for expected in ('backend: "onnxruntime"', "max_batch_size", "dynamic_batching", "instance_group", "TYPE_UINT8"):
        assert expected in config
    assert info["version"] == "1"


def test_new_weights_get_a_new_version_and_the_old_one_goes(trained: Path, tmp_path: Path) -> None:
    """Embeddings of two exports are not comparable: the second one must not reuse version 1."""
    from finprint_train.export import export_embedder

    out = trained
    export_embedder(out / "final.pt", tmp_path)
    export_embedder(out / "final.pt", tmp_path, image_size=96)  # the same weights served at another size
    model_dir = tmp_path / "finprint_embedder"
    assert sorted(p.name for p in model_dir.iterdir() if p.is_dir()) == ["2"]
    info = json.loads((model_dir / "finprint.json").read_text())
    assert info["version"] == "2" and info["input_size"] == 96
    assert "dims: [ 96, 96, 3 ]" in (model_dir / "config.pbtxt").read_text()
    assert (model_dir / "MODEL_CARD.md").read_text().startswith("# finprint_embedder, version 2")


def test_evaluate_writes_reports_with_both_baselines(trained: Path, photos: Path, tmp_path: Path) -> None:
    from finprint_train.cli import main

    out = trained
    main(["evaluate", "--checkpoint", str(out / "final.pt"), "--out", str(tmp_path), "--data-dir", str(photos)])
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report["reid"]) == {"finprint", "imagenet_lite0_frozen", "raw_pixels_32_grey"}
    metrics = report["reid"]["finprint"]["by_species"]["north_atlantic_right_whale"]
    assert 0.0 <= metrics["map5"] <= 1.0 and metrics["new_queries"] > 0
    assert "field_negatives" in report["species"]["rejection"]
    for name in ("report.md", "cmc.png", "threshold_curve.png", "confusion.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_warm_start_from_an_exported_onnx_reproduces_it_and_trains_on(
    trained: Path, photos: Path, tmp_path: Path
) -> None:
    """The shipped model is one option away from being trained further: its ONNX file (BatchNorms
    folded) loads into the training network exactly, and a run started from it records where from."""
    import onnxruntime as ort
    import torch

    from finprint.cli import main
    from finprint_train.config import CONFIG_DIR
    from finprint_train.export import export_embedder
    from finprint_train.model import ExportedEmbedder, FinprintNet
    from finprint_train.warm_start import load_exported_embedder

    out = trained
    export_embedder(out / "final.pt", tmp_path / "repo")
    onnx_path = tmp_path / "repo" / "finprint_embedder" / "1" / "model.onnx"
    net = FinprintNet("efficientnet-lite0", 2, 512, pretrained=False)
    load_exported_embedder(net, onnx_path)
    images = np.random.default_rng(2).integers(0, 256, (3, 128, 128, 3), dtype=np.uint8)
    expected = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, {"images": images})
    with torch.no_grad():
        got = ExportedEmbedder(net.eval())(torch.from_numpy(images))
    for e, g in zip(expected, got):
        assert np.abs(e - g.numpy()).max() < 1e-4

    config = tmp_path / "warm.toml"
    smoke = (CONFIG_DIR / "smoke.toml").read_text()
    config.write_text(smoke.replace('precision = "bf16"', 'precision = "bf16"\nfreeze_batchnorm = true\narcface_init = "class_means"'))
    warm = tmp_path / "warm"
    main(["train", "--config", str(config), "--minutes", "0.15", "--init-checkpoint", str(onnx_path), "--out", str(warm),
          "--data-dir", str(photos), "--cache-dir", str(out / "cache")])
    checkpoint = torch.load(warm / "final.pt", weights_only=False)
    assert checkpoint["step"] > 0
    assert [run["from"] for run in checkpoint["lineage"]] == [str(onnx_path)]
    # BatchNorms stayed frozen: the folded identity statistics are untouched
    assert torch.allclose(checkpoint["model"]["backbone._bn0.running_mean"], torch.zeros(32))


def test_a_warm_start_from_onnx_refuses_trainable_batchnorm(trained: Path, photos: Path, tmp_path: Path) -> None:
    from finprint.cli import main
    from finprint_train.export import export_embedder

    out = trained
    export_embedder(out / "final.pt", tmp_path / "repo")
    onnx_path = tmp_path / "repo" / "finprint_embedder" / "1" / "model.onnx"
    with pytest.raises(ValueError, match="freeze_batchnorm"):
        main(["train", "--config", "smoke", "--minutes", "0.1", "--init-checkpoint", str(onnx_path), "--out",
              str(tmp_path / "refused"), "--data-dir", str(photos), "--cache-dir", str(out / "cache")])
