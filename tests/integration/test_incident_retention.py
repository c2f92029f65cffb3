"""Retention of whole incidents: resolved ones past ``retention.incident_days`` go with every row
only they use; firing, recent and still-delivering ones stay, with what they share.

The timeline: at T0 group ``x`` opens incident 1 (paged and posted, then resolved); an hour later
a webhook of ``x`` repeats 1's resolve and fires a new alert, so its receipt is shared by 1 and
the new incident 2, which keeps firing. Group ``y`` has incident 3, notified twice with the same
bytes and resolved at T0. Forty days later group ``z`` has incident 4, resolved that day. With
30 days of retention 1 and 3 go.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from typing import Any

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from receiver.app import create_app
from receiver.bootstrap import bootstrap
from receiver.settings import DatabaseSettings, load_settings
from receiver.store.retention import TABLES
from receiver.store.tables import (
    AlertEpisode,
    AlertGroup,
    Delivery,
    DeliveryAttempt,
    Incident,
    IncidentEvent,
    IncidentLabel,
    IncidentReceipt,
    NotificationThread,
    PayloadBody,
    WebhookReceipt,
)
from receiver.worker import prune_incidents, run_worker
from tests.support.api import TOKEN, post_webhook
from tests.support.envs import DeliveryEnv
from tests.support.payloads import alert, critical, group_body, webhook
from tests.support.ui_session import PASSWORD, login

DAY = 24 * 60  # minutes
RETENTION = {"retention.incident_days": 30}
UI = {
    "ui.users": {"alice": generate_password_hash(PASSWORD)},
    "ui.secret_key": "s" * 32,
    "ui.cookie_secure": False,
}
# each table's key, and for the rows of one incident: the column naming it
KEYS: dict[Any, tuple[str, ...]] = {
    DeliveryAttempt: ("id",),
    Delivery: ("id",),
    NotificationThread: ("incident_id", "receiver"),
    IncidentLabel: ("incident_id", "name", "value"),
    IncidentEvent: ("id",),
    AlertEpisode: ("id",),
    IncidentReceipt: ("incident_id", "receipt_id"),
    WebhookReceipt: ("id",),
    Incident: ("id",),
    PayloadBody: ("sha256",),
    AlertGroup: ("id",),
}


def rows(engine: Engine) -> dict[str, set[tuple[Any, ...]]]:
    """The key of every row of every table retention deletes from."""
    with Session(engine) as session:
        return {
            model.__tablename__: {
                tuple(r) for r in session.execute(select(*(getattr(model, c) for c in key)))
            }
            for model, key in KEYS.items()
        }


def rows_of(engine: Engine, incident_ids: set[int]) -> dict[str, set[tuple[Any, ...]]]:
    """The keys of the rows hanging off these incidents (by their incident_id)."""
    out: dict[str, set[tuple[Any, ...]]] = {}
    with Session(engine) as session:
        for model in (Delivery, NotificationThread, IncidentLabel, IncidentEvent, AlertEpisode):
            columns = [getattr(model, c) for c in KEYS[model]]
            found = session.execute(select(*columns).where(model.incident_id.in_(incident_ids)))
            out[model.__tablename__] = {tuple(r) for r in found}
        deliveries = [d for (d,) in out["deliveries"]]
        attempts = select(DeliveryAttempt.id).where(DeliveryAttempt.delivery_id.in_(deliveries))
        out["delivery_attempts"] = {tuple(r) for r in session.execute(attempts)}
        links = select(IncidentReceipt.incident_id, IncidentReceipt.receipt_id)
        links = links.where(IncidentReceipt.incident_id.in_(incident_ids))
        out["incident_receipts"] = {tuple(r) for r in session.execute(links)}
    return out


def bodies_of(engine: Engine, receipt_ids: set[int]) -> set[tuple[str]]:
    with Session(engine) as session:
        query = select(WebhookReceipt.body_sha256).where(WebhookReceipt.id.in_(receipt_ids))
        return {(sha,) for sha in session.scalars(query)}


def group_of(engine: Engine, incident_id: int) -> int:
    with Session(engine) as session:
        return session.get_one(Incident, incident_id).group_id


def old_and_recent(env: DeliveryEnv) -> dict[str, Any]:
    """The timeline of the module docstring, every delivery sent; ids of what it made."""
    fired = env.post(group_body(critical(instance="a", starts=0), key="x"))
    env.drain()
    env.advance(600)
    resolve = critical(instance="a", status="resolved", starts=0, ends=5)
    resolved = env.post(group_body(resolve, key="x"))
    env.drain()
    env.advance(3600)
    second = critical("TritonQueueBacklog", instance="a", starts=65)
    shared = env.post(group_body(resolve, second, key="x"))
    env.drain()
    assert shared["incidents"] == [1, 2]
    repeated = group_body(critical(instance="b", starts=1), key="y")
    y = [env.post(repeated), env.post(repeated)]  # byte-identical: one body, two receipts
    y.append(env.post(group_body(critical(instance="b", status="resolved", starts=1), key="y")))
    env.drain()
    env.advance(40 * DAY * 60)
    z = critical(instance="c", starts=40 * DAY)
    env.post(group_body(z, key="z"))
    env.post(group_body(critical(instance="c", status="resolved", starts=40 * DAY), key="z"))
    env.drain()
    return {
        "only_pruned_receipts": {fired["receipt"], resolved["receipt"]} | {r["receipt"] for r in y},
        "shared_receipt": shared["receipt"],
    }


def test_old_resolved_incidents_go_with_every_row_only_they_use(make_env):
    env = make_env({**RETENTION, **UI})
    made = old_and_recent(env)
    engine = env.container.engine
    browser = env.app.test_client()  # with the UI on, the read API wants a UI login too
    assert login(browser).status_code == 302
    kept = {i: browser.get(f"/api/v1/incidents/{i}").get_json() for i in (2, 4)}
    assert all(k["deliveries"] and k["payloads"] and k["timeline"] for k in kept.values())
    before = rows(engine)
    assert len(before["incidents"]) == 4
    gone = rows_of(engine, {1, 3})
    assert all(gone[t] for t in gone), "every kind of row exists for the pruned incidents"
    receipts = made["only_pruned_receipts"]
    shared_body = bodies_of(engine, {made["shared_receipt"]})
    gone |= {
        "webhook_receipts": {(r,) for r in receipts},
        "incidents": {(1,), (3,)},
        "payload_bodies": bodies_of(engine, receipts) - shared_body,
        "alert_groups": {(group_of(engine, 3),)},  # x keeps incident 2, z incident 4
    }
    assert len(gone["payload_bodies"]) < len(receipts)  # repeats share a body

    report = prune_incidents(env.container)

    assert report is not None and report.passes == 1
    after = rows(engine)
    for table in TABLES:
        assert after[table] == before[table] - gone[table], table
        assert report.rows[table] == len(gone[table]), table
    assert (made["shared_receipt"],) in after["webhook_receipts"]
    # alerts, timeline, payloads (the shared one too), deliveries and attempts: all still there
    assert {i: browser.get(f"/api/v1/incidents/{i}").get_json() for i in (2, 4)} == kept
    for incident_id in (1, 3):
        answer = browser.get(f"/api/v1/incidents/{incident_id}")
        assert answer.status_code == 404
        assert answer.get_json()["error"] == "not_found"
    assert browser.get("/incidents/1").status_code == 404
    # incident 2's first request also touched 1: without it no fixture replays to the same 2
    assert browser.get("/api/v1/incidents/4/fixture").status_code == 200
    refused = browser.get("/api/v1/incidents/2/fixture")
    assert refused.status_code == 410
    assert refused.get_json() == {
        "error": "payloads_pruned",
        "message": "incident 2 cannot be exported: its requests also touched incident 1 of its "
        "group, deleted by retention (retention.incident_days). A partial fixture would not "
        "replay to the same incident.",
    }
    assert browser.get("/incidents/2").status_code == 200
    assert prune_incidents(env.container).incidents == 0


@pytest.mark.parametrize("state", ["pending", "sending"])
def test_an_incident_with_a_delivery_still_to_send_stays_until_it_is_settled(make_env, state):
    env = make_env(RETENTION)
    env.post(group_body(critical(starts=0), key="x"))
    env.post(group_body(critical(status="resolved", starts=0), key="x"))
    env.advance(31 * DAY * 60)
    engine = env.container.engine
    with Session(engine) as session, session.begin():
        session.execute(update(Delivery).where(Delivery.id == 1).values(state=state))
        left = session.scalars(select(Delivery.state).where(Delivery.id != 1)).all()
    assert left and set(left) == {"pending"}

    assert prune_incidents(env.container).incidents == 0
    assert rows(engine)["incidents"] == {(1,)}

    with Session(engine) as session, session.begin():
        session.execute(update(Delivery).values(state="dead"))
    assert prune_incidents(env.container).incidents == 1
    assert rows(engine)["incidents"] == set()


def resolved_incidents(env: DeliveryEnv, count: int) -> list[int]:
    """``count`` incidents of their own groups, opened a minute apart, each resolved."""
    ids = []
    for n in range(count):
        labels = {"instance": f"host-{n}", "starts": n}
        ids += env.post(group_body(critical(**labels), key=f"g{n}"))["incidents"]
        env.post(group_body(critical(status="resolved", **labels), key=f"g{n}"))
    env.drain()
    return ids


def test_each_pass_takes_at_most_a_batch_oldest_first_and_leaves_recent_ones(make_env):
    env = make_env({**RETENTION, "retention.batch": 2})
    old = resolved_incidents(env, 5)
    env.advance(31 * DAY * 60)
    recent = env.post(group_body(critical(instance="new", starts=31 * DAY), key="new"))
    env.post(group_body(critical(instance="new", status="resolved", starts=31 * DAY), key="new"))
    env.drain()
    engine = env.container.engine

    first = prune_incidents(env.container, max_passes=1)
    assert (first.incidents, first.passes) == (2, 1)
    assert rows(engine)["incidents"] == {(i,) for i in old[2:] + recent["incidents"]}

    rest = prune_incidents(env.container)
    assert (rest.incidents, rest.passes) == (3, 2)  # 2, then 1 (fewer than a batch: done)
    assert rows(engine)["incidents"] == {(i,) for i in recent["incidents"]}


def test_a_day_given_once_overrides_the_setting_and_none_is_off(make_env):
    env = make_env()
    resolved_incidents(env, 1)
    env.advance(10 * DAY * 60)
    assert prune_incidents(env.container) is None  # off by default
    assert prune_incidents(env.container, days=20).incidents == 0
    assert prune_incidents(env.container, days=5).incidents == 1


def test_the_worker_prunes_in_its_hourly_step_a_bounded_number_of_passes(make_env, caplog):
    env = make_env({**RETENTION, "retention.batch": 1, "retention.passes_per_run": 2})
    resolved_incidents(env, 3)
    env.advance(31 * DAY * 60)
    stop = threading.Event()
    stop.set()  # one pass of the worker, then return

    with caplog.at_level(logging.INFO, logger="receiver.worker"):
        run_worker(env.container, stop)

    assert rows(env.container.engine)["incidents"] == {(3,)}
    counter = env.container.metrics.registry.get_sample_value("receiver_incidents_pruned_total")
    assert counter == 2
    logged = [r.getMessage() for r in caplog.records if "incident(s)" in r.getMessage()]
    assert len(logged) == 1
    assert logged[0].startswith("pruned 2 incident(s) resolved more than 30 days ago in 2 pass")
    assert "incidents 2" in logged[0] and "alert_episodes 2" in logged[0]


def test_intakes_and_retention_at_once_on_postgres_never_deadlock_or_answer_5xx(pg_url):
    """Four threads post old alerts (fired and resolved 40 days ago: prunable at once) to 20
    groups while a fifth prunes, three incidents a pass: their locks meet on every group."""
    overrides = {
        "database_url": pg_url,
        "auth.bearer_tokens": [TOKEN],
        "retention.incident_days": 1,
        "retention.batch": 3,
    }
    container = bootstrap(load_settings(environ={}, overrides=overrides))
    app = create_app(container=container)
    errors: list[str] = []
    pruned: list[int] = []

    def post(seed: int) -> None:
        rng, client = random.Random(seed), app.test_client()
        for _ in range(75):
            group, starts = rng.randrange(20), -40 * DAY + rng.randrange(3)
            labels = {"starts": starts, "instance": f"h{group}"}
            for status in ("firing", "resolved"):
                body = webhook(alert("DiskFull", status, **labels), group_key=f"g{group}")
                answer = post_webhook(client, json.dumps(body))
                if answer.status_code != 200:
                    errors.append(answer.get_data(as_text=True))

    posters = [threading.Thread(target=post, args=(n,)) for n in range(4)]

    def prune() -> None:
        while any(p.is_alive() for p in posters):
            try:
                pruned.append(prune_incidents(container, max_passes=1).incidents)
            except Exception as exc:  # a deadlock, or whatever else the pass hit
                errors.append(repr(exc))

    pruner = threading.Thread(target=prune)
    try:
        for thread in [*posters, pruner]:
            thread.start()
    finally:
        for thread in [*posters, pruner]:
            thread.join(timeout=300)
        container.engine.dispose()
    assert errors == []
    assert sum(pruned) > 0


def test_a_pass_may_take_the_maintenance_timeout_not_the_usual_one(make_env):
    env = make_env(RETENTION)
    if env.container.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's statement timeout does not count lock waits; Postgres' does")
    resolved_incidents(env, 1)
    env.advance(31 * DAY * 60)
    # statements may run 0.5 s, locks be waited for 10 s; retention's statements 300 s
    tight = env.container.settings.model_copy(
        update={
            "database": DatabaseSettings(statement_timeout_seconds=0.5, lock_timeout_seconds=10)
        }
    )
    container = bootstrap(tight, clock=env.clock)
    holder = env.container.engine.connect()
    release = threading.Timer(1.5, holder.rollback)
    try:
        # another transaction keeps the timeline from writes for 1.5 s: the pass waits on it
        holder.exec_driver_sql("LOCK TABLE incident_events IN EXCLUSIVE MODE")
        release.start()
        report = prune_incidents(container)
    finally:
        release.join()
        container.close()
        holder.close()
    assert report is not None and report.incidents == 1
    assert rows(env.container.engine)["incidents"] == set()
