"""Incident snapshots read from the rows: what notifiers send and the incident API shows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from receiver.model.snapshot import (
    AlertSeries,
    AttemptRecord,
    ContextItem,
    ContextValue,
    Counts,
    DeliveryRecord,
    Episode,
    Group,
    IncidentContext,
    IncidentSnapshot,
    IncidentSummary,
    PayloadRef,
    Runbook,
    TimelineEntry,
)
from receiver.store.tables import (
    AlertEpisode,
    AlertGroup,
    Delivery,
    DeliveryAttempt,
    Incident,
    IncidentEvent,
    IncidentReceipt,
    PayloadBody,
    WebhookReceipt,
)


def load_snapshots(session: Session, incident_ids: list[int]) -> dict[int, IncidentSnapshot]:
    """Incidents by id with their alerts and episodes, timeline, payloads and deliveries.

    A fixed number of statements however many incidents (the delivery worker reads a batch).
    """
    incidents = session.scalars(select(Incident).where(Incident.id.in_(incident_ids))).all()
    if not incidents:
        return {}
    ids = [i.id for i in incidents]
    groups = {
        g.id: g
        for g in session.scalars(
            select(AlertGroup).where(AlertGroup.id.in_({i.group_id for i in incidents}))
        )
    }
    episodes = _by_incident(
        session.scalars(
            select(AlertEpisode)
            .where(AlertEpisode.incident_id.in_(ids))
            .order_by(AlertEpisode.incident_id, AlertEpisode.fingerprint, AlertEpisode.starts_at)
        )
    )
    events = _by_incident(
        session.scalars(
            select(IncidentEvent)
            .where(IncidentEvent.incident_id.in_(ids))
            .order_by(IncidentEvent.incident_id, IncidentEvent.id)
        )
    )
    deliveries = _by_incident(
        session.scalars(select(Delivery).where(Delivery.incident_id.in_(ids)).order_by(Delivery.id))
    )
    attempts = _by_incident(
        session.execute(
            select(Delivery.incident_id, DeliveryAttempt)
            .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
            .where(Delivery.incident_id.in_(ids))
            .order_by(DeliveryAttempt.id)
        )
    )
    receipts = _by_incident(
        session.execute(
            select(IncidentReceipt.incident_id, WebhookReceipt, PayloadBody.size)
            .join(WebhookReceipt, IncidentReceipt.receipt_id == WebhookReceipt.id)
            .join(PayloadBody, PayloadBody.sha256 == WebhookReceipt.body_sha256)
            .where(IncidentReceipt.incident_id.in_(ids))
            .order_by(WebhookReceipt.id)
        )
    )
    snapshots = {}
    for incident in incidents:
        iid, group = incident.id, groups[incident.group_id]
        own_episodes = episodes.get(iid, [])
        snapshots[iid] = IncidentSnapshot(
            **_summary_fields(incident),
            group=Group(
                group.receiver, group.group_key, group.group_key_derived, group.group_labels
            ),
            guidance=incident.guidance,
            alerts=_alerts(own_episodes),
            context=_context(own_episodes),
            timeline=tuple(
                TimelineEntry(e.id, e.at, e.kind, e.fingerprint, e.detail, e.receipt_id)
                for e in events.get(iid, [])
            ),
            payloads=tuple(_payload(r, size) for _, r, size in receipts.get(iid, [])),
            deliveries=delivery_records(
                deliveries.get(iid, []), [a for _, a in attempts.get(iid, [])]
            ),
        )
    return snapshots


def summary_of(i: Incident) -> IncidentSummary:
    """The incident row's own fields."""
    return IncidentSummary(**_summary_fields(i))


def _summary_fields(i: Incident) -> dict[str, Any]:
    """The summary's fields, read from the incident row's columns of the same names."""
    return {
        **{name: getattr(i, name) for name in _COLUMNS},
        "counts": Counts(i.notification_count, i.duplicate_count, i.alert_count, i.episode_count),
    }


_COLUMNS = tuple(f.name for f in fields(IncidentSummary) if f.name != "counts")


def delivery_records(
    deliveries: Iterable[Delivery], attempts: Iterable[DeliveryAttempt]
) -> tuple[DeliveryRecord, ...]:
    """Deliveries with their attempts (those of ``attempts`` that belong to each)."""
    by_delivery: dict[int, list[AttemptRecord]] = {}
    for a in attempts:
        by_delivery.setdefault(a.delivery_id, []).append(
            AttemptRecord(a.at, a.outcome, a.status_code, a.latency_ms, a.reason, a.excerpt)
        )
    return tuple(
        DeliveryRecord(
            id=d.id,
            receiver=d.receiver,
            kind=d.kind,
            action=d.action,
            state=d.state,
            idempotency_key=d.idempotency_key,
            created_at=d.created_at,
            due_at=d.due_at,
            sent_at=d.sent_at,
            last_error=d.last_error,
            attempts=tuple(by_delivery.get(d.id, [])),
        )
        for d in deliveries
    )


def _by_incident(rows: Any) -> dict[int, list[Any]]:
    """Rows with an ``incident_id``, grouped by it (order kept)."""
    out: dict[int, list[Any]] = {}
    for row in rows:
        out.setdefault(row.incident_id, []).append(row)
    return out


def _alerts(episodes: list[AlertEpisode]) -> tuple[AlertSeries, ...]:
    """The episodes (ordered by fingerprint, then start) as alert series."""
    by_series: dict[str, list[AlertEpisode]] = {}
    for e in episodes:
        by_series.setdefault(e.fingerprint, []).append(e)
    return tuple(
        AlertSeries(
            fingerprint=fingerprint,
            fingerprint_derived=series[0].fingerprint_derived,
            alertname=series[0].alertname,
            labels=series[0].labels,
            episodes=tuple(_episode(e) for e in series),
        )
        for fingerprint, series in by_series.items()
    )


def _episode(e: AlertEpisode) -> Episode:
    return Episode(
        status=e.status,
        resolution=e.resolution,
        seen_firing=e.seen_firing,
        starts_at=e.starts_at,
        ends_at=e.ends_at,
        first_received_at=e.first_received_at,
        last_received_at=e.last_received_at,
        seen_count=e.seen_count,
        stale_firing_count=e.stale_firing_count,
        absent_since=e.absent_since,
        annotations=e.annotations,
        generator_url=e.generator_url,
        runbook=Runbook(e.runbook_url, e.runbook_source, e.guidance),
        context_state=e.context_state,
        context=None if e.context is None else tuple(_context_item(i) for i in e.context),
    )


def _context(episodes: list[AlertEpisode]) -> IncidentContext:
    """The incident's context snapshot: its episodes' items, each (query, time) once."""
    states = {e.context_state for e in episodes}
    if states <= {"none"}:
        state = "disabled"
    elif states & {"pending", "running"}:
        state = "pending"
    else:
        state = "done"
    items: dict[tuple[str, str | None, str], tuple[dict[str, Any], list[str]]] = {}
    for e in episodes:
        for item in e.context or []:
            key = (item["key"], item.get("query"), item["time"])
            items.setdefault(key, (item, []))[1].append(e.fingerprint)
    return IncidentContext(
        state,
        tuple(_context_item(item, tuple(fps)) for item, fps in items.values()),
    )


def _context_item(stored: dict[str, Any], fingerprints: tuple[str, ...] = ()) -> ContextItem:
    """A stored context item (``receiver.enrich.prometheus``), read leniently: the API shows
    whatever was stored, however old."""
    return ContextItem(
        key=str(stored.get("key", "")),
        title=str(stored.get("title", "")),
        status=str(stored.get("status", "")),
        values=tuple(
            ContextValue(v.get("labels") or {}, v.get("value"), str(v.get("display", "")))
            for v in stored.get("values") or []
        ),
        reason=stored.get("reason"),
        stored=stored,
        fingerprints=fingerprints,
    )


def _payload(r: WebhookReceipt, size: int) -> PayloadRef:
    return PayloadRef(
        receipt=r.id,
        received_at=r.received_at,
        sha256=r.body_sha256,
        size=size,
        remote_addr=r.remote_addr,
        user_agent=r.user_agent,
        external_url=r.external_url,
        summary=r.summary,
        notification_reason=r.notification_reason,
    )
