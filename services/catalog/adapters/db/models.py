"""The catalogue's tables (SQLAlchemy 2 typed declarative models).

Every table that holds an organisation's data carries ``org_id``, and every query the domain
makes filters by it. Ids are UUID strings so that they are portable between PostgreSQL and
SQLite and safe to show in URLs. Timestamps are timezone-aware UTC (:class:`UTCDateTime`).
The Alembic migrations in ``services/catalog/migrations`` must describe exactly these tables;
a test compares them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import DateTime, TypeDecorator

# Constraint names are part of the schema Alembic compares; a convention keeps them stable.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
SequenceNumber = BigInteger().with_variant(Integer(), "sqlite")


def new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC; always returns an aware datetime (SQLite drops the zone, PostgreSQL keeps it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; give a time zone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UuidPrimaryKey = Annotated[str, mapped_column(String(36), primary_key=True, default=new_id)]
"""A row's id: a new UUID string."""
OrgForeignKey = Annotated[str, mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)]
"""The organisation a row belongs to: every query filters by it; deleting the organisation deletes the row."""

Line = Annotated[str, mapped_column(String(200))]
"""One line of text naming a thing, a place or a person: at most 200 characters."""
RoleName = Annotated[str, mapped_column(String(32))]
"""A user's or an API key's role (admin, reviewer, contributor, viewer)."""


def one_of(column: str, *values: str) -> CheckConstraint:
    """The column holds one of ``values`` (named after the column: ``ck_<table>_<column>``)."""
    return CheckConstraint(f"{column} IN ({', '.join(repr(v) for v in values)})", name=column)


class Base(DeclarativeBase):
    metadata: ClassVar[MetaData] = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Organisation(Timestamped, Base):
    __tablename__ = "organisations"

    id: Mapped[UuidPrimaryKey]
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[Line]
    auto_accept_precision: Mapped[float | None] = mapped_column(Float)
    """The precision target under which a match is confirmed without review; null: off."""


class User(Timestamped, Base):
    __tablename__ = "users"

    id: Mapped[UuidPrimaryKey]
    org_id: Mapped[OrgForeignKey]
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[Line]
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[RoleName]
    disabled: Mapped[bool] = mapped_column(default=False)


class ApiKey(Timestamped, Base):
    """Only the SHA-256 of the key is kept; the key itself is shown once, when created."""

    __tablename__ = "api_keys"

    id: Mapped[UuidPrimaryKey]
    org_id: Mapped[OrgForeignKey]
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    name: Mapped[Line]
    role: Mapped[RoleName]
    revoked_at: Mapped[datetime | None]


class Species(Base):
    __tablename__ = "species"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    common_name: Mapped[Line]
    scientific_name: Mapped[Line | None]
    is_cetacean: Mapped[bool] = mapped_column(default=True)


class Individual(Timestamped, Base):
    """A catalogued animal. A merged individual stays (status ``merged``) so its history does."""

    __tablename__ = "individuals"
    __table_args__ = (
        UniqueConstraint("org_id", "catalogue_code", name="uq_individuals_org_id_catalogue_code"),
        one_of("sex", "female", "male", "unknown"),
        one_of("status", "active", "merged"),
    )

    id: Mapped[UuidPrimaryKey]
    org_id: Mapped[OrgForeignKey]
    catalogue_code: Mapped[str] = mapped_column(String(64))
    name: Mapped[Line | None]
    species_key: Mapped[str] = mapped_column(ForeignKey("species.key"))
    sex: Mapped[str] = mapped_column(String(16), default="unknown")
    notes: Mapped[str | None] = mapped_column(Text)
    first_seen: Mapped[datetime | None]
    last_seen: Mapped[datetime | None]
    representative_media_id: Mapped[str | None] = mapped_column(ForeignKey("media.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default="active")
    merged_into_id: Mapped[str | None] = mapped_column(ForeignKey("individuals.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Encounter(Timestamped, Base):
    """A sighting. ``occurred_at`` is UTC; ``utc_offset_minutes`` keeps the local zone it was given in."""

    __tablename__ = "encounters"
    __table_args__ = (
        CheckConstraint("latitude IS NULL OR (latitude >= -90 AND latitude <= 90)", name="latitude"),
        CheckConstraint("longitude IS NULL OR (longitude >= -180 AND longitude <= 180)", name="longitude"),
        CheckConstraint("group_size IS NULL OR group_size >= 1", name="group_size"),
    )

    id: Mapped[UuidPrimaryKey]
    org_id: Mapped[OrgForeignKey]
    occurred_at: Mapped[datetime | None]
    utc_offset_minutes: Mapped[int | None]
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    location_name: Mapped[Line | None]
    observer: Mapped[Line | None]
    behaviour: Mapped[Line | None]
    group_size: Mapped[int | None]
    notes: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[Line | None]

    media: Mapped[list[Media]] = relationship(back_populates="encounter", order_by="Media.created_at")


class Media(Timestamped, Base):
    """An uploaded image. The same bytes are stored once per organisation (unique SHA-256)."""

    __tablename__ = "media"
    __table_args__ = (UniqueConstraint("org_id", "sha256", name="uq_media_org_id_sha256"),)

    id: Mapped[UuidPrimaryKey]
    org_id: Mapped[OrgForeignKey]
    encounter_id: Mapped[str | None] = mapped_column(
        ForeignKey("encounters.id", ondelete="SET NULL"), index=True
    )
    object_key: Mapped[str] = mapped_column(String(300))
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int]
    width: Mapped[int]
    height: Mapped[int]
    original_filename: Mapped[str | None] = mapped_column(String(300))
    exif_taken_at: Mapped[datetime | None]
    exif_utc_offset_minutes: Mapped[int | None]
    exif_latitude: Mapped[float | None] = mapped_column(Float)
    exif_longitude: Mapped[float | None] = mapped_column(Float)
    uploaded_by: Mapped[Line | None]

    encounter: Mapped[Encounter | None] = relationship(back_populates="media")


class Annotation(Timestamped, Base):
    """One animal in one image: its box, view, species, and the crop's embeddings (one per model
    version: two versions live side by side while the catalogue is re-embedded)."""

    __tablename__ = "annotations"
    __table_args__ = (
        CheckConstraint("quality IS NULL OR (quality >= 0 AND quality <= 1)", name="quality"),
        Index("ix_annotations_org_id_individual_id", "org_id", "individual_id"),
    )

    id: Mapped[UuidPrimaryKey]
    org_id: Mapped[OrgForeignKey]
    media_id: Mapped[str] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"), index=True)
    individual_id: Mapped[str | None] = mapped_column(ForeignKey("individuals.id"))
    box_x: Mapped[float] = mapped_column(Float)
    box_y: Mapped[float] = mapped_column(Float)
    box_width: Mapped[float] = mapped_column(Float)
    box_height: Mapped[float] = mapped_column(Float)
    view: Mapped[str | None] = mapped_column(String(32))
    quality: Mapped[float | None] = mapped_column(Float)
    species_key: Mapped[str | None] = mapped_column(ForeignKey("species.key"))
    species_score: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    media: Mapped[Media] = relationship()
    individual: Mapped[Individual | None] = relationship()
    embeddings: Mapped[list[Embedding]] = relationship(
        back_populates="annotation", cascade="all, delete-orphan", order_by="Embedding.created_at", lazy="selectin"
    )

    def embedding_of(self, model_version: str) -> Embedding | None:
        return next((e for e in self.embeddings if e.model_version == model_version), None)


class Embedding(Timestamped, Base):
    """One model version's vector of an annotation's crop; the matcher indexes it under that version.

    ``change_seq`` is the sequence number of the last change event written for this embedding; the
    matcher's records carry it. Embeddings made before model versions were tracked kept their
    annotation's id.
    """

    __tablename__ = "embeddings"
    __table_args__ = (UniqueConstraint("annotation_id", "model_version"),)

    id: Mapped[UuidPrimaryKey]
    org_id: Mapped[OrgForeignKey]
    annotation_id: Mapped[str] = mapped_column(ForeignKey("annotations.id", ondelete="CASCADE"), index=True)
    model_version: Mapped[str] = mapped_column(String(100))
    vector: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    """Loaded only where asked for (the matcher's records): an annotation loads its embeddings' versions
    with every listing, and 2 KB of vector each would ride along for nothing."""
    change_seq: Mapped[int] = mapped_column(SequenceNumber, default=0)

    annotation: Mapped[Annotation] = relationship(back_populates="embeddings")


class ModelGeneration(Timestamped, Base):
    """Which model version's index a shard (organisation, species) answers from.

    One ``serving`` row per shard that has been through a model upgrade; ``building`` while a
    re-embedding fills a new version's index, ``previous`` for the one a rollback returns to. A shard
    without rows serves the only version its embeddings have.
    """

    __tablename__ = "model_generations"
    __table_args__ = (one_of("state", "serving", "building", "previous"),)

    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True)
    species_group: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(100), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Identification(Timestamped, Base):
    """A review of one annotation: the candidates shown, and the decision taken on them."""

    __tablename__ = "identifications"
    __table_args__ = (
        one_of("decision", "pending", "confirmed", "new_individual", "rejected"),
    )

    id: Mapped[UuidPrimaryKey]
    org_id: Mapped[OrgForeignKey]
    annotation_id: Mapped[str] = mapped_column(ForeignKey("annotations.id", ondelete="CASCADE"), index=True)
    candidates: Mapped[list[Any]] = mapped_column(default=list)
    new_individual_probability: Mapped[float | None] = mapped_column(Float)
    model_version: Mapped[str | None] = mapped_column(String(100))
    decision: Mapped[str] = mapped_column(String(32), default="pending")
    individual_id: Mapped[str | None] = mapped_column(ForeignKey("individuals.id"))
    decided_by: Mapped[Line | None]
    decided_at: Mapped[datetime | None]

    # A reviewer compares the photo under review with the candidates: the annotation comes along.
    annotation: Mapped[Annotation] = relationship(lazy="joined", innerjoin=True)

    @property
    def media_id(self) -> str:
        return self.annotation.media_id

    @property
    def box(self) -> dict[str, float]:
        a = self.annotation
        return {"x": a.box_x, "y": a.box_y, "width": a.box_width, "height": a.box_height}

    @property
    def view(self) -> str | None:
        return self.annotation.view

    @property
    def species(self) -> str | None:
        return self.annotation.species_key


class DuplicatePair(Timestamped, Base):
    """Two individuals of one species whose galleries are so close they may be one animal, waiting
    for a reviewer: merged (one click) or dismissed, and then not filed again."""

    __tablename__ = "duplicate_pairs"
    __table_args__ = (
        UniqueConstraint("org_id", "individual_a_id", "individual_b_id",
                         name="uq_duplicate_pairs_org_id_individual_a_id_individual_b_id"),
        one_of("status", "pending", "merged", "dismissed"),
    )

    id: Mapped[UuidPrimaryKey]
    org_id: Mapped[OrgForeignKey]
    species_key: Mapped[str] = mapped_column(ForeignKey("species.key"))
    individual_a_id: Mapped[str] = mapped_column(ForeignKey("individuals.id"))
    individual_b_id: Mapped[str] = mapped_column(ForeignKey("individuals.id"))
    score: Mapped[float] = mapped_column(Float)
    model_version: Mapped[str] = mapped_column(String(100))
    annotation_a_id: Mapped[str | None] = mapped_column(String(36))
    """The photos of the closest pair (annotation ids; not keys: a photo may go, the pair stays)."""
    annotation_b_id: Mapped[str | None] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    decided_by: Mapped[Line | None]
    decided_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AuditEntry(Base):
    """Append-only: rows are inserted, never updated or deleted (enforced below)."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_org_id_entity", "org_id", "entity_type", "entity_id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(SequenceNumber, primary_key=True, autoincrement=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(36))
    action: Mapped[str] = mapped_column(String(64))
    actor: Mapped[Line | None]
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


@event.listens_for(AuditEntry, "before_update")
@event.listens_for(AuditEntry, "before_delete")
def _refuse_audit_rewrite(*_args: object) -> None:
    raise PermissionError("the audit log is append-only")


class Comment(Timestamped, Base):
    """A comment on an encounter or an identification; ``parent_id`` threads replies."""

    __tablename__ = "comments"
    __table_args__ = (
        CheckConstraint("(encounter_id IS NULL) <> (identification_id IS NULL)", name="one_subject"),
    )

    id: Mapped[UuidPrimaryKey]
    org_id: Mapped[OrgForeignKey]
    encounter_id: Mapped[str | None] = mapped_column(ForeignKey("encounters.id", ondelete="CASCADE"))
    identification_id: Mapped[str | None] = mapped_column(
        ForeignKey("identifications.id", ondelete="CASCADE")
    )
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("comments.id", ondelete="CASCADE"))
    author: Mapped[Line]
    body: Mapped[str] = mapped_column(Text)


class IngestJob(Timestamped, Base):
    __tablename__ = "ingest_jobs"
    __table_args__ = (
        one_of("status", "pending", "running", "paused", "completed", "failed", "cancelled"),
    )

    id: Mapped[UuidPrimaryKey]
    org_id: Mapped[OrgForeignKey]
    name: Mapped[Line]
    source: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by: Mapped[Line | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    """When workers could first take its items (the start of its images-per-second rate)."""
    finished_at: Mapped[datetime | None] = mapped_column()


class IngestItem(Timestamped, Base):
    """One photo of a job; ``item_key`` (e.g. its path in the archive) makes adding it idempotent."""

    __tablename__ = "ingest_items"
    __table_args__ = (
        UniqueConstraint("job_id", "item_key", name="uq_ingest_items_job_id_item_key"),
        one_of("status", "pending", "running", "done", "failed", "skipped"),
        Index("ix_ingest_items_job_id_status", "job_id", "status"),
    )

    id: Mapped[UuidPrimaryKey]
    org_id: Mapped[OrgForeignKey]
    job_id: Mapped[str] = mapped_column(ForeignKey("ingest_jobs.id", ondelete="CASCADE"))
    item_key: Mapped[str] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    media_id: Mapped[str | None] = mapped_column(ForeignKey("media.id", ondelete="SET NULL"))
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """What the producer knew about the photo (a manifest row: date, position, individual...)."""
    content_key: Mapped[str | None] = mapped_column(String(1000))
    """Where the worker reads the bytes: a staged object key, or the object's name in the job's S3 source."""
    worker_id: Mapped[Line | None]
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    """A running item whose lease has expired is claimed again (its worker died)."""


class Change(Base):
    """The change log the matcher replays: one row per embedding whose index entry changed.

    Written in the same transaction as the change itself. ``seq`` order is commit order because
    writers serialise on a lock (see ``domain.changes``); numbers are never reused.
    """

    __tablename__ = "changes"
    # AUTOINCREMENT on SQLite: never reuse a number, even after the newest rows are deleted.
    __table_args__ = (Index("ix_changes_org_id_seq", "org_id", "seq"), {"sqlite_autoincrement": True})

    seq: Mapped[int] = mapped_column(SequenceNumber, primary_key=True, autoincrement=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    embedding_id: Mapped[str] = mapped_column(String(36))
    op: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IdempotencyRecord(Base):
    """The stored answer to a creating POST sent with an ``Idempotency-Key``."""

    __tablename__ = "idempotency_keys"

    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_sha256: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int]
    response: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
