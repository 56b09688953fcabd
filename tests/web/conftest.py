"""The web page in a real browser (Debian's Chromium driven by Playwright) against the embedded
default running as a real process."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from finprint_testing.postgres import PostgresServer
from finprint_testing.s3 import S3Server
from finprint_testing.system import RunningSystem, embedded_system

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
# Offline and quiet: no first-run UI, no update or sync traffic, no QUIC probes.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


ANALYSIS_TIMEOUT_MS = 120_000  # photos are analysed on a shared CPU


@contextmanager
def watched_tab(browser: Browser, base_url: str, width: int, height: int, *,
                bypass_csp: bool = False) -> Iterator[Page]:
    """A tab of that size; on leaving, it is closed and must have had no uncaught error, no console error
    (a Content-Security-Policy violation is one) and no failed page file. The API's own 4xx answers,
    which the page shows as messages, are logged to the console too, so failed responses of the page's
    files (``/app/``) are judged apart. ``bypass_csp`` lets a test inject axe-core (an inline script)."""
    context = browser.new_context(viewport={"width": width, "height": height}, base_url=base_url,
                                  bypass_csp=bypass_csp)
    page = context.new_page()
    page.set_default_timeout(ANALYSIS_TIMEOUT_MS)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    page.on("console", lambda message: problems.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource") else None)
    page.on("response", lambda response: problems.append(f"{response.status} {response.url}")
            if response.status >= 400 and "/app/" in response.url else None)
    try:
        yield page
    finally:
        context.close()
    assert problems == [], f"the page reported errors: {problems}"


@dataclass(frozen=True)
class Whale:
    code: str
    photos: list[Path]


@dataclass
class WebSystem:
    system: RunningSystem
    api_key: str

    @property
    def url(self) -> str:
        return self.system.gateway_url


@pytest.fixture(scope="module")
def web_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebSystem]:
    tmp = tmp_path_factory.mktemp("web-system")
    data = tmp / "data"
    with embedded_system(data, tmp) as system:
        created = subprocess.run(
            [sys.executable, "-m", "finprint.cli", "apikey", "create", "--org", "web-lab", "--role", "admin",
             "--data-dir", str(data)],
            capture_output=True, text=True, check=True,
        )
        yield WebSystem(system, created.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def field_system(tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer,
                 s3_server: S3Server) -> Iterator[WebSystem]:
    """The system as a lab deploys it: PostgreSQL and the S3 server (the browser loads the photos
    from S3's presigned links), in one process to spare the shared CPU."""
    tmp = tmp_path_factory.mktemp("field-system")
    bucket = f"web-{tmp.name.lower().replace('_', '-')}"[:60]
    storage = {"OBJECT_STORE": "s3", "S3_ENDPOINT": s3_server.endpoint, "S3_ACCESS_KEY": s3_server.access_key,
               "S3_SECRET_KEY": s3_server.secret_key, "S3_BUCKET": bucket, "S3_SECURE": "false"}
    with postgres_server.fresh_database() as database_url:
        env = {"FINPRINT_CATALOG_DATABASE_URL": database_url,
               **{f"FINPRINT_CATALOG_{k}": v for k, v in storage.items()},
               **{f"FINPRINT_MATCHER_{k}": v for k, v in storage.items()}}
        with embedded_system(tmp / "data", tmp, env=env) as system:
            created = subprocess.run(
                [sys.executable, "-m", "finprint.cli", "apikey", "create", "--org", "field-lab", "--role", "admin",
                 "--database-url", database_url],
                capture_output=True, text=True, check=True,
            )
            yield WebSystem(system, created.stdout.strip().splitlines()[-1])


def _humpbacks_by_individual(shared_data: Path) -> dict[str, list[Path]]:
    folder = shared_data / "kaggle_humpback2019"
    photos: dict[str, list[Path]] = defaultdict(list)
    with open(folder / "labels.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["individual_id"]:
                photos[row["individual_id"]].append(folder / "images" / row["image"])
    return photos


@pytest.fixture(scope="session")
def two_humpbacks(shared_data: Path) -> list[Whale]:
    """Two humpbacks with three photos each (deterministic choice)."""
    photos = _humpbacks_by_individual(shared_data)
    chosen = sorted(w for w, p in photos.items() if len(p) >= 3)[:2]
    return [Whale(f"HW-WEB-{n}", sorted(photos[w])[:3]) for n, w in enumerate(chosen)]


@pytest.fixture(scope="session")
def stranger_photos(shared_data: Path) -> list[Path]:
    """One photo each of other humpbacks, never catalogued by these tests (each test stores its own)."""
    photos = _humpbacks_by_individual(shared_data)
    others = sorted(w for w, p in photos.items() if len(p) >= 3)[2:6]
    return [min(photos[w]) for w in others]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Imported here so that collecting the suite does not need the dev extra.
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is missing at {CHROMIUM}: apt-get install -y chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
