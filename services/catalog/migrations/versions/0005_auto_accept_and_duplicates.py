"""Auto-accept: an organisation's precision target under which a match is confirmed without review;
possible duplicates: pairs of individuals waiting for a reviewer to merge or dismiss them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("organisations") as batch:
        # Null: off (every match waits for review), as for every organisation until it opts in.
        batch.add_column(sa.Column("auto_accept_precision", sa.Float(), nullable=True))
    op.create_table(
        "duplicate_pairs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("species_key", sa.String(length=64), nullable=False),
        sa.Column("individual_a_id", sa.String(length=36), nullable=False),
        sa.Column("individual_b_id", sa.String(length=36), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("model_version", sa.String(length=100), nullable=False),
        sa.Column("annotation_a_id", sa.String(length=36), nullable=True),
        sa.Column("annotation_b_id", sa.String(length=36), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('pending', 'merged', 'dismissed')", name=op.f("ck_duplicate_pairs_status")),
        sa.ForeignKeyConstraint(["individual_a_id"], ["individuals.id"],
                                name=op.f("fk_duplicate_pairs_individual_a_id_individuals")),
        sa.ForeignKeyConstraint(["individual_b_id"], ["individuals.id"],
                                name=op.f("fk_duplicate_pairs_individual_b_id_individuals")),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"], name=op.f("fk_duplicate_pairs_org_id_organisations"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["species_key"], ["species.key"], name=op.f("fk_duplicate_pairs_species_key_species")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_duplicate_pairs")),
        sa.UniqueConstraint("org_id", "individual_a_id", "individual_b_id",
                            name="uq_duplicate_pairs_org_id_individual_a_id_individual_b_id"),
    )
    op.create_index(op.f("ix_duplicate_pairs_org_id"), "duplicate_pairs", ["org_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_duplicate_pairs_org_id"), table_name="duplicate_pairs")
    op.drop_table("duplicate_pairs")
    with op.batch_alter_table("organisations") as batch:
        batch.drop_column("auto_accept_precision")
