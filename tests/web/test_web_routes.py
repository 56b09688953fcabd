"""How the gateway serves the web page: where it lives, and the headers that keep it safe."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from services.gateway.app import create_app
from services.gateway.routes.web import WEB_DIR


@pytest.fixture
async def gateway() -> AsyncIterator[httpx.AsyncClient]:
    # Static files need no peer: the app is called in process without starting its lifespan.
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client


async def test_the_root_leads_to_the_page(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/")
    assert response.status_code == 307 and response.headers["location"] == "/app/"


async def test_the_page_is_served_with_a_strict_content_security_policy(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/app/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy and "unsafe" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-cache" and response.headers["etag"]


async def test_an_unchanged_file_is_not_sent_again(gateway: httpx.AsyncClient) -> None:
    first = await gateway.get("/app/app.js")
    assert first.status_code == 200 and "javascript" in first.headers["content-type"]
    again = await gateway.get("/app/app.js", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304


async def test_files_outside_the_page_are_not_found(gateway: httpx.AsyncClient) -> None:
    missing = await gateway.get("/app/missing.js")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    # A path that walks up is refused before any route looks at it (finprint.app.plain_parameters).
    for path in ("/app/..%2F..%2Fsettings.py", "/app/%2e%2e/routes/web.py"):
        response = await gateway.get(path)
        assert response.status_code in (404, 422), path
        assert response.headers["content-type"] == "application/problem+json"
        assert "from __future__" not in response.text  # no source file of the gateway


def test_the_page_has_no_inline_script_or_style() -> None:
    """The policy forbids them; an inline one would silently not run in a browser."""
    html = (WEB_DIR / "index.html").read_text()
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all("src=" in tag for tag in scripts)
    assert "<style" not in html and not re.search(r"<[^>]+\s(style|on\w+)=", html)


def test_every_module_the_page_imports_exists() -> None:
    for module in WEB_DIR.glob("*.js"):
        for imported in re.findall(r'from "\./([\w.-]+)"', module.read_text()):
            assert (WEB_DIR / imported).is_file(), f"{module.name} imports a missing {imported}"
