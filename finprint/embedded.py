"""The embedded default: all five services in ONE process, talking HTTP in process.

Each app is the same app a scaled deployment runs; only the transport differs: the gateway's and
the matcher's clients reach their peers through ``httpx.ASGITransport`` instead of sockets.
Storage is local: SQLite and an image folder under the data directory, onnxruntime on the CPU,
faiss-cpu, and the models bundled in ``model_repository/``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from finprint.logs import configure_logging
from finprint.paths import default_model_repository
from finprint.services import BUILD_ORDER, app_factory

log = logging.getLogger("finprint.embedded")


def embedded_environment(data_dir: Path) -> dict[str, str]:
    """Settings of the embedded default. Variables already set in the environment win."""
    data_dir = data_dir.resolve()
    models = str(default_model_repository())
    return {
        "FINPRINT_CATALOG_DATABASE_URL": f"sqlite:///{data_dir / 'finprint.db'}",
        "FINPRINT_CATALOG_OBJECT_STORE": "local",
        "FINPRINT_CATALOG_LOCAL_OBJECT_DIR": str(data_dir / "objects"),
        "FINPRINT_CATALOG_AUTO_MIGRATE": "true",
        "FINPRINT_DETECTOR_MODEL_REPOSITORY": models,
        "FINPRINT_EMBEDDER_MODEL_REPOSITORY": models,
        "FINPRINT_EMBEDDER_BACKEND": "onnxruntime",
        "FINPRINT_MATCHER_CATALOG_URL": "http://catalog",
        "FINPRINT_MATCHER_OBJECT_STORE": "local",
        "FINPRINT_MATCHER_LOCAL_OBJECT_DIR": str(data_dir / "objects"),
        "FINPRINT_GATEWAY_DETECTOR_URL": "http://detector",
        "FINPRINT_GATEWAY_EMBEDDER_URL": "http://embedder",
        "FINPRINT_GATEWAY_MATCHER_URL": "http://matcher",
        "FINPRINT_GATEWAY_CATALOG_URL": "http://catalog",
        "FINPRINT_GATEWAY_EMBEDDED_WORKER": "true",
    }


def jwt_secret(data_dir: Path) -> str:
    """The embedded default's token-signing secret, made once and kept (owner-only) in the data dir."""
    path = data_dir / "jwt-secret"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip()


def apply_embedded_environment(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    for key, value in embedded_environment(data_dir).items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("FINPRINT_GATEWAY_JWT_SECRET", jwt_secret(data_dir))


def build_embedded_apps() -> dict[str, FastAPI]:
    """Build the five apps, each reaching the ones built before it in process."""
    apps: dict[str, FastAPI] = {}
    transports: dict[str, httpx.AsyncBaseTransport] = {}
    for name in BUILD_ORDER:
        apps[name] = app_factory(name)(None, transports)
        transports[name] = httpx.ASGITransport(app=apps[name])
    return apps


@asynccontextmanager
async def running_internal_apps(apps: Mapping[str, FastAPI]) -> AsyncIterator[None]:
    """Run the lifespans of the apps the gateway calls (ASGITransport does not run them)."""
    async with AsyncExitStack() as stack:
        for name in BUILD_ORDER:
            if name != "gateway":
                app = apps[name]
                await stack.enter_async_context(app.router.lifespan_context(app))
        yield


class _EmbeddedServer(uvicorn.Server):
    """uvicorn re-raises SIGINT/SIGTERM after serving, which would kill the process before the
    other four apps shut down; here a signal only asks the server to stop."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


async def serve_embedded(host: str, port: int, data_dir: Path, log_level: str = "INFO") -> None:
    configure_logging(log_level)
    apply_embedded_environment(data_dir)
    apps = build_embedded_apps()
    config = uvicorn.Config(apps["gateway"], host=host, port=port, log_config=None, lifespan="on")
    server = _EmbeddedServer(config)
    async with running_internal_apps(apps):
        base = f"http://{host}:{port}"
        print(
            f"\nFinprint is running at {base}  (API docs: {base}/docs, readiness: {base}/readyz)\n"
            f"Data: {data_dir.resolve()}\n"
            f"Create an API key:  finprint apikey create --org my-lab --role admin --data-dir {data_dir}\n"
            "Stop with Ctrl-C.\n",
            flush=True,
        )
        await server.serve()
    log.info("stopped cleanly")


def run_embedded(host: str, port: int, data_dir: Path, log_level: str = "INFO") -> None:
    asyncio.run(serve_embedded(host, port, data_dir, log_level))
