"""The shipped Triton repository keeps the contracts other services are built against, and
the detector's class-activation boxes are measured on hand-labelled photos.

These tests use onnxruntime and Pillow only (no torch): they check the committed files.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

REPOSITORY = Path(__file__).resolve().parents[2] / "model_repository"
BOXES = Path(__file__).resolve().parent / "detector_boxes.csv"


def version(name: str) -> str:
    """The one version folder a shipped model has."""
    folders = [p.name for p in (REPOSITORY / name).iterdir() if p.is_dir()]
    assert len(folders) == 1 and folders[0].isdigit(), folders
    return folders[0]


def session(name: str) -> "ort.InferenceSession":
    return ort.InferenceSession(str(REPOSITORY / name / version(name) / "model.onnx"), providers=["CPUExecutionProvider"])


def info(name: str) -> dict:
    return json.loads((REPOSITORY / name / "finprint.json").read_text())


@pytest.mark.parametrize("name", ["finprint_embedder", "finprint_detector"])
def test_files_are_self_contained_and_small(name: str) -> None:
    model_dir = REPOSITORY / name
    assert sorted(p.name for p in (model_dir / version(name)).iterdir()) == ["model.onnx"]  # no external data
    assert (model_dir / version(name) / "model.onnx").stat().st_size < 30 * 2**20
    config = (model_dir / "config.pbtxt").read_text()
    assert f'name: "{name}"' in config and 'backend: "onnxruntime"' in config
    assert "dynamic_batching" in config and "instance_group" in config
    assert (model_dir / "MODEL_CARD.md").read_text().strip()
    assert info(name)["name"] == name and info(name)["version"] == version(name)


def test_embedder_contract() -> None:
    meta = info("finprint_embedder")
    assert meta["embedding_dim"] == 512 and meta["species"][-1] == "not_cetacean"
    assert 0.0 < meta["new_individual_threshold"] < 1.0
    size = meta["input_size"]
    sess = session("finprint_embedder")
    assert [(i.name, i.type) for i in sess.get_inputs()] == [("images", "tensor(uint8)")]
    images = np.random.default_rng(0).integers(0, 256, (3, size, size, 3), dtype=np.uint8)
    embedding, probs = sess.run(["embedding", "species_probs"], {"images": images})
    assert embedding.shape == (3, 512) and probs.shape == (3, len(meta["species"]))
    np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_detector_contract() -> None:
    meta = info("finprint_detector")
    assert meta["views"] == ["fluke", "dorsal_fin", "head", "other"]
    assert 0.0 < meta["cetacean_threshold"] < 1.0 and 0.0 < meta["heatmap_box_threshold"] < 1.0
    size = meta["input_size"]
    images = np.random.default_rng(0).integers(0, 256, (2, size, size, 3), dtype=np.uint8)
    prob, views, heatmap = session("finprint_detector").run(["cetacean_prob", "view_probs", "heatmap"], {"images": images})
    assert prob.shape == (2,) and views.shape == (2, 4) and heatmap.ndim == 3 and heatmap.shape[0] == 2
    assert heatmap.min() >= 0.0 and heatmap.max() <= 1.0 + 1e-6


def _content(path: Path) -> tuple[float, float, float, float]:
    from PIL import Image

    from finprint.imaging import letterbox_content

    with Image.open(path) as image:
        x0, y0, x1, y1 = letterbox_content(image)
        return (x0 / image.width, y0 / image.height, x1 / image.width, y1 / image.height)


def _box(heatmap: np.ndarray, threshold: float) -> tuple[float, float, float, float]:
    # What the detector service does: bounds of the cells at or above the threshold.
    ys, xs = np.nonzero(heatmap >= threshold)
    h, w = heatmap.shape
    return (xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h)


def _in_full_frame(box: tuple[float, ...], content: tuple[float, ...]) -> tuple[float, ...]:
    w, h = content[2] - content[0], content[3] - content[1]
    return (content[0] + box[0] * w, content[1] + box[1] * h, content[0] + box[2] * w, content[1] + box[3] * h)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union


@pytest.mark.slow
def test_detector_boxes_on_hand_labelled_photos(photos: Path) -> None:
    """Boxes drawn by hand on held-back photos (tests/training/detector_boxes.csv); the
    threshold was chosen on the 'tune' rows, so only the 'test' rows are scored here."""
    meta = info("finprint_detector")
    rows = [r for r in csv.DictReader(BOXES.open()) if r["split"] == "test"]
    from finprint_train.data import read_image

    # Like the service: white letterbox bars trimmed, the rest resized to input_size.
    images = np.stack([read_image(photos / r["path"], meta["input_size"], trim_letterbox=True) for r in rows])
    prob, _, heatmaps = session("finprint_detector").run(["cetacean_prob", "view_probs", "heatmap"], {"images": images})
    ious = [
        _iou(
            _in_full_frame(_box(h, meta["heatmap_box_threshold"]), _content(photos / r["path"])),
            tuple(float(r[k]) for k in ("x0", "y0", "x1", "y1")),
        )
        for h, r in zip(heatmaps, rows)
    ]
    recorded = meta["metrics"]["boxes"]["test"]
    assert np.mean(ious) == pytest.approx(recorded["mean_iou"], abs=1e-3)  # the card's numbers are real
    assert np.mean(ious) >= 0.3
    assert np.mean(prob >= meta["cetacean_threshold"]) >= 0.8  # these photos all show cetaceans
