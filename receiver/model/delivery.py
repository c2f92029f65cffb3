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


def in_doubt(last_error: str | None) -> bool:
    """Whether a delivery's last try left it in doubt."""
    return (last_error or "").startswith(f"{IN_DOUBT}: ")


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, honouring Retry-After, dead after ``max_age``.

    delay(n) = min(maximum, initial * 2 ** (n - 1)) * uniform(0.5, 1.0) for the n-th failure;
    a vendor's Retry-After is used instead when it asks for longer.
    """

    initial: float = 2.0
    maximum: float = 300.0
    max_age: timedelta = timedelta(hours=6)

    def delay(
        self, failures: int, retry_after: float | None, rand: Callable[[], float] = random.random
    ) -> float:
        base = min(self.maximum, self.initial * 2 ** max(0, failures - 1))
        jittered = base * (0.5 + rand() / 2)
        return max(jittered, retry_after or 0.0)

    def is_dead(
        self, created_at: datetime, now: datetime, in_doubt: bool = False, firing: bool = False
    ) -> bool:
        """Too old to retry; never a send in doubt while its incident fires (given up, it
        would leave a message stale, and the next change would post a second one)."""
        return now - created_at >= self.max_age and not (in_doubt and firing)
