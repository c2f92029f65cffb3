"""The delivery worker works by batches: one claim, one read, the sends, one settle.

On SQLite and Postgres: a batch of many deliveries costs the database the same statements as a
batch of one, and a batch that has used up its send budget puts the rest back in the queue,
unsent, for the next batch; the worker wakes when a delivery it put back falls due.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, select

from receiver.notify.outbox import SEND_BUDGET
from receiver.store.tables import Delivery
from receiver.worker import seconds_to_next_pass
from tests.support.payloads import critical, group_body
from tests.support.storage import statements


def open_incidents(env, count: int, start: int = 0) -> None:
    """``count`` new groups with one critical alert each: a PagerDuty and a Slack delivery."""
    for n in range(start, start + count):
        env.post(group_body(critical(pod=f"pod-{n}"), key=f"g{n}"))


def test_a_batch_reads_in_a_fixed_number_of_statements_and_settles_each_send_in_three(
    make_env,
):
    env = make_env()
    open_incidents(env, 1)
    with statements(env.container.engine) as one:
        assert env.worker.run_once() == 2
    open_incidents(env, 8, start=1)
    with statements(env.container.engine) as many:
        assert env.worker.run_once() == 16
    assert len(env.pd.events) == 9
    assert len(env.outbox("sent")) == 18

    def reads(sent):
        return [s for s in sent if s.lstrip().upper().startswith("SELECT")]

    def pacing(sent):
        return [s for s in sent if "channel_pacing" in s]

    def releases(sent):  # a receiver's first success looks for a backlog to release
        return [s for s in sent if s.startswith("UPDATE deliveries SET due_at")]

    assert len(reads(many)) == len(reads(one)), "\n".join(reads(many))
    assert (len(releases(one)), len(releases(many))) == (2, 0)
    writes = [len(s) - len(reads(s)) - len(pacing(s)) - len(releases(s)) for s in (one, many)]
    assert (writes[1] - writes[0]) / (16 - 2) == 3  # per send: delivery, attempt, thread
    assert len(pacing(many)) == 2 * 8  # per Slack post: take the channel's slot, then hold it


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


def test_a_worker_that_dies_mid_batch_sends_again_only_the_delivery_it_was_on(
    make_env, monkeypatch
):
    env = make_env()
    open_incidents(env, 2)
    settle, settled = env.worker._settle, []

    def dies_on_the_second(item):
        if settled:
            raise RuntimeError("worker gone mid-batch")
        settle(item)
        settled.append(item)

    monkeypatch.setattr(env.worker, "_settle", dies_on_the_second)
    with pytest.raises(RuntimeError):
        env.worker.run_once()
    monkeypatch.undo()
    assert len(env.pd.events) + len(env.slack.calls) == 2  # the settled send and the next
    assert sorted(d.state for d in env.deliveries()) == ["sending"] * 3 + ["sent"]

    env.advance(61)  # past the claim timeout: the claims look abandoned
    assert env.worker.run_once() == 3
    assert {d.state for d in env.deliveries()} == {"sent"}
    assert env.pd.pages == 2  # a repeated trigger merges by dedup key
    assert len(env.slack_messages()) == 2  # a reclaimed post is found, not posted again
    assert sum(d.attempts for d in env.deliveries()) == 4  # one send again, not the batch


def test_the_worker_wakes_when_a_post_held_by_pacing_falls_due(make_env):
    env = make_env({"delivery.slack_min_interval_seconds": 1})
    env.post_warnings("ab")
    env.drain()
    assert len(env.slack.calls) == 1
    assert env.worker.next_due == env.clock.now + timedelta(seconds=1)
    assert seconds_to_next_pass(env.container, env.worker, 5.0) == pytest.approx(1.0)
    assert seconds_to_next_pass(env.container, env.worker, 0.5) == 0.5  # never longer than the poll
    env.advance(0.75)
    assert seconds_to_next_pass(env.container, env.worker, 5.0) == pytest.approx(0.25)
    env.advance(0.25)
    assert env.drain() == 1
    assert len(env.slack.calls) == 2
    assert env.worker.next_due is None  # nothing put back: the poll interval again
    assert seconds_to_next_pass(env.container, env.worker, 5.0) == 5.0


def test_posts_held_back_by_pacing_are_put_back_together_in_one_transaction(make_env):
    env = make_env({"delivery.slack_min_interval_seconds": 1})
    env.post_warnings("abcde")
    commits: list[object] = []

    def commit(conn):
        commits.append(conn)

    event.listen(env.container.engine, "commit", commit)
    try:
        assert env.worker.run_once() == 5
    finally:
        event.remove(env.container.engine, "commit", commit)
    assert len(env.slack.calls) == 1
    # the claim; the channel's slot taken, then held from Slack's answer; the post; a turn
    # queued for each of the four held back (once per post: they are not claimed again before
    # it); the four put back together
    assert len(commits) == 9
    held = [d for d in env.deliveries() if d.state == "pending"]
    assert [(d.attempts, d.last_error) for d in held] == [(0, "paced")] * 4
    # each due at its turn: the slot a second later, then one a second after the other
    assert [d.due_at for d in held] == [env.clock.now + timedelta(seconds=n) for n in (1, 2, 3, 4)]


def test_a_post_held_back_by_pacing_keeps_its_place_before_later_incidents(make_env):
    env = make_env({"delivery.slack_min_interval_seconds": 1})
    opened = env.post_warnings("ab")
    env.drain()  # a is posted, b held back until a second later
    env.advance(0.5)
    opened += env.post_warnings("c")
    for _ in range(3):  # c was due before b (queued earlier than b's wait ends): b goes first
        env.advance(0.5)
        env.drain()
    assert env.posted_incidents() == opened  # in the order the incidents opened


def test_a_pass_with_nothing_due_does_not_forget_when_a_held_post_falls_due(make_env):
    env = make_env({"delivery.slack_min_interval_seconds": 1})
    env.post_warnings("ab")
    env.drain()  # a posted, b held until a second later
    due = env.clock.now + timedelta(seconds=1)
    env.advance(0.5)
    assert env.drain() == 0  # a poll in between: nothing due
    assert env.worker.next_due == due
    assert seconds_to_next_pass(env.container, env.worker, 0.5) == pytest.approx(0.5)
    env.advance(0.5)
    assert env.drain() == 1
    assert len(env.slack.calls) == 2


def test_posts_held_for_one_slot_microseconds_apart_go_out_oldest_first(make_env):
    env = make_env({"delivery.slack_min_interval_seconds": 1})
    opened = env.post_warnings("abc")
    env.drain()  # a posted; b and c held for the next slot, a second later
    slot = env.clock.now + timedelta(seconds=1)
    # as in production, where each is put back from its own clock reading: c (the newer)
    # happens to fall due a few microseconds before b
    with env.container.uow() as uow:
        b, c = uow.session.scalars(
            select(Delivery).where(Delivery.state == "pending").order_by(Delivery.id)
        )
        b.due_at, c.due_at = slot + timedelta(microseconds=7), slot
        uow.commit()
    env.advance(1)
    env.drain()
    assert env.posted_incidents() == opened[:2]  # b, not c, took the slot
