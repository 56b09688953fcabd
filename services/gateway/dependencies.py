"""FastAPI dependencies of the public API: who is calling, may they, and are they within limits."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from finprint.problems import Problem
from finprint.schemas.catalog import API_KEY_MAX_LENGTH
from services.gateway.adapters.catalog import CatalogClient
from services.gateway.adapters.peers import Peers
from services.gateway.adapters.pipeline import Pipeline
from services.gateway.adapters.ratelimit import RateLimiter
from services.gateway.adapters.tokens import InvalidToken, TokenIssuer
from services.gateway.application.enrolment import EnrolmentService
from services.gateway.domain.principal import Principal, Role
from services.gateway.settings import GatewaySettings

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key (partners, scripts).")
bearer = HTTPBearer(auto_error=False, description="A user access token from POST /v1/auth/token.")


@dataclass
class GatewayContext:
    """Everything the routes need, built once per app (``app.state.gateway``)."""

    settings: GatewaySettings
    peers: Peers
    pipeline: Pipeline
    catalog: CatalogClient
    enrolment: EnrolmentService
    tokens: TokenIssuer | None
    limiter: RateLimiter
    api_key_cache: dict[str, tuple[float, Principal]]


def gateway_context(request: Request) -> GatewayContext:
    return request.app.state.gateway


def _unauthenticated(detail: str) -> Problem:
    return Problem(401, detail, slug="unauthenticated", headers={"WWW-Authenticate": "Bearer"})


async def _principal_from_api_key(ctx: GatewayContext, key: str) -> Principal:
    if len(key) > API_KEY_MAX_LENGTH:  # no key is this long: refused without asking the catalog
        raise _unauthenticated("The API key is not valid or was revoked.")
    cached = ctx.api_key_cache.get(key)
    now = time.monotonic()
    if cached and now - cached[0] < ctx.settings.api_key_cache_s:
        return cached[1]
    try:
        verified = await ctx.catalog.verify_api_key(key)
    except Problem as problem:
        # 422: the catalog found the key malformed; to a caller any key that opens nothing is the same 401.
        if problem.status in {401, 404, 422}:
            raise _unauthenticated("The API key is not valid or was revoked.") from None
        raise
    principal = Principal(org_id=verified["org_id"], role=Role.parse(verified["role"]),
                          subject=f"key:{verified['subject_id']}", kind="api_key")
    ctx.api_key_cache[key] = (now, principal)
    return principal


async def authenticate(
    ctx: GatewayContext = Depends(gateway_context),
    api_key: str | None = Depends(api_key_header),
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
) -> Principal:
    if api_key:
        principal = await _principal_from_api_key(ctx, api_key)
    elif credentials:
        if ctx.tokens is None:
            raise _unauthenticated("User tokens are not enabled on this server (no JWT secret is set).")
        try:
            principal = ctx.tokens.verify(credentials.credentials, "access")
        except InvalidToken as exc:
            raise _unauthenticated(f"The access token is not valid: {exc}.") from None
    else:
        raise _unauthenticated("Send an API key in X-API-Key or a user token in Authorization: Bearer.")
    ctx.limiter.hit(ctx.limiter.default, principal.subject)
    return principal


def require(role: Role) -> Callable[..., Principal]:
    """Dependency factory: the caller must hold at least ``role`` in their organisation."""

    async def dependency(principal: Principal = Depends(authenticate)) -> Principal:
        if not principal.may(role):
            raise Problem(403, f"This needs the {role.name} role; you are {principal.role.name}.",
                          slug="forbidden", needed_role=role.name)
        return principal

    return dependency


def identify_quota(
    ctx: GatewayContext = Depends(gateway_context), principal: Principal = Depends(require(Role.viewer))
) -> Principal:
    """The stricter limit of the expensive endpoints (identify, enrol)."""
    ctx.limiter.hit(ctx.limiter.identify, principal.subject)
    return principal
