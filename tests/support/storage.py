"""What the receiver stored, read straight from its tables, checks built on that, and the
statements it sends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event, func, select, table

from receiver.store.tables import RejectedRequest
from tests.support.api import incidents, send
from tests.support.payloads import VALID

STORED_TABLES = (
    "alert_groups",
    "incidents",
    "incident_labels",
    "alert_episodes",
    "incident_events",
    "webhook_receipts",
    "incident_receipts",
    "payload_bodies",
)


def row_count(engine: Engine, table_name: str) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table(table_name))).scalar_one()


@contextmanager
def statements(engine: Engine, starting: str = "") -> Iterator[list[str]]:
    """The SQL statements sent through ``engine`` meanwhile (an executemany counts once);
    only those starting with ``starting``, if given."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().startswith(starting):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def rejected_rows(engine: Engine) -> list[Any]:
    """The rejected_requests rows, oldest first."""
    rejected = RejectedRequest.__table__
    with engine.connect() as conn:
        return list(conn.execute(select(rejected).order_by(rejected.c.id)))


def assert_nothing_stored(client: Any, engine: Engine) -> None:
    assert incidents(client) == []
    for name in STORED_TABLES:
        assert row_count(engine, name) == 0, name


def assert_still_serving(client: Any) -> None:
    """A valid webhook is stored (as the only incident) after whatever happened before."""
    answer = send(client, VALID)
    assert answer["new"] == 1
    assert [i["alertname"] for i in incidents(client)] == ["DiskFull"]
