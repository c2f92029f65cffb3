"""Identity and deduplication rules, as pure functions (see docs/semantics.md).

group = (receiver, groupKey); alert series = fingerprint; episode = (fingerprint, startsAt).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from receiver.model.alerts import AlertEvent, AlertStatus


class AlertOutcome(StrEnum):
    """What one alert entry of a notification means for its episode."""

    NEW = "new"  # a firing episode not seen before
    REPEAT = "duplicate"  # firing again for an episode we know is firing
    RESOLVED = "resolved"  # resolves an episode we saw firing
    DUPLICATE_RESOLVED = "duplicate_resolved"  # resolved again
    STALE_FIRING = "stale_firing"  # firing for an episode already resolved (slow HA peer)
    RESOLVED_UNSEEN = "resolved_unseen"  # resolves an episode never seen firing


@dataclass(frozen=True)
class EpisodeView:
    """The stored state of one episode, as far as the rules need it."""

    status: AlertStatus


def classify_alert(alert: AlertEvent, known: EpisodeView | None) -> AlertOutcome:
    """Decide what an alert entry means, given the stored episode with the same identity."""
    firing = alert.status is AlertStatus.FIRING
    if known is None:
        return AlertOutcome.NEW if firing else AlertOutcome.RESOLVED_UNSEEN
    if known.status is AlertStatus.FIRING:
        return AlertOutcome.REPEAT if firing else AlertOutcome.RESOLVED
    return AlertOutcome.STALE_FIRING if firing else AlertOutcome.DUPLICATE_RESOLVED


@dataclass(frozen=True)
class FlapPolicy:
    """A series is flapping when it starts ``threshold`` times within ``window``.

    A flapping series re-joins its latest incident instead of opening a new one, and so does any
    new episode starting less than ``hold_down`` after that incident, if it was flapping, resolved.
    """

    threshold: int = 3
    window: timedelta = timedelta(minutes=30)
    hold_down: timedelta = timedelta(minutes=15)

    def starts_in_window(self, earlier_starts: list[datetime], new_start: datetime) -> int:
        """How many starts (the new one included) fall within the window ending at it."""
        if not earlier_starts:
            return 1
        since = earlier_than(new_start, self.window)
        return 1 + sum(1 for s in earlier_starts if since <= s < new_start)

    def is_flapping(self, starts_in_window: int) -> bool:
        return starts_in_window >= self.threshold

    def may_flap(self, starts_in_window: int) -> bool:
        """One start short of flapping (and re-fired at least once): worth holding a resolve."""
        return starts_in_window >= max(2, self.threshold - 1)


@dataclass(frozen=True)
class IncidentView:
    """The stored state of an incident, as far as placement needs it."""

    id: int
    open: bool
    flapping: bool
    resolved_at: datetime | None


class Placement(StrEnum):
    JOIN_OPEN = "join_open"  # the group's open incident takes the episode
    REOPEN = "reopen"  # the series' latest (resolved) incident is reopened: flapping
    NEW = "new"  # a new incident is opened


def place_new_episode(
    open_incident: IncidentView | None,
    series_latest: IncidentView | None,
    starts_in_window: int,
    new_start: datetime,
    policy: FlapPolicy,
) -> Placement:
    """Choose the incident for a new firing episode.

    A group has at most one open incident, and it takes every new episode. Without one, a flapping
    series (or one still inside the hold-down of its flapping incident) reopens its latest
    incident; anything else opens a new incident.
    """
    if open_incident is not None:
        return Placement.JOIN_OPEN
    if series_latest is None:
        return Placement.NEW
    if policy.is_flapping(starts_in_window):
        return Placement.REOPEN
    held = (
        series_latest.flapping
        and series_latest.resolved_at is not None
        and new_start - series_latest.resolved_at < policy.hold_down
    )
    return Placement.REOPEN if held else Placement.NEW


def group_fully_resolved(status: AlertStatus, truncated_alerts: int) -> bool:
    """True when the notification itself says every alert of the group has resolved.

    With ``truncatedAlerts > 0`` the absent alerts are unknown, so only an untruncated
    ``resolved`` notification proves it.
    """
    return status is AlertStatus.RESOLVED and truncated_alerts == 0


def earlier_than(moment: datetime, delta: timedelta) -> datetime:
    """``moment - delta``, or the earliest time there is (an alert may start in year 1)."""
    return moment - delta if moment - _EARLIEST > delta else _EARLIEST


_EARLIEST = datetime.min.replace(tzinfo=UTC)
