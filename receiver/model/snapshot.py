"""An incident as the store read it, in one snapshot: frozen values, no database rows.

The store builds these (``receiver.store.snapshots``); the notifiers read them, and the JSON
API shows one rendering of them (``receiver.model.snapshot_json``). Times are datetimes in
UTC. Labels, annotations and the other JSON documents are the stored documents themselves,
typed read-only (``Mapping``): nothing may change them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Counts:
    """How much an incident has received."""

    notifications: int
    duplicates: int  # notifications that changed nothing (re-sends, HA duplicates)
    alerts: int  # alert series
    episodes: int  # firings of those series


@dataclass(frozen=True)
class IncidentSummary:
    """The incident's own fields: what the incident list shows of each."""

    id: int
    status: str  # firing | resolved
    severity: str | None
    alertname: str
    receiver: str
    title: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    opened_at: datetime
    resolved_at: datetime | None
    first_received_at: datetime
    last_received_at: datetime
    counts: Counts
    flapping: bool
    flap_count: int
    truncated: bool
    opened_by_resolve: bool
    external_url: str | None
    runbook_url: str | None
    runbook_missing: bool
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    route_labels: Mapping[str, str]  # of the Alertmanager route that sent it (0.34+)

    @property
    def duration_seconds(self) -> float:
        """From opening to the resolve, or to the last notification while it fires."""
        end = self.resolved_at or self.last_received_at
        return round((end - self.opened_at).total_seconds(), 3)


@dataclass(frozen=True)
class Group:
    """The Alertmanager group the incident belongs to."""

    receiver: str
    group_key: str
    group_key_derived: bool  # made by the receiver: the webhook had none
    group_labels: Mapping[str, str]


@dataclass(frozen=True)
class Runbook:
    """Where to read what to do, and the guidance given with it."""

    url: str | None
    source: str | None  # annotation | catalogue
    guidance: str | None


@dataclass(frozen=True)
class ContextValue:
    """One series' value of a context query."""

    labels: Mapping[str, str]
    value: float | None
    display: str  # formatted in the query's unit


@dataclass(frozen=True)
class ContextItem:
    """One GPU or queue reading taken at an alert's start, as the worker stored it.

    ``stored`` is the whole stored item (query, time, unit, chart series, objective, ...),
    which the API shows as is; the fields before it are what notifiers read of it.
    """

    key: str
    title: str
    status: str  # ok | unavailable
    values: tuple[ContextValue, ...]
    reason: str | None  # why it is unavailable
    stored: Mapping[str, Any]
    fingerprints: tuple[str, ...] = ()  # in the incident's context: the series it was read for


@dataclass(frozen=True)
class IncidentContext:
    """The incident's GPU and queue context: its episodes' items, each (query, time) once."""

    state: str  # pending | done | disabled
    items: tuple[ContextItem, ...]


@dataclass(frozen=True)
class Episode:
    """One firing of an alert series, to its resolve."""

    status: str  # firing | resolved
    resolution: str | None
    seen_firing: bool
    starts_at: datetime
    ends_at: datetime | None
    first_received_at: datetime
    last_received_at: datetime
    seen_count: int
    stale_firing_count: int
    absent_since: datetime | None
    annotations: Mapping[str, str]
    generator_url: str | None
    runbook: Runbook
    context_state: str
    context: tuple[ContextItem, ...] | None  # None: no context stored (yet)


@dataclass(frozen=True)
class AlertSeries:
    """One alert of the incident (one fingerprint) with its episodes, oldest first."""

    fingerprint: str
    fingerprint_derived: bool
    alertname: str
    labels: Mapping[str, str]
    episodes: tuple[Episode, ...]


@dataclass(frozen=True)
class TimelineEntry:
    """One event of the incident's timeline."""

    id: int
    at: datetime
    kind: str  # opened | alert_added | alert_resolved | resolved | note | ...
    fingerprint: str | None
    detail: Mapping[str, Any] | None
    receipt: int | None  # the webhook that caused it


@dataclass(frozen=True)
class PayloadRef:
    """A webhook request behind the incident (its bytes are read separately)."""

    receipt: int
    received_at: datetime
    sha256: str
    size: int
    remote_addr: str | None
    user_agent: str | None
    external_url: str | None
    summary: Mapping[str, Any]
    notification_reason: str | None  # why Alertmanager sent it (0.32+)


@dataclass(frozen=True)
class AttemptRecord:
    """One try of a delivery."""

    at: datetime
    outcome: str  # ok | retry | give_up
    status_code: int | None
    latency_ms: int
    reason: str | None
    excerpt: str | None


@dataclass(frozen=True)
class DeliveryRecord:
    """One notification queued for the incident, with its tries."""

    id: int
    receiver: str
    kind: str  # pagerduty | slack
    action: str  # trigger | update | resolve
    state: str  # pending | sending | sent | dead | cancelled
    idempotency_key: str
    created_at: datetime
    due_at: datetime
    sent_at: datetime | None
    last_error: str | None
    attempts: tuple[AttemptRecord, ...]


@dataclass(frozen=True)
class IncidentSnapshot(IncidentSummary):
    """The whole incident: what a notifier sends and the incident's API document shows."""

    group: Group
    guidance: str | None
    alerts: tuple[AlertSeries, ...]
    context: IncidentContext
    timeline: tuple[TimelineEntry, ...]
    payloads: tuple[PayloadRef, ...]
    deliveries: tuple[DeliveryRecord, ...]

    @property
    def firing_episodes(self) -> int:
        """Episodes of its alerts that fire."""
        return sum(1 for a in self.alerts for e in a.episodes if e.status == "firing")
