"""alertmanager events

Alertmanager 0.33's event recorder posts what it did with each alert (created, grouped,
notified, silenced, inhibited). One row per event, unique by a digest: of its JSON (the
webhook output retries), or for a mute of the alert and what muted it (Alertmanager repeats a
mute at every evaluation: counted, with the first and last time). With the alert fingerprint
it concerns and what muted it.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alertmanager_events",
        sa.Column("id", ID, nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("instance", sa.String(length=255), nullable=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=True),
        sa.Column("fingerprints", JSON_DOC, nullable=False),
        sa.Column("labels", JSON_DOC, nullable=False),
        sa.Column("detail", JSON_DOC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alertmanager_events")),
        sa.UniqueConstraint("digest", name=op.f("uq_alertmanager_events_digest")),
    )
    with op.batch_alter_table("alertmanager_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_alertmanager_events_fingerprint"), ["fingerprint"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_alertmanager_events_last_at"), ["last_at"], unique=False
        )


def downgrade() -> None:
    op.drop_table("alertmanager_events")
