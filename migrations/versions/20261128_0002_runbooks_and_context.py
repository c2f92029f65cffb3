"""runbooks and context

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 01:57:34.544608
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alert_episodes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("runbook_url", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("runbook_source", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("guidance", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("context_state", sa.String(length=16), server_default="none", nullable=False)
        )
        batch_op.add_column(
            sa.Column("context_claimed_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "context",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
        batch_op.create_index(
            batch_op.f("ix_alert_episodes_context_state"), ["context_state"], unique=False
        )

    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("runbook_url", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("guidance", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("runbook_missing", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_column("runbook_missing")
        batch_op.drop_column("guidance")
        batch_op.drop_column("runbook_url")

    with op.batch_alter_table("alert_episodes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_episodes_context_state"))
        batch_op.drop_column("context")
        batch_op.drop_column("context_claimed_at")
        batch_op.drop_column("context_state")
        batch_op.drop_column("guidance")
        batch_op.drop_column("runbook_source")
        batch_op.drop_column("runbook_url")
