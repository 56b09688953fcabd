"""Time-budgeted fine-tuning of the embedder (``finprint train``).

The learning-rate, margin and image-size schedules are functions of the fraction of the
time budget spent, not of a step count: on a shared machine the throughput varies, and a
run must end (or be resumed) cleanly whatever it managed to do.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from finprint_train.config import TrainConfig
from finprint_train.data import Sample, Split, default_data_dir, load_datasets, load_images, split_by_individual
from finprint_train.model import FinprintNet, SubCenterArcFace, normalise_pixels
from finprint_train.warm_start import load_exported_embedder

log = logging.getLogger("finprint_train")


@dataclass
class TrainData:
    """Decoded training photos with their identity (-1: none) and species (-1: none) labels."""

    images: np.ndarray  # uint8 [N, S, S, 3]
    identity: torch.Tensor
    species: torch.Tensor
    weights: torch.Tensor  # sampling weights
    classes: list[str]  # "species/individual_id" per ArcFace class
    class_counts: torch.Tensor


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def subset_samples(samples: list[Sample], n: int, seed: int) -> list[Sample]:
    """About ``n`` samples taken by whole individuals, so identities keep several photos."""
    groups: dict[tuple[str, str], list[Sample]] = defaultdict(list)
    for s in samples:
        groups[(s.dataset, s.individual_id or str(s.path))].append(s)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    out: list[Sample] = []
    for key in keys:
        if len(out) >= n:
            break
        out.extend(groups[key])
    return out


def prepare_split(cfg: TrainConfig, data_dir: Path) -> Split:
    samples = load_datasets(data_dir, cfg.datasets)
    if cfg.max_samples:
        samples = subset_samples(samples, cfg.max_samples, cfg.seed)
    return split_by_individual(samples, cfg.split)


def sampling_weights(samples: list[Sample], cfg: TrainConfig) -> torch.Tensor:
    """Per-photo draw weights: species shares from the config, then count^-power per identity."""
    group_of = [(s.species, s.individual_id or str(s.path)) for s in samples]
    group_size = Counter(group_of)
    raw = torch.tensor([group_size[g] ** -cfg.sampling_power for g in group_of], dtype=torch.float64)
    species = [s.species for s in samples]
    present = sorted(set(species))
    default_share = max(0.0, 1.0 - sum(cfg.species_shares.get(sp, 0.0) for sp in present))
    unlisted = [sp for sp in present if sp not in cfg.species_shares] or present
    weights = torch.zeros_like(raw)
    for sp in present:
        mask = torch.tensor([x == sp for x in species])
        share = cfg.species_shares.get(sp, default_share / len(unlisted))
        weights[mask] = raw[mask] / raw[mask].sum() * share
    return weights / weights.sum()


def prepare_train_data(split: Split, cfg: TrainConfig, cache_dir: Path | None) -> TrainData:
    train = split.train
    keyed = [f"{s.species}/{s.individual_id}" if s.individual_id and s.species in cfg.identity_species else "" for s in train]
    classes = sorted({k for k in keyed if k})
    class_index = {c: i for i, c in enumerate(classes)}
    identity = torch.tensor([class_index.get(k, -1) for k in keyed])
    species_index = {sp: i for i, sp in enumerate(cfg.species)}
    species = torch.tensor([species_index.get(s.species, -1) for s in train])
    counts = torch.bincount(identity[identity >= 0], minlength=len(classes))
    images = load_images(train, cfg.cache_size, cache_dir, trim_letterbox=cfg.trim_letterbox)
    return TrainData(images, identity, species, sampling_weights(train, cfg), classes, counts)


def augment(batch: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Random scale/aspect crop + small rotation (one affine resample), brightness/contrast
    jitter and random grayscale. uint8 [B,S,S,3] -> normalised float [B,3,size,size].

    No horizontal flips: a mirrored fluke or head is a different-looking animal.
    """
    b = batch.shape[0]
    x = normalise_pixels(batch.permute(0, 3, 1, 2).float())

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(b, generator=generator)

    scale = uniform(0.75, 1.0).sqrt()  # side fraction of the source kept
    aspect = uniform(math.log(0.85), math.log(1.18)).exp().sqrt()
    angle = uniform(-0.2, 0.2)  # radians, about +-11 degrees
    sx, sy = scale * aspect, scale / aspect
    tx, ty = uniform(-1, 1) * (1 - sx).clamp(min=0), uniform(-1, 1) * (1 - sy).clamp(min=0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack(
        [torch.stack([sx * cos, -sy * sin, tx], 1), torch.stack([sx * sin, sy * cos, ty], 1)], 1
    )
    grid = F.affine_grid(theta, [b, 3, size, size], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    brightness = uniform(-0.2, 0.2)[:, None, None, None]
    contrast = uniform(0.8, 1.2)[:, None, None, None]
    x = x * contrast + brightness
    grey = (torch.rand(b, generator=generator) < 0.2)[:, None, None, None]
    x = torch.where(grey, x.mean(dim=1, keepdim=True).expand_as(x), x)
    return x.contiguous(memory_format=torch.channels_last)


def lr_factor(progress: float, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to ``lr_floor``, over the time budget."""
    if progress < cfg.warmup_fraction:
        return max(progress / cfg.warmup_fraction, 0.01)
    t = (progress - cfg.warmup_fraction) / max(1e-9, 1 - cfg.warmup_fraction)
    return cfg.lr_floor + (1 - cfg.lr_floor) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


def margin_scale(progress: float, cfg: TrainConfig) -> float:
    """0 during the softmax warm-up, then a linear ramp to the full margins."""
    t = (progress - cfg.softmax_fraction) / max(1e-9, cfg.margin_ramp_fraction)
    return float(min(max(t, 0.0), 1.0))


def build_model(cfg: TrainConfig, n_classes_counts: torch.Tensor, pretrained: bool = True) -> tuple[FinprintNet, SubCenterArcFace]:
    net = FinprintNet(cfg.backbone, len(cfg.species), cfg.embedding_dim, pretrained=pretrained)
    arcface = SubCenterArcFace(
        cfg.embedding_dim,
        n_classes_counts,
        k=cfg.arcface_k,
        scale=cfg.arcface_scale,
        m_min=cfg.margin_min,
        m_max=cfg.margin_max,
        elastic_std=cfg.elastic_std,
    )
    return net, arcface


def load_init_checkpoint(net: FinprintNet, path: Path, cfg: TrainConfig) -> list[dict[str, Any]]:
    """Start from a user's checkpoint (``.pt``: every tensor whose name and shape match is
    taken) or from an exported embedder (``.onnx``, e.g. the shipped model: see warm_start).

    Returns the lineage of the weights: the earlier runs they come from, oldest first.
    """
    if path.suffix == ".onnx":
        if not cfg.freeze_batchnorm:
            raise ValueError("a warm start from an ONNX file needs freeze_batchnorm = true (its BatchNorms are folded)")
        load_exported_embedder(net, path)
        card = path.parent.parent / "finprint.json"
        info = json.loads(card.read_text()) if card.exists() else {}
        earlier = info.get("lineage", [])
        own_minutes = info.get("training_minutes", 0.0) - sum(r.get("training_minutes", 0.0) for r in earlier)
        return earlier + [{"from": str(path), "created": info.get("created"), "training_minutes": round(own_minutes, 1)}]
    state = torch.load(path, map_location="cpu", weights_only=False)
    lineage = list(state.get("lineage", [])) if isinstance(state, dict) else []
    lineage.append({"from": str(path), "training_minutes": round(state.get("elapsed", 0.0) / 60, 1) if isinstance(state, dict) else 0.0})
    state = state.get("model", state)
    own = net.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    own.update(usable)
    net.load_state_dict(own)
    log.info("initialised %d/%d tensors from %s", len(usable), len(own), path)
    return lineage


def make_optimizer(net: FinprintNet, arcface: SubCenterArcFace, cfg: TrainConfig) -> torch.optim.Optimizer:
    backbone = [p for p in net.backbone.parameters() if p.requires_grad]
    head_ids = {id(p) for p in backbone}
    heads = [p for p in net.parameters() if p.requires_grad and id(p) not in head_ids]
    return torch.optim.AdamW(
        [
            {"params": backbone, "lr": cfg.lr_backbone, "base_lr": cfg.lr_backbone},
            {"params": heads + list(arcface.parameters()), "lr": cfg.lr_head, "base_lr": cfg.lr_head},
        ],
        weight_decay=cfg.weight_decay,
    )


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # atomic: a run killed mid-write keeps its previous checkpoint


SUSPENDED_STEP_FACTOR = 5.0


def budgeted_step_time(seconds: float, recent: deque[float]) -> float:
    """The time a step counts against the budget: what it took, unless it took far longer
    than the steps before it (the process was suspended, e.g. ``kill -STOP`` to free the
    machine for a while); then the recent median. Every step goes into ``recent``."""
    typical = float(np.median(recent)) if len(recent) >= 10 else None
    recent.append(seconds)
    if typical is not None and seconds > SUSPENDED_STEP_FACTOR * typical:
        log.info("a %.0f s step (typical %.2f s): counted as typical, the process was held up", seconds, typical)
        return typical
    return seconds


def _set_train_mode(net: FinprintNet, frozen: list[torch.nn.Module], cfg: TrainConfig) -> None:
    net.train()
    for module in frozen:  # frozen BN layers keep their ImageNet statistics
        module.eval()
    if cfg.freeze_batchnorm:
        for module in net.backbone.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.eval()


def photos_per_identity(identity: torch.Tensor, cap: int) -> torch.Tensor:
    """Rows of at most `cap` photos of each identity (the first ones), in row order."""
    rows = torch.nonzero(identity >= 0).squeeze(1)
    seen: dict[int, int] = {}
    kept = []
    for row, who in zip(rows.tolist(), identity[rows].tolist()):
        if seen.get(who, 0) < cap:
            seen[who] = seen.get(who, 0) + 1
            kept.append(row)
    return torch.tensor(kept, dtype=torch.long)


def class_mean_centres(trainer: "Trainer", batch: int = 64, cap: int = 3) -> torch.Tensor:
    """L2-normalised mean embedding of each identity's training photos, [classes, dim].

    Photos are resized, not augmented, to the schedule's first image size, at the run's own
    precision (bf16 autocast in eager PyTorch ran at 3 images/s on this AMD EPYC). At most
    `cap` photos per identity: a start for the centres needs no more, and all 18k photos
    took a quarter of an hour on 2 cores.
    """
    cfg, data = trainer.cfg, trainer.data
    size = cfg.image_size_at(0.0)
    rows = photos_per_identity(data.identity, cap)
    sums = torch.zeros(len(data.classes), cfg.embedding_dim)
    trainer.net.eval()
    with torch.inference_mode():
        for start in range(0, len(rows), batch):
            index = rows[start : start + batch]
            images = torch.from_numpy(data.images[index.numpy()]).permute(0, 3, 1, 2).float()
            x = F.interpolate(normalise_pixels(images), size=(size, size), mode="bilinear", align_corners=False)
            x = x.contiguous(memory_format=torch.channels_last).to(trainer.device)
            with torch.autocast(trainer.device.type, dtype=trainer.autocast_dtype, enabled=trainer.use_autocast):
                embedding, _ = trainer.net(x)
            sums.index_add_(0, data.identity[index], F.normalize(embedding.float().cpu(), dim=1))
    return F.normalize(sums, dim=1)


def init_arcface_from_class_means(trainer: "Trainer") -> None:
    """Every sub-centre of a class starts at the class mean (plus a little noise so the k
    sub-centres can drift apart)."""
    started = time.monotonic()
    centres = class_mean_centres(trainer)
    k = trainer.arcface.k
    noise = torch.randn(len(centres) * k, centres.shape[1], generator=trainer.generator) * 0.01
    with torch.no_grad():
        trainer.arcface.weight.copy_(F.normalize(centres.repeat_interleave(k, dim=0) + noise, dim=1))
    log.info("ArcFace centres from class means of %d identities in %.0f s", len(centres), time.monotonic() - started)


@dataclass
class Trainer:
    """The pieces of one run that a step and a checkpoint need."""

    cfg: TrainConfig
    data: TrainData
    net: FinprintNet
    arcface: SubCenterArcFace
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    device: torch.device
    elapsed: float = 0.0
    step: int = 0
    lineage: list[dict[str, Any]] = field(default_factory=list)
    """The runs this one continues (warm starts), oldest first: where from and their minutes."""

    def __post_init__(self) -> None:
        self.scaler = torch.amp.GradScaler("cuda") if self.device.type == "cuda" else None
        self.autocast_dtype = torch.float16 if self.device.type == "cuda" else torch.bfloat16
        self.use_autocast = self.device.type == "cuda" or self.cfg.precision == "bf16"

    def draw_batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A weighted draw of photos, augmented to ``size``, with their labels."""
        index = torch.multinomial(self.data.weights, self.cfg.batch_size, replacement=True, generator=self.generator)
        order = np.argsort(index.numpy())
        images = torch.from_numpy(self.data.images[index.numpy()[order]])  # sorted reads: faster from a memory map
        images = images[torch.from_numpy(np.argsort(order))]  # back to the draw order
        x = augment(images, size, self.generator).to(self.device)
        return x, self.data.identity[index].to(self.device), self.data.species[index].to(self.device)

    def train_step(self, progress: float) -> dict[str, float]:
        """One optimiser step at the schedule's point ``progress`` (0..1 of the budget)."""
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * lr_factor(progress, self.cfg)
        self.arcface.margin_scale = margin_scale(progress, self.cfg)
        x, identity, species = self.draw_batch(self.cfg.image_size_at(progress))
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.use_autocast):
            embedding, species_logits = self.net(x)
        loss = torch.zeros((), device=self.device)
        accuracy = float("nan")
        has_id = identity >= 0
        if has_id.any():
            id_loss, cos = self.arcface(embedding[has_id].float(), identity[has_id])
            loss = loss + id_loss
            accuracy = (cos.argmax(1) == identity[has_id]).float().mean().item()
        has_species = species >= 0
        if has_species.any():
            species_loss = F.cross_entropy(species_logits[has_species].float(), species[has_species])
            loss = loss + self.cfg.species_loss_weight * species_loss
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        return {"loss": loss.item(), "id_accuracy": accuracy}

    def checkpoint(self) -> dict[str, Any]:
        return {
            "model": self.net.state_dict(),
            "arcface": self.arcface.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "elapsed": self.elapsed,
            "step": self.step,
            "config": self.cfg.to_dict(),
            "classes": self.data.classes,
            "species": self.cfg.species,
            "backbone": self.cfg.backbone,
            "image_size": self.cfg.final_image_size,
            "lineage": self.lineage,
        }

    def restore(self, path: Path) -> None:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        self.net.load_state_dict(ckpt["model"])
        self.arcface.load_state_dict(ckpt["arcface"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.generator.set_state(ckpt["generator"])
        self.elapsed, self.step = ckpt["elapsed"], ckpt["step"]
        self.lineage = ckpt.get("lineage", self.lineage)
        log.info("resumed at step %d, %.1f min", self.step, self.elapsed / 60)


def _build_trainer(
    cfg: TrainConfig, data_dir: Path | None, cache_dir: Path | None, init_checkpoint: Path | None
) -> tuple[Trainer, list[torch.nn.Module]]:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    split = prepare_split(cfg, data_dir or default_data_dir())
    data = prepare_train_data(split, cfg, cache_dir)
    log.info("train: %d photos, %d identities, %d species", len(data.identity), len(data.classes), len(cfg.species))
    net, arcface = build_model(cfg, data.class_counts)
    lineage = load_init_checkpoint(net, init_checkpoint, cfg) if init_checkpoint else []
    frozen = net.freeze_early_layers(cfg.frozen_blocks)
    net.to(device, memory_format=torch.channels_last)
    arcface.to(device)
    optimizer = make_optimizer(net, arcface, cfg)
    generator = torch.Generator().manual_seed(cfg.seed)
    return Trainer(cfg, data, net, arcface, optimizer, generator, device, lineage=lineage), frozen


def train(
    cfg: TrainConfig,
    out_dir: Path,
    data_dir: Path | None = None,
    cache_dir: Path | None = None,
    resume: bool = False,
    init_checkpoint: Path | None = None,
) -> Path:
    """Train until the time budget ``cfg.minutes`` is spent; returns the final checkpoint.

    Only the time spent in training steps counts against the budget, so a resumed run picks
    the schedule up where it stopped.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    trainer, frozen = _build_trainer(cfg, data_dir, cache_dir, init_checkpoint)
    last = out_dir / "last.pt"
    if resume and last.exists():
        trainer.restore(last)
    elif cfg.arcface_init == "class_means":
        init_arcface_from_class_means(trainer)
    elif cfg.arcface_init != "random":
        raise ValueError(f"arcface_init must be 'random' or 'class_means', not {cfg.arcface_init!r}")
    budget = cfg.minutes * 60.0
    last_save = time.monotonic()
    window: list[float] = []
    recent: deque[float] = deque(maxlen=50)
    _set_train_mode(trainer.net, frozen, cfg)
    with open(out_dir / "train_log.jsonl", "a") as log_file:
        while trainer.elapsed < budget:
            t0 = time.monotonic()
            progress = trainer.elapsed / budget
            result = trainer.train_step(progress)
            window.append(time.monotonic() - t0)
            trainer.elapsed += budgeted_step_time(window[-1], recent)
            trainer.step += 1
            if trainer.step % cfg.log_every == 0:
                record = {
                    "step": trainer.step,
                    "minutes": round(trainer.elapsed / 60, 2),
                    "elapsed_s": trainer.elapsed,  # unrounded: where the budget stopped the run
                    "progress": round(progress, 4),
                    "size": cfg.image_size_at(progress),
                    "lr_backbone": trainer.optimizer.param_groups[0]["lr"],
                    "margin_scale": round(trainer.arcface.margin_scale, 3),
                    "loss": round(result["loss"], 4),
                    "id_accuracy": round(result["id_accuracy"], 3),
                    "img_per_s": round(cfg.batch_size * len(window) / sum(window), 1),
                }
                window.clear()
                log_file.write(json.dumps(record) + "\n")
                log_file.flush()
                log.info("%s", record)
            if time.monotonic() - last_save > cfg.checkpoint_minutes * 60:
                save_checkpoint(last, trainer.checkpoint())
                last_save = time.monotonic()
    payload = trainer.checkpoint()
    save_checkpoint(last, payload)
    final = out_dir / "final.pt"
    save_checkpoint(final, payload)
    log.info("done: %d steps in %.1f min -> %s", trainer.step, trainer.elapsed / 60, final)
    return final
