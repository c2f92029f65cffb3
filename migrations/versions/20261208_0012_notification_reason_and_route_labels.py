"""notification reason and route labels

Alertmanager 0.32 sends why it sent a notification (``notification_reason``: "first
notification", "repeat interval elapsed", ...), 0.34 the labels of the route that sent it
(``routeLabels``). Each receipt keeps its reason; each incident the route labels it was opened
with (those no alert carries are in its labels as well). Older Alertmanagers send neither:
NULL and ``{}``.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08 01:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_receipts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notification_reason", sa.String(length=64), nullable=True))
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "route_labels",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                server_default=sa.text("'{}'"),
                nullable=False,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_column("route_labels")
    with op.batch_alter_table("webhook_receipts", schema=None) as batch_op:
        batch_op.drop_column("notification_reason")
