"""claim indexes

The claim walks the pending deliveries in id order (oldest first) reading due_at from an
index, instead of walking the primary key through the sent history (Postgres: 108 ms a claim
with 100,000 pending and 400,000 sent deliveries) or sorting every due delivery (SQLite: 110 ms
with 100,000 due after a vendor recovered); docs/benchmarks.md, "Outbox claim". (state,
due_at) becomes (state, id, due_at), which SQLite walks; Postgres gets a partial index of the
pending deliveries (empty on SQLite: WHERE false), which its planner prefers to the primary key.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_deliveries_state_id_due_at", ["state", "id", "due_at"], unique=False
        )
        batch_op.create_index(
            "ix_deliveries_pending_id_due_at",
            ["id", "due_at"],
            unique=False,
            postgresql_where=sa.text("state = 'pending'"),
            sqlite_where=sa.false(),
        )
        batch_op.drop_index("ix_deliveries_state_due_at")


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_deliveries_state_due_at", ["state", "due_at"], unique=False)
        batch_op.drop_index("ix_deliveries_pending_id_due_at")
        batch_op.drop_index("ix_deliveries_state_id_due_at")
