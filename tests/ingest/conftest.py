"""Bulk ingestion against the system as real processes: manifests of real photos, real workers."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from finprint_testing.processes import ServerProcess
from finprint_testing.system import RunningSystem

MANIFEST_COLUMNS = ["image", "observed_at", "latitude", "longitude", "location", "observer", "species",
                    "individual_id"]


@dataclass(frozen=True)
class Manifest:
    path: Path
    images: Path
    rows: list[dict[str, str]]

    @property
    def keys(self) -> list[str]:
        return [row["image"] for row in self.rows]


def write_manifest(folder: Path, rows: list[dict[str, str]], sources: Mapping[str, Path | bytes]) -> Manifest:
    """A manifest and its images folder (links to the shared photos, or the given bytes)."""
    images = folder / "images"
    images.mkdir(parents=True)
    for name, source in sources.items():
        (images / name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, Path):
            (images / name).symlink_to(source)
        else:
            (images / name).write_bytes(source)
    path = folder / "manifest.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return Manifest(path, images, rows)


@pytest.fixture(scope="session")
def humpback_photos(shared_data: Path) -> tuple[dict[str, list[Path]], list[Path]]:
    """Photos of named humpbacks by individual, and photos of unnamed ones (deterministic order)."""
    folder = shared_data / "kaggle_humpback2019"
    named: dict[str, list[Path]] = defaultdict(list)
    unnamed: list[Path] = []
    with open(folder / "labels.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            path = folder / "images" / row["image"]
            (named[row["individual_id"]] if row["individual_id"] else unnamed).append(path)
    return dict(sorted(named.items())), sorted(unnamed)


def run_ingest_cli(manifest: Manifest, url: str, api_key: str, *extra: str, timeout_s: float = 600) -> dict:
    """``finprint ingest`` as a user runs it; returns its last line, which must be one JSON object."""
    result = subprocess.run(
        [sys.executable, "-m", "finprint.cli", "ingest", "--manifest", str(manifest.path), "--images",
         str(manifest.images), "--url", url, "--api-key", api_key, "--poll-s", "0.5", *extra],
        capture_output=True, text=True, timeout=timeout_s, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def worker_env(system: RunningSystem, **settings: str) -> dict[str, str]:
    """A worker reaches the four services by the gateway's URL settings, like the gateway itself."""
    urls = system.urls
    return {**os.environ,
            "FINPRINT_GATEWAY_DETECTOR_URL": urls["detector"], "FINPRINT_GATEWAY_EMBEDDER_URL": urls["embedder"],
            "FINPRINT_GATEWAY_MATCHER_URL": urls["matcher"], "FINPRINT_GATEWAY_CATALOG_URL": urls["catalog"],
            **{f"FINPRINT_GATEWAY_{k.upper()}": v for k, v in settings.items()}}


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator:
    """Start ``finprint worker`` processes (stopped, by PID, at the end)."""
    started: list[ServerProcess] = []

    def start(name: str, job_id: str, env: dict[str, str]) -> ServerProcess:
        process = ServerProcess(name, [sys.executable, "-m", "finprint.cli", "worker", "--job-id", job_id,
                                       "--worker-id", name], tmp_path / f"{name}.log", env=env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
