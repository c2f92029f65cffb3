"""Slack pacing across worker processes: the channel's posting slot lives in the database.

Two delivery workers, each with its own engine and container (as two ``receiver worker``
processes have), share one database and one Slack stand-in that refuses (429) a second post to
a channel within a second. Time never passes for real: the receiver's FakeClock and the
stand-in's clock move together.
"""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise

import pytest

from receiver.bootstrap import bootstrap, build_delivery_worker
from receiver.notify.pacing import SharedPacer
from tests.support.envs import CHANNEL_ID
from tests.support.payloads import alert, group_body


def second_worker(env):
    """Another worker process's delivery worker: its own container, engine and pacer."""
    container = bootstrap(env.settings, clock=env.clock)
    worker = build_delivery_worker(container)
    assert worker is not None
    return worker, container


def test_two_workers_together_post_to_a_channel_once_a_second(make_env):
    env = make_env({"delivery.slack_min_interval_seconds": 1}, slack_rate_limit=True)
    other, container = second_worker(env)
    try:
        env.post_warnings("abcdef")
        for _ in range(8):  # both workers pass every half second, as two processes would
            env.worker.drain()
            other.drain()
            env.advance(0.5)
    finally:
        other.close()
        container.engine.dispose()
    statuses = [c["status"] for c in env.slack.calls]
    assert statuses == [200] * 4  # four slots in four seconds, nothing refused
    gaps = [b["at"] - a["at"] for a, b in pairwise(env.slack.calls)]
    assert gaps == [1.0, 1.0, 1.0]
    assert sorted(d.state for d in env.deliveries()) == ["pending"] * 2 + ["sent"] * 4
    assert all(d.attempts == (1 if d.state == "sent" else 0) for d in env.deliveries())


def test_a_429_holds_the_channel_for_every_worker_until_its_retry_after(make_env):
    env = make_env({"delivery.slack_min_interval_seconds": 1})
    other, container = second_worker(env)
    try:
        env.slack.fail("ratelimited", times=1, retry_after=20)
        env.post_warnings("a")
        env.worker.drain()  # refused: the channel is held for 20 s
        env.post_warnings("b")
        for _ in range(19):
            env.advance(1)
            env.worker.drain()
            other.drain()
        assert [c["status"] for c in env.slack.calls] == [429]
        env.advance(1)
        env.worker.drain()
        other.drain()
        env.advance(1)
        env.worker.drain()
        other.drain()
    finally:
        other.close()
        container.engine.dispose()
    assert [c["status"] for c in env.slack.calls] == [429, 200, 200]
    assert len(env.slack.messages(CHANNEL_ID)) == 2


def test_a_clock_that_went_back_an_hour_does_not_hold_a_channel_for_an_hour(make_env):
    env = make_env({"delivery.slack_min_interval_seconds": 1})
    env.post_warnings("a")
    env.worker.drain()  # posted: the channel's slot is held until a second later
    env.clock.advance(hours=-1)  # the receiver's clock steps back (the stand-in's does not)
    env.mono.advance(1)
    env.post_warnings("b")
    env.worker.drain()
    assert [c["status"] for c in env.slack.calls] == [200, 200]
    assert {d.state for d in env.deliveries()} == {"sent"}


def test_a_slot_that_frees_while_a_batch_runs_is_decided_as_of_the_claim(make_env):
    """A newer post of a batch claimed before the slot freed does not take it from the older
    post held for it, which the next batch claims."""
    env = make_env({"delivery.slack_min_interval_seconds": 1})
    pacer = SharedPacer(env.container.uow, env.clock)
    claimed_at = env.clock.now
    assert pacer.reserve("C0PACED", claimed_at) == 0.0  # taken until a second later
    env.advance(1.2)  # the batch ran on past the slot's end
    other = SharedPacer(env.container.uow, env.clock)  # another worker, nothing cached
    assert other.reserve("C0PACED", claimed_at + timedelta(seconds=0.9)) == pytest.approx(0.1)
    assert other.reserve("C0PACED") == 0.0  # as of now it is free


class Slow:
    """A notifier whose send takes ``seconds`` of the test's clocks."""

    def __init__(self, inner, env, seconds: float):
        self.inner, self.env, self.seconds = inner, env, seconds
        self.kind = inner.kind

    def send(self, job):
        self.env.advance(self.seconds)
        return self.inner.send(job)

    def render(self, job):
        return self.inner.render(job)

    def close(self):
        self.inner.close()


def test_a_newer_post_in_a_batch_that_ran_past_the_slot_waits_behind_the_held_one(make_env):
    env = make_env({"delivery.slack_min_interval_seconds": 1})
    opened = env.post_warnings("ab")
    env.worker.drain()  # a posted; b held for the slot a second later
    env.advance(0.9)
    doc = group_body(alert("TritonHighErrorRate", severity="critical", model="c"), key="c")
    opened += env.post(doc)["incidents"]  # PagerDuty, then Slack: both claimed before the slot
    env.worker.notifiers["pd"] = Slow(env.worker.notifiers["pd"], env, 0.2)  # past the slot
    for _ in range(3):
        env.worker.drain()
        env.advance(1)
    assert env.posted_incidents() == opened  # b took the slot it was held for, c the next


def test_held_posts_queue_for_their_turns_and_are_not_claimed_before(make_env):
    env = make_env({"delivery.slack_min_interval_seconds": 1})
    opened = env.post_warnings("abcde")
    env.worker.drain()  # a posted; b to e held, each due at its own turn
    held = [d for d in env.deliveries() if d.state == "pending"]
    assert len(held) == 4
    assert [(b.due_at - a.due_at).total_seconds() for a, b in pairwise(held)] == [1.0] * 3
    env.advance(0.5)
    opened += env.post_warnings("fg")  # newer posts join the end of the queue, not its head
    env.worker.drain()
    held = [d for d in env.deliveries() if d.state == "pending"]
    assert [(b.due_at - a.due_at).total_seconds() for a, b in pairwise(held)] == [1.0] * 5
    env.advance(0.5)
    for turn in range(1, 7):
        env.worker.drain()
        pending = [(d.id, d.due_at, d.claimed_at) for d in env.deliveries() if d.state == "pending"]
        # the rest still wait as they were put back: not claimed (and held) again at this slot
        assert pending == [(d.id, d.due_at, d.claimed_at) for d in held[turn:]]
        env.advance(1)
    assert env.posted_incidents() == opened
    gaps = [b["at"] - a["at"] for a, b in pairwise(env.slack.calls)]
    assert gaps == [1.0] * 6


def test_two_workers_queue_held_posts_behind_each_others(make_env):
    env = make_env({"delivery.slack_min_interval_seconds": 1}, slack_rate_limit=True)
    other, container = second_worker(env)
    try:
        opened = env.post_warnings("abc")
        env.worker.drain()  # a posted; b and c held by this worker, due in 1 and 2 s
        env.advance(0.5)
        opened += env.post_warnings("de")
        other.drain()  # the other worker queues d and e behind c: due in 3 and 4 s, not 1 and 2
        held = [d for d in env.deliveries() if d.state == "pending"]
        assert [(b.due_at - a.due_at).total_seconds() for a, b in pairwise(held)] == [1.0] * 3
        env.advance(0.5)
        for turn in range(1, 5):
            for worker in (other, env.worker) if turn % 2 else (env.worker, other):
                worker.drain()
            pending = [
                (d.id, d.due_at, d.claimed_at) for d in env.deliveries() if d.state == "pending"
            ]
            assert pending == [(d.id, d.due_at, d.claimed_at) for d in held[turn:]]
            env.advance(1)
    finally:
        other.close()
        container.engine.dispose()
    assert env.posted_incidents() == opened
    assert [c["status"] for c in env.slack.calls] == [200] * 5


def test_posts_held_again_after_a_429_keep_their_order(make_env):
    env = make_env({"delivery.slack_min_interval_seconds": 1})
    opened = env.post_warnings("abc")
    env.worker.drain()  # a posted; b and c queued for 1 and 2 s later
    env.slack.fail("ratelimited", times=1, retry_after=3)
    for _ in range(8):
        env.advance(1)
        env.worker.drain()  # b refused at its turn, the channel held; c held again, first
    assert [c["status"] for c in env.slack.calls] == [200, 429, 200, 200]
    assert env.posted_incidents() == opened
    gaps = [b["at"] - a["at"] for a, b in pairwise(env.slack.calls)]
    assert gaps[1:] == [3.0, 1.0]  # the 429's Retry-After, then the interval


class LateAnswers:
    """A pacer whose every post is answered ``seconds`` after it was sent: the slot, kept from
    the answer, frees that much after the held post's turn."""

    def __init__(self, inner, env, seconds: float):
        self.inner, self.env, self.seconds = inner, env, seconds
        self.interval = inner.interval

    def reserve(self, channel, now=None):
        return self.inner.reserve(channel, now)

    def hold(self, channel, seconds=None):
        self.env.advance(self.seconds)
        self.inner.hold(channel, seconds)

    def queue(self, channel, now, wait):
        return self.inner.queue(channel, now, wait)


def test_a_post_refused_at_its_turn_goes_before_the_posts_queued_after_it(make_env):
    env = make_env({"delivery.slack_min_interval_seconds": 1})
    env.worker.pacer = LateAnswers(env.worker.pacer, env, 0.05)
    opened = env.post_warnings("abcd")
    env.worker.drain()  # a posted; b, c and d queued a second apart
    for _ in range(10):
        pending = [d.due_at for d in env.deliveries() if d.state == "pending"]
        if not pending:
            break
        env.advance_to(min(pending))  # a pass just as the next post falls due
        env.worker.drain()  # each answer 50 ms late: c is refused at its turn, d at its own
    assert env.posted_incidents() == opened  # c still before d
    assert [d.state for d in env.deliveries()] == ["sent"] * 4
