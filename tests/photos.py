"""The shared real photos as the tests pick them (in a fixed order), and photos made from them (in
memory, never written into the repository)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path

from PIL import Image


def letterboxed_jpeg(path: Path, bar: int) -> bytes:
    """The photo with white bars ``bar`` pixels high above and below, as some archives store flukes."""
    with Image.open(path) as image:
        photo = image.convert("RGB")
    framed = Image.new("RGB", (photo.width, photo.height + 2 * bar), "white")
    framed.paste(photo, (0, bar))
    buffer = io.BytesIO()
    framed.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


HUMPBACKS = "kaggle_humpback2019"


def labelled_photos(shared_data: Path, dataset: str = HUMPBACKS) -> tuple[dict[str, list[Path]], list[Path]]:
    """A dataset's photos of named individuals by individual (ids and photos sorted), and the photos
    without an individual (sorted)."""
    folder = shared_data / dataset
    named: dict[str, list[Path]] = defaultdict(list)
    unnamed: list[Path] = []
    with open(folder / "labels.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            path = folder / "images" / row["image"]
            (named[row["individual_id"]] if row["individual_id"] else unnamed).append(path)
    return {who: sorted(paths) for who, paths in sorted(named.items())}, sorted(unnamed)


def individuals_with(shared_data: Path, photos: int, count: int, dataset: str = HUMPBACKS) -> list[list[Path]]:
    """The first ``count`` individuals (by id) with at least ``photos`` photos: their first ``photos`` each."""
    named, _ = labelled_photos(shared_data, dataset)
    return [paths[:photos] for paths in named.values() if len(paths) >= photos][:count]
