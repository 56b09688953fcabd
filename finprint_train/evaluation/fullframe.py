"""Full frames: does cutting the photo to the detector's box help where the animal is small?

The protocol's photos are crops already (that is how the sets were published), so the detector's
crop can only be judged on photos that are not: the same right whales as full aerial frames
(``noaa_rightwhale_fullframe``, each frame the uncropped photo of a head in
``noaa_rightwhale_heads``), and full-resolution humpback flukes from Flukebook
(``curvrank_examples``: one photo per individual, none of them in the gallery, so the right
answer is ``new_individual``). Queries are ranked against the protocol's own gallery three ways:
the whole photo (what the API embeds), the detector's box, and that box grown 2x about its centre.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from finprint_train.evaluation.api import ApiEvaluation
from finprint_train.evaluation.offline import OfflineEmbedder, ranked_labels
from finprint_train.evaluation.protocol import SpeciesProtocol
from finprint_train.evaluation.scoring import score
from finprint.imaging import Box
from finprint_train.data import Sample, load_labels
from finprint_train.metrics import NEW_INDIVIDUAL

FULL_FRAMES = "noaa_rightwhale_fullframe"
FULL_RESOLUTION_FLUKES = "curvrank_examples"


@dataclass(frozen=True)
class FullFrameSet:
    name: str
    species: str
    queries: list[Sample]
    truths: list[str]


def full_frame_sets(data_dir: Path, protocols: dict[str, SpeciesProtocol]) -> list[FullFrameSet]:
    sets = []
    right = protocols.get("north_atlantic_right_whale")
    frames = data_dir / FULL_FRAMES
    if right is not None and frames.is_dir():
        by_name = {s.path.name: s for s in load_labels(frames)}
        pairs = [(by_name[q.path.name], t) for q, t in zip(right.queries, right.truths) if q.path.name in by_name]
        sets.append(FullFrameSet(FULL_FRAMES, right.species, [p for p, _ in pairs], [t for _, t in pairs]))
    flukes = data_dir / FULL_RESOLUTION_FLUKES
    if "humpback_whale" in protocols and flukes.is_dir():
        photos = [s for s in load_labels(flukes) if s.species == "humpback_whale"]
        sets.append(FullFrameSet(FULL_RESOLUTION_FLUKES, "humpback_whale", photos, [NEW_INDIVIDUAL] * len(photos)))
    return sets


def grown(box: Box, factor: float, width: int, height: int) -> Box:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    hw, hh = (box[2] - box[0]) * factor / 2, (box[3] - box[1]) * factor / 2
    return (max(0.0, cx - hw), max(0.0, cy - hh), min(float(width), cx + hw), min(float(height), cy + hh))


def measure(api: ApiEvaluation, offline: OfflineEmbedder, protocol: SpeciesProtocol,
            frames: FullFrameSet) -> dict[str, Any]:
    """MAP@5 of the full frames against the protocol's gallery (enrolled already): through the API,
    and offline whole / box / box grown 2x."""
    codes = api.individual_of_code(protocol)
    answers = api.map(lambda q: api.identify(q, codes), frames.queries)
    gallery = [photo.path for photo, _ in protocol.gallery_photos]
    ids = [who for _, who in protocol.gallery_photos]
    threshold = offline.card.threshold_for(protocol.species)
    g = offline.embed(gallery, "service")
    boxes = [a.region for a in answers]
    sizes = [Image.open(q.path).size for q in frames.queries]
    variants: dict[str, list[Box | None]] = {
        "whole": [None] * len(boxes),
        "detector box": list(boxes),
        "box grown 2x": [None if b is None else grown(b, 2.0, *size) for b, size in zip(boxes, sizes)],
    }
    out: dict[str, Any] = {"queries": len(frames.queries), "api": score([a.ranking for a in answers], frames.truths).as_dict()}
    for name, regions in variants.items():
        q = offline.embed([s.path for s in frames.queries], "service", regions)
        out[name] = score(ranked_labels(q, g, ids, threshold, offline.card.centroid_weight), frames.truths).as_dict()
    return out

