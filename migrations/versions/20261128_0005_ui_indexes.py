"""ui indexes

Indexes for the incident list, its counts and the overview at 100,000 incidents
(docs/benchmarks.md). On Postgres the text filter's trigram index needs the pg_trgm extension,
which ships with PostgreSQL and is trusted: a database owner may create it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 04:46:23.130047
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")

    with op.batch_alter_table("alert_episodes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_alert_episodes_runbook_missing",
            ["first_received_at", "alertname", "incident_id"],
            unique=False,
            postgresql_where=sa.text("runbook_url IS NULL"),
            sqlite_where=sa.text("runbook_url IS NULL"),
        )
        batch_op.create_index(
            "ix_alert_episodes_starts_at", ["starts_at", "alertname", "incident_id"], unique=False
        )

    with op.batch_alter_table("incident_labels", schema=None) as batch_op:
        batch_op.create_index(
            "ix_incident_labels_name_value_incident_id",
            ["name", "value", "incident_id"],
            unique=False,
        )

    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.create_index(
            "ix_incidents_alertname_opened_at",
            ["alertname", "opened_at", "status", "acknowledged_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_incidents_opened_at_resolved_at",
            ["opened_at", "resolved_at", "status", "acknowledged_at", "flapping", "alertname"],
            unique=False,
        )
        batch_op.create_index(
            "ix_incidents_receiver_opened_at",
            ["receiver", "opened_at", "status", "acknowledged_at"],
            unique=False,
        )
        # Postgres: trigram index; SQLite: empty
        batch_op.create_index(
            "ix_incidents_search_text_trgm",
            ["search_text"],
            unique=False,
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
            sqlite_where=sa.false(),
        )
        batch_op.create_index(
            "ix_incidents_severity_opened_at",
            ["severity", "opened_at", "status", "acknowledged_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_incidents_status_severity",
            ["status", "severity", "acknowledged_at", "id"],
            unique=False,
        )
        # SQLite: what the text filter scans; Postgres: empty
        batch_op.create_index(
            "ix_incidents_text_scan",
            ["opened_at", "id", "search_text", "status", "acknowledged_at"],
            unique=False,
            postgresql_where=sa.false(),
        )


def downgrade() -> None:
    # pg_trgm stays: other schemas in the database may use it
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index("ix_incidents_text_scan")
        batch_op.drop_index("ix_incidents_status_severity")
        batch_op.drop_index("ix_incidents_severity_opened_at")
        batch_op.drop_index("ix_incidents_search_text_trgm")
        batch_op.drop_index("ix_incidents_receiver_opened_at")
        batch_op.drop_index("ix_incidents_opened_at_resolved_at")
        batch_op.drop_index("ix_incidents_alertname_opened_at")

    with op.batch_alter_table("incident_labels", schema=None) as batch_op:
        batch_op.drop_index("ix_incident_labels_name_value_incident_id")

    with op.batch_alter_table("alert_episodes", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_episodes_starts_at")
        batch_op.drop_index("ix_alert_episodes_runbook_missing")
