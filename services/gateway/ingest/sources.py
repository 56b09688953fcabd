"""Where a job's photos come from: staged uploads (manifest files, archives) or an S3 bucket."""

from __future__ import annotations

import asyncio
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import certifi
import urllib3
from minio import Minio
from minio.error import MinioException, S3Error
from pydantic import BaseModel, Field
from urllib3.exceptions import HTTPError

from finprint.outbound import OutboundGuard, OutboundRefused
from finprint.problems import Problem
from services.gateway.ingest.manifest import checked_key

MANIFEST_NAME = "manifest.csv"


S3_ERRORS = (MinioException, HTTPError, ValueError)
"""What reading a bucket may raise: the server's answer, the connection, a malformed endpoint."""

# S3 error codes a caller can act on; any other answer is described in our own words, because the
# endpoint is the caller's choice and its answer must not be relayed (it may not be S3 at all).
ACTIONABLE_S3_CODES = frozenset({
    "AccessDenied", "AuthorizationHeaderMalformed", "InvalidAccessKeyId", "InvalidBucketName", "NoSuchBucket",
    "NoSuchKey", "PermanentRedirect", "SignatureDoesNotMatch",
})
S3_TIMEOUT = urllib3.Timeout(connect=5.0, read=30.0)


def s3_failure(exc: Exception) -> str:
    """Why reading a bucket failed, from a fixed vocabulary: never the endpoint's own words."""
    if isinstance(exc, S3Error) and exc.code in ACTIONABLE_S3_CODES:
        return f"the server answered {exc.code}"
    if isinstance(exc, ValueError):
        return "the endpoint, bucket or credentials are malformed"
    return "the endpoint did not answer as an S3 server"


def outbound_refused(exc: OutboundRefused) -> Problem:
    return Problem(422, f"s3.endpoint {exc}.", slug="outbound-refused", title="Endpoint not allowed",
                   field="s3.endpoint", setting=exc.setting)


class S3Source(BaseModel):
    """An S3 bucket and prefix (AWS, MinIO, SeaweedFS, any S3 server)."""

    endpoint: str = Field(examples=["s3.eu-west-1.amazonaws.com"], description="host:port")
    bucket: str = Field(min_length=3, max_length=63)
    prefix: str = Field("", max_length=500, examples=["archive/2019/"])
    access_key: str | None = None
    secret_key: str | None = None
    secure: bool = True
    region: str | None = None

    def client(self, guard: OutboundGuard) -> Minio:
        """A client whose every connection goes through ``guard`` (raises OutboundRefused)."""
        guard.check_endpoint(self.endpoint, 443 if self.secure else 80)
        http = guard.pool_manager(
            timeout=S3_TIMEOUT, cert_reqs="CERT_REQUIRED", ca_certs=certifi.where(),
            retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]))
        return Minio(self.endpoint, access_key=self.access_key, secret_key=self.secret_key, secure=self.secure,
                     region=self.region, http_client=http)

    def public(self) -> dict[str, Any]:
        """The source as shown to users (no secret)."""
        return self.model_dump(exclude={"secret_key", "access_key"})

    def object_names(self, guard: OutboundGuard) -> list[str]:
        """The names under the prefix (relative to it), read in a worker thread by the caller."""
        names = []
        for obj in self.client(guard).list_objects(self.bucket, prefix=self.prefix, recursive=True):
            if not obj.is_dir and obj.object_name:
                names.append(obj.object_name[len(self.prefix):])
        return names

    def read(self, guard: OutboundGuard, relative_key: str) -> bytes:
        response = self.client(guard).get_object(self.bucket, self.prefix + relative_key)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    async def aread(self, guard: OutboundGuard, relative_key: str) -> bytes:
        return await asyncio.to_thread(self.read, guard, relative_key)


ARCHIVE_ERRORS = (zipfile.BadZipFile, zlib.error, tarfile.TarError, EOFError, OSError, NotImplementedError,
                  RuntimeError)
"""What reading a damaged archive raises: bad headers, CRCs and compressed streams (OSError covers gzip's,
lzma's and bz2's), an unsupported compression method (NotImplementedError), an encrypted member (RuntimeError)."""
CHUNK_BYTES = 1024 * 1024


class Archive:
    """A ZIP or TAR file on disk (the upload is spooled there, so memory stays bounded)."""

    def __init__(self, file: IO[bytes], filename: str) -> None:
        self.file = file
        self.filename = filename
        file.seek(0)
        try:
            if zipfile.is_zipfile(file):
                file.seek(0)
                self._zip: zipfile.ZipFile | None = zipfile.ZipFile(file)
                self._tar: tarfile.TarFile | None = None
            else:
                file.seek(0)
                self._tar = tarfile.open(fileobj=file, mode="r:*")  # noqa: SIM115 - lives as long as the upload
                self._zip = None
        except tarfile.ReadError:
            raise Problem(422, f"{filename} is neither a ZIP nor a TAR archive.", slug="invalid-archive") from None
        except ARCHIVE_ERRORS as exc:
            raise self._damaged(exc) from None

    def _damaged(self, exc: BaseException, member: str | None = None) -> Problem:
        where = f" (member {member!r})" if member else ""
        return Problem(422, f"{self.filename} is damaged{where}: {type(exc).__name__}; nothing was created.",
                       slug="invalid-archive", **({"member": member} if member else {}))

    def names(self) -> list[str]:
        if self._zip is not None:
            return [i.filename for i in self._zip.infolist() if not i.is_dir()]
        assert self._tar is not None
        try:
            return [m.name for m in self._tar.getmembers() if m.isfile()]
        except ARCHIVE_ERRORS as exc:
            raise self._damaged(exc) from None

    def _open_member(self, name: str) -> IO[bytes]:
        if self._zip is not None:
            return self._zip.open(name)
        assert self._tar is not None
        member = self._tar.extractfile(name)
        if member is None:
            raise KeyError(name)
        return member

    def read(self, name: str) -> bytes:
        try:
            with self._open_member(name) as member:
                return member.read()
        except ARCHIVE_ERRORS as exc:
            raise self._damaged(exc, name) from None

    def verify(self) -> None:
        """Read every member through (a chunk at a time, checking ZIP CRCs), so that a damaged archive is
        refused before its job is created rather than half staged."""
        for name in self.names():
            try:
                with self._open_member(name) as member:
                    while member.read(CHUNK_BYTES):
                        pass
            except ARCHIVE_ERRORS as exc:
                raise self._damaged(exc, name) from None

    def manifest(self) -> bytes | None:
        """``manifest.csv`` at the archive's root, when it has one."""
        return self.read(MANIFEST_NAME) if MANIFEST_NAME in self.names() else None

    def members_by_key(self) -> Iterator[tuple[str, str]]:
        """(item key, member name) of every photo in the archive; a name escaping it refuses the archive."""
        for name in self.names():
            if Path(name).name != MANIFEST_NAME:
                yield checked_key(name, "Archive member"), name
