"""The ingest queue: item leases (worker, expiry), item payloads and content, job start/finish times.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ingest_jobs") as batch:
        batch.add_column(sa.Column("started_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("ingest_items") as batch:
        # Existing rows get an empty payload; new rows always get one from the application.
        batch.add_column(sa.Column("payload", sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
        batch.add_column(sa.Column("content_key", sa.String(length=1000), nullable=True))
        batch.add_column(sa.Column("worker_id", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ingest_items") as batch:
        batch.drop_column("lease_expires_at")
        batch.drop_column("worker_id")
        batch.drop_column("content_key")
        batch.drop_column("payload")
    with op.batch_alter_table("ingest_jobs") as batch:
        batch.drop_column("finished_at")
        batch.drop_column("started_at")
