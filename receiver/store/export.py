"""Reads for exporting an incident as a replay fixture: the raw requests behind it, in order.

An incident is not only the requests that touched it: where a new alert goes depends on the
group's earlier episodes (a series that starts for the third time within the flapping window
rejoins its latest incident; one starting inside the hold-down of a flapping incident too). So
the export holds every request of the incident's group from the first one that touched an
incident the flapping rules look back to (its episodes started within window + hold-down before
this incident's, transitively), up to the last request that touched this incident.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from receiver.store.tables import (
    AlertEpisode,
    AlertGroup,
    Incident,
    IncidentEvent,
    IncidentReceipt,
    PayloadBody,
    WebhookReceipt,
)


@dataclass(frozen=True)
class ExportedRequest:
    """One accepted request: its exact body, when and for which receiver it was received."""

    receipt_id: int
    received_at: datetime
    receiver: str
    body: bytes
    touches_incident: bool


@dataclass(frozen=True)
class IncidentRequests:
    """What an incident's fixture holds: a few facts about it and its requests in receive order."""

    incident: dict[str, Any]
    requests: list[ExportedRequest]


class IncidentNotFound(LookupError):
    """No incident with this id."""


@dataclass(frozen=True)
class Shortfall:
    """An incident of the export with fewer stored requests than it counted."""

    incident_id: int
    stored: int
    counted: int
    missing_receipts: list[int]


class PayloadsPruned(Exception):
    """Raw requests the export needs are gone (retention): a partial fixture would mislead."""

    def __init__(self, incident_id: int, shortfalls: list[Shortfall]):
        self.incident_id, self.shortfalls = incident_id, shortfalls
        super().__init__(self.message())

    def message(self) -> str:
        """Which incidents lost how many requests, and the receipts their timelines name."""
        parts = [_shortfall_text(s, self.incident_id) for s in self.shortfalls]
        return (
            f"incident {self.incident_id} cannot be exported: raw payloads were pruned "
            f"(older than intake.raw_retention_days): {'; '.join(parts)}. A partial fixture "
            "would not replay to the same incident."
        )


class IncidentsPruned(PayloadsPruned):
    """Requests the export holds also touched incidents that incident retention deleted: without
    them the requests would not replay to the same incident."""

    def __init__(self, incident_id: int, deleted: list[int]):
        self.deleted = deleted
        super().__init__(incident_id, [])

    def message(self) -> str:
        names = ", ".join(map(str, self.deleted))
        return (
            f"incident {self.incident_id} cannot be exported: its requests also touched "
            f"incident{'s' if len(self.deleted) > 1 else ''} {names} of its group, deleted by "
            "retention (retention.incident_days). A partial fixture would not replay to the "
            "same incident."
        )


def _shortfall_text(s: Shortfall, exported: int) -> str:
    whose = (
        "it"
        if s.incident_id == exported
        else f"incident {s.incident_id} (of its group, which the flapping rules look back to)"
    )
    text = f"{s.counted - s.stored} of the {s.counted} requests that touched {whose} are gone"
    if s.missing_receipts:
        names = ", ".join(map(str, s.missing_receipts))
        plural = "s" if len(s.missing_receipts) > 1 else ""
        text += f" (among them receipt{plural} {names}, named by its timeline)"
    return text


def incident_requests(engine: Engine, incident_id: int, lookback: timedelta) -> IncidentRequests:
    """The requests to replay for an incident (lookback: flapping window + hold-down)."""
    with Session(engine) as session:
        incident = session.get(Incident, incident_id)
        if incident is None:
            raise IncidentNotFound(incident_id)
        group = session.get_one(AlertGroup, incident.group_id)
        related = _related(session, incident, lookback)
        linked = _linked_receipts(session, related)
        _check_complete(session, incident_id, related, linked)
        own = set(linked[incident_id])
        start = min(r for ids in linked.values() for r in ids)
        rows = session.execute(
            select(
                WebhookReceipt.id,
                WebhookReceipt.received_at,
                WebhookReceipt.receiver,
                PayloadBody.body,
                WebhookReceipt.summary,
            )
            .join(PayloadBody, PayloadBody.sha256 == WebhookReceipt.body_sha256)
            .where(
                WebhookReceipt.group_id == group.id,
                WebhookReceipt.id >= start,
                WebhookReceipt.id <= max(own),
            )
            .order_by(WebhookReceipt.id)
        ).all()
        _check_none_deleted(session, incident_id, [summary for *_, summary in rows])
    requests = [
        ExportedRequest(rid, at, receiver, bytes(body), rid in own)
        for rid, at, receiver, body, _summary in rows
    ]
    return IncidentRequests(_facts(incident, group), requests)


def _facts(incident: Incident, group: AlertGroup) -> dict[str, Any]:
    return {
        "id": incident.id,
        "receiver": incident.receiver,
        "group_labels": group.group_labels,
        "title": incident.title,
        "status": incident.status,
        "opened_at": incident.opened_at.isoformat(),
    }


def _related(session: Session, incident: Incident, lookback: timedelta) -> dict[int, int]:
    """This incident and those its placement depends on: id -> notification count."""
    shared = select(IncidentReceipt.receipt_id).where(IncidentReceipt.incident_id == incident.id)
    ids = {incident.id} | set(
        session.scalars(
            select(IncidentReceipt.incident_id).where(IncidentReceipt.receipt_id.in_(shared))
        )
    )
    latest = session.scalar(
        select(func.max(AlertEpisode.starts_at)).where(AlertEpisode.incident_id == incident.id)
    )
    while latest is not None:
        earliest = session.scalar(
            select(func.min(AlertEpisode.starts_at)).where(AlertEpisode.incident_id.in_(ids))
        )
        found = set(
            session.scalars(
                select(AlertEpisode.incident_id).where(
                    AlertEpisode.group_id == incident.group_id,
                    # not None: the incident's own episodes (``latest``) are among them
                    AlertEpisode.starts_at >= cast(datetime, earliest) - lookback,
                    AlertEpisode.starts_at <= latest,
                )
            )
        )
        if found <= ids:
            break
        ids |= found
    counts = session.execute(
        select(Incident.id, Incident.notification_count).where(Incident.id.in_(ids))
    )
    return {i: n for i, n in counts}


def _linked_receipts(session: Session, related: dict[int, int]) -> dict[int, list[int]]:
    rows = session.execute(
        select(IncidentReceipt.incident_id, IncidentReceipt.receipt_id).where(
            IncidentReceipt.incident_id.in_(list(related))
        )
    )
    linked: dict[int, list[int]] = {i: [] for i in related}
    for incident_id, receipt_id in rows:
        linked[incident_id].append(receipt_id)
    return linked


def _check_none_deleted(
    session: Session, incident_id: int, summaries: list[dict[str, Any]]
) -> None:
    """Raise IncidentsPruned if a request names an incident that no longer exists."""
    named = {i for summary in summaries for i in summary.get("incidents", [])}
    existing = set(session.scalars(select(Incident.id).where(Incident.id.in_(sorted(named)))))
    if deleted := sorted(named - existing):
        raise IncidentsPruned(incident_id, deleted)


def _check_complete(
    session: Session, incident_id: int, related: dict[int, int], linked: dict[int, list[int]]
) -> None:
    """Raise PayloadsPruned unless every related incident still has every request it counted."""
    short = sorted(i for i, counted in related.items() if len(linked[i]) < max(counted, 1))
    if not short:
        return
    gone = session.execute(
        select(IncidentEvent.incident_id, IncidentEvent.receipt_id)
        .where(
            IncidentEvent.incident_id.in_(short),
            IncidentEvent.receipt_id.is_not(None),
            IncidentEvent.receipt_id.not_in(select(WebhookReceipt.id)),
        )
        .distinct()
    ).all()
    missing: dict[int, set[int]] = {i: set() for i in short}
    for owner, receipt_id in gone:
        missing[owner].add(cast(int, receipt_id))  # the query left out None
    shortfalls = [
        Shortfall(i, len(linked[i]), related[i], sorted(missing[i]))
        for i in sorted(short, key=lambda i: i != incident_id)
    ]
    raise PayloadsPruned(incident_id, shortfalls)
