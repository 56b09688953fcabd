"""Routes of the catalog service.

Every route of an organisation's data lives under ``/v1/orgs/{org_id}`` and every query filters
by that id: another organisation's rows answer 404, exactly like rows that do not exist. Routes
are plain ``def``: FastAPI runs them in its thread pool, with a synchronous SQLAlchemy session
per request; each request commits once, at the end, so it changes everything it means to or
nothing. Creating POSTs accept an ``Idempotency-Key`` header.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from finprint.objectstore import (
    LOCAL_OBJECT_ROUTE,
    InvalidObjectKey,
    LocalObjectStore,
    ObjectNotFound,
    ObjectStoreError,
)
from finprint.problems import NotFound, Problem
from finprint.schemas.catalog import (
    OFFSET_MAX,
    SEQ_MAX,
    AnnotationCreate,
    AnnotationOut,
    AnnotationUpdate,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    ApiKeyVerify,
    AuditEntryOut,
    CatalogueStats,
    CommentCreate,
    CommentOut,
    DecisionRequest,
    EncounterCreate,
    EncounterOut,
    EncounterUpdate,
    EnrolRequest,
    EnrolResult,
    IdentificationCreate,
    IdentificationOut,
    IndividualCreate,
    IndividualOut,
    IndividualUpdate,
    IngestItemOut,
    IngestItemsAdd,
    IngestItemsAdded,
    IngestItemUpdate,
    IngestJobCreate,
    IngestJobUpdate,
    MediaOut,
    MediaUploaded,
    MergeRequest,
    MergeSplitResult,
    OrganisationCreate,
    OrganisationOut,
    Page,
    PasswordVerify,
    PresignedUrl,
    Principal,
    SpeciesOut,
    SplitRequest,
    UserCreate,
    UserOut,
)
from finprint.schemas.common import SingleLine
from finprint.schemas.embeddings import ChangePage, EmbeddingPage, EmbeddingSummary
from services.catalog.adapters.db.models import Media, Species
from services.catalog.domain import (
    accounts,
    annotations,
    audit,
    changes,
    comments,
    encounters,
    enrolment,
    exports,
    idempotency,
    individuals,
    ingest,
    stats,
)
from services.catalog.domain import media as media_domain
from services.catalog.domain.errors import Invalid
from services.catalog.domain.scoping import get_owned

if TYPE_CHECKING:
    from services.catalog.app import Catalog

log = logging.getLogger("finprint.catalog")

# --- dependencies -----------------------------------------------------------------------------


def catalog(request: Request) -> Catalog:
    return request.app.state.catalog


def get_db(request: Request) -> Iterator[Session]:
    with catalog(request).sessions() as session:
        yield session


DbSession = Annotated[Session, Depends(get_db)]


def require_org(org_id: str, db: DbSession) -> str:
    """The organisation of the path, which must exist; every query below filters by it."""
    accounts.get_organisation(db, org_id)
    return org_id


OrgId = Annotated[str, Depends(require_org)]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=200, description="Send the same key to retry safely."),
]
Offset = Annotated[int, Query(ge=0, le=OFFSET_MAX)]


def limit_param(request: Request, limit: Annotated[int, Query(ge=1, le=OFFSET_MAX)] = 100) -> int:
    return min(limit, catalog(request).settings.page_size_max)


Limit = Annotated[int, Depends(limit_param)]


def commit(db: Session) -> None:
    db.commit()


def created(
    db: Session,
    org_id: str,
    key: str | None,
    request: Request,
    payload: BaseModel,
    make: Callable[[], Any],
    status_code: int = 201,
) -> JSONResponse:
    """Run ``make`` (which writes) and commit; with an Idempotency-Key, a repeat gets the first answer.

    A caller that derives this request from its own client's request (the gateway, after detection
    and embedding, which may differ on a retry) sends ``Idempotency-Fingerprint``: the fingerprint of
    the original request, which then identifies the request instead of the derived body.
    """
    caller_fingerprint = request.headers.get("Idempotency-Fingerprint")
    identity = caller_fingerprint.encode() if caller_fingerprint else payload.model_dump_json().encode()
    request_sha256 = idempotency.fingerprint(request.method, request.url.path, identity)
    if key:
        previous = idempotency.previous_answer(db, org_id, key, request_sha256)
        if previous is not None:
            return JSONResponse(
                previous.response, status_code=previous.status_code, headers={"Idempotent-Replayed": "true"}
            )
    body = jsonable_encoder(make())
    if key:
        idempotency.remember(db, org_id, key, request_sha256, status_code, body)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        previous = idempotency.previous_answer(db, org_id, key, request_sha256) if key else None
        if previous is None:
            raise
        return JSONResponse(
            previous.response, status_code=previous.status_code, headers={"Idempotent-Replayed": "true"}
        )
    return JSONResponse(body, status_code=status_code)


def paged(
    items: list[Any], total: int, offset: int, limit: int, convert: Callable[[Any], Any]
) -> dict[str, Any]:
    return {"items": [convert(i) for i in items], "total": total, "offset": offset, "limit": limit}


# --- organisations and access -----------------------------------------------------------------

orgs = APIRouter(prefix="/v1", tags=["organisations and access"])


@orgs.post("/orgs", response_model=OrganisationOut, status_code=201, summary="Create an organisation")
def create_organisation(payload: OrganisationCreate, db: DbSession) -> OrganisationOut:
    organisation = accounts.create_organisation(db, payload)
    commit(db)
    return OrganisationOut.model_validate(organisation)


@orgs.get("/orgs", response_model=list[OrganisationOut], summary="Find an organisation by slug")
def find_organisations(slug: str, db: DbSession) -> list[OrganisationOut]:
    organisation = accounts.find_organisation(db, slug)
    return [OrganisationOut.model_validate(organisation)] if organisation else []


@orgs.get("/orgs/{org_id}", response_model=OrganisationOut, summary="An organisation")
def get_organisation(org_id: OrgId, db: DbSession) -> OrganisationOut:
    return OrganisationOut.model_validate(accounts.get_organisation(db, org_id))


@orgs.post("/orgs/{org_id}/users", response_model=UserOut, status_code=201, summary="Create a user")
def create_user(org_id: OrgId, payload: UserCreate, db: DbSession) -> UserOut:
    user = accounts.create_user(db, org_id, payload)
    commit(db)
    return UserOut.model_validate(user)


@orgs.get("/orgs/{org_id}/users", response_model=list[UserOut], summary="The organisation's users")
def list_users(org_id: OrgId, db: DbSession) -> list[UserOut]:
    return [UserOut.model_validate(u) for u in accounts.list_users(db, org_id)]


@orgs.post(
    "/orgs/{org_id}/api-keys",
    response_model=ApiKeyCreated,
    status_code=201,
    summary="Create an API key (the key is shown once)",
)
def create_api_key(org_id: OrgId, payload: ApiKeyCreate, db: DbSession) -> ApiKeyCreated:
    api_key, key = accounts.create_api_key(db, org_id, payload)
    commit(db)
    return ApiKeyCreated(**ApiKeyOut.model_validate(api_key).model_dump(), key=key)


@orgs.get("/orgs/{org_id}/api-keys", response_model=list[ApiKeyOut], summary="The organisation's API keys")
def list_api_keys(org_id: OrgId, db: DbSession) -> list[ApiKeyOut]:
    return [ApiKeyOut.model_validate(k) for k in accounts.list_api_keys(db, org_id)]


@orgs.delete("/orgs/{org_id}/api-keys/{key_id}", response_model=ApiKeyOut, summary="Revoke an API key")
def revoke_api_key(org_id: OrgId, key_id: str, db: DbSession) -> ApiKeyOut:
    api_key = accounts.revoke_api_key(db, org_id, key_id)
    commit(db)
    return ApiKeyOut.model_validate(api_key)


auth = APIRouter(prefix="/v1/auth", tags=["organisations and access"])


@auth.post("/api-keys:verify", response_model=Principal, summary="Who an API key belongs to (401 if invalid)")
def verify_api_key(payload: ApiKeyVerify, db: DbSession) -> Principal:
    principal = accounts.verify_api_key(db, payload.key)
    if principal is None:
        raise Problem(401, "The API key is unknown or revoked.", slug="invalid-api-key")
    return principal


@auth.post("/passwords:verify", response_model=Principal, summary="Check a user's password (401 if wrong)")
def verify_password(payload: PasswordVerify, db: DbSession) -> Principal:
    principal = accounts.verify_password(db, payload.email, payload.password)
    if principal is None:
        raise Problem(
            401, "The e-mail or password is wrong, or the account is disabled.", slug="invalid-credentials"
        )
    return principal


# --- species and individuals ------------------------------------------------------------------

catalogue = APIRouter(prefix="/v1", tags=["catalogue"])


@catalogue.get("/species", response_model=list[SpeciesOut], summary="The species (reference data, shared)")
def list_species(db: DbSession) -> list[SpeciesOut]:
    return [SpeciesOut.model_validate(s) for s in db.scalars(select(Species).order_by(Species.key))]


@catalogue.post(
    "/orgs/{org_id}/individuals",
    response_model=IndividualOut,
    status_code=201,
    summary="Catalogue an individual",
)
def create_individual(
    org_id: OrgId,
    payload: IndividualCreate,
    request: Request,
    db: DbSession,
    idempotency_key: IdempotencyKey = None,
    actor: Annotated[str | None, Query(description="Who does it (audit log).")] = None,
) -> Any:
    return created(
        db,
        org_id,
        idempotency_key,
        request,
        payload,
        lambda: IndividualOut.model_validate(individuals.create_individual(db, org_id, payload, actor)),
    )


@catalogue.get("/orgs/{org_id}/individuals", response_model=Page[IndividualOut], summary="Browse individuals")
def list_individuals(
    org_id: OrgId,
    db: DbSession,
    offset: Offset = 0,
    limit: Limit = 100,
    species: str | None = None,
    q: Annotated[str | None, Query(max_length=100, description="Part of the code or name.")] = None,
    include_merged: Annotated[bool, Query(description="Browse merged ones too (lookups always do).")] = False,
    ids: Annotated[str | None, Query(description="Look up these ids (comma-separated).")] = None,
    catalogue_code: Annotated[str | None, Query(description="Look up this exact catalogue code.")] = None,
) -> Any:
    id_list = [i for i in (ids or "").split(",") if i]
    items, total = individuals.list_individuals(
        db,
        org_id,
        species=species,
        search=q,
        include_merged=include_merged,
        offset=offset,
        limit=limit,
        ids=id_list,
        catalogue_code=catalogue_code,
    )
    return paged(items, total, offset, limit, IndividualOut.model_validate)


@catalogue.get(
    "/orgs/{org_id}/individuals/{individual_id}", response_model=IndividualOut, summary="An individual"
)
def get_individual(org_id: OrgId, individual_id: str, db: DbSession) -> IndividualOut:
    return IndividualOut.model_validate(individuals.get_individual(db, org_id, individual_id))


@catalogue.patch(
    "/orgs/{org_id}/individuals/{individual_id}", response_model=IndividualOut, summary="Edit an individual"
)
def update_individual(
    org_id: OrgId, individual_id: str, payload: IndividualUpdate, db: DbSession, actor: str | None = None
) -> IndividualOut:
    individual = individuals.update_individual(db, org_id, individual_id, payload, actor)
    commit(db)
    return IndividualOut.model_validate(individual)


@catalogue.get(
    "/orgs/{org_id}/individuals/{individual_id}/history",
    response_model=list[AuditEntryOut],
    summary="The individual's audit log, oldest first",
)
def individual_history(org_id: OrgId, individual_id: str, db: DbSession) -> list[AuditEntryOut]:
    individuals.get_individual(db, org_id, individual_id)
    entries, _total = audit.entries(
        db, org_id, entity_type=individuals.ENTITY, entity_id=individual_id, limit=10_000
    )
    return [AuditEntryOut.model_validate(e) for e in entries]


@catalogue.post(
    "/orgs/{org_id}/individuals:merge",
    response_model=MergeSplitResult,
    summary="Merge individuals catalogued twice into one",
)
def merge_individuals(
    org_id: OrgId,
    payload: MergeRequest,
    request: Request,
    db: DbSession,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    def run() -> MergeSplitResult:
        target, moved, audit_ids = individuals.merge(db, org_id, payload)
        return MergeSplitResult(
            individual=IndividualOut.model_validate(target), moved_annotation_ids=moved, audit_ids=audit_ids
        )

    return created(db, org_id, idempotency_key, request, payload, run, status_code=200)


@catalogue.post(
    "/orgs/{org_id}/individuals/{individual_id}:split",
    response_model=MergeSplitResult,
    status_code=201,
    summary="Split some annotations off into a new individual",
)
def split_individual(
    org_id: OrgId,
    individual_id: str,
    payload: SplitRequest,
    request: Request,
    db: DbSession,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    def run() -> MergeSplitResult:
        new, moved, audit_ids = individuals.split(db, org_id, individual_id, payload)
        return MergeSplitResult(
            individual=IndividualOut.model_validate(new), moved_annotation_ids=moved, audit_ids=audit_ids
        )

    return created(db, org_id, idempotency_key, request, payload, run)


# --- encounters and media ---------------------------------------------------------------------


@catalogue.post(
    "/orgs/{org_id}/encounters",
    response_model=EncounterOut,
    status_code=201,
    summary="Record an encounter (sighting)",
)
def create_encounter(
    org_id: OrgId,
    payload: EncounterCreate,
    request: Request,
    db: DbSession,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    return created(
        db,
        org_id,
        idempotency_key,
        request,
        payload,
        lambda: encounters.encounter_out(db, encounters.create_encounter(db, org_id, payload)),
    )


@catalogue.get("/orgs/{org_id}/encounters", response_model=Page[EncounterOut], summary="Browse encounters")
def list_encounters(
    org_id: OrgId,
    db: DbSession,
    offset: Offset = 0,
    limit: Limit = 100,
    individual_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Any:
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and moment.tzinfo is None:
            raise Invalid(f"{name} needs a time zone (e.g. 2024-07-01T00:00:00Z)", field=name)
    items, total = encounters.list_encounters(
        db, org_id, individual_id=individual_id, since=since, until=until, offset=offset, limit=limit
    )
    return paged(items, total, offset, limit, lambda e: encounters.encounter_out(db, e))


@catalogue.get(
    "/orgs/{org_id}/encounters/{encounter_id}", response_model=EncounterOut, summary="An encounter"
)
def get_encounter(org_id: OrgId, encounter_id: str, db: DbSession) -> EncounterOut:
    return encounters.encounter_out(db, encounters.get_encounter(db, org_id, encounter_id))


@catalogue.patch(
    "/orgs/{org_id}/encounters/{encounter_id}", response_model=EncounterOut, summary="Edit an encounter"
)
def update_encounter(
    org_id: OrgId, encounter_id: str, payload: EncounterUpdate, db: DbSession, actor: str | None = None
) -> EncounterOut:
    encounter = encounters.update_encounter(db, org_id, encounter_id, payload, actor)
    commit(db)
    return encounters.encounter_out(db, encounter)


@catalogue.post(
    "/orgs/{org_id}/media",
    response_model=MediaUploaded,
    status_code=201,
    responses={200: {"model": MediaUploaded, "description": "The same bytes were stored before."}},
    summary="Upload an image (stored once per organisation; EXIF prefills the encounter)",
)
def upload_media(
    request: Request,
    org_id: OrgId,
    db: DbSession,
    file: Annotated[UploadFile, File()],
    uploaded_by: Annotated[SingleLine | None, Form(max_length=200)] = None,
    encounter_id: Annotated[SingleLine | None, Form()] = None,
) -> JSONResponse:
    context = catalog(request)
    if encounter_id:
        encounters.get_encounter(db, org_id, encounter_id)
    data = file.file.read()
    if not data:
        raise Invalid("the uploaded file is empty", field="file")
    stored = media_domain.store_media_alone(
        db,
        context.store,
        org_id,
        data,
        filename=file.filename,
        uploaded_by=uploaded_by,
        limits=context.settings.image_limits(),
        encounter_id=encounter_id,
    )
    (context.metrics.dedup_hits if stored.duplicate else context.metrics.media_stored).inc()
    body = MediaUploaded(
        media=MediaOut.model_validate(stored.media),
        duplicate=stored.duplicate,
        encounter_prefill=media_domain.encounter_prefill(stored.media),
    )
    return JSONResponse(jsonable_encoder(body), status_code=200 if stored.duplicate else 201)


@catalogue.get("/orgs/{org_id}/media/{media_id}", response_model=MediaOut, summary="An image's metadata")
def get_media(org_id: OrgId, media_id: str, db: DbSession) -> MediaOut:
    return MediaOut.model_validate(get_owned(db, Media, org_id, media_id, "Media"))


@catalogue.get("/orgs/{org_id}/media/{media_id}/content", response_class=Response, summary="An image's bytes")
def get_media_content(request: Request, org_id: OrgId, media_id: str, db: DbSession) -> Response:
    media = get_owned(db, Media, org_id, media_id, "Media")
    try:
        data = catalog(request).store.get(media.object_key)
    except ObjectNotFound:
        raise NotFound("Image bytes of media", media_id) from None
    return Response(data, media_type=media.content_type, headers={"ETag": f'"{media.sha256}"'})


@catalogue.get(
    "/orgs/{org_id}/media/{media_id}/url",
    response_model=PresignedUrl,
    summary="A presigned download URL that expires",
)
def presign_media(
    request: Request,
    org_id: OrgId,
    media_id: str,
    db: DbSession,
    expires_s: Annotated[int | None, Query(ge=1, le=7 * 24 * 3600)] = None,
) -> PresignedUrl:
    context = catalog(request)
    media = get_owned(db, Media, org_id, media_id, "Media")
    lifetime = expires_s or context.settings.presign_expiry_s
    url = context.store.presigned_get_url(media.object_key, lifetime)
    return PresignedUrl(url=url, expires_at=datetime.now(UTC) + timedelta(seconds=lifetime))


# --- annotations, identifications, enrolment --------------------------------------------------


@catalogue.post(
    "/orgs/{org_id}/annotations",
    response_model=AnnotationOut,
    status_code=201,
    summary="Annotate an animal in an image (box, view, species, embedding)",
)
def create_annotation(
    org_id: OrgId,
    payload: AnnotationCreate,
    request: Request,
    db: DbSession,
    idempotency_key: IdempotencyKey = None,
    actor: str | None = None,
) -> Any:
    return created(
        db,
        org_id,
        idempotency_key,
        request,
        payload,
        lambda: annotations.annotation_out(annotations.create_annotation(db, org_id, payload, actor)),
    )


@catalogue.get("/orgs/{org_id}/annotations", response_model=Page[AnnotationOut], summary="Browse annotations")
def list_annotations(
    org_id: OrgId,
    db: DbSession,
    offset: Offset = 0,
    limit: Limit = 100,
    media_id: str | None = None,
    individual_id: str | None = None,
) -> Any:
    items, total = annotations.list_annotations(
        db, org_id, media_id=media_id, individual_id=individual_id, offset=offset, limit=limit
    )
    return paged(items, total, offset, limit, annotations.annotation_out)


@catalogue.get(
    "/orgs/{org_id}/annotations/{annotation_id}", response_model=AnnotationOut, summary="An annotation"
)
def get_annotation(org_id: OrgId, annotation_id: str, db: DbSession) -> AnnotationOut:
    return annotations.annotation_out(annotations.get_annotation(db, org_id, annotation_id))


@catalogue.patch(
    "/orgs/{org_id}/annotations/{annotation_id}",
    response_model=AnnotationOut,
    summary="Edit or reassign an annotation",
)
def update_annotation(
    org_id: OrgId, annotation_id: str, payload: AnnotationUpdate, db: DbSession
) -> AnnotationOut:
    annotation = annotations.update_annotation(db, org_id, annotation_id, payload)
    commit(db)
    return annotations.annotation_out(annotation)


@catalogue.delete(
    "/orgs/{org_id}/annotations/{annotation_id}", status_code=204, summary="Delete an annotation"
)
def delete_annotation(org_id: OrgId, annotation_id: str, db: DbSession, actor: str | None = None) -> Response:
    annotations.delete_annotation(db, org_id, annotation_id, actor)
    commit(db)
    return Response(status_code=204)


@catalogue.post(
    "/orgs/{org_id}/identifications",
    response_model=IdentificationOut,
    status_code=201,
    summary="Open a review of an annotation with its candidates",
)
def create_identification(
    org_id: OrgId,
    payload: IdentificationCreate,
    request: Request,
    db: DbSession,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    return created(
        db,
        org_id,
        idempotency_key,
        request,
        payload,
        lambda: IdentificationOut.model_validate(annotations.create_identification(db, org_id, payload)),
    )


@catalogue.get(
    "/orgs/{org_id}/identifications",
    response_model=Page[IdentificationOut],
    summary="Browse identifications (e.g. the pending ones)",
)
def list_identifications(
    org_id: OrgId,
    db: DbSession,
    offset: Offset = 0,
    limit: Limit = 100,
    decision: Literal["pending", "confirmed", "new_individual", "rejected"] | None = None,
    annotation_id: str | None = None,
) -> Any:
    items, total = annotations.list_identifications(
        db, org_id, decision=decision, annotation_id=annotation_id, offset=offset, limit=limit
    )
    return paged(items, total, offset, limit, IdentificationOut.model_validate)


@catalogue.get(
    "/orgs/{org_id}/identifications/{identification_id}",
    response_model=IdentificationOut,
    summary="An identification",
)
def get_identification(org_id: OrgId, identification_id: str, db: DbSession) -> IdentificationOut:
    return IdentificationOut.model_validate(annotations.get_identification(db, org_id, identification_id))


@catalogue.post(
    "/orgs/{org_id}/identifications/{identification_id}:decide",
    response_model=IdentificationOut,
    summary="Decide: confirmed, new individual, or rejected",
)
def decide_identification(
    org_id: OrgId,
    identification_id: str,
    payload: DecisionRequest,
    request: Request,
    db: DbSession,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    return created(
        db,
        org_id,
        idempotency_key,
        request,
        payload,
        lambda: IdentificationOut.model_validate(annotations.decide(db, org_id, identification_id, payload)),
        status_code=200,
    )


@catalogue.post(
    "/orgs/{org_id}/enrolments",
    response_model=EnrolResult,
    status_code=201,
    summary="Enrol an encounter's photos and their whole result in one transaction",
)
def enrol(
    org_id: OrgId,
    payload: EnrolRequest,
    request: Request,
    db: DbSession,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    context = catalog(request)

    def run() -> EnrolResult:
        result = enrolment.enrol(db, context.store, org_id, payload, limits=context.settings.image_limits())
        return EnrolResult(
            encounter=encounters.encounter_out(db, result.encounter),
            media=[MediaOut.model_validate(m) for m in result.media],
            duplicate_media_ids=result.duplicate_media_ids,
            annotations=[annotations.annotation_out(a) for a in result.annotations],
            identifications=[IdentificationOut.model_validate(i) for i in result.identifications],
            new_individuals=[IndividualOut.model_validate(i) for i in result.new_individuals],
        )

    response = created(db, org_id, idempotency_key, request, payload, run)
    if "Idempotent-Replayed" not in response.headers:
        context.metrics.enrolments.inc()
    return response


@catalogue.get("/orgs/{org_id}/stats", response_model=CatalogueStats, summary="Figures for charts")
def catalogue_stats(org_id: OrgId, db: DbSession) -> CatalogueStats:
    return stats.catalogue_stats(db, org_id)


# --- collaboration, audit, ingest jobs --------------------------------------------------------

work = APIRouter(prefix="/v1", tags=["collaboration and jobs"])


@work.post("/orgs/{org_id}/comments", response_model=CommentOut, status_code=201, summary="Comment or reply")
def add_comment(
    org_id: OrgId,
    payload: CommentCreate,
    request: Request,
    db: DbSession,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    return created(
        db,
        org_id,
        idempotency_key,
        request,
        payload,
        lambda: CommentOut.model_validate(comments.add_comment(db, org_id, payload)),
    )


@work.get(
    "/orgs/{org_id}/comments",
    response_model=list[CommentOut],
    summary="The threaded comments on an encounter or an identification",
)
def list_comments(
    org_id: OrgId, db: DbSession, encounter_id: str | None = None, identification_id: str | None = None
) -> list[CommentOut]:
    return comments.thread(db, org_id, encounter_id=encounter_id, identification_id=identification_id)


@work.get("/orgs/{org_id}/audit", response_model=Page[AuditEntryOut], summary="The audit log, oldest first")
def list_audit(
    org_id: OrgId,
    db: DbSession,
    offset: Offset = 0,
    limit: Limit = 100,
    entity_type: str | None = None,
    entity_id: str | None = None,
) -> Any:
    items, total = audit.entries(
        db, org_id, entity_type=entity_type, entity_id=entity_id, offset=offset, limit=limit
    )
    return paged(items, total, offset, limit, AuditEntryOut.model_validate)


@work.post(
    "/orgs/{org_id}/ingest-jobs", response_model=ingest.IngestJobProgressOut, status_code=201, summary="Start an ingest job"
)
def create_ingest_job(
    org_id: OrgId,
    payload: IngestJobCreate,
    request: Request,
    db: DbSession,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    return created(
        db,
        org_id,
        idempotency_key,
        request,
        payload,
        lambda: ingest.job_out(db, ingest.create_job(db, org_id, payload)),
    )


@work.get(
    "/orgs/{org_id}/ingest-jobs", response_model=Page[ingest.IngestJobProgressOut], summary="Ingest jobs, newest first"
)
def list_ingest_jobs(org_id: OrgId, db: DbSession, offset: Offset = 0, limit: Limit = 100) -> Any:
    items, total = ingest.list_jobs(db, org_id, offset, limit)
    return paged(items, total, offset, limit, lambda j: ingest.job_out(db, j))


@work.get(
    "/orgs/{org_id}/ingest-jobs/{job_id}",
    response_model=ingest.IngestJobProgressOut,
    summary="An ingest job and its progress",
)
def get_ingest_job(org_id: OrgId, job_id: str, db: DbSession) -> ingest.IngestJobProgressOut:
    return ingest.job_out(db, ingest.get_job(db, org_id, job_id))


@work.patch(
    "/orgs/{org_id}/ingest-jobs/{job_id}", response_model=ingest.IngestJobProgressOut, summary="Change a job's status"
)
def update_ingest_job(
    org_id: OrgId, job_id: str, payload: IngestJobUpdate, db: DbSession
) -> ingest.IngestJobProgressOut:
    job = ingest.get_job(db, org_id, job_id)
    job.status = payload.status
    commit(db)
    return ingest.job_out(db, job)


@work.post(
    "/orgs/{org_id}/ingest-jobs/{job_id}/items",
    response_model=IngestItemsAdded,
    summary="Add items (idempotent by item_key)",
)
def add_ingest_items(org_id: OrgId, job_id: str, payload: IngestItemsAdd, db: DbSession) -> IngestItemsAdded:
    added, present = ingest.add_items(db, org_id, job_id, payload)
    commit(db)
    return IngestItemsAdded(added=added, already_present=present)


@work.get(
    "/orgs/{org_id}/ingest-jobs/{job_id}/items",
    response_model=Page[IngestItemOut],
    summary="A job's items, by status",
)
def list_ingest_items(
    org_id: OrgId,
    job_id: str,
    db: DbSession,
    offset: Offset = 0,
    limit: Limit = 100,
    status: Literal["pending", "running", "done", "failed", "skipped"] | None = None,
) -> Any:
    items, total = ingest.list_items(db, org_id, job_id, status=status, offset=offset, limit=limit)
    return paged(items, total, offset, limit, IngestItemOut.model_validate)


@work.patch(
    "/orgs/{org_id}/ingest-jobs/{job_id}/items/{item_id}",
    response_model=IngestItemOut,
    summary="Record an item's progress or result",
)
def update_ingest_item(
    org_id: OrgId, job_id: str, item_id: str, payload: IngestItemUpdate, db: DbSession
) -> IngestItemOut:
    item = ingest.update_item(db, org_id, job_id, item_id, payload)
    commit(db)
    return IngestItemOut.model_validate(item)


@work.post(
    "/orgs/{org_id}/ingest-jobs/{job_id}/items:add",
    response_model=IngestItemsAdded,
    summary="Add items with their manifest rows (idempotent by item_key)",
)
def add_ingest_item_specs(
    org_id: OrgId, job_id: str, payload: ingest.IngestItemsAddSpecs, db: DbSession
) -> IngestItemsAdded:
    added, present = ingest.add_item_specs(db, org_id, job_id, payload)
    commit(db)
    return IngestItemsAdded(added=added, already_present=present)


@work.put(
    "/orgs/{org_id}/ingest-jobs/{job_id}/content/{item_key:path}",
    response_model=IngestItemOut,
    summary="Upload the photo of an item (raw bytes), before the job starts",
)
async def stage_ingest_content(request: Request, org_id: str, job_id: str, item_key: str) -> IngestItemOut:
    data = await request.body()
    if not data:
        raise Invalid("the uploaded file is empty", field="body")
    context = catalog(request)

    def store() -> IngestItemOut:
        with context.sessions() as db:
            accounts.get_organisation(db, org_id)
            item = ingest.item_by_key(db, org_id, job_id, item_key)
            context.store.put(ingest.staged_key(item), data, request.headers.get("content-type") or
                              "application/octet-stream")
            ingest.stage_content(db, item)
            db.commit()
            return IngestItemOut.model_validate(item)

    return await run_in_threadpool(store)


@work.get(
    "/orgs/{org_id}/ingest-jobs/{job_id}/items/{item_id}/content",
    response_class=Response,
    summary="The staged photo of an item",
)
def ingest_item_content(request: Request, org_id: OrgId, job_id: str, item_id: str, db: DbSession) -> Response:
    item = ingest.get_item(db, org_id, job_id, item_id)
    if item.content_key != ingest.staged_key(item):
        raise NotFound("Staged content of ingest item", item_id)
    try:
        return Response(catalog(request).store.get(item.content_key), media_type="application/octet-stream")
    except ObjectNotFound:
        raise NotFound("Staged content of ingest item", item_id) from None


@work.post(
    "/orgs/{org_id}/ingest-jobs/{job_id}:start",
    response_model=ingest.IngestJobProgressOut,
    summary="Let workers take the job's items (items without a file fail)",
)
def start_ingest_job(org_id: OrgId, job_id: str, db: DbSession) -> ingest.IngestJobProgressOut:
    job = ingest.start_job(db, org_id, job_id)
    commit(db)
    return ingest.job_out(db, job)


@work.get(
    "/orgs/{org_id}/media-by-sha256/{sha256}", response_model=MediaOut, summary="The image with these bytes"
)
def media_by_sha256(org_id: OrgId, sha256: str, db: DbSession) -> MediaOut:
    return MediaOut.model_validate(ingest.media_by_sha256(db, org_id, sha256))


# --- exports ----------------------------------------------------------------------------------

export = APIRouter(prefix="/v1/orgs/{org_id}/exports", tags=["exports"])
CC_BY = "http://creativecommons.org/licenses/by/4.0/legalcode"


@export.get("/encounters.csv", response_class=PlainTextResponse, summary="Encounters as CSV")
def export_encounters(org_id: OrgId, db: DbSession) -> Response:
    return Response(
        exports.encounters_csv(db, org_id),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="encounters.csv"'},
    )


@export.get(
    "/dataset.zip",
    response_class=StreamingResponse,
    summary="The organised dataset: a folder of images per individual, and labels.csv",
)
def export_dataset(request: Request, org_id: OrgId, db: DbSession) -> StreamingResponse:
    archive = exports.dataset_zip(db, catalog(request).store, org_id)
    return StreamingResponse(
        exports.iter_file(archive),
        media_type="application/zip",
        headers={"Content-Disposition": 'attachment; filename="dataset.zip"'},
    )


@export.get(
    "/dwca.zip",
    response_class=Response,
    summary="A Darwin Core Archive (occurrence.txt, meta.xml, eml.xml) for GBIF/OBIS",
)
def export_darwin_core(
    org_id: OrgId, db: DbSession, license_url: Annotated[str, Query(alias="license", max_length=300)] = CC_BY
) -> Response:
    data = exports.darwin_core_archive(db, org_id, license_url=license_url, published=date.today())
    return Response(
        data, media_type="application/zip", headers={"Content-Disposition": 'attachment; filename="dwca.zip"'}
    )


# --- for the other services -------------------------------------------------------------------

internal = APIRouter(prefix="/v1/internal", tags=["internal (matcher)"])


@internal.get("/embeddings", response_model=EmbeddingPage, summary="Indexed embeddings, for a full rebuild")
def embedding_page(
    request: Request,
    db: DbSession,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    org_id: str | None = None,
) -> EmbeddingPage:
    try:
        return changes.embedding_page(db, cursor=cursor, limit=limit, org_id=org_id)
    except ValueError as exc:
        raise Invalid(str(exc), field="cursor") from None


@internal.get(
    "/embeddings:summary",
    response_model=EmbeddingSummary,
    summary="Count and digest of the indexed embeddings per index key (the matcher's reconciliation)",
)
def embedding_summary(db: DbSession) -> EmbeddingSummary:
    try:
        return changes.embedding_summary(db)
    except changes.CatalogueChanging as exc:
        raise Problem(409, f"{exc}; retry shortly.", slug="catalogue-changing") from None


@internal.get("/changes", response_model=ChangePage, summary="Change events after a sequence number")
def change_page(
    request: Request,
    db: DbSession,
    after_seq: Annotated[int, Query(ge=0, le=SEQ_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    org_id: str | None = None,
) -> ChangePage:
    page = changes.change_page(db, after_seq=after_seq, limit=limit, org_id=org_id)
    catalog(request).metrics.change_events.inc(len(page.changes))
    return page


@internal.post("/ingest-items:claim", response_model=ingest.ClaimResponse, summary="Lease items to a worker")
def claim_ingest_items(payload: ingest.ClaimRequest, db: DbSession) -> ingest.ClaimResponse:
    claimed = ingest.claim(db, payload)
    commit(db)
    return claimed


@internal.post("/ingest-items:renew", response_model=ingest.RenewResponse, summary="Extend a worker's leases")
def renew_ingest_items(payload: ingest.RenewRequest, db: DbSession) -> ingest.RenewResponse:
    renewed = ingest.renew(db, payload)
    commit(db)
    return renewed


@internal.post(
    "/ingest-items:release",
    response_model=ingest.ReleaseResponse,
    summary="Give leased items back untried (a service they need was unavailable); the attempt does not count",
)
def release_ingest_items(payload: ingest.ReleaseRequest, db: DbSession) -> ingest.ReleaseResponse:
    released = ingest.release(db, payload)
    commit(db)
    return released


@internal.post(
    "/ingest-items/{item_id}:complete", response_model=IngestItemOut, summary="Record a leased item's outcome"
)
def complete_ingest_item(
    request: Request, item_id: str, payload: ingest.CompleteRequest, db: DbSession
) -> IngestItemOut:
    item = ingest.complete(db, item_id, payload)
    commit(db)
    store = catalog(request).store
    # The photo is in the catalogue now (or was already); a failed one stays for a look. The outcome is
    # committed: an object store failing here must not make the worker believe it was not recorded.
    keys = [item.content_key] if item.content_key == ingest.staged_key(item) and item.status != "failed" else []
    job = ingest.get_job(db, item.org_id, item.job_id)
    try:
        if job.status == "completed":  # and what earlier deletions left behind while the store was down
            keys += ingest.staged_leftovers(db, job, store.list(f"ingest/{job.org_id}/{job.id}/"))
        for key in dict.fromkeys(k for k in keys if k):
            store.delete(key)
    except ObjectStoreError as exc:
        log.warning("staged ingest photos not deleted", extra={"fields": {"job_id": item.job_id, "error": str(exc)}})
    return IngestItemOut.model_validate(item)


objects = APIRouter(tags=["objects"])


@objects.get(
    LOCAL_OBJECT_ROUTE + "/{key:path}",
    response_class=Response,
    summary="Download through a signed URL (local object store only)",
)
def signed_object(request: Request, key: str, expires: int, sig: str) -> Response:
    store = catalog(request).store
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


routers = [orgs, auth, catalogue, work, export, internal, objects]
