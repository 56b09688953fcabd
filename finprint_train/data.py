"""Happywhale-format datasets, identity-disjoint splits and a decoded-image cache.

A dataset folder holds ``labels.csv`` (``image,species,individual_id`` plus optional extra
columns) and ``images/``. An empty ``individual_id`` means the identity is unknown: such
images train the species head only.
"""

from __future__ import annotations

import csv
import hashlib
import os
import random
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from finprint.imaging import letterbox_content
from finprint.paths import PROJECT_ROOT

NOT_CETACEAN = "not_cetacean"


@dataclass(frozen=True)
class Sample:
    """One labelled photo."""

    path: Path
    species: str
    individual_id: str  # "" when unknown
    dataset: str


@dataclass
class EvalSet:
    """Re-identification queries against a gallery of individuals absent from training."""

    gallery: list[Sample] = field(default_factory=list)
    queries: list[Sample] = field(default_factory=list)

    def query_is_new(self) -> list[bool]:
        known = {s.individual_id for s in self.gallery}
        return [q.individual_id not in known for q in self.queries]


@dataclass
class Split:
    """Training samples plus validation and test evaluation sets, disjoint by individual."""

    train: list[Sample]
    val: dict[str, EvalSet]  # by species
    test: dict[str, EvalSet]
    negatives_val: list[Sample]
    negatives_test: list[Sample]


@dataclass(frozen=True)
class SplitConfig:
    """How many held-out individuals per species and how queries are drawn from them."""

    holdout_fraction: float = 0.1  # of multi-photo individuals, for each of val and test
    min_holdout_individuals: int = 20
    max_holdout_individuals: int = 160
    new_fraction: float = 0.25  # of held-out individuals, queried but absent from the gallery
    max_queries_per_individual: int = 2
    negative_holdout_fraction: float = 0.2  # of each negatives folder, for each of val and test
    seed: int = 0


def default_data_dir() -> Path:
    """``$FINPRINT_DATA_DIR`` or ``../shared/data`` next to the repository."""
    env = os.environ.get("FINPRINT_DATA_DIR")
    if env:
        return Path(env)
    return PROJECT_ROOT.parent / "shared" / "data"


def load_labels(folder: Path) -> list[Sample]:
    """Read one dataset folder's ``labels.csv``."""
    with open(folder / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [
        Sample(
            path=folder / "images" / row["image"],
            species=row["species"].strip(),
            individual_id=(row.get("individual_id") or "").strip(),
            dataset=folder.name,
        )
        for row in rows
    ]


def load_datasets(data_dir: Path, names: list[str]) -> list[Sample]:
    """All samples of the named dataset folders, in a stable order."""
    samples: list[Sample] = []
    for name in names:
        samples.extend(load_labels(data_dir / name))
    return samples


def is_cetacean(sample: Sample) -> bool:
    return sample.species != NOT_CETACEAN


def _split_negatives(
    negatives: list[Sample], cfg: SplitConfig, rng: random.Random
) -> tuple[list[Sample], list[Sample], list[Sample]]:
    """Hold back a fraction of every negatives folder, separately, for val and test."""
    by_dataset: dict[str, list[Sample]] = defaultdict(list)
    for sample in negatives:
        by_dataset[sample.dataset].append(sample)
    train, val, test = [], [], []
    for name in sorted(by_dataset):
        items = by_dataset[name][:]
        rng.shuffle(items)
        n_hold = int(round(len(items) * cfg.negative_holdout_fraction))
        val.extend(items[:n_hold])
        test.extend(items[n_hold : 2 * n_hold])
        train.extend(items[2 * n_hold :])
    return train, val, test


def _eval_set(
    individuals: list[list[Sample]], cfg: SplitConfig, rng: random.Random
) -> EvalSet:
    """Queries from every individual; only the 'known' ones put their other photos in the gallery."""
    out = EvalSet()
    n_new = int(round(len(individuals) * cfg.new_fraction))
    for index, photos in enumerate(individuals):
        photos = photos[:]
        rng.shuffle(photos)
        if index < n_new:
            out.queries.extend(photos[: cfg.max_queries_per_individual])
        else:
            n_queries = min(cfg.max_queries_per_individual, len(photos) - 1)
            out.queries.extend(photos[:n_queries])
            out.gallery.extend(photos[n_queries:])
    return out


def split_by_individual(samples: list[Sample], cfg: SplitConfig) -> Split:
    """Identity-disjoint train / validation / test split, as in the Kaggle protocol.

    Per species, a fraction of the individuals with two or more photos is held out for each
    of validation and test; a quarter of those become 'new' individuals (queries only), so
    that about a quarter of the queries have no match in the gallery. Photos of held-out
    individuals never reach training. Identity-less cetacean photos always train (species
    head only); negatives are held back per folder so each kind can be reported separately.
    """
    rng = random.Random(cfg.seed)
    negatives = [s for s in samples if not is_cetacean(s)]
    neg_train, neg_val, neg_test = _split_negatives(negatives, cfg, rng)
    by_individual: dict[tuple[str, str], list[Sample]] = defaultdict(list)
    train = [s for s in samples if is_cetacean(s) and not s.individual_id]
    for sample in samples:
        if is_cetacean(sample) and sample.individual_id:
            by_individual[(sample.species, sample.individual_id)].append(sample)
    val: dict[str, EvalSet] = {}
    test: dict[str, EvalSet] = {}
    for species in sorted({key[0] for key in by_individual}):
        keys = sorted(k for k in by_individual if k[0] == species)
        multi = [k for k in keys if len(by_individual[k]) >= 2]
        rng.shuffle(multi)
        n_hold = int(round(len(multi) * cfg.holdout_fraction))
        n_hold = min(max(n_hold, cfg.min_holdout_individuals), cfg.max_holdout_individuals)
        n_hold = min(n_hold, len(multi) // 3)  # always keep most individuals for training
        held = set(multi[: 2 * n_hold])
        if n_hold > 0:
            val[species] = _eval_set([by_individual[k] for k in multi[:n_hold]], cfg, rng)
            test[species] = _eval_set([by_individual[k] for k in multi[n_hold : 2 * n_hold]], cfg, rng)
        for key in keys:
            if key not in held:
                train.extend(by_individual[key])
    train.extend(neg_train)
    return Split(train=train, val=val, test=test, negatives_val=neg_val, negatives_test=neg_test)


def read_image(path: Path, size: int, trim_letterbox: bool = False) -> np.ndarray:
    """Decode one photo as RGB uint8 [size, size, 3], resized without letterboxing.

    Plain (stretching) resize is the contract of the exported models: the services resize
    whatever crop they have to ``input_size`` squares the same way.
    """
    with Image.open(path) as image:
        image.draft("RGB", (size * 2, size * 2))  # JPEG DCT scaling: much faster decoding
        image = image.convert("RGB")
        if trim_letterbox:
            image = image.crop(letterbox_content(image))
        return np.asarray(image.resize((size, size), Image.BILINEAR), dtype=np.uint8)


def _read_many(args: tuple[list[str], int, bool]) -> np.ndarray:
    paths, size, trim = args
    if not paths:
        return np.zeros((0, size, size, 3), np.uint8)
    return np.stack([read_image(Path(p), size, trim) for p in paths])


def read_images(paths: list[Path], size: int, workers: int = 2, trim_letterbox: bool = False) -> np.ndarray:
    """Decode many photos into one uint8 array [N, size, size, 3], in parallel processes."""
    if len(paths) < 64 or workers <= 1:
        return _read_many(([str(p) for p in paths], size, trim_letterbox))
    chunks = [[str(p) for p in paths[i::workers]] for i in range(workers)]
    with ProcessPoolExecutor(workers) as pool:
        parts = list(pool.map(_read_many, [(c, size, trim_letterbox) for c in chunks]))
    out = np.empty((len(paths), size, size, 3), np.uint8)
    for i, part in enumerate(parts):
        out[i::workers] = part
    return out


def _folder_cache(folder: Path, size: int, cache_dir: Path, trim_letterbox: bool) -> tuple[np.ndarray, dict[str, int]]:
    """All photos of one dataset folder decoded once into ``cache_dir`` (memory-mapped)."""
    names = [s.path.name for s in load_labels(folder)]
    index = {name: i for i, name in enumerate(names)}
    digest = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:8]
    trimmed = "_trimmed" if trim_letterbox else ""
    cache_file = cache_dir / f"{folder.name}_{digest}_{size}px{trimmed}_{len(names)}.npy"
    if not cache_file.exists():
        images = read_images([folder / "images" / n for n in names], size, trim_letterbox=trim_letterbox)
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp.npy")
        np.save(tmp, images)
        tmp.replace(cache_file)
    return np.load(cache_file, mmap_mode="r"), index


def load_images(
    samples: list[Sample], size: int, cache_dir: Path | None = None, trim_letterbox: bool = False
) -> np.ndarray:
    """Images of ``samples`` as uint8 [N, size, size, 3].

    With ``cache_dir``, each dataset folder is decoded once, whole, and memoised on disk, so
    a training run, its evaluation and the detector share the decoding work.
    """
    if cache_dir is None:
        return read_images([s.path for s in samples], size, trim_letterbox=trim_letterbox)
    out = np.empty((len(samples), size, size, 3), np.uint8)
    by_folder: dict[Path, list[int]] = defaultdict(list)
    for i, sample in enumerate(samples):
        by_folder[sample.path.parent.parent].append(i)
    for folder, positions in by_folder.items():
        cached, index = _folder_cache(folder, size, cache_dir, trim_letterbox)
        rows = [index[samples[i].path.name] for i in positions]
        out[positions] = cached[rows]
    return out
