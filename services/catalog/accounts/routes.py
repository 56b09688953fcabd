"""Routes of organisations, users and API keys, and of the verification of API keys and passwords."""

from __future__ import annotations

from fastapi import APIRouter

from finprint.problems import Problem
from finprint.schemas.catalog import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    ApiKeyVerify,
    OrganisationCreate,
    OrganisationOut,
    OrganisationSettings,
    OrganisationSettingsUpdate,
    PasswordVerify,
    Principal,
    UserCreate,
    UserOut,
)
from services.catalog.accounts import service as accounts
from services.catalog.shared.dependencies import DbSession, OrgId
from services.catalog.shared.scoping import get_organisation as get_organisation_row

TAG = "organisations and access"
organisations = APIRouter(prefix="/v1", tags=[TAG])
verification = APIRouter(prefix="/v1/auth", tags=[TAG])


@organisations.post("/orgs", status_code=201, summary="Create an organisation")
def create_organisation(payload: OrganisationCreate, db: DbSession) -> OrganisationOut:
    organisation = accounts.create_organisation(db, payload)
    db.commit()
    return OrganisationOut.model_validate(organisation)


@organisations.get("/orgs", summary="Find an organisation by slug; without one, every organisation")
def find_organisations(db: DbSession, slug: str | None = None) -> list[OrganisationOut]:
    # Every organisation: what a job run for all of them (the nightly duplicates scan) walks through.
    if slug is None:
        return [OrganisationOut.model_validate(o) for o in accounts.list_organisations(db)]
    organisation = accounts.find_organisation(db, slug)
    return [OrganisationOut.model_validate(organisation)] if organisation else []


@organisations.get("/orgs/{org_id}", summary="An organisation")
def get_organisation(org_id: OrgId, db: DbSession) -> OrganisationOut:
    return OrganisationOut.model_validate(get_organisation_row(db, org_id))


@organisations.get("/orgs/{org_id}/settings", summary="An organisation's settings (auto-accept)")
def get_settings(org_id: OrgId, db: DbSession) -> OrganisationSettings:
    return OrganisationSettings.model_validate(get_organisation_row(db, org_id))


@organisations.put("/orgs/{org_id}/settings", summary="Change an organisation's settings (audited)")
def put_settings(org_id: OrgId, payload: OrganisationSettingsUpdate, db: DbSession) -> OrganisationSettings:
    organisation = accounts.update_settings(db, org_id, payload)
    db.commit()
    return OrganisationSettings.model_validate(organisation)


@organisations.post("/orgs/{org_id}/users", status_code=201, summary="Create a user")
def create_user(org_id: OrgId, payload: UserCreate, db: DbSession) -> UserOut:
    user = accounts.create_user(db, org_id, payload)
    db.commit()
    return UserOut.model_validate(user)


@organisations.get("/orgs/{org_id}/users", summary="The organisation's users")
def list_users(org_id: OrgId, db: DbSession) -> list[UserOut]:
    return [UserOut.model_validate(u) for u in accounts.list_users(db, org_id)]


@organisations.post(
    "/orgs/{org_id}/api-keys", status_code=201, summary="Create an API key (the key is shown once)"
)
def create_api_key(org_id: OrgId, payload: ApiKeyCreate, db: DbSession) -> ApiKeyCreated:
    api_key, key = accounts.create_api_key(db, org_id, payload)
    db.commit()
    return ApiKeyCreated(**ApiKeyOut.model_validate(api_key).model_dump(), key=key)


@organisations.get("/orgs/{org_id}/api-keys", summary="The organisation's API keys")
def list_api_keys(org_id: OrgId, db: DbSession) -> list[ApiKeyOut]:
    return [ApiKeyOut.model_validate(k) for k in accounts.list_api_keys(db, org_id)]


@organisations.delete("/orgs/{org_id}/api-keys/{key_id}", summary="Revoke an API key")
def revoke_api_key(org_id: OrgId, key_id: str, db: DbSession) -> ApiKeyOut:
    api_key = accounts.revoke_api_key(db, org_id, key_id)
    db.commit()
    return ApiKeyOut.model_validate(api_key)


@verification.post("/api-keys:verify", summary="Who an API key belongs to (401 if invalid)")
def verify_api_key(payload: ApiKeyVerify, db: DbSession) -> Principal:
    principal = accounts.verify_api_key(db, payload.key)
    if principal is None:
        raise Problem(401, "The API key is unknown or revoked.", slug="invalid-api-key")
    return principal


@verification.post("/passwords:verify", summary="Check a user's password (401 if wrong)")
def verify_password(payload: PasswordVerify, db: DbSession) -> Principal:
    principal = accounts.verify_password(db, payload.email, payload.password)
    if principal is None:
        raise Problem(
            401, "The e-mail or password is wrong, or the account is disabled.", slug="invalid-credentials"
        )
    return principal
