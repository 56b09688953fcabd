"""Evaluation (``finprint evaluate``): re-identification of individuals never seen in
training, scored as the Happywhale/Kaggle MAP@5 with ``new_individual``, against two
baselines measured in the same run; species accuracy, macro-F1 and confusion; not-a-cetacean
precision/recall per kind of negative; a collapse check. Writes JSON, Markdown and PNG plots.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from finprint_train.config import config_from_dict
from finprint_train.evaluation.protocol import DEFAULT_CENTROID_WEIGHT, Protocol, ProtocolConfig, SpeciesProtocol, build_protocol, protocol_digest
from finprint_train.data import NOT_CETACEAN, Sample, default_data_dir, read_images
from finprint_train.metrics import (
    NEW_INDIVIDUAL,
    THRESHOLDS,
    Ranking,
    cmc,
    confusion_matrix,
    macro_f1,
    map_at_5,
    predictions_with_new,
    rank_individuals,
    threshold_curve,
)
from finprint_train.export import load_embedder_checkpoint
from finprint_train.model import ExportedEmbedder, build_backbone, normalise_pixels
from finprint_train.train import prepare_split

log = logging.getLogger("finprint_train")
Embedder = Callable[[list[Sample]], np.ndarray]  # photos -> L2-normalised [N, D]


# --- embedders ----------------------------------------------------------------------------

def _batched(fn: Callable[[torch.Tensor], torch.Tensor], images: np.ndarray, batch: int = 64) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([fn(torch.from_numpy(np.ascontiguousarray(images[i : i + batch]))) for i in range(0, len(images), batch)]).numpy()


def finprint_embedder(
    model: ExportedEmbedder, size: int, trim_letterbox: bool = False
) -> tuple[Embedder, Callable[[list[Sample]], np.ndarray]]:
    """(embeddings, species probabilities) functions of the trained model; each photo is
    run once and both outputs are memoised."""
    model.eval()
    memo: dict[Path, tuple[np.ndarray, np.ndarray]] = {}

    def run(samples: list[Sample]) -> None:
        todo = list(dict.fromkeys(s.path for s in samples if s.path not in memo))
        images = read_images(todo, size, trim_letterbox=trim_letterbox)
        with torch.no_grad():
            for i in range(0, len(todo), 64):
                embedding, probs = model(torch.from_numpy(images[i : i + 64]))
                for j, path in enumerate(todo[i : i + 64]):
                    memo[path] = (embedding[j].numpy(), probs[j].numpy())

    def output(samples: list[Sample], which: int) -> np.ndarray:
        run(samples)
        return np.stack([memo[s.path][which] for s in samples])

    return (lambda samples: output(samples, 0)), (lambda samples: output(samples, 1))


def imagenet_embedder(size: int = 224, trim_letterbox: bool = False) -> Embedder:
    """Baseline: average-pooled features of the frozen ImageNet EfficientNet-Lite0."""
    backbone = build_backbone("efficientnet-lite0").eval()

    def features(x: torch.Tensor) -> torch.Tensor:
        fmap = backbone.extract_features(normalise_pixels(x.permute(0, 3, 1, 2).float()))
        return F.normalize(fmap.mean(dim=(2, 3)), dim=1)

    return lambda samples: _batched(features, read_images([s.path for s in samples], size, trim_letterbox=trim_letterbox))


def raw_pixel_embedder(size: int = 32, trim_letterbox: bool = False) -> Embedder:
    """Baseline, non-learned: 32x32 grey pixels, centred and L2-normalised."""

    def embed(samples: list[Sample]) -> np.ndarray:
        grey = read_images([s.path for s in samples], size, trim_letterbox=trim_letterbox).astype(np.float32).mean(axis=3).reshape(len(samples), -1)
        grey -= grey.mean(axis=1, keepdims=True)
        return grey / (np.linalg.norm(grey, axis=1, keepdims=True) + 1e-6)

    return embed


# --- re-identification --------------------------------------------------------------------

def ranking_for(embed: Embedder, protocol: SpeciesProtocol,
                centroid_weight: float = 0.0) -> tuple[Ranking, np.ndarray, list[str]]:
    """The queries ranked against the gallery (distractor individuals included), individuals
    scored as the matcher scores them."""
    photos = [photo for photo, _ in protocol.gallery_photos]
    ids = [who for _, who in protocol.gallery_photos]
    gallery = embed(photos)
    return rank_individuals(embed(protocol.queries), gallery, ids, centroid_weight), gallery, ids


def collapse_check(gallery: np.ndarray, ids: list[str]) -> dict[str, float]:
    """Spread of cosine similarities: a collapsed embedding maps everything to one point."""
    sims = gallery @ gallery.T
    same = np.array(ids)[:, None] == np.array(ids)[None, :]
    off_diag = ~np.eye(len(ids), dtype=bool)
    different = sims[off_diag & ~same]
    matching = sims[off_diag & same]
    return {
        "mean_similarity": float(different.mean()),
        "std_similarity": float(different.std()),
        "mean_same_individual": float(matching.mean()) if matching.size else float("nan"),
        "collapsed": bool(different.std() < 0.02 or different.mean() > 0.95),
    }


def reid_metrics(ranking: Ranking, truths: list[str], threshold: float) -> dict[str, Any]:
    """MAP@5 with ``new_individual`` at ``threshold``; top-1/top-5 on known individuals."""
    ranks = cmc(ranking, truths)
    return {
        "map5": map_at_5(predictions_with_new(ranking, threshold), truths),
        "top1": float(ranks[0]),
        "top5": float(ranks[4]),
        "queries": len(truths),
        "new_queries": sum(t == NEW_INDIVIDUAL for t in truths),
        "threshold": threshold,
    }


def evaluate_reid(embed: Embedder, val: Protocol, test: Protocol, centroid_weight: float = 0.0) -> dict[str, Any]:
    """Per species: threshold chosen on validation, metrics on test; plus one overall threshold.

    Both use the identification protocol (``finprint_train.evaluation.protocol``): a gallery with
    distractor individuals, and queries of known and new individuals.
    """
    out: dict[str, Any] = {"by_species": {}, "curves": {}, "cmc": {}, "collapse": {}}
    val_curves = {}
    test_rankings: dict[str, tuple[Ranking, list[str]]] = {}
    for species in sorted(test.species):
        val_ranking, _, _ = ranking_for(embed, val.species[species], centroid_weight)
        val_curves[species] = threshold_curve(val_ranking, val.species[species].truths)
        threshold = float(THRESHOLDS[int(np.argmax(val_curves[species]))])
        test_ranking, gallery, ids = ranking_for(embed, test.species[species], centroid_weight)
        truths = test.species[species].truths
        metrics = reid_metrics(test_ranking, truths, threshold)
        metrics["val_map5"] = float(val_curves[species].max())
        metrics["always_new_map5"] = map_at_5([[NEW_INDIVIDUAL]] * len(truths), truths)
        metrics["protocol"] = test.species[species].counts()
        out["by_species"][species] = metrics
        out["curves"][species] = val_curves[species].tolist()
        out["cmc"][species] = cmc(test_ranking, truths).tolist()
        out["collapse"][species] = collapse_check(gallery, ids)
        test_rankings[species] = (test_ranking, truths)
    mean_curve = np.mean([val_curves[s] for s in val_curves], axis=0)
    overall = float(THRESHOLDS[int(np.argmax(mean_curve))])
    out["overall_threshold"] = overall
    for species, (ranking, truths) in test_rankings.items():
        out["by_species"][species]["map5_overall_threshold"] = map_at_5(predictions_with_new(ranking, overall), truths)
    return out


# --- species and rejection ----------------------------------------------------------------

def species_metrics(probs: np.ndarray, samples: list[Sample], species: list[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, confusion, and not-a-cetacean P/R per negatives folder."""
    keep = [i for i, s in enumerate(samples) if s.species in species]
    truth = [species.index(samples[i].species) for i in keep]
    predicted = probs[keep].argmax(axis=1).tolist()
    matrix = confusion_matrix(truth, predicted, len(species))
    out: dict[str, Any] = {
        "accuracy": float(np.mean(np.array(truth) == np.array(predicted))),
        "macro_f1": macro_f1(matrix),
        "confusion": matrix.tolist(),
        "labels": species,
        "rejection": {},
    }
    if NOT_CETACEAN in species:
        neg = species.index(NOT_CETACEAN)
        is_negative = np.array([s.species == NOT_CETACEAN for s in samples])
        rejected = probs.argmax(axis=1) == neg
        for kind in sorted({s.dataset for s in samples if s.species == NOT_CETACEAN}):
            rows = np.array([s.dataset == kind or s.species != NOT_CETACEAN for s in samples])
            tp = int((rejected & is_negative & rows).sum())
            out["rejection"][kind] = {
                "precision": tp / max(1, int((rejected & rows).sum())),
                "recall": tp / max(1, int((is_negative & rows).sum())),
                "negatives": int((is_negative & rows).sum()),
                "positives": int((~is_negative & rows).sum()),
            }
    return out


# --- report -------------------------------------------------------------------------------

def _plots(out_dir: Path, reid: dict[str, dict[str, Any]], species: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(reid["finprint"]["cmc"])
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4), squeeze=False)
    for ax, sp in zip(axes[0], names):
        for model, result in reid.items():
            curve = result["cmc"][sp]
            ax.plot(range(1, len(curve) + 1), curve, marker=".", label=model)
        ax.set(title=f"CMC, {sp} (test)", xlabel="rank", ylabel="known queries matched", ylim=(0, 1))
        ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "cmc.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for sp in names:
        ax.plot(THRESHOLDS, reid["finprint"]["curves"][sp], label=sp)
    ax.set(title="validation MAP@5 vs new_individual threshold", xlabel="cosine threshold", ylabel="MAP@5")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "threshold_curve.png", dpi=100)
    plt.close(fig)

    matrix = np.array(species["confusion"])
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.imshow(matrix, cmap="Blues")
    labels = species["labels"]
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center", fontsize=8)
    ax.set(title="species confusion (test)", xlabel="predicted", ylabel="true")
    fig.tight_layout()
    fig.savefig(out_dir / "confusion.png", dpi=100)
    plt.close(fig)


def markdown_report(report: dict[str, Any]) -> str:
    """The human-readable report (also pasted into the model card)."""
    lines = [
        "| species | model | MAP@5 | top-1 | top-5 | queries (new) | threshold (from val) |",
        "|---|---|---|---|---|---|---|",
    ]
    for sp in sorted(report["reid"]["finprint"]["by_species"]):
        first = report["reid"]["finprint"]["by_species"][sp]
        lines.append(f"| {sp} | always `new_individual` | {first['always_new_map5']:.3f} | - | - | {first['queries']} ({first['new_queries']}) | - |")
        for model, result in report["reid"].items():
            m = result["by_species"][sp]
            lines.append(
                f"| {sp} | {model} | {m['map5']:.3f} | {m['top1']:.3f} | {m['top5']:.3f} | {m['queries']} ({m['new_queries']}) | {m['threshold']:.2f} |"
            )
    sp = report["species"]
    lines += ["", f"Species head (test photos): accuracy {sp['accuracy']:.3f}, macro-F1 {sp['macro_f1']:.3f}.", ""]
    lines += ["| not a cetacean, by kind | precision | recall | negatives | positives |", "|---|---|---|---|---|"]
    for kind, m in sp["rejection"].items():
        lines.append(f"| {kind} | {m['precision']:.3f} | {m['recall']:.3f} | {m['negatives']} | {m['positives']} |")
    lines += ["", "| collapse check (test gallery) | mean cos, different individuals | std | mean cos, same individual | collapsed |", "|---|---|---|---|---|"]
    for spc, m in report["reid"]["finprint"]["collapse"].items():
        lines.append(f"| {spc} | {m['mean_similarity']:.3f} | {m['std_similarity']:.3f} | {m['mean_same_individual']:.3f} | {m['collapsed']} |")
    return "\n".join(lines) + "\n"


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The compact metrics that go into ``finprint.json``."""
    reid = report["reid"]
    return {
        "split": "test individuals never seen in training; thresholds chosen on validation individuals",
        "map5": {sp: round(m["map5"], 4) for sp, m in reid["finprint"]["by_species"].items()},
        "top1": {sp: round(m["top1"], 4) for sp, m in reid["finprint"]["by_species"].items()},
        "top5": {sp: round(m["top5"], 4) for sp, m in reid["finprint"]["by_species"].items()},
        "queries": {sp: [m["queries"], m["new_queries"]] for sp, m in reid["finprint"]["by_species"].items()},
        "baseline_map5": {
            model: {sp: round(m["map5"], 4) for sp, m in result["by_species"].items()}
            for model, result in reid.items()
            if model != "finprint"
        },
        "species_accuracy": round(report["species"]["accuracy"], 4),
        "species_macro_f1": round(report["species"]["macro_f1"], 4),
        "not_cetacean": report["species"]["rejection"],
    }


def evaluate_checkpoint(
    checkpoint: Path,
    out_dir: Path,
    data_dir: Path | None = None,
    baselines: bool = True,
    image_size: int | None = None,
    protocol: ProtocolConfig = ProtocolConfig(queries_per_individual=4),
    centroid_weight: float = DEFAULT_CENTROID_WEIGHT,
) -> dict[str, Any]:
    """Evaluate a training checkpoint on its own run's split; write report.{json,md} and plots.

    Photos are decoded at each model's own input size straight from the files, as the
    services will see them (no training cache); the baselines get the same photos (letterbox
    bars trimmed when the model's were).
    """
    net, meta = load_embedder_checkpoint(checkpoint, image_size)
    cfg = config_from_dict(meta["config"])
    split = prepare_split(cfg, data_dir or default_data_dir())
    protocols = {name: build_protocol(split, name, protocol) for name in ("val", "test")}
    trim = cfg.trim_letterbox
    embed, species_probs = finprint_embedder(ExportedEmbedder(net), meta["image_size"], trim)
    embedders: dict[str, Embedder] = {"finprint": embed}
    if baselines:
        embedders["imagenet_lite0_frozen"] = imagenet_embedder(trim_letterbox=trim)
        embedders["raw_pixels_32_grey"] = raw_pixel_embedder(trim_letterbox=trim)
    reid = {}
    for name, fn in embedders.items():
        log.info("evaluating %s", name)
        reid[name] = evaluate_reid(fn, protocols["val"], protocols["test"], centroid_weight)
    species_samples = [s for es in split.test.values() for s in es.gallery + es.queries] + split.negatives_test
    species = species_metrics(species_probs(species_samples), species_samples, list(meta["species"]))
    report: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "training_minutes": round(meta["elapsed"] / 60, 1),
        "lineage": meta["lineage"],
        "image_size": meta["image_size"],
        "protocol": {"config": protocol.__dict__, "test": protocol_digest(protocols["test"])},
        "centroid_weight": centroid_weight,
        "reid": reid,
        "species": species,
        "thresholds": {
            "overall": reid["finprint"]["overall_threshold"],
            "by_species": {sp: m["threshold"] for sp, m in reid["finprint"]["by_species"].items()},
        },
    }
    report["summary"] = summary(report)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "report.md").write_text(markdown_report(report))
    _plots(out_dir, reid, species)
    log.info("report: %s", json.dumps(report["summary"]))
    return report
