"""Training configuration, read from TOML files (stdlib ``tomllib``: no extra dependency)."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from finprint_train.data import SplitConfig

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclass
class TrainConfig:
    """Everything a training run needs; see ``configs/*.toml`` for documented examples."""

    name: str = "finprint_embedder"
    datasets: list[str] = field(default_factory=list)
    species: list[str] = field(default_factory=list)  # species-head classes, in output order
    backbone: str = "efficientnet-lite0"
    embedding_dim: int = 512
    frozen_blocks: int = 3
    # [[start_fraction, image_size], ...]: progressive resizing by fraction of the time budget
    image_sizes: list[list[float]] = field(default_factory=lambda: [[0.0, 160]])
    cache_size: int = 224  # photos are decoded once at this size; crops are taken from it
    # Uniform white letterbox bars trimmed before resizing (the exported model says so in its
    # finprint.json and the services do the same): a letterboxed fluke then fills the input.
    trim_letterbox: bool = False
    # Backbone BatchNorms kept in eval mode (their affine parameters still train). Needed for a
    # warm start from an exported ONNX file, whose BatchNorms are folded into the convolutions.
    freeze_batchnorm: bool = False
    # "random" (Xavier) or "class_means": each ArcFace centre starts at the mean embedding of its
    # identity's photos, so a warm-started network does not have to relearn its classifier.
    arcface_init: str = "random"
    batch_size: int = 32
    minutes: float = 30.0
    lr_backbone: float = 4e-4
    lr_head: float = 3e-3
    weight_decay: float = 1e-2
    warmup_fraction: float = 0.03  # linear LR warm-up, then cosine decay to lr_floor
    lr_floor: float = 0.01  # final LR as a fraction of the peak
    arcface_k: int = 2
    arcface_scale: float = 30.0
    margin_min: float = 0.25
    margin_max: float = 0.45
    elastic_std: float = 0.0
    softmax_fraction: float = 0.15  # margin 0 (plain normalised softmax) for this fraction
    margin_ramp_fraction: float = 0.25  # then margins grow linearly over this fraction
    species_loss_weight: float = 0.3
    # sampling shares by species (the rest of the weight is spread evenly); inside a species,
    # a photo is drawn with weight count(individual)^-sampling_power
    species_shares: dict[str, float] = field(default_factory=dict)
    sampling_power: float = 0.5
    precision: str = "bf16"  # "bf16" autocast or "fp32" on the CPU; fp16 AMP on a GPU
    seed: int = 0
    threads: int = 0  # 0: torch's default
    checkpoint_minutes: float = 5.0
    log_every: int = 20
    max_samples: int = 0  # >0: a stratified subset (tests, smoke runs)
    split: SplitConfig = field(default_factory=SplitConfig)

    @property
    def identity_species(self) -> list[str]:
        return [s for s in self.species if s != "not_cetacean"]

    def image_size_at(self, progress: float) -> int:
        size = int(self.image_sizes[0][1])
        for start, stage_size in self.image_sizes:
            if progress >= start:
                size = int(stage_size)
        return size

    @property
    def final_image_size(self) -> int:
        return int(self.image_sizes[-1][1])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def config_from_dict(raw: dict[str, Any]) -> TrainConfig:
    """Build a config, rejecting unknown keys so that typos do not silently train defaults."""
    raw = dict(raw)
    split = SplitConfig(**raw.pop("split", {}))
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"unknown config keys: {sorted(unknown)}")
    return TrainConfig(**raw, split=split)


def load_config(path: Path | str) -> TrainConfig:
    """Read a TOML config; a bare name is looked up in ``finprint_train/configs``."""
    path = Path(path)
    if not path.exists() and (CONFIG_DIR / f"{path.name}.toml").exists():
        path = CONFIG_DIR / f"{path.name}.toml"
    with open(path, "rb") as handle:
        return config_from_dict(tomllib.load(handle))
