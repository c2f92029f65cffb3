"""The values the intake decision works on: the stored state of a group as loaded for one
notification, and the rows the decision asks the store to write.

An incident is named by a *ref*: its id when stored, or -1, -2, ... for the ones this
notification opens (in the order opened); the store maps refs to ids when it inserts them.
New episodes get negative refs the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from receiver.model.dedup import AlertOutcome

FIRING, RESOLVED = "firing", "resolved"
Row = TypeVar("Row")


def evolve(original: Row, /, **changes: Any) -> Row:
    """A copy of a frozen row with ``changes``: ``dataclasses.replace`` without its checks of
    every field (6.6 us a call, this 0.6: a 10-alert repeat made 31 of them, 15 % of its
    intake; docs/benchmarks.md). ``changes`` must name fields of the row."""
    copy = object.__new__(type(original))
    copy.__dict__.update(original.__dict__, **changes)
    return copy


@dataclass(frozen=True)
class IncidentRow:
    """An incident's columns the intake writes (all but its ids and the acknowledgement).
    ``open_group_id`` is the group's id exactly while ``status`` is firing."""

    ref: int
    status: str
    receiver: str
    alertname: str | None
    severity: str | None
    title: str
    labels: dict[str, str]
    annotations: dict[str, str]
    external_url: str | None
    search_text: str
    opened_at: datetime
    resolved_at: datetime | None
    first_received_at: datetime
    last_received_at: datetime
    notification_count: int = 0
    duplicate_count: int = 0
    alert_count: int = 0
    episode_count: int = 0
    flapping: bool = False
    flap_count: int = 0
    truncated: bool = False
    opened_by_resolve: bool = False
    runbook_url: str | None = None
    guidance: str | None = None
    runbook_missing: bool = False
    route_labels: dict[str, str] = field(default_factory=dict)  # as Alertmanager sent them


@dataclass(frozen=True)
class EpisodeRow:
    """An episode's identity and the columns a later notification may change."""

    ref: int
    incident_ref: int
    fingerprint: str
    starts_at: datetime
    status: str
    ends_at: datetime | None
    resolution: str | None
    annotations: dict[str, str]
    last_received_at: datetime
    seen_count: int = 1
    stale_firing_count: int = 0


@dataclass(frozen=True)
class NewEpisode:
    """The columns an episode is inserted with besides its ``EpisodeRow``."""

    row: EpisodeRow
    fingerprint_derived: bool
    seen_firing: bool
    alertname: str
    labels: dict[str, str]
    generator_url: str | None
    first_received_at: datetime
    runbook_url: str | None
    runbook_source: str | None
    guidance: str | None
    context_state: str


@dataclass(frozen=True)
class GroupState:
    """What the store holds for one notification's group, loaded under the group's lock.

    ``episodes``: the stored episodes of the notification's series that the rules need (the
    same identities, those starting within the flap window, any firing, each series' latest).
    ``incidents``: the group's open incident and the incidents of those episodes; None when
    not loaded (``incidents_needed`` says when they are). ``open_firing``: the firing episodes
    of the open incident, and ``open_latest_end`` the latest end of its ended ones, loaded
    when the notification resolves something (``open_firing_needed``).
    """

    group_id: int
    created: bool = False  # the group was created by this notification
    body_known: bool = False  # the request body is stored already
    episodes: dict[tuple[str, datetime], EpisodeRow] = field(default_factory=dict)
    incidents: dict[int, IncidentRow] | None = None
    open_incident_id: int | None = None
    open_firing: tuple[EpisodeRow, ...] | None = None
    open_latest_end: datetime | None = None


@dataclass(frozen=True)
class TimelineEvent:
    incident_ref: int
    kind: str
    fingerprint: str | None
    detail: dict[str, Any]


@dataclass(frozen=True)
class IntakePlan:
    """What one notification changes, in the order the store writes it."""

    counts: dict[AlertOutcome, int]
    touched: tuple[int, ...]  # incident refs, ascending ids, then new ones in order
    new_incidents: tuple[IncidentRow, ...] = ()
    changed_incidents: tuple[IncidentRow, ...] = ()  # stored ones, their new values
    counted_incidents: tuple[int, ...] = ()  # stored ones whose counters alone change
    recount: tuple[int, ...] = ()  # stored ones that gained episodes: count them again
    new_episodes: tuple[NewEpisode, ...] = ()
    changed_episodes: tuple[EpisodeRow, ...] = ()
    seen_episodes: tuple[int, ...] = ()  # stored ones seen again and nothing else
    events: tuple[TimelineEvent, ...] = ()
    labels: tuple[tuple[int, str, str], ...] = ()  # (incident ref, name, value) to index
    changes: dict[int, str] = field(default_factory=dict)  # ref: opened|resolved|changed
    missing_runbooks: tuple[str, ...] = ()

    def incident(self, ref: int) -> IncidentRow | None:
        """The incident's values after this notification, if it touched it with a change."""
        for row in (*self.new_incidents, *self.changed_incidents):
            if row.ref == ref:
                return row
        return None
