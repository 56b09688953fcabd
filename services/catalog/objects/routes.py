"""Route of signed downloads from the local object store."""

from __future__ import annotations

from fastapi import APIRouter, Response

from finprint.objectstore import LOCAL_OBJECT_ROUTE, InvalidObjectKey, LocalObjectStore, ObjectNotFound
from finprint.problems import NotFound, Problem
from services.catalog.shared.dependencies import CatalogContext

router = APIRouter(tags=["objects"])


@router.get(LOCAL_OBJECT_ROUTE + "/{key:path}", response_class=Response,
            summary="Download through a signed URL (local object store only)")
def signed_object(context: CatalogContext, key: str, expires: int, sig: str) -> Response:
    store = context.store
    if not isinstance(store, LocalObjectStore):
        raise NotFound("Route", LOCAL_OBJECT_ROUTE)
    try:
        valid = store.verify_signature(key, expires, sig)
    except InvalidObjectKey:
        valid = False
    if not valid:
        raise Problem(403, "The link is invalid or has expired; ask for a new one.", slug="invalid-signature")
    try:
        data, content_type = store.get(key), store.content_type(key)
    except ObjectNotFound:
        raise NotFound("Object", key) from None
    return Response(data, media_type=content_type, headers={"Cache-Control": "private, max-age=300"})
