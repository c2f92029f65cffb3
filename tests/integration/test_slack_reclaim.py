"""A Slack post whose outcome the outbox never recorded: the worker died after Slack took it, or
the database went away before the send was settled, or the post timed out.

Such a delivery is in doubt until the channel's history says whether the post is there: found,
the message is updated in place; not found, it is posted once. A lookup that fails (network,
5xx, 429, a missing scope, the bot out of the channel) is retried, never given up while the
incident fires, and never followed by a blind second post. On SQLite and Postgres, with the
channel configured by ID or by name (``#triton-alerts`` or ``triton-alerts``).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from receiver.bootstrap import build_delivery_worker
from receiver.worker import run_worker
from tests.support.envs import CHANNEL_ID
from tests.support.payloads import alert, group_body

NAMES = ["#triton-alerts", "triton-alerts"]
SCOPES = ("channels:history", "channels:read")
PAST_CLAIM_TIMEOUT = 61.0
DEADLINE = 10.0  # seconds of real time for a late request to land


class DatabaseOutage:
    """This test's database stops answering and comes back: Postgres refuses connections and
    drops the open ones; SQLite stays locked by another writer (the engine gives up after
    0.2 s: ``SQLITE_ENGINE``)."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.sqlite = self.url.get_backend_name() == "sqlite"
        self._blocker: sqlite3.Connection | None = None

    def begin(self) -> None:
        if self.sqlite:
            self._blocker = sqlite3.connect(
                self.url.database, isolation_level=None, check_same_thread=False
            )
            self._blocker.execute("BEGIN IMMEDIATE")
            return
        name = self.url.database
        self._admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        self._admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        )

    def end(self) -> None:
        if self.sqlite:
            if self._blocker is not None:
                self._blocker.execute("ROLLBACK")
                self._blocker.close()
                self._blocker = None
            return
        self._admin(f'ALTER DATABASE "{self.url.database}" ALLOW_CONNECTIONS true')

    def _admin(self, sql: str) -> None:
        admin = self.url.set(drivername="postgresql", database="postgres")
        dsn = admin.render_as_string(hide_password=False)
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql)


SQLITE_ENGINE = {"connect_args": {"timeout": 0.2}}  # locked for 0.2 s is unavailable


@pytest.fixture
def outage(db_url: str) -> Iterator[DatabaseOutage]:
    stop = DatabaseOutage(db_url)
    yield stop
    stop.end()


def open_incident(env) -> tuple[int, dict]:
    """One firing warning (Slack only); its incident id and the alert."""
    firing = alert("TritonHighLatency")
    (incident_id,) = env.post(group_body(firing))["incidents"]
    return incident_id, firing


def resolve(env, firing: dict) -> None:
    env.post(group_body({**firing, "status": "resolved", "endsAt": firing["startsAt"]}))


def dies(env, monkeypatch, step: str) -> None:
    """A worker pass that dies (as a SIGKILL would) at ``step``: ``"_send"`` before the post,
    ``"_settle"`` after Slack took it but before the outbox recorded it; then a new worker
    process, past the claim timeout, with nothing remembered (no resolved channel)."""

    def killed(*_args: object) -> None:
        raise RuntimeError(f"worker killed at {step}")

    with monkeypatch.context() as patch:
        patch.setattr(env.worker, step, killed)
        with pytest.raises(RuntimeError):
            env.worker.run_once()
    assert [d.state for d in env.deliveries()] == ["sending"]
    env.worker = build_delivery_worker(env.container)
    env.advance(PAST_CLAIM_TIMEOUT)


def posts(env) -> list[dict]:
    """The chat.postMessage calls that are not thread replies."""
    return [
        c
        for c in env.slack.calls
        if c["method"] == "chat.postMessage" and "thread_ts" not in (c["json"] or {})
    ]


def drain_until_sent(env, step: float = 10.0, limit: float = 900.0) -> None:
    """Drain every ``step`` seconds of the receiver's clock until every delivery is sent;
    meanwhile none is ever dead and Slack is never posted to twice."""
    waited = 0.0
    while {d.state for d in env.deliveries()} != {"sent"}:
        assert waited < limit, env.outbox()
        assert env.outbox("dead") == []
        assert len(posts(env)) == 1
        env.advance(step)
        waited += step
        env.drain()


@pytest.mark.parametrize("channel", [CHANNEL_ID, *NAMES])
def test_a_post_left_by_a_dead_worker_is_found_and_updated_and_the_resolve_updates_it(
    make_env, monkeypatch, channel
):
    env = make_env(channel=channel)
    _, firing = open_incident(env)
    dies(env, monkeypatch, "_settle")
    assert len(env.slack.messages(CHANNEL_ID)) == 1

    env.drain()

    assert [d.state for d in env.deliveries()] == ["sent"]
    [message] = env.slack.messages(CHANNEL_ID)
    assert len(message["updates"]) == 1  # found by its metadata, brought up to date in place
    history = [c for c in env.slack.calls if c["method"] == "conversations.history"]
    assert [c["params"]["channel"] for c in history] == [CHANNEL_ID]
    resolve(env, firing)
    env.drain()
    assert env.slack_messages() == [
        {"text": "[RESOLVED] TritonHighLatency on host-1", "updates": 2, "replies": 1}
    ]
    assert len(posts(env)) == 1
    lists = env.slack.methods().count("conversations.list")
    assert lists == (0 if channel == CHANNEL_ID else 2)  # once per worker process


def test_a_post_the_dead_worker_never_sent_is_posted_once(make_env, monkeypatch):
    env = make_env(channel="#triton-alerts")
    open_incident(env)
    dies(env, monkeypatch, "_send")

    env.drain()

    assert env.slack.methods() == [
        "conversations.list",
        "conversations.history",
        "chat.postMessage",
    ]
    assert [d.state for d in env.deliveries()] == ["sent"]
    assert len(env.slack.messages(CHANNEL_ID)) == 1


def fail_lookups(env, failure: str, seconds: float) -> None:
    """Make the crash lookup fail for ``seconds`` of the stand-in's clock (scopes and
    membership come back when ``restore_lookups`` is called)."""
    history = ["conversations.history"]
    if failure == "network 500":
        env.slack.fail(None, status=500, seconds=seconds, methods=history)
    elif failure == "ratelimited":
        env.slack.fail("ratelimited", seconds=seconds, retry_after=30, methods=history)
    elif failure == "internal_error":
        env.slack.fail("internal_error", seconds=seconds, methods=history)
    elif failure == "not_in_channel":
        env.slack.workspace.set_member(CHANNEL_ID, False)
    else:  # a scope
        env.slack.scopes.discard(failure)


def restore_lookups(env, failure: str) -> None:
    env.slack.workspace.set_member(CHANNEL_ID, True)
    if failure in SCOPES:
        env.slack.scopes.add(failure)


@pytest.mark.parametrize(
    ("channel", "failure"),
    [
        (CHANNEL_ID, "network 500"),
        (CHANNEL_ID, "ratelimited"),
        ("#triton-alerts", "internal_error"),
        (CHANNEL_ID, "channels:history"),
        ("#triton-alerts", "channels:read"),
        (CHANNEL_ID, "not_in_channel"),
    ],
)
def test_a_reclaimed_post_whose_lookup_fails_is_retried_past_max_age_and_posted_never_twice(
    make_env, monkeypatch, channel, failure
):
    env = make_env({"delivery.max_age_minutes": 1}, channel=channel)
    open_incident(env)
    dies(env, monkeypatch, "_settle")
    env.worker.rand = lambda: 1.0
    fail_lookups(env, failure, seconds=180)

    env.drain()
    [delivery] = env.deliveries()
    assert delivery.state == "pending"
    assert delivery.last_error.startswith("in doubt: ")
    if failure in SCOPES:
        assert failure in delivery.last_error  # the scope to grant
    for _ in range(12):  # two minutes: past max_age (the incident still fires)
        env.advance(10)
        env.drain()
        assert [d.state for d in env.deliveries()] == ["pending"]
    assert len(posts(env)) == 1

    restore_lookups(env, failure)
    drain_until_sent(env)

    [message] = env.slack.messages(CHANNEL_ID)
    assert len(message["updates"]) == 1
    [delivery] = env.deliveries()
    assert delivery.sent_at - delivery.created_at > timedelta(minutes=2)


def test_a_reclaimed_post_of_a_resolved_incident_dies_of_age_and_the_resolve_goes_out(
    make_env, monkeypatch
):
    env = make_env({"delivery.max_age_minutes": 1})
    _, firing = open_incident(env)
    dies(env, monkeypatch, "_settle")
    env.slack.scopes.discard("channels:history")
    env.drain()
    assert [d.state for d in env.deliveries()] == ["pending"]  # past max_age, but firing
    resolve(env, firing)  # the resolve waits behind the trigger in doubt
    assert [d.state for d in env.deliveries()] == ["pending", "pending"]

    env.advance(60)
    env.drain()

    trigger, resolved = env.deliveries()
    assert (trigger.state, resolved.state) == ("dead", "sent")
    assert "channels:history" in trigger.last_error  # what to grant, logged as an error
    texts = [m["text"] for m in env.slack.messages(CHANNEL_ID)]
    assert texts == [  # the price of a lookup that never worked: the one the dead worker left
        "[FIRING] TritonHighLatency on host-1",
        "[RESOLVED] TritonHighLatency on host-1",
    ]


def test_a_post_that_timed_out_and_landed_late_is_updated_not_posted_again(make_env):
    env = make_env({"receivers.slack.timeout_seconds": 0.5})  # slack_sdk waits a whole second
    env.slack.hang(30, times=1)
    open_incident(env)
    env.drain()  # the post times out; Slack has not answered
    [delivery] = env.deliveries()
    assert delivery.state == "pending" and delivery.last_error.startswith("in doubt: network")
    env.slack.release()  # Slack takes the post after all
    deadline = time.monotonic() + DEADLINE
    while not env.slack.messages(CHANNEL_ID):
        assert time.monotonic() < deadline, "the late post never landed"
        time.sleep(0.01)

    env.advance(2)
    env.drain()

    assert env.slack.methods() == ["chat.postMessage", "conversations.history", "chat.update"]
    assert [d.state for d in env.deliveries()] == ["sent"]
    assert len(env.slack.messages(CHANNEL_ID)) == 1


def test_a_post_refused_with_a_500_is_looked_up_then_posted_once(make_env):
    env = make_env()
    env.slack.fail("internal_error", times=1, methods=["chat.postMessage"])
    open_incident(env)
    env.drain()
    env.advance(2)
    env.drain()
    assert env.slack.methods() == ["chat.postMessage", "conversations.history", "chat.postMessage"]
    assert len(env.slack.messages(CHANNEL_ID)) == 1


def test_a_rate_limited_post_is_not_looked_up_before_its_retry(make_env):
    env = make_env()
    env.slack.fail("ratelimited", times=1, retry_after=2, methods=["chat.postMessage"])
    open_incident(env)
    env.drain()
    env.advance(2)
    env.drain()
    assert env.slack.methods() == ["chat.postMessage", "chat.postMessage"]  # 429: not posted


@pytest.mark.parametrize("channel", [CHANNEL_ID, "#triton-alerts"])
def test_a_post_whose_settle_met_a_database_outage_is_found_after_the_reclaim(
    make_env, outage, channel
):
    env = make_env(channel=channel, engine_options=SQLITE_ENGINE if outage.sqlite else None)
    open_incident(env)
    env.slack.after("chat.postMessage", outage.begin)  # while the worker waits for Slack
    stop = threading.Event()
    stop.set()  # one pass
    run_worker(env.container, stop, poll_seconds=0)  # survives: the pass is skipped
    outage.end()
    assert [d.state for d in env.deliveries()] == ["sending"]
    [message] = env.slack.messages(CHANNEL_ID)
    assert message["updates"] == []

    env.advance(PAST_CLAIM_TIMEOUT)
    for _ in range(3):  # the first statement may meet a pooled connection the outage dropped
        run_worker(env.container, stop, poll_seconds=0)
        if [d.state for d in env.deliveries()] == ["sent"]:
            break

    assert [d.state for d in env.deliveries()] == ["sent"]
    [message] = env.slack.messages(CHANNEL_ID)
    assert len(message["updates"]) == 1
    assert len(posts(env)) == 1
    with env.container.engine.connect() as conn:
        thread = conn.execute(text("SELECT external FROM notification_threads")).scalar_one()
    assert CHANNEL_ID in str(thread) and message["ts"] in str(thread)
