"""Model versions: an annotation's embeddings in their own table (one per model version), and the
model generation each shard serves.

Existing embeddings move to ``embeddings`` under their annotation's id, so the matcher's snapshots
and the change log keep naming them by the same id.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEQUENCE_NUMBER = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "embeddings",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("annotation_id", sa.String(length=36), nullable=False),
        sa.Column("model_version", sa.String(length=100), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("change_seq", SEQUENCE_NUMBER, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["annotation_id"], ["annotations.id"],
                                name=op.f("fk_embeddings_annotation_id_annotations"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"],
                                name=op.f("fk_embeddings_org_id_organisations"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_embeddings")),
        sa.UniqueConstraint("annotation_id", "model_version", name=op.f("uq_embeddings_annotation_id")),
    )
    op.create_index(op.f("ix_embeddings_annotation_id"), "embeddings", ["annotation_id"])
    op.create_index(op.f("ix_embeddings_org_id"), "embeddings", ["org_id"])
    op.execute(
        "INSERT INTO embeddings (id, org_id, annotation_id, model_version, vector, change_seq, created_at) "
        "SELECT id, org_id, id, embedding_model, embedding, change_seq, created_at FROM annotations "
        "WHERE embedding IS NOT NULL AND embedding_model IS NOT NULL"
    )
    with op.batch_alter_table("annotations") as batch:
        batch.drop_column("change_seq")
        batch.drop_column("embedding")
        batch.drop_column("embedding_model")

    op.create_table(
        "model_generations",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("species_group", sa.String(length=64), nullable=False),
        sa.Column("model_version", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("state IN ('serving', 'building', 'previous')", name=op.f("ck_model_generations_state")),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"],
                                name=op.f("fk_model_generations_org_id_organisations"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("org_id", "species_group", "model_version", name=op.f("pk_model_generations")),
    )


def downgrade() -> None:
    op.drop_table("model_generations")
    with op.batch_alter_table("annotations") as batch:
        batch.add_column(sa.Column("embedding_model", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("embedding", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("change_seq", SEQUENCE_NUMBER, nullable=False, server_default="0"))
    # Of several versions an annotation keeps the newest.
    op.execute(
        "UPDATE annotations SET embedding_model = e.model_version, embedding = e.vector, change_seq = e.change_seq "
        "FROM (SELECT DISTINCT ON (annotation_id) annotation_id, model_version, vector, change_seq FROM embeddings "
        "ORDER BY annotation_id, created_at DESC) AS e WHERE e.annotation_id = annotations.id"
        if op.get_bind().dialect.name == "postgresql" else
        "UPDATE annotations SET (embedding_model, embedding, change_seq) = (SELECT model_version, vector, change_seq "
        "FROM embeddings WHERE annotation_id = annotations.id ORDER BY created_at DESC LIMIT 1) "
        "WHERE id IN (SELECT annotation_id FROM embeddings)"
    )
    op.drop_index(op.f("ix_embeddings_org_id"), table_name="embeddings")
    op.drop_index(op.f("ix_embeddings_annotation_id"), table_name="embeddings")
    op.drop_table("embeddings")
