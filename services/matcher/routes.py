"""Routes of the matcher service: search, direct index writes, sync, snapshots, thresholds."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from finprint.objectstore import ObjectStoreError
from finprint.problems import DependencyUnavailable, Problem
from finprint.schemas.embeddings import EmbeddingRecord
from finprint.schemas.matcher import (
    BatchUpsertRequest,
    BatchUpsertResponse,
    DeleteResult,
    DuplicatesRequest,
    DuplicatesResponse,
    IndexesResponse,
    OrgThresholds,
    Reconciliation,
    SearchRequest,
    SearchResponse,
    SnapshotResponse,
    SyncResponse,
    ThresholdOverride,
    UpsertResult,
)
from services.matcher.domain.gallery import NotOwned, VersionMismatch
from services.matcher.domain.index import InvalidVector
from services.matcher.runtime import MatcherRuntime

router = APIRouter(prefix="/v1", tags=["matcher"])


async def loaded_runtime(request: Request) -> MatcherRuntime:
    """The matcher's runtime, once its initial load is done (503 with Retry-After before)."""
    runtime: MatcherRuntime = request.app.state.matcher
    if not runtime.loaded:
        raise Problem(
            503,
            "The matcher is still loading its indexes; retry shortly.",
            slug="index-loading",
            headers={"Retry-After": str(runtime.config.retry_after_s)},
        )
    return runtime


Runtime = Annotated[MatcherRuntime, Depends(loaded_runtime)]


def _wrong_shard(exc: NotOwned) -> Problem:
    return Problem(
        421,
        f"{exc} (owner: shard {exc.owner}); route with finprint.schemas.matcher.shard_for.",
        slug="wrong-shard",
        title="Misdirected request",
        owner_shard=exc.owner,
    )


def _version_mismatch(exc: VersionMismatch) -> Problem:
    return Problem(409, f"{exc}: embed the query with {exc.serving} (embeddings of two models are never compared).",
                   slug="model-version-mismatch", serving_version=exc.serving, kept_versions=exc.kept)


def _invalid_vector(exc: InvalidVector) -> Problem:
    return Problem(422, str(exc), slug="invalid-vector", title="Invalid embedding vector")


@contextlib.contextmanager
def _reading_problems() -> Iterator[None]:
    """What reading an index can refuse, as problems: another shard's key, another model version, a bad query."""
    try:
        yield
    except NotOwned as exc:
        raise _wrong_shard(exc) from None
    except VersionMismatch as exc:
        raise _version_mismatch(exc) from None
    except InvalidVector as exc:
        raise _invalid_vector(exc) from None


@router.post("/search", summary="Rank catalogued individuals for one or more query embeddings", responses={
    409: {"description": "The query's model version is not the one its shard serves (`model-version-mismatch`, "
                         "with `serving_version` and `kept_versions`)."}})
async def search(body: SearchRequest, runtime: Runtime) -> SearchResponse:
    with _reading_problems():
        return await runtime.search(body)


@router.post("/duplicates", summary="Pairs of individuals whose galleries are so close they may be one animal")
async def duplicates(body: DuplicatesRequest, runtime: Runtime) -> DuplicatesResponse:
    with _reading_problems():
        return await runtime.duplicates(body)


@router.put("/embeddings/{embedding_id}", summary="Insert or replace one embedding (idempotent)")
async def put_embedding(embedding_id: str, body: EmbeddingRecord, runtime: Runtime) -> UpsertResult:
    if body.embedding_id != embedding_id:
        raise Problem(
            422,
            f"The body's embedding_id {body.embedding_id!r} differs from the path's {embedding_id!r}.",
            slug="embedding-id-mismatch",
        )
    if not runtime.config.ownership.owns(body.org_id, body.species_group):
        raise _wrong_shard(
            NotOwned(
                body.org_id,
                body.species_group,
                runtime.config.ownership.owner_of(body.org_id, body.species_group),
            )
        )
    try:
        [outcome] = await runtime.upsert([body])
    except InvalidVector as exc:
        raise _invalid_vector(exc) from None
    return UpsertResult(embedding_id=embedding_id, outcome=outcome)


@router.post("/embeddings:batch", summary="Insert or replace many embeddings (idempotent)")
async def put_embeddings(body: BatchUpsertRequest, runtime: Runtime) -> BatchUpsertResponse:
    try:
        outcomes = await runtime.upsert(body.records)
    except InvalidVector as exc:
        raise _invalid_vector(exc) from None
    return BatchUpsertResponse(
        results=[
            UpsertResult(embedding_id=record.embedding_id, outcome=outcome)
            for record, outcome in zip(body.records, outcomes)
        ]
    )


@router.delete("/embeddings/{embedding_id}", summary="Remove one embedding (idempotent)")
async def delete_embedding(
    embedding_id: str,
    runtime: Runtime,
    seq: Annotated[
        int | None,
        Query(
            description="Catalogue sequence number of the deletion; an older one "
            "than the indexed record's is ignored as stale."
        ),
    ] = None,
) -> DeleteResult:
    outcome = await runtime.delete(embedding_id, seq)
    return DeleteResult(embedding_id=embedding_id, outcome=outcome)


@router.get("/indexes", summary="The indexes this shard holds: sizes, kinds, catalogue sequence number")
async def indexes(runtime: Runtime) -> IndexesResponse:
    ownership = runtime.config.ownership
    return IndexesResponse(
        shard_index=ownership.shard_index,
        shard_count=ownership.shard_count,
        applied_seq=runtime.gallery.applied_seq,
        indexes=runtime.gallery.infos(),
    )


@router.post("/sync", summary="Apply the catalogue's changes now (instead of at the next poll)")
async def sync(runtime: Runtime) -> SyncResponse:
    return await runtime.sync()


@router.get(
    "/reconciliation",
    summary="The last comparison of the indexes with the catalogue's embeddings (at start, on a timer, on request)",
)
async def reconciliation(request: Request) -> Reconciliation:
    runtime: MatcherRuntime = request.app.state.matcher
    return runtime.last_reconciliation


@router.post(
    "/reconcile",
    summary="Compare the indexes with the catalogue's embeddings now; rebuild from the catalogue if they differ",
)
async def reconcile(runtime: Runtime) -> Reconciliation:
    return await runtime.reconcile("request")


@router.post("/snapshot", summary="Write a snapshot of every index to the object store now")
async def snapshot(runtime: Runtime) -> SnapshotResponse:
    return await runtime.snapshot()


@router.get("/orgs/{org_id}/threshold", summary="An organisation's new-individual threshold overrides")
async def get_threshold(org_id: str, runtime: Runtime) -> OrgThresholds:
    return runtime.thresholds.overrides_of(org_id)


@router.put("/orgs/{org_id}/threshold", summary="Override the new-individual threshold for an organisation")
async def put_threshold(org_id: str, body: ThresholdOverride, runtime: Runtime) -> OrgThresholds:
    overrides = runtime.thresholds.with_override(org_id, body.threshold, body.species_group)
    return await _store_thresholds(runtime, overrides)


@router.delete("/orgs/{org_id}/threshold", summary="Go back to the model's threshold")
async def delete_threshold(
    org_id: str,
    runtime: Runtime,
    species_group: Annotated[
        str | None, Query(description="Only this species group's override; empty: the organisation-wide one.")
    ] = None,
) -> OrgThresholds:
    overrides = runtime.thresholds.without_override(org_id, species_group)
    return await _store_thresholds(runtime, overrides)


async def _store_thresholds(runtime: MatcherRuntime, overrides: OrgThresholds) -> OrgThresholds:
    # Stored first: other shards (and this one after a restart) read the overrides from the store.
    try:
        await run_in_threadpool(runtime.snapshots.save_thresholds, overrides)
    except ObjectStoreError as exc:
        raise DependencyUnavailable("object store", str(exc), runtime.config.retry_after_s) from exc
    runtime.thresholds.set(overrides)
    return overrides
