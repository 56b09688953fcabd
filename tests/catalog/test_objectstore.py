"""The object store, one interface, two implementations: the real S3 server and a local folder."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from finprint.objectstore import (
    InvalidObjectKey,
    LocalObjectStore,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    ObjectStoreSettings,
    S3ObjectStore,
    object_store_from_settings,
)
from finprint_testing.processes import free_port
from finprint_testing.s3 import S3Server
from services.catalog.app import create_app
from services.catalog.settings import CatalogSettings

pytestmark = pytest.mark.servers


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return object_store_from_settings(
            ObjectStoreSettings(object_store="local", local_object_dir=tmp_path)
        )
    s3: S3Server = request.getfixturevalue("s3_server")
    return object_store_from_settings(
        ObjectStoreSettings(
            object_store="s3",
            s3_endpoint=s3.endpoint,
            s3_access_key=s3.access_key,
            s3_secret_key=s3.secret_key,
            s3_bucket=f"test-{uuid.uuid4().hex[:12]}",
            s3_secure=False,
        )
    )


LocalApp = tuple[TestClient, LocalObjectStore]


@pytest.fixture
def local_app_client(tmp_path: Path) -> Iterator[LocalApp]:
    """The catalog app serving a local store's signed URLs."""
    settings = CatalogSettings(
        database_url=f"sqlite:///{tmp_path / 'c.db'}", local_object_dir=tmp_path / "objects"
    )
    app = create_app(settings)
    with TestClient(app) as client:
        yield client, app.state.catalog.store


def download(url: str, client: TestClient | None = None) -> tuple[int, bytes]:
    """Fetch a presigned URL without credentials: a relative one from the catalog app, else over HTTP."""
    if url.startswith("/"):
        assert client is not None
        response = client.get(url)
        return response.status_code, response.content
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def test_put_get_exists_content_type_delete(store: ObjectStore) -> None:
    store.put("media/org-a/ab/abcdef", b"\xff\xd8bytes", "image/jpeg")
    assert store.exists("media/org-a/ab/abcdef")
    assert store.get("media/org-a/ab/abcdef") == b"\xff\xd8bytes"
    assert store.content_type("media/org-a/ab/abcdef") == "image/jpeg"
    store.put("media/org-a/ab/abcdef", b"replaced", "image/png")
    assert store.get("media/org-a/ab/abcdef") == b"replaced"
    store.delete("media/org-a/ab/abcdef")
    assert not store.exists("media/org-a/ab/abcdef")
    store.delete("media/org-a/ab/abcdef")  # deleting what is gone is fine


def test_missing_objects_raise_not_found(store: ObjectStore) -> None:
    assert not store.exists("nothing/here")
    with pytest.raises(ObjectNotFound):
        store.get("nothing/here")
    with pytest.raises(ObjectNotFound):
        store.content_type("nothing/here")


def test_list_by_prefix_is_sorted_and_scoped(store: ObjectStore) -> None:
    for key in ("index/b/2", "index/a/1", "media/x", "index/a/0"):
        store.put(key, key.encode())
    assert list(store.list("index/")) == ["index/a/0", "index/a/1", "index/b/2"]
    assert list(store.list("index/a/")) == ["index/a/0", "index/a/1"]
    assert list(store.list("absent/")) == []


@pytest.mark.parametrize("key", ["../escape", "/absolute", "a//b", "a/./b", "a\\b", ""])
def test_keys_that_could_escape_are_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(InvalidObjectKey):
        store.put(key, b"x")


def test_presigned_url_downloads_without_credentials(store: ObjectStore, local_app_client: LocalApp) -> None:
    client, local_store = local_app_client
    if isinstance(store, LocalObjectStore):
        store = local_store  # the app signs and serves its own folder
    store.put("media/o/aa/photo", b"jpeg bytes", "image/jpeg")
    url = store.presigned_get_url("media/o/aa/photo", expires_s=60)
    assert download(url, client) == (200, b"jpeg bytes")


def test_objects_are_never_public(
    store: ObjectStore, local_app_client: LocalApp, s3_server: S3Server
) -> None:
    client, local_store = local_app_client
    if isinstance(store, LocalObjectStore):
        local_store.put("media/o/bb/photo", b"secret")
        assert client.get("/v1/objects/media/o/bb/photo").status_code == 422  # no signature: refused
        url = local_store.presigned_get_url("media/o/bb/photo", 60)
        tampered = url.replace("media/o/bb/photo", "media/o/bb/other")
        assert client.get(tampered).status_code == 403
    else:
        assert isinstance(store, S3ObjectStore)
        store.put("media/o/bb/photo", b"secret")
        status, _body = download(f"http://{s3_server.endpoint}/{store.bucket}/media/o/bb/photo")
        assert status == 403


def test_local_signed_urls_expire(local_app_client: LocalApp) -> None:
    client, store = local_app_client
    store.put("media/o/cc/photo", b"x")
    url = store.presigned_get_url("media/o/cc/photo", expires_s=1)
    query = parse_qs(urlsplit(url).query)
    assert store.verify_signature("media/o/cc/photo", int(query["expires"][0]), query["sig"][0])
    assert not store.verify_signature("media/o/cc/photo", int(time.time()) - 1, query["sig"][0])
    expired = url.replace(f"expires={query['expires'][0]}", f"expires={int(time.time()) - 5}")
    assert client.get(expired).status_code == 403


def test_local_signing_key_survives_a_restart(tmp_path: Path) -> None:
    first = LocalObjectStore(tmp_path)
    first.put("k/v", b"1")
    url = first.presigned_get_url("k/v", 60)
    query = parse_qs(urlsplit(url).query)
    again = LocalObjectStore(tmp_path)
    assert again.verify_signature("k/v", int(query["expires"][0]), query["sig"][0])
    assert list(again.list("")) == ["k/v"]  # the key file and metadata are not objects


def test_s3_bucket_is_created_when_missing(s3_server: S3Server) -> None:
    store = S3ObjectStore(
        s3_server.endpoint, s3_server.access_key, s3_server.secret_key, "made-on-first-use", secure=False
    )
    assert not store.client.bucket_exists("made-on-first-use")
    store.check()
    assert store.client.bucket_exists("made-on-first-use")


def test_s3_with_wrong_credentials_or_no_server_is_an_object_store_error(s3_server: S3Server) -> None:
    wrong = S3ObjectStore(
        s3_server.endpoint, s3_server.access_key, "not-the-secret", "any-bucket", secure=False
    )
    with pytest.raises(ObjectStoreError):
        wrong.put("a", b"b")
    nowhere = S3ObjectStore(f"127.0.0.1:{free_port()}", "k", "s", "bucket", secure=False, retries=0)
    with pytest.raises(ObjectStoreError):
        nowhere.check()
