"""channel pacing shared by every worker process: when each Slack channel takes its next post

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 11:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "channel_pacing",
        sa.Column("channel", sa.String(length=255), nullable=False),
        sa.Column("next_post_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel", name=op.f("pk_channel_pacing")),
    )


def downgrade() -> None:
    op.drop_table("channel_pacing")
