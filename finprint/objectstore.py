"""The object store shared by the catalog (images) and the matcher (index snapshots).

One interface, two implementations:

- :class:`S3ObjectStore`: any S3 server (MinIO in production) through the ``minio`` SDK. The
  bucket is created when missing and never given a public policy: clients download through
  presigned URLs that expire.
- :class:`LocalObjectStore`: a folder (the embedded default). Its "presigned" URL is an
  HMAC-signed path served by the catalog app (``/v1/objects/{key}?expires=..&sig=..``), so the
  folder is never exposed as a public path either.

Settings: services mix :class:`ObjectStoreSettings` into their own settings class and build the
store with :func:`object_store_from_settings`.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import secrets
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import Literal
from urllib.parse import quote, urlencode

from pydantic import BaseModel, Field, SecretStr

LOCAL_OBJECT_ROUTE = "/v1/objects"
_META_DIR = ".meta"  # content types of the local store, kept out of listings
_SIGNING_KEY_FILE = ".signing-key"


class ObjectStoreError(Exception):
    """The object store could not be reached or refused the operation."""


class ObjectNotFound(ObjectStoreError, KeyError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        return f"object {self.key!r} does not exist"


class InvalidObjectKey(ObjectStoreError, ValueError):
    """A key that could escape its namespace (``..``, absolute paths, empty parts)."""


def validate_key(key: str) -> str:
    path = PurePosixPath(key)
    if (
        not key
        or key.startswith("/")
        or "\\" in key
        or any(part in {"", ".", ".."} for part in key.split("/"))
        or path.parts[0] == _META_DIR
    ):
        raise InvalidObjectKey(f"invalid object key {key!r}")
    return key


class ObjectStore(ABC):
    """Bytes under string keys (``media/<org>/<sha256>``), with expiring download URLs."""

    @abstractmethod
    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The object's bytes; raises :class:`ObjectNotFound`."""

    @abstractmethod
    def content_type(self, key: str) -> str:
        """The content type given at ``put``; raises :class:`ObjectNotFound`."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; removing a missing object is not an error."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with ``prefix``, in lexicographic order."""

    @abstractmethod
    def presigned_get_url(self, key: str, expires_s: int) -> str:
        """A URL that downloads the object without credentials until it expires."""

    @abstractmethod
    def check(self) -> None:
        """Raise :class:`ObjectStoreError` when the store does not answer (readiness)."""


class LocalObjectStore(ObjectStore):
    """Objects as files under ``root``; writes are atomic (temporary file + rename).

    ``base_url`` prefixes the signed URLs (empty: a path relative to the catalog app). The
    signing key is kept in ``root/.signing-key`` unless given, so URLs survive a restart.
    """

    def __init__(self, root: Path, *, signing_key: bytes | None = None, base_url: str = "") -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.base_url = base_url.rstrip("/")
        self._signing_key = signing_key or self._load_or_create_signing_key()

    def _load_or_create_signing_key(self) -> bytes:
        path = self.root / _SIGNING_KEY_FILE
        if not path.exists():
            fd, tmp = tempfile.mkstemp(dir=self.root)
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(32))
            os.chmod(tmp, 0o600)
            try:
                os.link(tmp, path)  # fails if another process created it first: theirs wins
            except FileExistsError:
                pass
            finally:
                os.unlink(tmp)
        return path.read_bytes()

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def _meta_path(self, key: str) -> Path:
        return self.root / _META_DIR / (validate_key(key) + ".json")

    @staticmethod
    def _write_atomically(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        try:
            self._write_atomically(self._meta_path(key), json.dumps({"content_type": content_type}).encode())
            self._write_atomically(self._path(key), data)
        except OSError as exc:  # a full disk (ENOSPC), a quota, a read-only mount: the store failed
            if not self._path(key).exists():
                self._meta_path(key).unlink(missing_ok=True)  # no content type left for an object never written
            raise ObjectStoreError(f"cannot write {key!r}: {exc.strerror or exc}") from exc

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise ObjectNotFound(key) from None
        except OSError as exc:
            raise ObjectStoreError(f"cannot read {key!r}: {exc.strerror or exc}") from exc

    def content_type(self, key: str) -> str:
        if not self.exists(key):
            raise ObjectNotFound(key)
        try:
            return json.loads(self._meta_path(key).read_text())["content_type"]
        except FileNotFoundError:
            return "application/octet-stream"

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
            self._meta_path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise ObjectStoreError(f"cannot delete {key!r}: {exc.strerror or exc}") from exc

    def list(self, prefix: str = "") -> Iterator[str]:
        keys = []
        for path in self.root.rglob("*"):
            relative = path.relative_to(self.root).as_posix()
            if (
                path.is_file()
                and relative.startswith(prefix)
                and not relative.startswith(_META_DIR + "/")
                and relative != _SIGNING_KEY_FILE
                and not path.name.startswith(".tmp-")
            ):
                keys.append(relative)
        return iter(sorted(keys))

    def _signature(self, key: str, expires: int) -> str:
        message = f"{key}\n{expires}".encode()
        return hmac.new(self._signing_key, message, hashlib.sha256).hexdigest()

    def presigned_get_url(self, key: str, expires_s: int) -> str:
        validate_key(key)
        expires = int(time.time()) + expires_s
        query = urlencode({"expires": expires, "sig": self._signature(key, expires)})
        return f"{self.base_url}{LOCAL_OBJECT_ROUTE}/{quote(key)}?{query}"

    def verify_signature(self, key: str, expires: int, sig: str) -> bool:
        """True when ``sig`` was made by :meth:`presigned_get_url` for this key and has not expired."""
        if expires < time.time():
            return False
        return hmac.compare_digest(self._signature(key, expires), sig)

    def check(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise ObjectStoreError(f"{self.root} is not writable")


@contextmanager
def _s3_errors(key: str | None = None) -> Iterator[None]:
    """Turn the SDK's and urllib3's exceptions into ObjectStoreError (ObjectNotFound for a missing key)."""
    from minio.error import MinioException, S3Error
    from urllib3.exceptions import HTTPError

    try:
        yield
    except S3Error as exc:
        if key is not None and exc.code in {"NoSuchKey", "NoSuchObject"}:
            raise ObjectNotFound(key) from exc
        raise ObjectStoreError(f"S3: {exc.code}: {exc.message}") from exc
    except (MinioException, HTTPError, OSError) as exc:
        raise ObjectStoreError(f"S3: {type(exc).__name__}: {exc}") from exc


class S3ObjectStore(ObjectStore):
    """A bucket on an S3 server through the minio SDK; created on first use, never public."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        *,
        secure: bool = True,
        region: str | None = None,
        timeout_s: float = 30.0,
        retries: int = 2,
    ) -> None:
        # Imported here so that services without the minio dependency can still use the local store.
        import urllib3
        from minio import Minio

        self.bucket = bucket
        # The SDK's default waits minutes on an unreachable server; a request should fail fast into a 503.
        http_client = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s),
            retries=urllib3.Retry(total=retries, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504)),
            maxsize=16,
        )
        self.client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=http_client,
        )
        self._bucket_ready = False

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        with _s3_errors():
            if not self.client.bucket_exists(self.bucket):
                from minio.error import S3Error

                try:
                    self.client.make_bucket(self.bucket)
                except S3Error as exc:  # another replica created it between the check and here
                    if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                        raise
        self._bucket_ready = True

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        validate_key(key)
        self._ensure_bucket()
        with _s3_errors(key):
            self.client.put_object(self.bucket, key, io.BytesIO(data), len(data), content_type=content_type)

    def get(self, key: str) -> bytes:
        validate_key(key)
        self._ensure_bucket()
        with _s3_errors(key):
            response = self.client.get_object(self.bucket, key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

    def content_type(self, key: str) -> str:
        validate_key(key)
        self._ensure_bucket()
        with _s3_errors(key):
            return self.client.stat_object(self.bucket, key).content_type or "application/octet-stream"

    def exists(self, key: str) -> bool:
        try:
            self.content_type(key)
        except ObjectNotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        validate_key(key)
        self._ensure_bucket()
        with _s3_errors(key):
            self.client.remove_object(self.bucket, key)

    def list(self, prefix: str = "") -> Iterator[str]:
        self._ensure_bucket()
        with _s3_errors():
            keys = [
                obj.object_name
                for obj in self.client.list_objects(self.bucket, prefix=prefix, recursive=True)
            ]
        return iter(sorted(k for k in keys if k is not None))

    def presigned_get_url(self, key: str, expires_s: int) -> str:
        validate_key(key)
        self._ensure_bucket()
        with _s3_errors(key):
            return self.client.presigned_get_object(self.bucket, key, expires=timedelta(seconds=expires_s))

    def check(self) -> None:
        self._bucket_ready = False  # readiness asks the server every time
        self._ensure_bucket()


class ObjectStoreSettings(BaseModel):
    """Object-store fields, mixed into a service's settings (``FINPRINT_<SERVICE>_OBJECT_STORE`` ...)."""

    object_store: Literal["local", "s3"] = Field(
        "local", description="Where objects live: `local` (a folder) or `s3` (MinIO or any S3 server)."
    )
    local_object_dir: Path = Field(
        Path("data/objects"), description="Folder of the local object store (object_store=local)."
    )
    s3_endpoint: str = Field("127.0.0.1:9000", description="S3 server as host:port (object_store=s3).")
    s3_access_key: SecretStr = Field(SecretStr(""), description="S3 access key (object_store=s3).")
    s3_secret_key: SecretStr = Field(SecretStr(""), description="S3 secret key (object_store=s3).")
    s3_bucket: str = Field("finprint", description="S3 bucket; created when missing, never made public.")
    s3_secure: bool = Field(True, description="Use HTTPS to reach the S3 server.")
    s3_region: str | None = Field(None, description="S3 region; leave empty for MinIO.")
    s3_timeout_s: float = Field(30.0, gt=0, description="Connect and read timeout of S3 requests, seconds.")


def object_store_from_settings(settings: ObjectStoreSettings, *, local_base_url: str = "") -> ObjectStore:
    """The store the settings describe. ``local_base_url`` prefixes the local store's signed URLs."""
    if settings.object_store == "s3":
        return S3ObjectStore(
            settings.s3_endpoint,
            settings.s3_access_key.get_secret_value(),
            settings.s3_secret_key.get_secret_value(),
            settings.s3_bucket,
            secure=settings.s3_secure,
            region=settings.s3_region,
            timeout_s=settings.s3_timeout_s,
        )
    return LocalObjectStore(settings.local_object_dir, base_url=local_base_url)
