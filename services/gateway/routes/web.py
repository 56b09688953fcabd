"""The web page for researchers: static files under ``/app/``, served with a strict
Content-Security-Policy (no inline script, no third-party origin), and the signed image links
of the local object store, which point at the catalog but are opened by browsers at the gateway.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException
from starlette.staticfiles import StaticFiles

from finprint.objectstore import LOCAL_OBJECT_ROUTE
from finprint.problems import NotFound
from services.gateway.dependencies import GatewayContext, gateway_context

WEB_DIR = Path(__file__).resolve().parent.parent / "web"

# Images may come from the S3 server's presigned URLs, whose origin only the deployment knows;
# everything that can run code or send data stays on this origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data: http: https:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # No build step means no content-hashed file names: browsers revalidate (ETag, 304) every time.
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)
_static = StaticFiles(directory=WEB_DIR, html=True, check_dir=False)


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/app/", status_code=307)


@router.get("/app")
async def app_without_slash() -> RedirectResponse:
    return RedirectResponse("/app/", status_code=307)


@router.get("/app/{path:path}")
async def web_file(path: str, request: Request) -> Response:
    try:
        response = await _static.get_response(path or "index.html", request.scope)
    except HTTPException:
        raise NotFound("Page", path) from None
    response.headers.update(SECURITY_HEADERS)
    return response


@router.get(LOCAL_OBJECT_ROUTE + "/{key:path}")
async def signed_object(
    key: str,
    expires: Annotated[int, Query()],
    sig: Annotated[str, Query(max_length=128)],
    ctx: Annotated[GatewayContext, Depends(gateway_context)],
) -> Response:
    """An image through a link from ``GET /v1/media/{id}/url``; the signature is the authorisation,
    checked by the catalog."""
    upstream = await ctx.catalog.client.request("GET", f"{LOCAL_OBJECT_ROUTE}/{key}",
                                                params={"expires": expires, "sig": sig})
    return Response(upstream.content, media_type=upstream.headers.get("content-type"),
                    headers={"Cache-Control": upstream.headers.get("cache-control", "private, max-age=300"),
                             "X-Content-Type-Options": "nosniff"})
