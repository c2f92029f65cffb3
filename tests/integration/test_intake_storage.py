"""What the intake stores: deduplication and incident placement, outages, atomicity.

Driven through HTTP with hand-written webhooks (alert times are minutes after ``payloads.T0``).
group = (receiver, groupKey); series = fingerprint; episode = (group, fingerprint, startsAt).
Tests taking ``client`` or ``container`` run on SQLite and on Postgres.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from receiver.app import create_app
from receiver.bootstrap import Container, bootstrap
from receiver.store import migrate
from receiver.store.db import make_engine
from tests.support.api import (
    AUTH,
    WEBHOOKS,
    detail,
    episodes,
    incidents,
    metric,
    post_webhook,
    send,
    timeline_kinds,
)
from tests.support.databases import receiver_settings
from tests.support.payloads import VALID, alert, ts, webhook
from tests.support.servers import free_port
from tests.support.storage import assert_nothing_stored, row_count


def fire(starts: float, **labels: str) -> dict[str, Any]:
    return webhook(alert("GpuHot", starts=starts, **labels))


def resolve(starts: float, ends: float, **labels: str) -> dict[str, Any]:
    return webhook(alert("GpuHot", "resolved", starts=starts, ends=ends, **labels))


def only_incident(client: Any) -> dict[str, Any]:
    [incident] = incidents(client)
    return incident


def test_a_repeated_notification_counts_on_the_same_incident(client: Any) -> None:
    body = fire(0)
    first = send(client, body)
    second = send(client, body)
    from_ha_peer = send(client, {**body, "externalURL": "http://alertmanager-2.example:9093"})

    assert (first["new"], second["new"], from_ha_peer["new"]) == (1, 0, 0)
    assert (second["duplicate"], from_ha_peer["duplicate"]) == (1, 1)
    assert first["incidents"] == second["incidents"] == from_ha_peer["incidents"]
    incident = only_incident(client)
    assert incident["counts"]["notifications"] == 3
    assert incident["counts"]["duplicates"] == 2
    [episode] = episodes(client, incident["id"])
    assert episode["seen_count"] == 3
    assert timeline_kinds(client, incident["id"]) == ["opened"]


def test_a_stale_firing_after_the_resolve_does_not_reopen_the_incident(client: Any) -> None:
    send(client, fire(0))
    send(client, resolve(0, ends=2))

    stale = send(client, fire(0))

    assert (stale["stale"], stale["new"], stale["duplicate"]) == (1, 0, 0)
    incident = only_incident(client)
    assert incident["status"] == "resolved"
    assert incident["resolved_at"] == ts(2).replace("Z", "+00:00")
    [episode] = episodes(client, incident["id"])
    assert (episode["status"], episode["stale_firing_count"]) == ("resolved", 1)
    assert "reopened" not in timeline_kinds(client, incident["id"])


def test_a_resolve_never_seen_firing_is_recorded_as_a_resolved_incident(client: Any) -> None:
    answer = send(client, resolve(0, ends=3))

    assert (answer["resolved"], answer["new"]) == (1, 0)
    incident = only_incident(client)
    assert incident["status"] == "resolved"
    assert incident["opened_by_resolve"] is True
    assert incident["resolved_at"] == ts(3).replace("Z", "+00:00")
    [episode] = episodes(client, incident["id"])
    assert episode["seen_firing"] is False
    assert timeline_kinds(client, incident["id"]) == ["opened_by_resolve", "alert_resolved_unseen"]


def test_a_resolve_never_seen_firing_joins_the_open_incident_without_closing_it(
    client: Any,
) -> None:
    send(client, webhook(alert("GpuHot", starts=0, gpu="0")))

    send(client, webhook(alert("GpuHot", starts=0, gpu="0"), alert("GpuHot", "resolved", gpu="1")))

    incident = only_incident(client)
    assert incident["status"] == "firing"
    assert incident["opened_by_resolve"] is False
    seen = {e["labels"]["gpu"]: e["seen_firing"] for e in episodes(client, incident["id"])}
    assert seen == {"0": True, "1": False}
    assert "alert_resolved_unseen" in timeline_kinds(client, incident["id"])


def test_a_truncated_resolved_notification_leaves_absent_alerts_firing(client: Any) -> None:
    gpu0, gpu1 = alert("GpuHot", gpu="0"), alert("GpuHot", gpu="1")
    send(client, webhook(gpu0, gpu1))
    gpu0_resolved = alert("GpuHot", "resolved", gpu="0", ends=4)

    send(client, webhook(gpu0_resolved, status="resolved", truncated=1))

    incident = only_incident(client)
    assert incident["status"] == "firing"
    assert incident["truncated"] is True
    states = {e["labels"]["gpu"]: e["status"] for e in episodes(client, incident["id"])}
    assert states == {"0": "resolved", "1": "firing"}

    send(client, webhook(gpu0_resolved, status="resolved"))  # untruncated: the group is over

    incident = only_incident(client)
    assert incident["status"] == "resolved"
    ends = {e["labels"]["gpu"]: e["resolution"] for e in episodes(client, incident["id"])}
    assert ends == {"0": "resolved", "1": "group_resolved"}


def test_each_group_has_its_own_incident(client: Any) -> None:
    disk = alert("DiskFull", instance="db-1")
    send(client, webhook(disk, group_key="{}:db"))
    send(client, webhook(alert("DiskFull", instance="web-1"), group_key="{}:web"))
    send(client, webhook(disk, group_key="{}:db", receiver="team-b"))  # same key, other receiver

    found = incidents(client)

    assert len(found) == 3
    assert {(i["receiver"], i["status"]) for i in found} == {
        ("team-a", "firing"),
        ("team-b", "firing"),
    }
    assert sorted(i["counts"]["notifications"] for i in found) == [1, 1, 1]


def test_the_receiver_comes_from_the_body_then_the_path_then_a_default(client: Any) -> None:
    named = webhook(alert("DiskFull"), receiver="from-body")
    unnamed = webhook(alert("DiskFull"))
    del unnamed["receiver"]

    answers = [
        send(client, named, "from-path"),
        send(client, unnamed, "from-path"),
        send(client, unnamed),
    ]

    assert [a["receiver"] for a in answers] == ["from-body", "from-path", "default"]
    by_id = {i["id"]: i["receiver"] for i in incidents(client)}
    assert [by_id[a["incidents"][0]] for a in answers] == ["from-body", "from-path", "default"]


def test_a_new_firing_after_the_resolve_opens_a_new_incident(client: Any) -> None:
    first = send(client, fire(0))["incidents"]
    send(client, resolve(0, ends=2))

    later = send(client, fire(60))

    assert later["new"] == 1
    assert later["incidents"] != first
    newest, oldest = incidents(client)
    assert (newest["status"], newest["opened_at"]) == ("firing", ts(60).replace("Z", "+00:00"))
    assert (oldest["status"], oldest["id"]) == ("resolved", first[0])
    assert newest["flapping"] is False


def test_a_new_episode_supersedes_the_older_one_still_firing(client: Any) -> None:
    send(client, fire(0))

    answer = send(client, fire(10))

    assert answer["new"] == 1
    incident = only_incident(client)
    assert incident["status"] == "firing"
    assert incident["counts"]["episodes"] == 2
    old, new = sorted(episodes(client, incident["id"]), key=lambda e: e["starts_at"])
    assert (old["status"], old["resolution"]) == ("resolved", "superseded")
    assert old["ends_at"] == ts(10).replace("Z", "+00:00")
    assert new["status"] == "firing"
    assert "alert_superseded" in timeline_kinds(client, incident["id"])


def flap(client: Any, starts: float, resolve_after: float = 1) -> dict[str, Any]:
    """One firing, then its resolve: returns the answer to the firing."""
    answer = send(client, fire(starts))
    send(client, resolve(starts, ends=starts + resolve_after))
    return answer


def test_a_third_start_within_the_window_reopens_the_latest_incident_as_flapping(
    client: Any,
) -> None:
    first = flap(client, 0)["incidents"]
    second = flap(client, 5)["incidents"]

    third = send(client, fire(10))

    assert first != second
    assert third["incidents"] == second
    flapping = detail(client, second[0])
    assert flapping["status"] == "firing"
    assert (flapping["flapping"], flapping["flap_count"]) == (True, 3)
    assert flapping["counts"]["episodes"] == 2
    kinds = [e["kind"] for e in flapping["timeline"]]
    assert kinds[0] == "opened"
    assert kinds.index("resolved") < kinds.index("reopened") < kinds.index("flapping")
    untouched = detail(client, first[0])
    assert (untouched["status"], untouched["flapping"]) == ("resolved", False)
    assert len(incidents(client)) == 2

    send(client, resolve(10, ends=12))
    calm = send(client, fire(45))  # 33 min after the resolve, no other start in 30 min

    assert calm["incidents"] not in (first, second)
    newest = detail(client, calm["incidents"][0])
    assert (newest["status"], newest["flapping"]) == ("firing", False)
    assert len(incidents(client)) == 3


@pytest.fixture
def short_window_client(make_settings: Any, clock: Any) -> Iterator[Any]:
    """Flapping within 5 minutes, with the default 15 minute hold-down."""
    container = bootstrap(make_settings({"flapping.window_minutes": 5}), clock=clock)
    yield create_app(container=container).test_client()
    container.engine.dispose()


def test_a_new_episode_within_the_hold_down_reopens_the_flapping_incident(
    short_window_client: Any,
) -> None:
    client = short_window_client
    flap(client, 0)
    flapping = flap(client, 2)["incidents"]
    assert flap(client, 4)["incidents"] == flapping  # third start in 5 minutes: flapping

    held = send(client, fire(12))  # outside the window, 7 minutes after the resolve

    assert held["incidents"] == flapping
    assert detail(client, flapping[0])["status"] == "firing"
    send(client, resolve(12, ends=13))

    after_hold_down = send(client, fire(40))  # 27 minutes after the resolve

    assert after_hold_down["incidents"] != flapping
    assert detail(client, after_hold_down["incidents"][0])["flapping"] is False
    assert len(incidents(client)) == 3


# -- storage outages --------------------------------------------------------------------------


def test_a_webhook_gets_503_when_postgres_is_unreachable(clock: Any) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/receiver"
    container = bootstrap(receiver_settings(url), clock=clock)
    try:
        client = create_app(container=container).test_client()

        response = post_webhook(client, VALID, "team-a")

        assert response.status_code == 503
        assert response.get_json()["error"] == "storage_unavailable"
        assert int(response.headers["Retry-After"]) > 0
        assert metric(client, WEBHOOKS, result="unavailable", receiver="team-a") == 1
        assert client.get("/readyz").status_code == 503
    finally:
        container.engine.dispose()


def test_a_webhook_is_stored_after_postgres_dropped_the_pooled_connections(
    pg_url: str, clock: Any
) -> None:
    """A restart or failover drops every pooled connection; the next webhook must not see a
    503 for it: its first statement fails, the pool lets go, the intake retries afresh."""
    container = bootstrap(receiver_settings(pg_url), clock=clock)
    client = create_app(container=container).test_client()
    try:
        first = post_webhook(client, VALID, "team-a")
        with psycopg.connect(pg_url, autocommit=True) as admin:  # not from the pool
            dropped = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()[0]
        second = post_webhook(client, json.dumps(fire(3, pod="other")), "team-a")
        listed = client.get("/api/v1/incidents", headers=AUTH)
    finally:
        container.engine.dispose()

    assert first.status_code == 200 and dropped >= 1
    assert second.status_code == 200, second.get_json()
    assert second.get_json()["new"] == 1
    assert listed.status_code == 200 and len(listed.get_json()["incidents"]) == 2


def short_busy_timeout(url: str) -> Engine:
    """An engine that gives up on a locked SQLite database after 0.2 s instead of 5 s."""
    return make_engine(url, connect_args={"timeout": 0.2})


def test_intake_answers_503_while_sqlite_is_locked_and_resumes_once_released(
    sqlite_url: str, clock: Any
) -> None:
    engine = short_busy_timeout(sqlite_url)
    container = bootstrap(receiver_settings(sqlite_url), clock=clock, engine=engine)
    migrate.upgrade(container.engine)
    client = create_app(container=container).test_client()
    blocker = sqlite3.connect(make_url(sqlite_url).database, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")

        locked = post_webhook(client, VALID, "team-a")
        read_while_locked = client.get("/api/v1/incidents")

        blocker.execute("ROLLBACK")
        resumed = post_webhook(client, VALID, "team-a")
    finally:
        blocker.close()
        container.engine.dispose()

    assert locked.status_code == 503
    assert locked.get_json()["error"] == "storage_unavailable"
    assert read_while_locked.status_code == 200  # readers are not blocked by a writer (WAL)
    assert resumed.status_code == 200
    assert resumed.get_json()["new"] == 1


def test_a_callers_sqlite_busy_timeout_is_honoured(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url, connect_args={"timeout": 0.2})
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 200
    finally:
        engine.dispose()


# -- atomicity --------------------------------------------------------------------------------

TRIGGERS = {
    "sqlite": (
        [
            "CREATE TRIGGER fail_events BEFORE INSERT ON incident_events "
            "BEGIN SELECT RAISE(ABORT, 'boom'); END"
        ],
        ["DROP TRIGGER fail_events"],
    ),
    "postgresql": (
        [
            "CREATE FUNCTION fail_events() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'boom'; END $$",
            "CREATE TRIGGER fail_events BEFORE INSERT ON incident_events "
            "FOR EACH ROW EXECUTE FUNCTION fail_events()",
        ],
        ["DROP TRIGGER fail_events ON incident_events", "DROP FUNCTION fail_events()"],
    ),
}


def run_sql(container: Container, statements: list[str]) -> None:
    with container.engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))


def test_a_failure_late_in_the_transaction_leaves_nothing_half_written(
    client: Any, container: Container
) -> None:
    install, remove = TRIGGERS[container.engine.dialect.name]
    run_sql(container, install)

    failed = post_webhook(client, VALID, "team-a")

    assert failed.status_code == 503
    assert failed.get_json()["error"] == "storage_unavailable"
    assert_nothing_stored(client, container.engine)

    run_sql(container, remove)
    stored = post_webhook(client, VALID, "team-a")

    assert stored.status_code == 200
    [incident] = incidents(client)
    assert stored.get_json()["incidents"] == [incident["id"]]
    assert detail(client, incident["id"])["timeline"][0]["kind"] == "opened"
    assert row_count(container.engine, "webhook_receipts") == 1
