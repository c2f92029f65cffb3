"""Incident snapshots built by hand, for tests of what the notifiers make of an incident.

Every field has a plain default; a test names only what it is about:
``snapshot(title="x", alerts=(series("fp0", episode(status="resolved")),))``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from receiver.model.snapshot import (
    AlertSeries,
    ContextItem,
    ContextValue,
    Counts,
    Episode,
    Group,
    IncidentContext,
    IncidentSnapshot,
    Runbook,
    TimelineEntry,
)

OPENED = datetime(2026, 11, 28, 0, 21, 15, tzinfo=UTC)


def at(text: str) -> datetime:
    """An ISO 8601 time (UTC when it names no offset)."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def episode(
    status: str = "firing",
    starts_at: str = "2026-11-28T00:21:15+00:00",
    annotations: dict[str, str] | None = None,
    generator_url: str | None = None,
) -> Episode:
    starts = at(starts_at)
    return Episode(
        status=status,
        resolution=None if status == "firing" else "resolved",
        seen_firing=True,
        starts_at=starts,
        ends_at=None,
        first_received_at=starts,
        last_received_at=starts,
        seen_count=1,
        stale_firing_count=0,
        absent_since=None,
        annotations=annotations or {},
        generator_url=generator_url,
        runbook=Runbook(None, None, None),
        context_state="none",
        context=None,
    )


def series(
    fingerprint: str, *episodes: Episode, labels: dict[str, str] | None = None
) -> AlertSeries:
    labels = labels or {}
    alertname = labels.get("alertname", "")
    return AlertSeries(fingerprint, False, alertname, labels, episodes or (episode(),))


def context_item(
    title: str, displays: tuple[str, ...] = (), reason: str | None = None
) -> ContextItem:
    """An ``ok`` item with these values' displays, or an unavailable one with ``reason``."""
    values = tuple(ContextValue({}, None, d) for d in displays)
    status = "unavailable" if reason is not None else "ok"
    stored: dict[str, Any] = {"key": title, "title": title, "status": status}
    return ContextItem(title, title, status, values, reason, stored)


def event(kind: str, when: str, **detail: Any) -> TimelineEntry:
    return TimelineEntry(0, at(when), kind, None, detail, None)


def snapshot(**changes: Any) -> IncidentSnapshot:
    """An incident; ``changes`` replace its fields (``context`` may be a tuple of items)."""
    if isinstance(changes.get("context"), tuple):
        changes["context"] = IncidentContext("done", changes["context"])
    base = IncidentSnapshot(
        id=1,
        status="firing",
        severity=None,
        alertname="",
        receiver="",
        title="",
        labels={},
        annotations={},
        opened_at=OPENED,
        resolved_at=None,
        first_received_at=OPENED,
        last_received_at=OPENED,
        counts=Counts(1, 0, 1, 1),
        flapping=False,
        flap_count=0,
        truncated=False,
        opened_by_resolve=False,
        external_url=None,
        runbook_url=None,
        runbook_missing=False,
        acknowledged_at=None,
        acknowledged_by=None,
        route_labels={},
        group=Group("", "{}:{}", False, {}),
        guidance=None,
        alerts=(),
        context=IncidentContext("disabled", ()),
        timeline=(),
        payloads=(),
        deliveries=(),
    )
    return replace(base, **changes)
