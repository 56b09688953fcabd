"""OAuth2 password flow for users (mobile and web): access and refresh tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm

from finprint.problems import Problem
from finprint.schemas.gateway import RefreshRequest, TokenResponse
from services.gateway.adapters.tokens import InvalidToken, TokenIssuer
from services.gateway.dependencies import GatewayContext, gateway_context
from services.gateway.domain.principal import Role

router = APIRouter(prefix="/v1/auth", tags=["authentication"])


def _issuer(ctx: GatewayContext) -> TokenIssuer:
    if ctx.tokens is None:
        raise Problem(503, "User tokens are not enabled on this server (no JWT secret is set).",
                      slug="tokens-disabled")
    return ctx.tokens


@router.post("/token", response_model=TokenResponse, summary="Log in (OAuth2 password flow)")
async def login(form: Annotated[OAuth2PasswordRequestForm, Depends()],
                ctx: GatewayContext = Depends(gateway_context)) -> TokenResponse:
    issuer = _issuer(ctx)
    ctx.limiter.hit(ctx.limiter.identify, f"login:{form.username.lower()}")
    try:
        user = await ctx.catalog.verify_password(form.username, form.password)
    except Problem as problem:
        if problem.status in {401, 404, 422}:
            raise Problem(401, "Wrong e-mail or password.", slug="unauthenticated") from None
        raise
    pair = issuer.issue(user["subject_id"], user["org_id"], Role.parse(user["role"]))
    return TokenResponse(access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in)


@router.post("/refresh", response_model=TokenResponse, summary="A new access token from a refresh token")
async def refresh(body: RefreshRequest, ctx: GatewayContext = Depends(gateway_context)) -> TokenResponse:
    issuer = _issuer(ctx)
    try:
        principal = issuer.verify(body.refresh_token, "refresh")
    except InvalidToken as exc:
        raise Problem(401, f"The refresh token is not valid: {exc}.", slug="unauthenticated") from None
    pair = issuer.issue(principal.subject, principal.org_id, principal.role)
    return TokenResponse(access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in)
