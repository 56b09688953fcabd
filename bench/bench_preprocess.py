"""Decode + resize throughput on real full-size photos, with and without reduced-size JPEG decoding.

    .venv/bin/python bench/bench_preprocess.py [--photos DIR] [--size N] [--rounds 3] [--json out.json]

Both columns run ``finprint.imaging.load_model_input`` (the services' code path) on the same bytes
already in memory, one photo at a time on one thread; the only difference is whether libjpeg
scales the DCT down (``Image.draft``). Each figure is the best of ``--rounds`` passes, because the
machine is shared and the best pass is the one least disturbed by other work. A benchmark, not a
test: it prints numbers and ratios and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from bench.arguments import BenchmarkParser
from finprint.imaging import ImageLimits, load_model_input

DEFAULT_PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "curvrank_examples" / "images"
SIZE_CLASSES_MEGAPIXELS = (3.0, 10.0)


def best_rate(work: Callable[[], int], rounds: int) -> float:
    """Items per second of the fastest of ``rounds`` passes of ``work`` (which returns its item count)."""
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        count = work()
        best = max(best, count / (time.perf_counter() - started))
    return best


def measure(photos: list[bytes], size: int, rounds: int) -> dict[str, float]:
    limits = ImageLimits()

    def decode_all(reduced: bool) -> Callable[[], int]:
        def run() -> int:
            for data in photos:
                load_model_input(data, size, limits, reduced_decoding=reduced)
            return len(photos)

        return run

    reduced = best_rate(decode_all(True), rounds)
    full = best_rate(decode_all(False), rounds)
    return {"images": len(photos), "reduced_images_per_s": reduced, "full_images_per_s": full, "speedup": reduced / full}


def embedder_input_size() -> int:
    from finprint.model_repository import locate_model
    from finprint.paths import default_model_repository
    from services.embedder.adapters.model_files import load_card

    return load_card(locate_model(default_model_repository(), "finprint_embedder").card).input_size


def main() -> None:
    parser = BenchmarkParser(__doc__.split("\n")[0])
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--size", type=int, default=None,
                        help="model input side (default: the shipped embedder's input_size)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse()
    if args.size is None:
        args.size = embedder_input_size()

    paths = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in {".jpg", ".jpeg"})
    photos = {p: p.read_bytes() for p in paths}
    megapixels = {}
    for path in paths:
        with Image.open(path) as image:
            megapixels[path] = image.width * image.height / 1e6
    results: dict[str, object] = {
        "cpu_cores": os.cpu_count(),
        "size": args.size,
        "all_photos": measure(list(photos.values()), args.size, args.rounds)
        | {"mean_megapixels": sum(megapixels.values()) / len(paths)},
    }
    for floor in SIZE_CLASSES_MEGAPIXELS:
        large = [photos[p] for p in paths if megapixels[p] >= floor]
        if large:  # few photos: more passes for a steadier best
            results[f"photos_{floor:g}mp_and_up"] = measure(large, args.size, args.rounds * 3)
    print(f"decode + resize to {args.size}x{args.size}, one thread, best of {args.rounds} (images/s)")
    print(f"{'photos':<28}{'n':>4}{'reduced':>12}{'full':>12}{'ratio':>9}")
    for name, row in results.items():
        if isinstance(row, dict):
            print(f"{name:<28}{row['images']:>4}{row['reduced_images_per_s']:>12.1f}{row['full_images_per_s']:>12.1f}"
                  f"{row['speedup']:>8.2f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
