"""How an incident is written from its first alert: title, labels, search text, timeline briefs,
and which labels the label index can hold."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from receiver.model.alerts import AlertEvent, Notification
from receiver.model.intake_state import FIRING, RESOLVED, IncidentRow
from receiver.model.titles import TitleTemplate

MAX_TITLE = 500
MAX_SEVERITY = 32  # the column width; labels keep the whole value
MAX_SEARCH_TEXT = 8000
MAX_INDEXED_LABEL_VALUE = 512  # bytes: a btree row holds at most ~2.7 kB on Postgres
MAX_INDEXED_LABEL_NAME = 255


def opening_row(
    ref: int,
    n: Notification,
    alert: AlertEvent,
    now: datetime,
    firing: bool,
    template: TitleTemplate | None = None,
) -> IncidentRow:
    """The incident ``alert`` opens (before its episodes are counted in)."""
    title = n.common_annotations.get("summary") or alert.annotations.get("summary")
    title = title or alert.alertname
    title = (template.render(n, alert, title) if template else title)[:MAX_TITLE]
    labels = n.common_labels or alert.labels
    if n.route_labels:
        labels = {**labels, **route_only_labels(n)}
    return IncidentRow(
        ref=ref,
        status=FIRING if firing else RESOLVED,
        receiver=n.receiver,
        alertname=clip(labels.get("alertname", alert.alertname), 255),
        severity=clip(alert.labels.get("severity"), MAX_SEVERITY),
        title=title,
        labels=labels,
        annotations=n.common_annotations or alert.annotations,
        external_url=n.external_url,
        search_text=search_text([title, n.receiver, *labels.values()]),
        opened_at=alert.starts_at,
        resolved_at=None if firing else (alert.ends_at or now),
        first_received_at=now,
        last_received_at=now,
        opened_by_resolve=not firing,
        route_labels=n.route_labels,
    )


def route_only_labels(n: Notification) -> dict[str, str]:
    """The route's labels (Alertmanager 0.34+) that none of the alerts carries: the incident
    takes them as its own, so routes, filters and the search see them."""
    return {
        name: value
        for name, value in n.route_labels.items()
        if all(name not in a.labels for a in n.alerts)
    }


def brief(alert: AlertEvent) -> dict[str, object]:
    """What the timeline says about an alert."""
    return {
        "alertname": alert.alertname,
        "starts_at": alert.starts_at.isoformat(),
        "summary": alert.annotations.get("summary"),
    }


def clip(value: str | None, length: int) -> str | None:
    """Cut a value for an indexed column (the labels keep it whole)."""
    return value[:length] if value is not None else None


def search_text(parts: list[str]) -> str:
    """The lower-case text the list's free-text search looks in."""
    return " ".join(p.lower() for p in parts if p)[:MAX_SEARCH_TEXT]


def indexable(labels: dict[str, str]) -> Iterator[tuple[str, str]]:
    """The labels the label index keeps (too long ones are searched in the JSON instead)."""
    for name, value in labels.items():
        if _fits(value, MAX_INDEXED_LABEL_VALUE) and _fits(name, MAX_INDEXED_LABEL_NAME):
            yield name, value


def _fits(text: str, limit: int) -> bool:
    """Whether ``text`` is at most ``limit`` bytes in UTF-8 (a character takes 1 to 4)."""
    return len(text) * 4 <= limit or len(text.encode()) <= limit
