"""``finprint evaluate --api URL --api-key K``: the product measured beside its own model.

Per species, on the same gallery and the same queries, and with the same ``new_individual``
threshold (the model card's, which the matcher applies):

=================  ==========================================================================
stage              what it is
=================  ==========================================================================
model              the ONNX model offline, photos decoded as in training
decode             the same, photos decoded as the gateway decodes an upload
crop               the same, each photo cut to the box the API reports (detector)
api                ``POST /v1/identify`` against a gallery enrolled with ``POST /v1/encounters``
=================  ==========================================================================

The difference between two rows is what that stage of the pipeline costs (or gains).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from finprint.client import FinprintClient
from finprint_train.evaluation.api import ApiEvaluation, SpeciesAnswers
from finprint_train.evaluation.encounters import encounter_of
from finprint_train.evaluation.encounters import measure as measure_encounters
from finprint_train.evaluation.fullframe import full_frame_sets
from finprint_train.evaluation.fullframe import measure as measure_full_frames
from finprint_train.evaluation.offline import OfflineEmbedder, ranked_labels
from finprint_train.evaluation.protocol import Protocol, ProtocolConfig, SpeciesProtocol, load_protocol, protocol_digest
from finprint_train.evaluation.scoring import score

log = logging.getLogger("finprint_train.evaluation")
STAGES = ("model", "decode", "crop", "api")


@dataclass(frozen=True)
class ApiTarget:
    url: str
    api_key: str
    tag: str = "eval"
    concurrency: int = 4
    timeout_s: float = 120.0


def offline_stages(offline: OfflineEmbedder, protocol: SpeciesProtocol, answers: SpeciesAnswers) -> dict[str, list[list[str]]]:
    """The offline model's rankings at each stage, on the protocol's gallery and queries."""
    threshold = offline.card.threshold_for(protocol.species)
    gallery = [photo for photo, _ in protocol.gallery_photos]
    ids = [who for _, who in protocol.gallery_photos]
    gallery_paths = [p.path for p in gallery]
    query_paths = [q.path for q in protocol.queries]
    gallery_regions = [answers.gallery_regions.get(p.path.name) for p in gallery]
    query_regions = [a.region for a in answers.queries]

    def rank(g: np.ndarray, q: np.ndarray) -> list[list[str]]:
        return ranked_labels(q, g, ids, threshold, offline.card.centroid_weight)

    return {
        "model": rank(offline.embed(gallery_paths, "training"), offline.embed(query_paths, "training")),
        "decode": rank(offline.embed(gallery_paths, "service"), offline.embed(query_paths, "service")),
        "crop": rank(offline.embed(gallery_paths, "service", gallery_regions),
                     offline.embed(query_paths, "service", query_regions)),
    }


def species_report(offline: OfflineEmbedder, protocol: SpeciesProtocol, answers: SpeciesAnswers) -> dict[str, Any]:
    rankings = offline_stages(offline, protocol, answers)
    rankings["api"] = [a.ranking for a in answers.queries]
    stages = {name: score(r, protocol.truths).as_dict() for name, r in rankings.items()}
    return {
        "counts": protocol.counts(),
        "threshold": offline.card.threshold_for(protocol.species),
        "stages": stages,
        "loss_by_stage": {
            later: round(stages[earlier]["map5"] - stages[later]["map5"], 4)
            for earlier, later in zip(STAGES, STAGES[1:])
        },
        "api_below_model": round(stages["model"]["map5"] - stages["api"]["map5"], 4),
        "api_rejected_queries": sum(a.rejected for a in answers.queries),
        "api_species_wrong": sum(a.species not in (None, protocol.species) for a in answers.queries),
    }


def evaluate_api(
    target: ApiTarget,
    data_dir: Path,
    repository: Path,
    out_dir: Path | None = None,
    split: str = "test",
    config: ProtocolConfig = ProtocolConfig(),
    species: list[str] | None = None,
) -> dict[str, Any]:
    """Run the protocol through the API and offline; write report.json and report.md to ``out_dir``."""
    protocol: Protocol = load_protocol(data_dir, split, config)  # type: ignore[arg-type]
    offline = OfflineEmbedder(repository)
    started = time.monotonic()
    report: dict[str, Any] = {
        "api": target.url, "split": split, "protocol": protocol_digest(protocol),
        "protocol_config": config.__dict__, "offline_model": offline.card.version,
        "species": {}, "rejection": {},
    }
    encounters = encounter_of(data_dir)
    with FinprintClient(target.url, api_key=target.api_key, timeout_s=target.timeout_s) as client:
        api = ApiEvaluation(client, target.tag, target.concurrency)
        for name, sp in protocol.species.items():
            if species and name not in species:
                continue
            log.info("species %s: %s", name, sp.counts())
            answers = api.run_species(sp)
            report["species"][name] = species_report(offline, sp, answers)
            report["species"][name]["encounters"] = measure_encounters(api, sp, answers, encounters)
            report["api_models"] = sorted({a.embedder for a in answers.queries if a.embedder})
            log.info("species %s: %s", name, json.dumps(report["species"][name]["stages"]))
        report["full_frames"] = {
            frames.name: measure_full_frames(api, offline, protocol.species[frames.species], frames)
            for frames in full_frame_sets(data_dir, protocol.species)
            if frames.species in report["species"] and frames.queries
        }
        for folder, photos in protocol.negatives.items():
            rejected = api.rejected(photos)
            report["rejection"][folder] = {"rejected": round(float(np.mean(rejected)), 4), "photos": len(photos)}
    report["minutes"] = round((time.monotonic() - started) / 60, 1)
    report["same_model"] = report.get("api_models") == [offline.card.version]
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        (out_dir / "report.md").write_text(markdown(report))
    return report


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Protocol `{report['protocol']}` ({report['split']} individuals, {report['protocol_config']}), "
        f"API {report['api']}, offline model {report['offline_model']}, API model {report.get('api_models')}.",
        "",
        "| species | stage | MAP@5 (95% CI) | top-1 | top-5 | new recall | queries | loss vs stage before |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for sp, r in report["species"].items():
        for stage in STAGES:
            s = r["stages"][stage]
            loss = r["loss_by_stage"].get(stage)
            lines.append(
                f"| {sp} | {stage} | {s['map5']:.3f} ({s['map5_ci'][0]:.3f}-{s['map5_ci'][1]:.3f}) | {s['top1']:.3f} | "
                f"{s['top5']:.3f} | {s['new_recall']:.3f} | {s['queries']} | {'' if loss is None else f'{loss:+.3f}'} |"
            )
    lines += ["", "Encounters: the query photos of one individual in one encounter (belugas by `encounter_id`, the "
              "others by individual) identified one at a time (`/v1/identify`) and together "
              "(`/v1/encounters:identify`).", "",
              "| species | encounters (photos) | one photo at a time | the encounter together |", "|---|---|---|---|"]
    for sp, r in report["species"].items():
        e = r.get("encounters")
        if e:
            lines.append(f"| {sp} | {e['encounters']} ({e['photos']}) | {e['single_photo']['map5']:.3f} | "
                         f"{e['encounter']['map5']:.3f} |")
    lines += ["", "Full frames (the animal small in the photo), against the same gallery: the API (whole photo) and "
              "the model offline on the whole photo, the detector's box, and that box grown 2x.", "",
              "| photos | queries | API | whole | detector box | box grown 2x |", "|---|---|---|---|---|---|"]
    for name, r in report.get("full_frames", {}).items():
        cells = " | ".join(f"{r[k]['map5']:.3f}" for k in ("api", "whole", "detector box", "box grown 2x"))
        lines.append(f"| {name} | {r['queries']} | {cells} |")
    lines += ["", "| negatives folder | rejected as not a cetacean | photos |", "|---|---|---|"]
    for folder, r in report["rejection"].items():
        lines.append(f"| {folder} | {r['rejected']:.3f} | {r['photos']} |")
    return "\n".join(lines) + "\n"
