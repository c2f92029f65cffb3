"""Slack channel pacing: at most one post per interval per channel, for every worker together.

The delivery worker paces, the notifier only posts (``send_paced``). Before a send it asks for
the channel's slot (``reserve``); taken, the notifier may post in it, and after the send the
worker keeps the slot for the interval from Slack's answer (``hold``). A new message whose slot
is not free is handed back with the wait until its turn as its retry-after, never sleeping:
held posts queue behind each other (``queue``), one interval apart. A 429's Retry-After holds
the channel too. ``SharedPacer`` keeps the slots and the queue in the database
(``channel_pacing``), so two worker processes (two replicas on Postgres) pace as one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol

from receiver.model.delivery import Outcome, SendResult
from receiver.notify import DeliveryJob, Notifier, PacedNotifier
from receiver.store.pacing import MAX_HOLD
from receiver.store.unit_of_work import UnitOfWork

PACED = "paced"  # a post held back for its channel's turn


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


def send_paced(pacer: Pacer, notifier: Notifier, job: DeliveryJob) -> SendResult:
    """Send ``job`` in its channel's slot: ask for the slot first, keep the channel held after.

    A new message whose slot is taken is not sent: it is held back for its turn (not
    attempted). A thread reply without its slot waits for a later send, which the notifier
    tells in its result (``told_changes``)."""
    request = notifier.slot_request(job) if isinstance(notifier, PacedNotifier) else None
    if request is not None:
        wait = pacer.reserve(request.channel, job.as_of)
        if wait > 0 and request.needed:
            turn = _turn(pacer, request.channel, wait, job)
            return SendResult(Outcome.RETRY, PACED, retry_after=turn, attempted=False)
        if wait <= 0:
            job = replace(job, slot=request.channel)
    result = notifier.send(job)
    if result.hold_channel is not None:  # posted (the interval), or refused (its Retry-After)
        pacer.hold(result.hold_channel, result.retry_after)
    return result


def _turn(pacer: Pacer, channel: str, wait: float, job: DeliveryJob) -> float:
    """Seconds until a held post's turn (the slot frees in ``wait``). Held for the first time,
    it queues behind the posts already held for the channel, by every worker, so it is claimed
    again when its turn comes, not at every slot before it. Held again at its turn (a 429 held
    the channel meanwhile), it goes first, when the slot frees: the claim takes the oldest due
    first, so posts still go out in order."""
    if job.as_of is None or job.last_error == PACED:
        return wait
    return pacer.queue(channel, job.as_of, wait)
