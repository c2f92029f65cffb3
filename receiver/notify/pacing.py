"""Slack channel pacing: at most one post per interval per channel, for every worker together.

A notifier asks for the channel's slot before it posts (``reserve``); taken, it posts and then
keeps the slot for the interval from the answer (``hold``); otherwise it hands the delivery
back with the wait until its turn as its retry-after, never sleeping: held posts queue behind
each other (``queue``), one interval apart. A 429's Retry-After holds the channel too.
``SharedPacer`` keeps the slots and the queue in the database (``channel_pacing``), so two
worker processes (two replicas on Postgres) pace as one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from receiver.store.pacing import MAX_HOLD
from receiver.store.unit_of_work import UnitOfWork


class Pacer(Protocol):
    interval: float  # seconds between two posts to a channel

    def reserve(self, channel: str, now: datetime | None = None) -> float:
        """Take the channel's slot for the interval if it is free at ``now`` (default: the
        clock; the worker passes its batch's claim time, so a slot that frees while the batch
        runs goes to the oldest held post, claimed with the next batch, not to whichever newer
        post of this batch reaches it first): 0, or the seconds from ``now`` until it frees."""
        ...

    def hold(self, channel: str, seconds: float | None = None) -> None:
        """Keep the channel's slot taken for at least ``seconds`` (default: the interval) from
        now."""
        ...

    def queue(self, channel: str, now: datetime, wait: float) -> float:
        """A post is held back at ``now`` for the channel, whose slot frees in ``wait``
        seconds: the seconds until its turn, an interval after the last post held back for
        the channel (by any worker), or when the slot frees if that is later."""
        ...


class SharedPacer:
    """Slots in the database, one short transaction each, on the receiver's clock.

    A slot only ever moves later, so what this process last learnt of a channel (taken until
    T) answers every ask before T without a transaction: a backlog of held posts costs the
    database one question per slot, not one per held post.
    """

    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        clock: Callable[[], datetime],
        interval: float = 1.0,
    ):
        self.uow_factory, self.clock, self.interval = uow_factory, clock, interval
        self._taken_until: dict[str, datetime] = {}

    def reserve(self, channel: str, now: datetime | None = None) -> float:
        now = now or self.clock()
        known = self._taken_until.get(channel)
        if known is not None and now < known <= now + MAX_HOLD:
            return (known - now).total_seconds()
        until = max(now, self.clock()) + timedelta(seconds=self.interval)  # from the post itself
        with self.uow_factory() as uow:
            free_at = uow.pacing.reserve(channel, now, until)
            uow.commit()
        self._taken_until[channel] = until if free_at is None else free_at
        return 0.0 if free_at is None else (free_at - now).total_seconds()

    def hold(self, channel: str, seconds: float | None = None) -> None:
        held = timedelta(seconds=self.interval if seconds is None else seconds)
        until = self.clock() + min(held, MAX_HOLD)
        with self.uow_factory() as uow:
            uow.pacing.hold(channel, until)
            uow.commit()
        self._taken_until[channel] = max(self._taken_until.get(channel, until), until)

    def queue(self, channel: str, now: datetime, wait: float) -> float:
        interval = timedelta(seconds=self.interval)
        with self.uow_factory() as uow:
            turn = uow.pacing.queue(channel, now + timedelta(seconds=wait), interval, now)
            uow.commit()
        return (turn - now).total_seconds()
