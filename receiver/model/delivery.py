"""Delivery outcomes and the retry policy of the outbox (pure values, no I/O)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

# How the last error of a delivery in doubt begins: a send of it may have arrived unseen, so
# the next try looks for it before sending again (the marker survives in ``last_error``).
IN_DOUBT = "in doubt"


class Outcome(StrEnum):
    OK = "ok"
    RETRY = "retry"  # transient: 429, 5xx, network; try again later
    GIVE_UP = "give_up"  # permanent: 400, invalid token, unknown channel


@dataclass(frozen=True)
class SendResult:
    """What a notifier reports; it never raises for a delivery outcome."""

    outcome: Outcome
    reason: str = ""
    status_code: int | None = None
    retry_after: float | None = None  # seconds, from the vendor's Retry-After
    excerpt: str = ""  # a short piece of the response, secrets redacted
    external: dict[str, Any] = field(default_factory=dict)  # ids to remember (Slack ts, ...)
    attempted: bool = True  # False: held back by pacing, nothing was sent
    told_changes: bool = True  # False: the timeline changes still need telling next time
    in_doubt: bool = False  # a retry whose earlier send may have arrived: look before resending
    # a channel to keep from posting after this send (Slack pacing): posted to, for the
    # pacing interval; refused with a 429, for ``retry_after``
    hold_channel: str | None = None


def in_doubt(last_error: str | None) -> bool:
    """Whether a delivery's last try left it in doubt."""
    return (last_error or "").startswith(f"{IN_DOUBT}: ")


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, honouring Retry-After, dead after ``max_age``.

    delay(n) = min(maximum, initial * 2 ** (n - 1)) * uniform(0.5, 1.0) for the n-th failure;
    a vendor's Retry-After is used instead when it asks for longer. During an outage one
    delivery per receiver is the probe instead (``Outages``): probe_delay() = the vendor's
    Retry-After as given, else ``probe`` seconds, with no backoff, so the first send after
    the vendor recovers comes within seconds and releases the others.
    """

    initial: float = 2.0
    maximum: float = 300.0
    max_age: timedelta = timedelta(hours=6)
    probe: float = 2.0

    def delay(
        self, failures: int, retry_after: float | None, rand: Callable[[], float] = random.random
    ) -> float:
        base = min(self.maximum, self.initial * 2 ** max(0, failures - 1))
        jittered = base * (0.5 + rand() / 2)
        return max(jittered, retry_after or 0.0)

    def probe_delay(self, retry_after: float | None) -> float:
        """Seconds until a probe is tried again: Retry-After as given (0 or none: ``probe``)."""
        return retry_after or self.probe

    def is_dead(
        self, created_at: datetime, now: datetime, in_doubt: bool = False, firing: bool = False
    ) -> bool:
        """Too old to retry; never a send in doubt while its incident fires (given up, it
        would leave a message stale, and the next change would post a second one)."""
        return now - created_at >= self.max_age and not (in_doubt and firing)


@dataclass
class Probe:
    delivery_id: int
    due: datetime  # when it is tried again; past that, another failing delivery takes over


@dataclass
class Outages:
    """What one worker has seen of each receiver's outage, in memory (nothing shared).

    While sends to a receiver fail, one delivery at a time is its probe, tried again at the
    probe delay; the others back off. The first failure with no probe becomes it, and so does
    the next failure once the probe's time has passed without it (claimed by another worker,
    cancelled, dead). A success after failures releases the receiver's other deliveries that
    back off (they fall due at once, through the database, for every worker); a success in
    the normal case releases nothing, so it costs no write.
    """

    probes: dict[str, Probe] = field(default_factory=dict)  # receivers seen failing
    released: dict[str, datetime] = field(default_factory=dict)  # last release, per receiver

    def failed(self, receiver: str, delivery_id: int, now: datetime, delay: float) -> bool:
        """A send of ``delivery_id`` failed at ``now``: whether it is the receiver's probe,
        then due ``delay`` seconds later."""
        probe = self.probes.get(receiver)
        if probe is not None and probe.delivery_id != delivery_id and now < probe.due:
            return False
        self.probes[receiver] = Probe(delivery_id, now + timedelta(seconds=delay))
        return True

    def succeeded(self, receiver: str, now: datetime, backed_off_until: datetime | None) -> bool:
        """A send succeeded at ``now``: whether to release the others. ``backed_off_until``:
        when the delivery was due if it had failed before, else None. Yes after failures
        this worker saw, on its first success (a backlog may wait from before it started),
        and for a delivery that backed off past this worker's last release (another worker
        saw the outage)."""
        last = self.released.get(receiver)
        release = (
            receiver in self.probes
            or last is None
            or (backed_off_until is not None and backed_off_until > last)
        )
        self.probes.pop(receiver, None)
        if release:
            self.released[receiver] = now
        return release
