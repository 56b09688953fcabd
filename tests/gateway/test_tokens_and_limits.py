"""User tokens, roles and rate limits of the gateway (no peers needed)."""

from __future__ import annotations

import jwt
import pytest

from finprint.problems import Problem
from services.gateway.adapters.ratelimit import RateLimiter
from services.gateway.adapters.tokens import InvalidToken, TokenIssuer
from services.gateway.domain.principal import Role


def test_access_token_round_trip_carries_org_and_role() -> None:
    issuer = TokenIssuer("s" * 32, access_ttl_s=60, refresh_ttl_s=600)
    pair = issuer.issue("user-1", "org-a", Role.reviewer)
    principal = issuer.verify(pair.access_token, "access")
    assert (principal.subject, principal.org_id, principal.role, principal.kind) == (
        "user-1", "org-a", Role.reviewer, "user")
    assert issuer.verify(pair.refresh_token, "refresh").org_id == "org-a"


def test_a_refresh_token_is_not_an_access_token_and_vice_versa() -> None:
    issuer = TokenIssuer("s" * 32, access_ttl_s=60, refresh_ttl_s=600)
    pair = issuer.issue("user-1", "org-a", Role.viewer)
    with pytest.raises(InvalidToken):
        issuer.verify(pair.refresh_token, "access")
    with pytest.raises(InvalidToken):
        issuer.verify(pair.access_token, "refresh")


def test_expired_forged_and_garbage_tokens_are_refused() -> None:
    issuer = TokenIssuer("s" * 32, access_ttl_s=-10, refresh_ttl_s=600)
    expired = issuer.issue("user-1", "org-a", Role.admin).access_token
    with pytest.raises(InvalidToken, match="expired"):
        issuer.verify(expired, "access")
    forged = jwt.encode({"sub": "u", "org": "org-b", "role": "admin", "typ": "access", "iss": "finprint",
                         "exp": 2**40}, "another-secret-of-enough-length-xx", algorithm="HS256")
    with pytest.raises(InvalidToken):
        TokenIssuer("s" * 32, 60, 600).verify(forged, "access")
    with pytest.raises(InvalidToken):
        issuer.verify("not.a.token", "access")


def test_roles_are_ordered() -> None:
    assert Role.admin > Role.reviewer > Role.contributor > Role.viewer
    with pytest.raises(ValueError, match="unknown role"):
        Role.parse("owner")


def test_rate_limit_answers_429_with_retry_after_per_caller() -> None:
    limiter = RateLimiter("memory://", "3/minute", "1/minute")
    for _ in range(3):
        limiter.hit(limiter.default, "key:a")
    with pytest.raises(Problem) as raised:
        limiter.hit(limiter.default, "key:a")
    assert raised.value.status == 429
    assert 1 <= int(raised.value.headers["Retry-After"]) <= 60
    limiter.hit(limiter.default, "key:b")  # another caller has its own budget
