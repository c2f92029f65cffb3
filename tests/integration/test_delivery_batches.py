"""The delivery worker works by batches: one claim, one read, the sends, one settle.

On SQLite and Postgres: a batch of many deliveries costs the database the same statements as a
batch of one, and a batch that has used up its send budget puts the rest back in the queue,
unsent, for the next batch.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event

from receiver.notify.outbox import SEND_BUDGET
from tests.integration.delivery_env import EnvFactory, critical, group_body


@pytest.fixture
def make_env(make_settings, clock):
    with EnvFactory(make_settings, clock) as factory:
        yield factory


@contextmanager
def counting(engine):
    """Count the statements (an executemany counts once) sent through ``engine``."""
    seen: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def open_incidents(env, count: int, start: int = 0) -> None:
    """``count`` new groups with one critical alert each: a PagerDuty and a Slack delivery."""
    for n in range(start, start + count):
        env.post(group_body(critical(pod=f"pod-{n}"), key=f"g{n}"))


def test_a_batch_of_many_deliveries_costs_the_statements_of_one(make_env):
    env = make_env()
    open_incidents(env, 1)
    with counting(env.container.engine) as one:
        assert env.worker.run_once() == 2
    open_incidents(env, 8, start=1)
    with counting(env.container.engine) as many:
        assert env.worker.run_once() == 16
    assert len(env.pd.events) == 9
    assert len(env.outbox("sent")) == 18
    assert len(many) == len(one), "\n".join(many)


def test_a_batch_past_its_send_budget_puts_the_rest_back_unsent(make_env):
    env = make_env()
    open_incidents(env, 3)
    ticks = iter([0.0, 0.0])  # the claim, then the first send; every later check is too late
    env.worker.monotonic = lambda: next(ticks, SEND_BUDGET.total_seconds() + 1)

    assert env.worker.run_once() == 6
    assert len(env.pd.events) + len(env.slack.calls) == 1
    pending = [d for d in env.deliveries() if d.state == "pending"]
    assert len(pending) == 5
    assert all(d.attempts == 0 and d.due_at <= env.clock.now for d in pending)
    assert all(d.last_error == "batch out of time" for d in pending)

    env.worker.monotonic = lambda: 0.0
    env.advance(0.001)
    assert env.worker.run_once() == 5
    assert len(env.pd.events) == 3
    assert len(env.outbox("sent")) == 6
    assert all(d.attempts == 1 for d in env.deliveries())


def test_a_settle_that_fails_leaves_the_batch_to_be_sent_again_under_the_same_keys(
    make_env, monkeypatch
):
    env = make_env()
    open_incidents(env, 2)
    pd_before = len(env.pd.events)

    def broken(batch):
        raise RuntimeError("database gone mid-batch")

    monkeypatch.setattr(env.worker, "_settle", broken)
    with pytest.raises(RuntimeError):
        env.worker.run_once()
    monkeypatch.undo()
    assert len(env.pd.events) == pd_before + 2
    assert {d.state for d in env.deliveries()} == {"sending"}
    assert env.worker.run_once() == 0  # still claimed: not yet abandoned

    env.advance((timedelta(seconds=60) + timedelta(seconds=1)).total_seconds())
    assert env.worker.run_once() == 4
    assert {d.state for d in env.deliveries()} == {"sent"}
    assert env.pd.pages == 2  # the repeated triggers merged by dedup key
    assert len(env.slack_messages()) == 2  # the reclaimed posts were found, not posted again
