"""Bytes on the wire per photo (issue 21): what the gateway sends each internal service, before and after.

    .venv/bin/python -m bench.bench_wire [--photos 4] [--baseline REV] [--json out.json]

The five apps in one process (the embedded default's wiring: SQLite, a local object folder, the
shipped models) with the gateway's clients of the detector, the embedder, the matcher and the
catalog going through a meter: every request the gateway sends is counted as httpx sends it
(request line, headers and body; the other services' own calls, the matcher's to the catalog, are
not counted). For each kind of real photo from ../shared/data:

- ``crops``: kaggle_humpback2019 photos (dataset crops, tens of KB);
- ``full-size``: curvrank_examples photos as taken (0.1 to 0.7 MB).

and each of ``decode_once`` on (the default: the gateway decodes, the detector and the embedder get
pixels) and off (each gets the photo's bytes), in a fresh organisation: enrol a gallery (``POST
/v1/encounters`` with each individual's photos and code), identify one held-out photo per
individual (``POST /v1/identify``), then identify and store the same photos (``?store=true``).
Bytes are divided by the photos of the step.

Before and after: the same measurement runs twice as subprocesses, on this working tree and on the
tree of ``--baseline`` (``git archive`` into a temp dir, with this file copied in), so both are
measured in the same run on the same photos. A benchmark: it prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from contextlib import AsyncExitStack
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FINPRINT_DATA_DIR", REPO.parent / "shared" / "data"))
# The last commit before the one enrolment path (issue 21, part B): enrolment in two places, photos
# base64 in JSON to the catalog.
BASELINE = "5a17062"
KINDS = {"crops": "kaggle_humpback2019", "full-size": "curvrank_examples"}
SERVICES = ("detector", "embedder", "matcher", "catalog")
PHOTOS_PER_ENROLMENT = 3
UNLIMITED = "1000000/minute"


class Meter(httpx.AsyncBaseTransport):
    """Counts what one caller sends one service, then hands the request on unchanged."""

    def __init__(self, inner: httpx.AsyncBaseTransport, service: str, tally: dict[str, dict[str, int]]) -> None:
        self.inner = inner
        self.service = service
        self.tally = tally

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        line = f"{request.method} {request.url.raw_path.decode()} HTTP/1.1\r\n"
        head = len(line) + sum(len(k) + len(v) + 4 for k, v in request.headers.raw) + 2
        counts = self.tally[self.service]
        counts["requests"] += 1
        counts["bytes"] += head + len(body)
        counts["body_bytes"] += len(body)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def labelled_photos(folder: Path, individuals: int) -> dict[str, list[Path]]:
    """Photos by individual (deterministic), ``individuals`` of those with two photos or more."""
    photos: dict[str, list[Path]] = defaultdict(list)
    with open(folder / "labels.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["individual_id"] and row["individual_id"] != "new_whale":
                photos[row["individual_id"]].append(folder / "images" / row["image"])
    chosen = sorted(code for code, paths in photos.items() if len(paths) >= 2)[:individuals]
    return {code: sorted(photos[code])[: PHOTOS_PER_ENROLMENT + 1] for code in chosen}


def files(paths: list[Path], field: str) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [(field, (p.name, p.read_bytes(), "image/jpeg")) for p in paths]


def per_photo(tally: dict[str, dict[str, int]], photos: list[Path]) -> dict[str, object]:
    """The step's figures per photo, and the mean size of its photos (what a photo sent once costs)."""
    count = len(photos)
    return {"photos": count, "photo_bytes": round(sum(p.stat().st_size for p in photos) / count),
            "services": {s: {k: round(v / count, 1) for k, v in tally[s].items()} for s in SERVICES}}


async def measure_kind(gateway: httpx.AsyncClient, catalog: httpx.AsyncClient, tally: dict, slug: str,
                       whales: dict[str, list[Path]]) -> dict[str, object]:
    org = (await catalog.post("/v1/orgs", json={"slug": slug, "name": slug})).json()
    key = (await catalog.post(f"/v1/orgs/{org['id']}/api-keys", json={"name": "c", "role": "contributor"})).json()
    headers = {"X-API-Key": key["key"]}
    steps: dict[str, object] = {}
    tally.clear()
    gallery = {code: paths[1:] for code, paths in whales.items()}
    for code, paths in gallery.items():
        answer = await gateway.post("/v1/encounters", headers=headers, files=files(paths, "images"),
                                    data={"individual_id": code})
        answer.raise_for_status()
    steps["enrol"] = per_photo(tally, [p for paths in gallery.values() for p in paths])
    queries = [paths[0] for paths in whales.values()]
    for step, params in (("identify", {}), ("identify + store", {"store": "true"})):
        tally.clear()
        for query in queries:
            answer = await gateway.post("/v1/identify", headers=headers, params=params,
                                        files=files([query], "image"))
            answer.raise_for_status()
        steps[step] = per_photo(tally, queries)
    return steps


async def measure(individuals: int) -> dict[str, object]:
    """This tree's figures (run inside the tree measured)."""
    from finprint.embedded import BUILD_ORDER, embedded_environment
    from finprint.services import app_factory

    results: dict[str, object] = {}
    for decode_once in (True, False):
        with tempfile.TemporaryDirectory(prefix="bench-wire-") as workdir:
            os.environ.update(embedded_environment(Path(workdir)))
            os.environ.update({"FINPRINT_GATEWAY_EMBEDDED_WORKER": "false",
                               "FINPRINT_GATEWAY_DECODE_ONCE": str(decode_once).lower(),
                               "FINPRINT_GATEWAY_JWT_SECRET": "bench-" + "x" * 32,
                               "FINPRINT_GATEWAY_RATE_LIMIT": UNLIMITED,
                               "FINPRINT_GATEWAY_IDENTIFY_RATE_LIMIT": UNLIMITED})
            tally: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
            apps, plain, metered = {}, {}, {}
            for name in BUILD_ORDER:
                # The gateway alone reaches its peers through the meters.
                apps[name] = app_factory(name)(None, metered if name == "gateway" else plain)
                plain[name] = httpx.ASGITransport(app=apps[name])
                metered[name] = Meter(plain[name], name, tally)
            async with AsyncExitStack() as stack:
                for name in BUILD_ORDER:
                    await stack.enter_async_context(apps[name].router.lifespan_context(apps[name]))
                gateway = await stack.enter_async_context(
                    httpx.AsyncClient(transport=plain["gateway"], base_url="http://gateway", timeout=300))
                catalog = await stack.enter_async_context(
                    httpx.AsyncClient(transport=plain["catalog"], base_url="http://catalog", timeout=300))
                mode = "decode once" if decode_once else "bytes to each service"
                results[mode] = {kind: await measure_kind(gateway, catalog, tally, f"wire-{kind}-{decode_once}".lower(),
                                                          labelled_photos(DATA / folder, individuals))
                                 for kind, folder in KINDS.items()}
    return results


def run_tree(tree: Path, individuals: int, out: Path) -> dict[str, object]:
    """This measurement, run as a subprocess inside ``tree`` (its own finprint and services)."""
    env = {**os.environ, "FINPRINT_DATA_DIR": str(DATA)}
    subprocess.run([sys.executable, "-m", "bench.bench_wire", "--measure", "--photos", str(individuals),
                    "--json", str(out)], cwd=tree, env=env, check=True)
    return json.loads(out.read_text())


def revision(tree: Path, rev: str = "HEAD") -> str:
    return subprocess.run(["git", "rev-parse", "--short", rev], cwd=tree, capture_output=True, text=True,
                          check=True).stdout.strip()


def before_and_after(baseline: str, individuals: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-wire-trees-") as temp:
        old = Path(temp) / "baseline"
        old.mkdir()
        archive = subprocess.run(["git", "archive", baseline], cwd=REPO, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        shutil.copy(__file__, old / "bench" / "bench_wire.py")
        before = run_tree(old, individuals, Path(temp) / "before.json")
        after = run_tree(REPO, individuals, Path(temp) / "after.json")
    return {"individuals_per_kind": individuals,
            "before": {"revision": revision(REPO, baseline), "figures": before},
            "after": {"revision": f"{revision(REPO)} + working tree", "figures": after}}


def print_table(data: dict) -> None:
    for label in ("before", "after"):
        print(f"{label} ({data[label]['revision']}): bytes per photo sent by the gateway")
        for mode, kinds in data[label]["figures"].items():
            for kind, figures in kinds.items():
                for step, figures_of_step in figures.items():
                    services = figures_of_step["services"]
                    cells = "  ".join(f"{s} {services[s]['bytes']:>10,.0f}" for s in SERVICES)
                    print(f"  {mode:22} {kind:9} {step:17} photo {figures_of_step['photo_bytes']:>9,}  {cells}")


def main() -> None:
    # Not bench.arguments: this file runs again inside the baseline revision's tree, which may not have it.
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=4, help="individuals per kind of photo (each up to 4 photos)")
    parser.add_argument("--baseline", default=BASELINE, help="the revision measured as 'before'")
    parser.add_argument("--full", action="store_true", help="twice the individuals")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)  # one tree, inside it
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    individuals = args.photos * (2 if args.full else 1)
    if args.measure:
        data: dict = asyncio.run(measure(individuals))
    else:
        data = before_and_after(args.baseline, individuals) | {"mode": "full" if args.full else "quick"}
        print_table(data)
    if args.json:
        args.json.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
