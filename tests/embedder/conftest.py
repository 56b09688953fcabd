"""Fixtures of the embedder tests: the service on each backend, and a real Triton serving the same ONNX."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from string import Template

import httpx
import pytest
from fastapi import FastAPI

from finprint.model_repository import locate_model
from services.embedder.adapters.model_files import load_card
from services.embedder.app import create_app
from services.embedder.settings import EmbedderSettings

TEMPLATE = Path(__file__).resolve().parent / "triton_repo_template"


@pytest.fixture(scope="session")
def model_repository() -> Path:
    """The repository the embedder serves by default (FINPRINT_EMBEDDER_MODEL_REPOSITORY or the bundled one)."""
    return EmbedderSettings().model_repository


@pytest.fixture(scope="session")
def triton_model_repository(tmp_path_factory: pytest.TempPathFactory, model_repository: Path) -> Path:
    """A Triton repository whose Python-backend model runs the embedder's own ONNX file."""
    files = locate_model(model_repository, "finprint_embedder", "")
    card = load_card(files.card)
    root = tmp_path_factory.mktemp("triton-repository")
    model_dir = root / "finprint_embedder"
    (model_dir / files.version).mkdir(parents=True)
    shutil.copy2(TEMPLATE / "finprint_embedder" / "1" / "model.py", model_dir / files.version / "model.py")
    config = Template((TEMPLATE / "finprint_embedder" / "config.pbtxt.template").read_text())
    (model_dir / "config.pbtxt").write_text(config.substitute(
        max_batch_size=32, input_size=card.input_size, embedding_dim=card.embedding_dim,
        species_count=len(card.species), onnx_path=files.onnx.resolve(),
    ))
    return root


EmbedderFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan run, reached in process as a client would see it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://embedder", timeout=60) as client:
            yield client


@pytest.fixture
def start_embedder(model_repository: Path) -> EmbedderFactory:
    """``async with start_embedder(backend=..., **settings) as client``: the embedder app, started."""

    def start(**settings: object) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        return serving(create_app(EmbedderSettings(**{"model_repository": model_repository, **settings})))

    return start


@pytest.fixture
async def embedder(start_embedder: EmbedderFactory) -> AsyncIterator[httpx.AsyncClient]:
    """The embedder on the onnxruntime backend."""
    async with start_embedder(backend="onnxruntime") as client:
        yield client


@pytest.fixture(scope="session")
def crop_paths(shared_data: Path) -> list[Path]:
    """Real crops of several species and sizes, and a field negative."""
    picks = [
        ("kaggle_humpback2019", 3), ("beluga_2022", 2), ("bottlenose_1056", 2), ("noaa_rightwhale_heads", 1),
        ("field_negatives", 1),
    ]
    paths: list[Path] = []
    for folder, count in picks:
        paths.extend(sorted((shared_data / folder / "images").iterdir())[:count])
    return paths


@pytest.fixture(scope="session")
def crop_parts(crop_paths: list[Path]) -> list[tuple[str, tuple[str, bytes, str]]]:
    """``crop_paths`` as multipart ``images`` parts."""
    return [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in crop_paths]
