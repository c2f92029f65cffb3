"""Clocks the tests move by hand: the receiver's wall clock and a monotonic one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass
class FakeClock:
    """The receiver's clock (a timezone-aware datetime), moved by the test."""

    now: datetime = datetime(2026, 11, 28, 0, 20, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class ManualClock:
    """A monotonic clock (seconds) that only moves when a test moves it: for the stand-ins,
    the Slack pacer and the Triton simulator."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
