"""The outbox across process deaths: real ``receiver worker`` processes, killed mid-send.

A worker commits the claim (``sending``) before it calls the vendor, so a SIGKILL mid-send leaves
the delivery ``sending``; a later worker reclaims it after the claim timeout (60 s: the second
worker here runs in process on a clock 61 s ahead) and sends with the same idempotency key, which
PagerDuty merges by dedup key and Slack finds in the channel history by message metadata.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from receiver.app import create_app
from receiver.bootstrap import bootstrap
from receiver.settings import Settings, load_settings
from receiver.store.db import make_engine
from receiver.store.tables import Delivery, DeliveryAttempt, NotificationThread
from receiver.worker import run_worker
from tests.standins.pagerduty import PagerDutyStandIn
from tests.standins.slack import SlackStandIn
from tests.support.payloads import alert, webhook
from tests.support.servers import Process, receiver_env, started

pytestmark = pytest.mark.slow

ROUTING_KEY = "crash0routing0key000000000000000"
SLACK_TOKEN = "xoxb-crash-test"
CHANNEL_ID = "C0TRITON1"
WORKER = [sys.executable, "-m", "receiver.cli", "worker", "--poll", "0.1"]
DEADLINE = 30.0
PAST_CLAIM_TIMEOUT = timedelta(seconds=61)
HANG = 120.0  # longer than any test: hung requests wait for release()


@pytest.fixture
def pagerduty() -> Iterator[PagerDutyStandIn]:
    with PagerDutyStandIn() as standin:
        yield standin
    assert standin.errors == [], "the PagerDuty stand-in failed while handling a request"


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    channels = {"#triton-alerts": CHANNEL_ID}
    with SlackStandIn(token=SLACK_TOKEN, channels=channels, rate_limit=False) as standin:
        yield standin
    assert standin.errors == [], "the Slack stand-in failed while handling a request"


def write_config(
    tmp_path: Path,
    database_url: str,
    pagerduty: PagerDutyStandIn,
    slack: SlackStandIn,
    dedup_key: str = "group",
    channel: str = CHANNEL_ID,
) -> Path:
    """critical -> pd and slack, sent at once (no coalescing, no pacing), no webhook auth."""
    config = {
        "database_url": database_url,
        "auth": {"allow_unauthenticated": True},
        "receivers": {
            "pd": {
                "type": "pagerduty",
                "routing_key": ROUTING_KEY,
                "base_url": pagerduty.base_url,
                "ca_bundle": pagerduty.ca_file,
                "dedup_key": dedup_key,
                "timeout_seconds": 60,
            },
            "slack": {
                "type": "slack",
                "token": SLACK_TOKEN,
                "channel": channel,
                "base_url": slack.base_url,
                "timeout_seconds": 60,
            },
        },
        "routes": [{"matchers": ['severity="critical"'], "receivers": ["pd", "slack"]}],
        "delivery": {"coalesce_seconds": 0, "slack_min_interval_seconds": 0},
    }
    path = tmp_path / "receiver.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def settings_of(config: Path) -> Settings:
    return load_settings(config, environ={})


def store_critical_incidents(settings: Settings, count: int) -> None:
    """POST ``count`` webhooks, one group (so one incident) each, through the real intake."""
    container = bootstrap(settings)
    try:
        client = create_app(container=container).test_client()
        for n in range(count):
            firing = alert(f"TritonDown{n}", severity="critical", model=f"m{n}")
            body = {**webhook(firing), "commonLabels": firing["labels"]}
            answer = client.post("/api/v1/alertmanager", json=body)
            assert answer.status_code == 200, answer.get_data(as_text=True)
            assert answer.get_json()["status"] == "stored"
    finally:
        container.close()


def worker(config: Path):  # type: ignore[no-untyped-def]
    """A real ``receiver worker`` process (its own process group, stopped on exit)."""
    return started(WORKER, receiver_env(tokens=(), config=config))


def wait_for(what: str, condition: Callable[[], bool], *processes: Process) -> None:
    """Poll ``condition`` until it holds; fail at the deadline or if a process exits."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        for process in processes:
            if process.popen.poll() is not None:
                pytest.fail(
                    f"worker exited with {process.popen.returncode} while waiting for {what}\n"
                    f"--- stderr ---\n{process.stderr()}",
                    pytrace=False,
                )
        if time.monotonic() > deadline:
            details = "".join(f"\n--- stderr ---\n{p.stderr()}" for p in processes)
            pytest.fail(f"no {what} within {DEADLINE:g} s{details}", pytrace=False)
        time.sleep(0.05)


def kill(process: Process) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    assert process.popen.wait(timeout=10) == -signal.SIGKILL


def reclaim_after_claim_timeout(settings: Settings) -> None:
    """One worker pass (in process) on a clock past the dead worker's claim timeout."""
    container = bootstrap(settings, clock=lambda: datetime.now(UTC) + PAST_CLAIM_TIMEOUT)
    stop = threading.Event()
    stop.set()  # exactly one pass
    try:
        run_worker(container, stop, poll_seconds=0)
    finally:
        container.close()


def read_outbox(url: str) -> tuple[list[dict[str, Any]], dict[int, list[str]], dict[Any, Any]]:
    """Deliveries (by id), attempt outcomes per delivery id, thread externals by receiver."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(Delivery.__table__).order_by(Delivery.id))
            deliveries = [dict(r._mapping) for r in rows]
            attempts: dict[int, list[str]] = {d["id"]: [] for d in deliveries}
            for delivery_id, outcome in conn.execute(
                select(DeliveryAttempt.delivery_id, DeliveryAttempt.outcome)
            ):
                attempts[delivery_id].append(outcome)
            threads = conn.execute(select(NotificationThread.receiver, NotificationThread.external))
            return deliveries, attempts, {name: external for name, external in threads}
    finally:
        engine.dispose()


def states(url: str) -> dict[str, str]:
    return {d["receiver"]: d["state"] for d in read_outbox(url)[0]}


def assert_every_delivery_sent_once(url: str, expected: int) -> list[dict[str, Any]]:
    deliveries, attempts, _ = read_outbox(url)
    assert len(deliveries) == expected
    assert {d["idempotency_key"]: d["state"] for d in deliveries} == {
        d["idempotency_key"]: "sent" for d in deliveries
    }
    assert {d["idempotency_key"]: attempts[d["id"]] for d in deliveries} == {
        d["idempotency_key"]: ["ok"] for d in deliveries
    }
    return deliveries


def test_a_worker_killed_mid_page_leaves_it_sending_and_the_next_worker_pages_only_once(
    tmp_path: Path, sqlite_migrated: str, pagerduty: PagerDutyStandIn, slack: SlackStandIn
) -> None:
    config = write_config(tmp_path, sqlite_migrated, pagerduty, slack)
    settings = settings_of(config)
    pagerduty.hang(HANG)
    store_critical_incidents(settings, 1)

    with worker(config) as process:
        wait_for("trigger at the PagerDuty stand-in", lambda: len(pagerduty.requests) == 1, process)
        kill(process)

    assert states(sqlite_migrated)["pd"] == "sending"
    assert states(sqlite_migrated)["slack"] in ("pending", "sending")  # claimed with it, or not yet
    pagerduty.release()  # the dead worker's trigger arrives after all
    wait_for("late trigger served", lambda: pagerduty.requests[0]["status"] == 202)

    reclaim_after_claim_timeout(settings)

    assert pagerduty.pages == 1
    events = pagerduty.events
    assert [e["event_action"] for e in events] == ["trigger", "trigger"]
    assert len({e["dedup_key"] for e in events}) == 1, "the retry must carry the same dedup key"
    assert pagerduty.alerts()[0]["events"] == 2  # merged into the open alert, nobody paged twice
    assert len(slack.messages(CHANNEL_ID)) == 1
    assert_every_delivery_sent_once(sqlite_migrated, expected=2)


@pytest.mark.parametrize("channel", [CHANNEL_ID, "#triton-alerts"])
def test_a_worker_killed_after_slack_took_the_post_is_not_followed_by_a_second_post(
    tmp_path: Path,
    sqlite_migrated: str,
    pagerduty: PagerDutyStandIn,
    slack: SlackStandIn,
    channel: str,
) -> None:
    config = write_config(tmp_path, sqlite_migrated, pagerduty, slack, channel=channel)
    settings = settings_of(config)
    slack.hang(HANG, methods=["chat.postMessage"])
    store_critical_incidents(settings, 1)

    def posted() -> bool:
        return "chat.postMessage" in slack.methods()

    with worker(config) as process:
        wait_for("chat.postMessage at the Slack stand-in", posted, process)
        kill(process)

    assert states(sqlite_migrated) == {"pd": "sent", "slack": "sending"}
    slack.release()  # Slack processes the post the dead worker never heard back about
    wait_for("late post stored", lambda: len(slack.messages(CHANNEL_ID)) == 1)

    reclaim_after_claim_timeout(settings)

    [message] = slack.messages(CHANNEL_ID)
    methods = ["chat.postMessage", "conversations.history", "chat.update"]
    if channel != CHANNEL_ID:  # the name resolved once by each worker process
        methods = ["conversations.list", *methods[:1], "conversations.list", *methods[1:]]
    assert slack.methods() == methods
    deliveries = assert_every_delivery_sent_once(sqlite_migrated, expected=2)
    [slack_delivery] = [d for d in deliveries if d["receiver"] == "slack"]
    assert message["metadata"]["event_type"] == "receiver_incident"
    assert message["metadata"]["event_payload"]["key"] == slack_delivery["idempotency_key"]
    assert len(message["updates"]) == 1  # the found message was brought up to date in place
    assert read_outbox(sqlite_migrated)[2]["slack"] == {"channel": CHANNEL_ID, "ts": message["ts"]}
    assert pagerduty.pages == 1


INCIDENTS = 15


@pytest.mark.postgres
def test_two_workers_on_one_postgres_send_every_delivery_exactly_once(
    tmp_path: Path, pg_url: str, pagerduty: PagerDutyStandIn, slack: SlackStandIn
) -> None:
    config = write_config(tmp_path, pg_url, pagerduty, slack, dedup_key="incident")
    store_critical_incidents(settings_of(config), INCIDENTS)
    assert len(read_outbox(pg_url)[0]) == 2 * INCIDENTS

    def all_sent() -> bool:
        return all(d["state"] == "sent" for d in read_outbox(pg_url)[0])

    with worker(config) as first, worker(config) as second:
        wait_for("every delivery sent", all_sent, first, second)

    deliveries = assert_every_delivery_sent_once(pg_url, expected=2 * INCIDENTS)
    events = pagerduty.events
    assert [e["event_action"] for e in events] == ["trigger"] * INCIDENTS
    assert len({e["dedup_key"] for e in events}) == INCIDENTS
    assert pagerduty.pages == INCIDENTS
    messages = slack.messages(CHANNEL_ID)
    posted_keys = sorted(m["metadata"]["event_payload"]["key"] for m in messages)
    slack_keys = sorted(d["idempotency_key"] for d in deliveries if d["receiver"] == "slack")
    assert posted_keys == slack_keys  # one message per Slack delivery, none twice
    assert [c["method"] for c in slack.calls] == ["chat.postMessage"] * INCIDENTS
