"""Organisations, users and API keys.

API keys look like ``fp_<prefix>_<secret>``: the prefix finds the row, and only the SHA-256 of
the whole key is stored. A salted slow hash is not needed here: the secret is 32 random bytes, so
there is nothing to guess, and a lookup per request stays fast. User passwords are chosen by
people and get argon2.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from finprint.schemas.catalog import ApiKeyCreate, OrganisationCreate, OrganisationSettingsUpdate, Principal, UserCreate
from services.catalog.adapters.db.models import ApiKey, Organisation, User, utcnow
from services.catalog.audit import service as audit
from services.catalog.shared.database import inserted
from services.catalog.shared.problems import Conflict
from services.catalog.shared.scoping import get_organisation, get_owned

KEY_PREFIX = "fp"
_password_hasher = PasswordHasher()
# Verifying against this when the e-mail is unknown keeps the answer time the same either way.
_DUMMY_HASH = _password_hasher.hash(secrets.token_hex(16))


def create_organisation(session: Session, request: OrganisationCreate) -> Organisation:
    if find_organisation(session, request.slug) is not None:
        raise Conflict(f"an organisation with slug {request.slug!r} already exists", field="slug")
    return inserted(session, Organisation(slug=request.slug, name=request.name))


def list_organisations(session: Session) -> list[Organisation]:
    return list(session.scalars(select(Organisation).order_by(Organisation.slug)))


def find_organisation(session: Session, slug: str) -> Organisation | None:
    return session.scalar(select(Organisation).where(Organisation.slug == slug))


def update_settings(session: Session, org_id: str, request: OrganisationSettingsUpdate) -> Organisation:
    """The organisation's settings replaced; the change is audited with what they were."""
    organisation = get_organisation(session, org_id)
    previous = {"auto_accept_precision": organisation.auto_accept_precision}
    organisation.auto_accept_precision = request.auto_accept_precision
    audit.append(session, org_id, "organisation", org_id, "settings_changed", request.updated_by,
                 previous=previous, auto_accept_precision=request.auto_accept_precision)
    session.flush()
    return organisation


def create_user(session: Session, org_id: str, request: UserCreate) -> User:
    email = request.email.lower()
    if session.scalar(select(User).where(User.email == email)) is not None:
        raise Conflict(f"a user with e-mail {email} already exists", field="email")
    password_hash = _password_hasher.hash(request.password)
    user = User(org_id=org_id, email=email, display_name=request.display_name, role=request.role,
                password_hash=password_hash)
    return inserted(session, user)


def list_users(session: Session, org_id: str) -> list[User]:
    return list(session.scalars(select(User).where(User.org_id == org_id).order_by(User.email)))


def verify_password(session: Session, email: str, password: str) -> Principal | None:
    """The user's principal when the password is right and the account enabled, else None."""
    user = session.scalar(select(User).where(User.email == email.lower()))
    try:
        _password_hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or user.disabled:
        return None
    return _principal(session, user.org_id, user.role, "user", user.id, user.display_name)


def _key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(session: Session, org_id: str, request: ApiKeyCreate) -> tuple[ApiKey, str]:
    """The stored key and the key itself (returned once: only its hash is kept)."""
    prefix = secrets.token_hex(5)
    key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey(
        org_id=org_id, prefix=prefix, secret_sha256=_key_digest(key), name=request.name, role=request.role
    )
    return inserted(session, api_key), key


def list_api_keys(session: Session, org_id: str) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).where(ApiKey.org_id == org_id).order_by(ApiKey.created_at)))


def revoke_api_key(session: Session, org_id: str, key_id: str, when: datetime | None = None) -> ApiKey:
    api_key = get_owned(session, ApiKey, org_id, key_id, "API key")
    if api_key.revoked_at is None:
        api_key.revoked_at = when or utcnow()
    return api_key


def verify_api_key(session: Session, key: str) -> Principal | None:
    """The principal of a valid, unrevoked key, else None."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return None
    api_key = session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
    if api_key is None or api_key.revoked_at is not None:
        return None
    if not hmac.compare_digest(api_key.secret_sha256, _key_digest(key)):
        return None
    return _principal(session, api_key.org_id, api_key.role, "api_key", api_key.id, api_key.name)


def _principal(
    session: Session, org_id: str, role: str, kind: Literal["api_key", "user"], subject_id: str, name: str
) -> Principal:
    """Who an API key or a user is, for the gateway's authorisation."""
    organisation = get_organisation(session, org_id)
    return Principal(org_id=organisation.id, org_slug=organisation.slug, role=role, kind=kind,
                     subject_id=subject_id, name=name)
