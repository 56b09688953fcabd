"""Reading an uploaded photo from either a raw image body or a multipart field."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fastapi import Request
from starlette.datastructures import UploadFile

from finprint.problems import Problem

RAW_IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")


@dataclass(frozen=True)
class Upload:
    data: bytes
    filename: str
    content_type: str


async def read_single_image(request: Request, field: str = "image") -> Upload:
    """The photo of a request: multipart field ``field``, or the raw body with an image type.

    The declared type is only a hint: the detector sniffs the bytes and refuses what is not a photo.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        form = await request.form()
        values = form.getlist(field)
        if len(values) > 1:
            # Taking one of them would answer about a photo the caller may not have meant.
            raise Problem(422, f"Send exactly one photo in the multipart field `{field}`; got {len(values)}.",
                          slug="validation-error",
                          errors=[{"field": field, "message": f"{len(values)} values", "type": "too_many"}])
        value = values[0] if values else None
        if not isinstance(value, UploadFile):
            raise Problem(422, f"Send the photo in the multipart field `{field}`.", slug="validation-error",
                          errors=[{"field": field, "message": "missing file", "type": "missing"}])
        return Upload(await value.read(), value.filename or "upload", value.content_type or "application/octet-stream")
    if content_type.startswith("image/"):
        body = await request.body()
        if not body:
            raise Problem(422, "The request body is empty; send the photo.", slug="validation-error",
                          errors=[{"field": "body", "message": "empty", "type": "missing"}])
        return Upload(body, "upload", content_type)
    raise Problem(415, f"Send the photo as multipart/form-data (field `{field}`) or as a raw "
                       f"{', '.join(RAW_IMAGE_TYPES)} body; got {content_type or 'no Content-Type'}.")


def request_fingerprint(route: str, uploads: Sequence[Upload], fields: Mapping[str, object]) -> str:
    """What identifies a client's upload for idempotency: the route, the photos' bytes, the form fields.

    Detection, embedding and matching derive the stored request from this; on a retry they may
    answer differently (the first attempt changed the index), so the original request is what counts.
    """
    digest = hashlib.sha256(route.encode())
    for upload in uploads:
        digest.update(hashlib.sha256(upload.data).digest())
    for name in sorted(fields):
        digest.update(f"\n{name}={fields[name]}".encode())
    return digest.hexdigest()


async def read_photos(request: Request, field: str, max_count: int) -> list[Upload]:
    """The photos of a multipart request's repeated field ``field``: at least one, at most ``max_count``."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "multipart/form-data":
        raise Problem(415, f"Send the photos as multipart/form-data, one `{field}` file field each; "
                           f"got {content_type or 'no Content-Type'}.")
    form = await request.form()
    files = [f for f in form.getlist(field) if isinstance(f, UploadFile)]
    if not files or len(files) > max_count:
        found = "none" if not files else str(len(files))
        raise Problem(422, f"Send 1 to {max_count} photos in the multipart field `{field}`; got {found}.",
                      slug="validation-error",
                      errors=[{"field": field, "message": f"{found} files", "type": "missing" if not files else "too_many"}])
    return [Upload(await f.read(), f.filename or f"image-{i}", f.content_type or "application/octet-stream")
            for i, f in enumerate(files)]
