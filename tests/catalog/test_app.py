"""The app as deployed: auto-migration, images in the real S3 server, change ordering on PostgreSQL."""

from __future__ import annotations

import hashlib
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from finprint_testing.postgres import PostgresServer
from finprint_testing.processes import free_port
from finprint_testing.s3 import S3Server
from services.catalog.adapters.db import migrate
from services.catalog.adapters.db.engine import make_engine, make_session_factory
from services.catalog.adapters.db.models import Annotation, Embedding, Media, Organisation
from services.catalog.app import create_app
from services.catalog.internal.change_log import record_change
from services.catalog.settings import CatalogSettings

from .helpers import Catalogue, jpeg, new_org

pytestmark = pytest.mark.servers


def test_auto_migrate_prepares_an_empty_database(tmp_path: Path) -> None:
    settings = CatalogSettings(
        database_url=f"sqlite:///{tmp_path / 'fresh' / 'finprint.db'}",
        local_object_dir=tmp_path / "objects",
        auto_migrate=True,
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").json()["ready"] is True
        species = client.get("/v1/species").json()
        assert "humpback_whale" in {s["key"] for s in species}
    assert migrate.current_revision(make_engine(settings.database_url)) == "0005"


def test_images_go_to_the_s3_bucket_and_download_through_presigned_urls(
    database_url: str, s3_server: S3Server, tmp_path: Path
) -> None:
    settings = CatalogSettings(
        database_url=database_url,
        object_store="s3",
        s3_endpoint=s3_server.endpoint,
        s3_access_key=s3_server.access_key,
        s3_secret_key=s3_server.secret_key,
        s3_bucket="catalog-images",
        s3_secure=False,
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").json()["checks"]["object_store"] == {"ready": True}
        cat = Catalogue(client, new_org(client, "S3lab"))
        data = jpeg(99)
        first, second = cat.upload(data), cat.upload(data)
        assert (first["duplicate"], second["duplicate"]) == (False, True)
        store = client.app.state.catalog.store
        assert list(store.list(f"media/{cat.org_id}/")) == [
            f"media/{cat.org_id}/{first['media']['sha256'][:2]}/{first['media']['sha256']}"
        ]
        url = client.get(cat.url(f"/media/{first['media']['id']}/url")).json()["url"]
        assert url.startswith(f"http://{s3_server.endpoint}/catalog-images/") and "X-Amz-Signature" in url
        with urllib.request.urlopen(url, timeout=10) as response:
            assert hashlib.sha256(response.read()).hexdigest() == first["media"]["sha256"]


def test_an_unreachable_object_store_is_a_503_and_stores_nothing(database_url: str) -> None:
    settings = CatalogSettings(
        database_url=database_url,
        object_store="s3",
        s3_endpoint=f"127.0.0.1:{free_port()}",
        s3_access_key="k",
        s3_secret_key="s",
        s3_secure=False,
        s3_timeout_s=2,
    )
    with TestClient(create_app(settings)) as down:
        org_id = new_org(down, "Down")
        response = down.post(f"/v1/orgs/{org_id}/media", files={"file": ("a.jpg", jpeg(5), "image/jpeg")})
        assert response.status_code == 503 and response.headers["Retry-After"]
        assert response.json()["dependency"] == "object store"
        assert down.get("/readyz").status_code == 503
        with down.app.state.catalog.sessions() as session:
            assert session.scalars(select(Media).where(Media.org_id == org_id)).all() == []


def test_change_numbers_are_handed_out_in_commit_order_on_postgres(postgres_server: PostgresServer) -> None:
    """A second writer waits for the first to commit before it takes a sequence number, so a reader that
    has seen number N can never later find a smaller one appear."""
    with postgres_server.fresh_database() as url:
        engine = make_engine(url)
        migrate.upgrade(engine)
        sessions = make_session_factory(engine)
        with sessions() as setup:
            organisation = Organisation(slug="order", name="Order")
            setup.add(organisation)
            setup.flush()
            media = Media(
                org_id=organisation.id,
                object_key="k",
                sha256="0" * 64,
                content_type="image/jpeg",
                size_bytes=1,
                width=1,
                height=1,
            )
            setup.add(media)
            setup.flush()
            annotations = [
                Annotation(
                    org_id=organisation.id,
                    media_id=media.id,
                    box_x=0,
                    box_y=0,
                    box_width=1,
                    box_height=1,
                    embeddings=[Embedding(org_id=organisation.id, model_version="m:1", vector=b"\0\0\0\0")],
                )
                for _ in range(2)
            ]
            setup.add_all(annotations)
            setup.commit()
            ids = [a.id for a in annotations]

        first = sessions()
        [first_change] = record_change(first, first.get(Annotation, ids[0]), "test")
        second_seq: list[int] = []

        def second_writer() -> None:
            with sessions() as session:
                [change] = record_change(session, session.get(Annotation, ids[1]), "test")
                session.commit()
                second_seq.append(change.seq)

        thread = threading.Thread(target=second_writer)
        thread.start()
        with engine.connect() as observer:  # wait until the second writer is blocked on the lock
            while not observer.execute(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            ).scalar():
                assert thread.is_alive()
                time.sleep(0.05)
        assert second_seq == []
        first.commit()
        thread.join(30)
        first.close()
        assert second_seq and second_seq[0] > first_change.seq
        engine.dispose()
