"""The one intake path (``receiver.service.apply_notification``: ``receiver.model.incident``
decides, ``receiver.store.intake`` and ``intake_writes`` load and write) stores what the
recorded Alertmanager fixtures always stored, row for row, on both databases, in a bounded
number of statements whatever the alerts, and reads its group's episodes by the group even in
an alert storm.

``tests/golden/intake_rows.json`` was written by the three write paths this one replaced (the
ORM intake and its two shortcuts) and this path reproduced it exactly; the same run compared
300 generated sequences (2,900 webhooks) on SQLite and 100 on Postgres row for row. The
0.33.1 set's rows are in ``tests/golden/alertmanager-0.33.1/intake_rows.json``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, select

from receiver.bootstrap import Container, bootstrap
from receiver.intake import parse_webhook
from receiver.replay import ReplayItem, load_items
from receiver.service import IntakeResult, RawRequest, handle_webhook
from receiver.store.intake import EPISODES
from receiver.store.tables import AlertEpisode, Base
from tests.support.clock import FakeClock
from tests.support.databases import (
    receiver_settings,
)
from tests.support.golden import check_golden, golden_name
from tests.support.payloads import FIXTURE_SETS, T0, alert_doc

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
    """``handle_webhook`` on one database, on a clock the test sets."""

    def __init__(self, url: str, **overrides: Any):
        self.clock = FakeClock()
        self.container: Container = bootstrap(
            receiver_settings(url, **SETTINGS, **overrides), clock=self.clock
        )

    def post(self, body: bytes, receiver: str | None = "hint") -> IntakeResult:
        raw = RawRequest(body, hashlib.sha256(body).hexdigest(), "127.0.0.1", "t")
        n = parse_webhook(body, receiver)
        return handle_webhook(self.container.uow, n, raw, self.clock, self.container.intake_rules)

    def close(self) -> None:
        self.container.engine.dispose()


def fixture_items(root: Path) -> list[ReplayItem]:
    """The scenarios of one recorded set, each request in the order received."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and p.name != "all")
    return load_items(folders, warn=lambda message: None)


@pytest.mark.parametrize("version", FIXTURE_SETS)
def test_the_recorded_fixtures_store_the_rows_they_always_stored(db_url: str, version) -> None:
    """Every recorded request on its recorded clock, each sent twice (an HA peer's copy): the
    answers and every row of every table as in the golden file (bodies by their sha256)."""
    intake = Intake(db_url)
    try:
        answers, repeats = [], 0
        for item in fixture_items(FIXTURE_SETS[version]):
            assert item.recorded_at is not None
            for _ in range(2):
                intake.clock.now = datetime.fromtimestamp(item.recorded_at, UTC)
                answer = intake.post(item.body, item.receiver).as_json()
                answers.append(answer)
                repeats += answer["duplicate"]
        rows = dump_rows(intake.container.engine)
    finally:
        intake.close()
    assert len(answers) >= 40 and repeats >= 20
    for row in rows["payload_bodies"]:
        row["body"] = None
    observed = json.loads(json.dumps({"answers": answers, "rows": rows}, default=str))
    check_golden(golden_name("intake_rows", version), observed)


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


def test_opening_and_repeating_take_a_few_statements_however_many_alerts(db_url: str) -> None:
    """Group 1: one alert; group 0: three alerts (two routed receivers, one series without a
    runbook). Opening each and repeating each takes the same few statements."""
    intake = Intake(db_url)
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
    intake = Intake(pg_url)
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
            since=T0 - timedelta(minutes=30),
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
