"""The repeat path (receiver/store/repeats.py) stores exactly what the full intake stores.

The same webhooks go through ``handle_webhook`` twice, into two empty databases: once as the
receiver runs (pure repeats take the repeat path) and once with the repeat path off. Every row
of every table must come out the same, for generated sequences (hypothesis, SQLite) and for the
recorded Alertmanager fixtures (SQLite and Postgres). And a repeat must take the short path:
its statement count is bounded and does not grow with the incident's episodes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, event, select

from receiver.bootstrap import Container, bootstrap
from receiver.intake import parse_webhook
from receiver.replay import ReplayItem, load_items
from receiver.service import IntakeResult, RawRequest, handle_webhook
from receiver.store import migrate
from receiver.store.tables import Base
from tests.conftest import FIXTURES, FakeClock, _admin, _admin_url, _settings
from tests.unit.test_intake_properties import DELIVERIES, body_of, steps

HEARTBEAT = {"watchdog.alertname": "Watchdog"}


def dump(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, in primary key order, as plain values. Group ids are numbered
    1, 2, ... in order: on Postgres the full intake's INSERT .. ON CONFLICT DO NOTHING spends a
    sequence number on every webhook, the repeat path does not."""
    out = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = conn.execute(select(table).order_by(*table.primary_key.columns)).all()
            out[table.name] = [{k: plain(v) for k, v in row._mapping.items()} for row in rows]
    groups = {row["id"]: n for n, row in enumerate(out["alert_groups"], 1)}
    for rows in out.values():
        for row in rows:
            for column in ("group_id", "open_group_id"):
                if row.get(column) is not None:
                    row[column] = groups[row[column]]
    for row in out["alert_groups"]:
        row["id"] = groups[row["id"]]
    return out


def plain(value: Any) -> Any:
    """Postgres hands bytes back as memoryview."""
    return bytes(value) if isinstance(value, memoryview) else value


def empty(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


class Intake:
    """``handle_webhook`` on one database, with or without the repeat path."""

    def __init__(self, url: str, repeat_path: bool, **overrides: Any):
        self.clock = FakeClock()
        self.container: Container = bootstrap(
            _settings(url, **DELIVERIES, **HEARTBEAT, **overrides), clock=self.clock
        )
        self.rules = dataclasses.replace(self.container.intake_rules, repeat_path=repeat_path)

    def post(self, body: bytes, receiver: str | None = "hint") -> IntakeResult:
        raw = RawRequest(body, hashlib.sha256(body).hexdigest(), "127.0.0.1", "t")
        n = parse_webhook(body, receiver)
        return handle_webhook(self.container.uow, n, raw, self.clock, self.rules)

    def close(self) -> None:
        self.container.engine.dispose()


def migrated_sqlite(folder: Path, name: str) -> str:
    url = f"sqlite:///{folder / name}"
    container = bootstrap(_settings(url))
    migrate.upgrade(container.engine)
    container.engine.dispose()
    return url


@pytest.fixture(scope="module")
def two_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Intake, Intake]]:
    folder = Path(tmp_path_factory.mktemp("repeat-path"))
    fast = Intake(migrated_sqlite(folder, "fast.db"), repeat_path=True)
    full = Intake(migrated_sqlite(folder, "full.db"), repeat_path=False)
    yield fast, full
    fast.close()
    full.close()


def heartbeat_body(minute: int) -> bytes:
    doc = {
        "version": "4",
        "receiver": "property",
        "groupKey": '{}:{alertname="Watchdog"}',
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "Watchdog"},
                "startsAt": f"2026-11-28T00:{minute:02d}:00Z",
            }
        ],
    }
    return json.dumps(doc).encode()


@settings(
    max_examples=40,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(steps, min_size=2, max_size=8), st.lists(st.booleans(), min_size=8, max_size=8))
def test_generated_sequences_store_the_same_rows_with_and_without_the_repeat_path(
    two_sqlite: tuple[Intake, Intake], sequence: list[Any], annotate: list[bool]
) -> None:
    """Repeats, HA copies with other annotations, resolves, stale firings, truncation and
    heartbeats in any order: the two databases must hold the same rows after every step."""
    fast, full = two_sqlite
    for intake in (fast, full):
        empty(intake.container.engine)
        intake.clock.now = FakeClock().now
    for i, (entries, status, truncated, wait, repost_after) in enumerate(sequence):
        body = body_of(entries, status, truncated)
        posts = [body]
        if repost_after is not None:
            posts.append(body)
        if annotate[i]:  # a copy whose annotations moved on (a new value in a description)
            posts.append(body.replace(b'"a property alert"', f'"value {i}"'.encode()))
            posts.append(heartbeat_body(i))
        for post in posts:
            for intake in (fast, full):
                intake.clock.advance(seconds=wait)
            answers = [intake.post(post).as_json() for intake in (fast, full)]
            assert answers[0] == answers[1]
            assert dump(fast.container.engine) == dump(full.container.engine)


def fixture_items() -> list[ReplayItem]:
    """The recorded Alertmanager 0.25 scenarios, each request in the order received."""
    folders = sorted(p for p in FIXTURES.iterdir() if p.is_dir() and p.name != "all")
    return load_items(folders, warn=lambda message: None)


@pytest.fixture
def twin_url(db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A second empty database of the same kind as ``db_url``."""
    if db_url.startswith("sqlite"):
        yield migrated_sqlite(tmp_path, "twin.db")
        return
    template = request.getfixturevalue("pg_template")
    name = f"{template}_{uuid.uuid4().hex[:8]}"
    _admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield _admin_url(name)
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_recorded_fixtures_store_the_same_rows_with_and_without_the_repeat_path(
    db_url: str, twin_url: str
) -> None:
    """Every recorded request on its recorded clock, each sent twice (an HA peer's copy), into
    two databases of the same kind, one without the repeat path."""
    fast = Intake(db_url, repeat_path=True)
    full = Intake(twin_url, repeat_path=False)
    try:
        items = fixture_items()
        assert len(items) >= 20
        repeats = 0
        for item in items:
            assert item.recorded_at is not None
            for _ in range(2):
                for intake in (fast, full):
                    intake.clock.now = datetime.fromtimestamp(item.recorded_at, UTC)
                answers = [
                    intake.post(item.body, item.receiver).as_json() for intake in (fast, full)
                ]
                assert answers[0] == answers[1]
                repeats += answers[0]["duplicate"]
        assert repeats >= 20
        assert dump(fast.container.engine) == dump(full.container.engine)
    finally:
        fast.close()
        full.close()


class Statements:
    """Counts the statements an engine sends."""

    def __init__(self, engine: Engine):
        self.sql: list[str] = []
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.sql.append(statement.split(None, 1)[0].upper())


def test_a_repeat_takes_a_few_statements_however_many_alerts_its_incident_has(
    db_url: str,
) -> None:
    intake = Intake(db_url, repeat_path=True)
    try:
        seen = Statements(intake.container.engine)
        small = body_of([(0, "firing", 0)], "firing", 0)
        intake.post(small)
        seen.sql.clear()
        again = intake.post(small)
        one_alert = list(seen.sql)

        three = body_of([(0, "firing", 0), (1, "firing", 0), (2, "firing", 0)], "firing", 0)
        intake.post(three)
        seen.sql.clear()
        again_three = intake.post(three)
        three_alerts = list(seen.sql)
    finally:
        intake.close()

    assert (again.counts["duplicate"], again_three.counts["duplicate"]) == (1, 3)
    assert again.incident_ids == again_three.incident_ids
    # group, episodes, incidents, episodes, receipt, links (and BEGIN/COMMIT on SQLite)
    work = [s for s in one_alert if s not in ("BEGIN", "COMMIT", "SELECT 1")]
    assert len(work) <= 6, one_alert
    assert [s for s in three_alerts if s not in ("BEGIN", "COMMIT", "SELECT 1")] == work
