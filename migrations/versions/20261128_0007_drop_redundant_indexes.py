"""drop four indexes whose columns lead a wider index: each insert paid for them, no read needs them

ix_incidents_receiver, ix_incidents_alertname and ix_incidents_severity are the first column of
ix_incidents_receiver_opened_at, ix_incidents_alertname_opened_at and
ix_incidents_severity_opened_at; ix_incident_labels_name_value is the start of
ix_incident_labels_name_value_incident_id. Opening an incident wrote every label into both
(docs/benchmarks.md).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 08:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("incident_labels", schema=None) as batch_op:
        batch_op.drop_index("ix_incident_labels_name_value")
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incidents_severity"))
        batch_op.drop_index(batch_op.f("ix_incidents_receiver"))
        batch_op.drop_index(batch_op.f("ix_incidents_alertname"))


def downgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_incidents_alertname"), ["alertname"], unique=False)
        batch_op.create_index(batch_op.f("ix_incidents_receiver"), ["receiver"], unique=False)
        batch_op.create_index(batch_op.f("ix_incidents_severity"), ["severity"], unique=False)
    with op.batch_alter_table("incident_labels", schema=None) as batch_op:
        batch_op.create_index("ix_incident_labels_name_value", ["name", "value"], unique=False)
