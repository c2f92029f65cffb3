"""The intake's shortcuts (``apply_shortcut``: repeats, receiver/store/repeats.py, and a new
group's first notification, receiver/store/openings.py) store exactly what the full intake does.

The same webhooks go through ``handle_webhook`` twice, into two empty databases: once as the
receiver runs and once with the shortcuts off. Every row of every table must come out the
same, for generated sequences (hypothesis, SQLite: several groups, runbooks found and missing,
two routed receivers, context on, repeats, HA copies, resolves, stale firings, truncation,
heartbeats) and for the recorded Alertmanager fixtures (SQLite and Postgres). And each
shortcut must be taken: its statement count is bounded, whatever the alerts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
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
from receiver.store.repeats import EPISODES
from receiver.store.tables import AlertEpisode, Base
from tests.support.clock import FakeClock
from tests.support.databases import (
    migrated_sqlite,
    receiver_settings,
    template_copy,
)
from tests.support.payloads import FIXTURES, T0, alert_doc

CONFIG = Path(__file__).parents[2] / "config"
SETTINGS = {
    "watchdog.alertname": "Watchdog",
    "runbooks_path": str(CONFIG / "runbooks.yaml"),
    "context_path": str(CONFIG / "context.yaml"),
    "prometheus.url": "http://127.0.0.1:9",  # context on (episodes wait for it); never asked
    "receivers": {
        "pd": {"type": "pagerduty", "routing_key": "R" * 32},
        "chat": {"type": "slack", "token": "xoxb-test", "channel": "#alerts"},
    },
    "routes": [
        {"matchers": ['severity="critical"'], "receivers": ["pd"], "continue": True},
        {"matchers": ['severity=~"critical|warning"'], "receivers": ["chat"]},
    ],
}
SERIES = [
    {"alertname": "TritonHighErrorRate", "model": "llama", "severity": "critical"},
    {"alertname": "TritonGPUMemoryHigh", "gpu": "0", "severity": "warning"},
    {"alertname": "NoRunbookForThis", "pod": "p-1"},
    {"alertname": "Watchdog"},  # the heartbeat: never an incident
]


def body_of(
    group: int, entries: list[tuple[int, str, int]], status: str | None, truncated: int
) -> bytes:
    """A webhook of group 0, 1 or 2 (1 has a common summary, 2 common labels of its own)."""
    alerts = [
        alert_doc(
            SERIES[series],
            state,
            minute,
            annotations={"summary": f"series {series}"},
            generatorURL="http://prometheus.example/graph",
        )
        for series, state, minute in entries
    ]
    doc: dict[str, Any] = {
        "version": "4",
        "receiver": "property",
        "groupKey": f'{{}}:{{group="{group}"}}',
        "groupLabels": {"group": str(group)},
        "truncatedAlerts": truncated,
        "externalURL": "http://alertmanager-1.example:9093",
        "alerts": alerts,
    }
    if group == 1:
        doc["commonAnnotations"] = {"summary": "the common summary"}
    if group == 2:
        doc["commonLabels"] = {"alertname": "Grouped", "severity": "critical"}
    if status:
        doc["status"] = status
    return json.dumps(doc).encode()


alert_entries = st.tuples(
    st.sampled_from([0, 1, 2, 2, 3]),  # which series (the heartbeat less often)
    st.sampled_from(["firing", "firing", "resolved"]),
    st.sampled_from([0, 5]),  # startsAt, minutes after T0
)
steps = st.tuples(
    st.integers(0, 2),  # the group
    st.lists(alert_entries, min_size=1, max_size=4),
    st.sampled_from([None, "firing", "firing", "resolved"]),  # the root status, or none
    st.sampled_from([0, 0, 0, 2]),  # truncatedAlerts
    st.integers(0, 1200),  # seconds on the clock before the post
    st.booleans(),  # re-post the same bytes
    st.booleans(),  # then a copy from the HA peer whose annotations moved on
)


def dump_rows(engine: Engine) -> dict[str, list[dict[str, Any]]]:
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

    def __init__(self, url: str, shortcuts: bool, **overrides: Any):
        self.clock = FakeClock()
        self.container: Container = bootstrap(
            receiver_settings(url, **SETTINGS, **overrides), clock=self.clock
        )
        self.rules = dataclasses.replace(self.container.intake_rules, shortcuts=shortcuts)

    def post(self, body: bytes, receiver: str | None = "hint") -> IntakeResult:
        raw = RawRequest(body, hashlib.sha256(body).hexdigest(), "127.0.0.1", "t")
        n = parse_webhook(body, receiver)
        return handle_webhook(self.container.uow, n, raw, self.clock, self.rules)

    def close(self) -> None:
        self.container.engine.dispose()


@pytest.fixture(scope="module")
def two_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Intake, Intake]]:
    folder = Path(tmp_path_factory.mktemp("repeat-path"))
    fast = Intake(migrated_sqlite(folder / "fast.db"), shortcuts=True)
    full = Intake(migrated_sqlite(folder / "full.db"), shortcuts=False)
    yield fast, full
    fast.close()
    full.close()


@settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(steps, min_size=2, max_size=8))
def test_generated_sequences_store_the_same_rows_with_and_without_the_shortcuts(
    two_sqlite: tuple[Intake, Intake], sequence: list[Any]
) -> None:
    """The two databases must hold the same rows, and the answers be the same, after every
    post."""
    fast, full = two_sqlite
    assert fast.container.context_enabled
    for intake in (fast, full):
        empty(intake.container.engine)
        intake.clock.now = FakeClock().now
    for group, entries, status, truncated, wait, repost, from_peer in sequence:
        body = body_of(group, entries, status, truncated)
        posts = [body] + [body] * repost
        if from_peer:
            posts.append(
                body.replace(b"alertmanager-1", b"alertmanager-2").replace(b"series", b"now")
            )
        for post in posts:
            for intake in (fast, full):
                intake.clock.advance(seconds=wait)
            answers = [intake.post(post).as_json() for intake in (fast, full)]
            assert answers[0] == answers[1]
            assert dump_rows(fast.container.engine) == dump_rows(full.container.engine)


def fixture_items() -> list[ReplayItem]:
    """The recorded Alertmanager 0.25 scenarios, each request in the order received."""
    folders = sorted(p for p in FIXTURES.iterdir() if p.is_dir() and p.name != "all")
    return load_items(folders, warn=lambda message: None)


@pytest.fixture
def twin_url(db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A second empty database of the same kind as ``db_url``."""
    if db_url.startswith("sqlite"):
        yield migrated_sqlite(tmp_path / "twin.db")
        return
    with template_copy(request.getfixturevalue("pg_template")) as url:
        yield url


def test_the_recorded_fixtures_store_the_same_rows_with_and_without_the_shortcuts(
    db_url: str, twin_url: str
) -> None:
    """Every recorded request on its recorded clock, each sent twice (an HA peer's copy), into
    two databases of the same kind, one without the repeat path."""
    fast = Intake(db_url, shortcuts=True)
    full = Intake(twin_url, shortcuts=False)
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
        assert dump_rows(fast.container.engine) == dump_rows(full.container.engine)
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


def work(sql: list[str]) -> list[str]:
    """The statements that do something (not the transaction's bounds or a pool ping)."""
    return [s for s in sql if s not in ("BEGIN", "COMMIT", "ROLLBACK", "SELECT 1")]


def test_each_shortcut_takes_a_few_statements_however_many_alerts(db_url: str) -> None:
    """Group 1: one alert; group 0: three alerts (two routed receivers, one series without a
    runbook). Opening each and repeating each takes the same few statements."""
    intake = Intake(db_url, shortcuts=True)
    try:
        seen = Statements(intake.container.engine)
        one = body_of(1, [(0, "firing", 0)], "firing", 0)
        three = body_of(0, [(0, "firing", 0), (1, "firing", 0), (2, "firing", 0)], "firing", 0)
        answers, statements = [], []
        for body in (one, one, three, three):
            seen.sql.clear()
            answers.append(intake.post(body))
            statements.append(work(seen.sql))
    finally:
        intake.close()

    assert [(a.counts["new"], a.counts["duplicate"]) for a in answers] == [
        (1, 0),
        (0, 1),
        (3, 0),
        (0, 3),
    ]
    assert answers[0].incident_ids == answers[1].incident_ids != answers[2].incident_ids
    opened_one, repeated_one, opened_three, repeated_three = statements
    # probe, group, incident, body, receipt, episodes, events, labels, link, triggers
    assert len(opened_one) <= 10, opened_one
    assert opened_three == opened_one
    # probe (locks the group), episodes, incidents, episodes, receipt, link
    assert len(repeated_one) <= 6, repeated_one
    assert repeated_three == repeated_one


def copy_episodes(engine: Engine, source_id: int, prefix: str, count: int, starts: str) -> None:
    """``count`` copies of one stored episode, in its group, fingerprints ``prefix``1, 2, ...,
    each starting at the SQL expression ``starts`` (of ``g``, the copy's number)."""
    columns = [c.name for c in AlertEpisode.__table__.c if c.name != "id"]
    chosen = {"fingerprint": f"'{prefix}' || lpad(g::text, 31, '0')", "starts_at": starts}
    values = ", ".join(chosen.get(c, c) for c in columns)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"INSERT INTO alert_episodes ({', '.join(columns)}) SELECT {values} "
            f"FROM alert_episodes, generate_series(1, {count}) AS g WHERE id = {source_id}"
        )


def test_a_repeat_reads_a_few_pages_however_many_episodes_share_its_starts_at(
    pg_url: str,
) -> None:
    """An alert storm stores thousands of episodes with one startsAt (a rule's evaluation
    time) that the planner's statistics do not know yet. The repeat path's read of its group's
    episodes must still go by the group, not by startsAt. (It once read every episode of the
    storm on each repeat: 65 to 98 ms with 1,000,000 incidents stored, 15 to 52 req/s.)"""
    intake = Intake(pg_url, shortcuts=True)
    engine = intake.container.engine
    try:
        with engine.begin() as conn:  # statistics change only when the test says so
            conn.exec_driver_sql("ALTER TABLE alert_episodes SET (autovacuum_enabled = false)")
        repeated = body_of(1, [(0, "firing", 0)], "firing", 0)
        intake.post(repeated)
        intake.post(body_of(2, [(0, "firing", 5)], "firing", 0))
        with engine.connect() as conn:
            mine, storm = conn.execute(
                select(AlertEpisode.id, AlertEpisode.group_id, AlertEpisode.fingerprint).order_by(
                    AlertEpisode.id
                )
            ).all()
        # another group's history (known to the statistics), then its storm at our startsAt
        copy_episodes(engine, storm.id, "h", 20_000, "starts_at - g * interval '1 minute'")
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE alert_episodes")
        copy_episodes(engine, storm.id, "s", 20_000, f"'{T0.isoformat()}'::timestamptz")

        statement = EPISODES.params(
            group_id=mine.group_id,
            fingerprints=[mine.fingerprint],
            body_sha256=hashlib.sha256(repeated).hexdigest(),
        ).compile(engine, compile_kwargs={"literal_binds": True})
        explain = f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {statement}"
        with engine.connect() as conn:
            (plan,) = conn.exec_driver_sql(explain).scalar_one()
            # Which index the planner takes when two estimate one row each is a near tie
            # (it took startsAt's with 1,000,000 incidents, the group's here): without the
            # group's index, the statement must leave it no way to go by startsAt.
            conn.exec_driver_sql(
                "ALTER TABLE alert_episodes"
                " DROP CONSTRAINT uq_alert_episodes_group_id_fingerprint_starts_at"
            )
            (without,) = conn.exec_driver_sql(explain).scalar_one()
            conn.rollback()
        answer = intake.post(repeated)
    finally:
        intake.close()
    top = plan["Plan"]
    assert top["Actual Rows"] == 1
    assert top["Shared Hit Blocks"] + top["Shared Read Blocks"] < 20, plan
    assert "ix_alert_episodes_starts_at" not in json.dumps(without)
    assert (answer.counts["new"], answer.counts["duplicate"]) == (0, 1)
