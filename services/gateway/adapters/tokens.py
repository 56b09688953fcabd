"""User access and refresh tokens (JWT, HS256) for the OAuth2 password flow."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Literal

import jwt

from services.gateway.domain.principal import Principal, Role

TokenKind = Literal["access", "refresh"]
ISSUER = "finprint"


class InvalidToken(Exception):
    """The token is malformed, expired, of the wrong kind or signed with another key."""


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


class TokenIssuer:
    def __init__(self, secret: str, access_ttl_s: int, refresh_ttl_s: int) -> None:
        self._secret = secret
        self.access_ttl_s = access_ttl_s
        self.refresh_ttl_s = refresh_ttl_s

    def issue(self, user_id: str, org_id: str, role: Role) -> TokenPair:
        return TokenPair(
            access_token=self._encode(user_id, org_id, role, "access", self.access_ttl_s),
            refresh_token=self._encode(user_id, org_id, role, "refresh", self.refresh_ttl_s),
            expires_in=self.access_ttl_s,
        )

    def verify(self, token: str, kind: TokenKind) -> Principal:
        try:
            claims = jwt.decode(token, self._secret, algorithms=["HS256"], issuer=ISSUER,
                                options={"require": ["exp", "sub", "org", "role", "typ"]})
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        if claims["typ"] != kind:
            raise InvalidToken(f"a {claims['typ']} token was given where a {kind} token is needed")
        return Principal(org_id=claims["org"], role=Role.parse(claims["role"]), subject=claims["sub"], kind="user")

    def _encode(self, user_id: str, org_id: str, role: Role, kind: TokenKind, ttl_s: int) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": user_id, "org": org_id, "role": role.name, "typ": kind,
                  "iat": now, "exp": now + ttl_s, "jti": uuid.uuid4().hex}
        return jwt.encode(claims, self._secret, algorithm="HS256")
