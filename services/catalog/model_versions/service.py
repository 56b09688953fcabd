"""Model generations and the re-embedding job.

A re-embedding to version B is an ingest job (``options.kind == "reembed"``) with one item per
annotation that has embeddings but none of B; the gateway's ingest workers lease them like photos
(kill -9 of a worker loses nothing: the lease expires and the item is taken again) and store each
new vector with :func:`store_embedding`, an upsert keyed by (annotation, version), so a replay
stores nothing twice. Every shard the job touches gets a ``building`` row for B; searches keep
using the ``serving`` one. When the job drains, annotations enrolled meanwhile without B are added
to it; once none is missing and no item failed, every shard swaps at once (one transaction):
B serves, the old serving version becomes ``previous`` (its index stays, for :func:`rollback`).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session

from finprint.schemas.catalog import REEMBED_JOB_KIND, EmbeddingIn
from services.catalog.adapters.db.models import (
    Annotation,
    Embedding,
    IngestItem,
    IngestJob,
    Individual,
    ModelGeneration,
    new_id,
    utcnow,
)
from services.catalog.audit import service as audit
from services.catalog.encounters.annotations.service import embedding_bytes, get_annotation
from services.catalog.ingest import jobs
from services.catalog.ingest.schemas import IngestItemSpec, IngestItemsAddSpecs
from services.catalog.internal.change_log import record_embedding_change
from services.catalog.model_versions.generations import generations
from services.catalog.shared.database import inserted
from services.catalog.shared.problems import Conflict
from services.catalog.shared.scoping import get_organisation

ITEMS_PER_BATCH = 5000


# The shard an annotation belongs to: its individual's species, or its own while unassigned.
SHARD_GROUP = func.coalesce(Individual.species_key, Annotation.species_key)


def _versions_by_shard(session: Session, org_id: str) -> dict[str, Counter[str]]:
    rows = session.execute(
        select(SHARD_GROUP, Embedding.model_version, func.count())
        .select_from(Embedding)
        .join(Annotation, Annotation.id == Embedding.annotation_id)
        .outerjoin(Individual, Individual.id == Annotation.individual_id)
        .where(Embedding.org_id == org_id)
        .group_by(SHARD_GROUP, Embedding.model_version)
    )
    shards: dict[str, Counter[str]] = {}
    for group, version, count in rows:
        if group is not None:
            shards.setdefault(group, Counter())[version] = count
    return shards


def _rows(session: Session, org_id: str, group: str) -> dict[str, ModelGeneration]:
    query = select(ModelGeneration).where(ModelGeneration.org_id == org_id, ModelGeneration.species_group == group)
    return {row.state: row for row in session.scalars(query)}


def open_reembed_job(session: Session, org_id: str) -> IngestJob | None:
    query = select(IngestJob).where(IngestJob.org_id == org_id, IngestJob.status.in_(("pending", "running")))
    return next((job for job in session.scalars(query) if job.options.get("kind") == REEMBED_JOB_KIND), None)


def start_reembed(session: Session, org_id: str, to_version: str, actor: str | None) -> tuple[IngestJob, bool]:
    """The job re-embedding the organisation's catalogue with ``to_version``; (job, created).

    Asking again for the same version while it runs answers the running job (idempotent); another
    version while one runs is a conflict.
    """
    get_organisation(session, org_id)
    running = open_reembed_job(session, org_id)
    if running is not None:
        if running.options.get("model_version") == to_version:
            return running, False
        raise Conflict(f"a re-embedding to {running.options.get('model_version')} is running (job {running.id}); "
                       f"let it finish or cancel it first", job_id=running.id)
    for group, versions in _versions_by_shard(session, org_id).items():
        rows = _rows(session, org_id, group)
        if "serving" not in rows:
            # A shard that never went through an upgrade serves the version most of its embeddings have.
            serving = versions.most_common(1)[0][0]
            rows["serving"] = inserted(session, ModelGeneration(org_id=org_id, species_group=group,
                                                                model_version=serving, state="serving"))
        if rows["serving"].model_version == to_version:
            continue
        if "building" in rows:
            session.delete(rows["building"])
            session.flush()
        if "previous" in rows and rows["previous"].model_version == to_version:
            session.delete(rows["previous"])  # rebuilt as the new generation
            session.flush()
        inserted(session, ModelGeneration(org_id=org_id, species_group=group, model_version=to_version,
                                          state="building"))
    now = utcnow()
    job = inserted(session, IngestJob(
        org_id=org_id, name=f"re-embed to {to_version}", source=None, status="running", created_by=actor,
        options={"kind": REEMBED_JOB_KIND, "model_version": to_version}, started_at=now))
    audit.append(session, org_id, "model_version", to_version, "reembed_started", actor, job_id=job.id)
    _add_missing_items(session, job)
    jobs.finish_if_drained(session, job)
    return job, True


def _missing(session: Session, org_id: str, version: str) -> list[tuple[str, str]]:
    """(annotation id, media id) of annotations with embeddings but none of ``version``."""
    has_version = exists().where(and_(Embedding.annotation_id == Annotation.id, Embedding.model_version == version))
    has_any = exists().where(Embedding.annotation_id == Annotation.id)
    query = (select(Annotation.id, Annotation.media_id)
             .where(Annotation.org_id == org_id, has_any, ~has_version).order_by(Annotation.id))
    return [(a, m) for a, m in session.execute(query)]


def _add_missing_items(session: Session, job: IngestJob) -> int:
    """An item for every annotation still missing the job's version (keys already in the job are skipped:
    a failed item stays failed rather than being retried for ever)."""
    missing = _missing(session, job.org_id, job.options["model_version"])
    added = 0
    for start in range(0, len(missing), ITEMS_PER_BATCH):
        specs = [IngestItemSpec(item_key=annotation_id, payload={"annotation_id": annotation_id, "media_id": media})
                 for annotation_id, media in missing[start:start + ITEMS_PER_BATCH]]
        added += jobs.add_item_specs(session, job.org_id, job.id, IngestItemsAddSpecs(items=specs))[0]
    return added


def finish_reembed(session: Session, job: IngestJob) -> bool:
    """The drained job's last step (an ingest drain hook): False when annotations enrolled meanwhile were
    added to it; else swap every shard to the new version, unless items failed (then the new generation
    stays ``building`` and the job says why)."""
    if _add_missing_items(session, job):
        return False
    version = job.options["model_version"]
    failed = session.scalar(select(func.count()).select_from(IngestItem).where(
        IngestItem.job_id == job.id, IngestItem.status == "failed")) or 0
    if failed:
        job.options = {**job.options, "swapped": False,
                       "reason": f"{failed} photos could not be re-embedded; the new generation is not served"}
        return True
    swapped = swap(session, job.org_id, version, job.created_by)
    job.options = {**job.options, "swapped": True, "shards": swapped}
    return True


def swap(session: Session, org_id: str, version: str, actor: str | None) -> list[str]:
    """Every shard building ``version`` serves it now; their serving version becomes the previous one."""
    building = session.scalars(select(ModelGeneration).where(
        ModelGeneration.org_id == org_id, ModelGeneration.model_version == version,
        ModelGeneration.state == "building")).all()
    groups = [row.species_group for row in building]
    for row in building:
        rows = _rows(session, org_id, row.species_group)
        if "previous" in rows:
            session.delete(rows["previous"])
            session.flush()
        rows["serving"].state = "previous"
        session.flush()
        row.state = "serving"
    session.flush()
    audit.append(session, org_id, "model_version", version, "swapped", actor, shards=groups)
    return groups


def rollback(session: Session, org_id: str, actor: str | None, species_group: str | None = None) -> list[str]:
    """Shards with a previous generation serve it again (its index was kept); the version they served
    becomes the previous one, so a second rollback undoes the first."""
    query = select(ModelGeneration).where(ModelGeneration.org_id == org_id, ModelGeneration.state == "previous")
    if species_group:
        query = query.where(ModelGeneration.species_group == species_group)
    previous = session.scalars(query).all()
    if not previous:
        raise Conflict("no shard has a previous model generation to return to")
    if open_reembed_job(session, org_id) is not None:
        raise Conflict("a re-embedding is running; let it finish or cancel it before a rollback")
    groups = []
    for row in previous:
        serving = _rows(session, org_id, row.species_group)["serving"]
        serving.state, row.state = "previous", "serving"
        groups.append(f"{row.species_group}: {serving.model_version} -> {row.model_version}")
    session.flush()
    audit.append(session, org_id, "model_version", "rollback", "rolled_back", actor, shards=groups)
    return groups


def store_embedding(session: Session, org_id: str, annotation_id: str, embedding: EmbeddingIn) -> Embedding:
    """Add (or replace: a replayed item) the annotation's embedding of one model version, and log its change."""
    annotation = get_annotation(session, org_id, annotation_id)
    vector = embedding_bytes(embedding)
    stored = annotation.embedding_of(embedding.model_version)
    if stored is None:
        stored = Embedding(id=new_id(), org_id=org_id, model_version=embedding.model_version, vector=vector)
        annotation.embeddings.append(stored)
    else:
        stored.vector = vector
    session.flush()
    record_embedding_change(session, stored, "reembedded")
    return stored


def upgrade_summary(session: Session, org_id: str) -> dict[str, Any]:
    """Per shard: embeddings by version and the generation rows, for GET /v1/model and the CLI."""
    rows = generations(session, org_id)
    return {group: {"embeddings": dict(versions),
                    "generations": {r.state: r.model_version for r in rows if r.species_group == group}}
            for group, versions in sorted(_versions_by_shard(session, org_id).items())}


jobs.DRAIN_HOOKS[REEMBED_JOB_KIND] = finish_reembed
