"""channel pacing: the turn of the last post held back for each Slack channel

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 14:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("channel_pacing") as batch_op:
        batch_op.add_column(sa.Column("queued_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("channel_pacing") as batch_op:
        batch_op.drop_column("queued_until")
