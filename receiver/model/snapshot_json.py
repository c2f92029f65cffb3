"""The JSON API's rendering of an incident snapshot: the one place its documents are shaped.

Keys come in the order the API has always given them (the app does not sort them), times as
ISO 8601 strings, the stored JSON documents as they are.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from receiver.model.snapshot import (
    AlertSeries,
    DeliveryRecord,
    Episode,
    IncidentSnapshot,
    IncidentSummary,
    PayloadRef,
    TimelineEntry,
)


def incident_json(incident: IncidentSnapshot) -> dict[str, Any]:
    """``GET /api/v1/incidents/<id>``: the incident, its alerts, context, timeline, payloads
    and deliveries."""
    group = incident.group
    return {
        **summary_json(incident),
        "group": {
            "receiver": group.receiver,
            "group_key": group.group_key,
            "group_key_derived": group.group_key_derived,
            "group_labels": group.group_labels,
        },
        "guidance": incident.guidance,
        "alerts": [_alert(a) for a in incident.alerts],
        "context": {
            "state": incident.context.state,
            "items": [
                {**item.stored, "fingerprints": list(item.fingerprints)}
                for item in incident.context.items
            ],
        },
        "timeline": [timeline_json(e) for e in incident.timeline],
        "payloads": [_payload(p) for p in incident.payloads],
        "deliveries": [delivery_json(d) for d in incident.deliveries],
    }


def summary_json(i: IncidentSummary) -> dict[str, Any]:
    """One incident of ``GET /api/v1/incidents`` (before its ``notified``)."""
    return {
        "id": i.id,
        "status": i.status,
        "severity": i.severity,
        "alertname": i.alertname,
        "receiver": i.receiver,
        "title": i.title,
        "labels": i.labels,
        "annotations": i.annotations,
        "opened_at": i.opened_at.isoformat(),
        "resolved_at": _time(i.resolved_at),
        "first_received_at": i.first_received_at.isoformat(),
        "last_received_at": i.last_received_at.isoformat(),
        "duration_seconds": i.duration_seconds,
        "counts": {
            "notifications": i.counts.notifications,
            "duplicates": i.counts.duplicates,
            "alerts": i.counts.alerts,
            "episodes": i.counts.episodes,
        },
        "flapping": i.flapping,
        "flap_count": i.flap_count,
        "truncated": i.truncated,
        "opened_by_resolve": i.opened_by_resolve,
        "external_url": i.external_url,
        "runbook_url": i.runbook_url,
        "runbook_missing": i.runbook_missing,
        "acknowledged_at": _time(i.acknowledged_at),
        "acknowledged_by": i.acknowledged_by,
        "route_labels": i.route_labels,
    }


def timeline_json(e: TimelineEntry) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": e.at.isoformat(),
        "kind": e.kind,
        "fingerprint": e.fingerprint,
        "detail": e.detail,
        "receipt": e.receipt,
    }


def delivery_json(d: DeliveryRecord) -> dict[str, Any]:
    """A delivery with its attempts (the incident's ``deliveries``, ``receiver outbox list``)."""
    return {
        "id": d.id,
        "receiver": d.receiver,
        "kind": d.kind,
        "action": d.action,
        "state": d.state,
        "idempotency_key": d.idempotency_key,
        "created_at": d.created_at.isoformat(),
        "due_at": d.due_at.isoformat(),
        "sent_at": _time(d.sent_at),
        "last_error": d.last_error,
        "attempts": [
            {
                "at": a.at.isoformat(),
                "outcome": a.outcome,
                "status_code": a.status_code,
                "latency_ms": a.latency_ms,
                "reason": a.reason,
                "excerpt": a.excerpt,
            }
            for a in d.attempts
        ],
    }


def _alert(a: AlertSeries) -> dict[str, Any]:
    return {
        "fingerprint": a.fingerprint,
        "fingerprint_derived": a.fingerprint_derived,
        "alertname": a.alertname,
        "labels": a.labels,
        "episodes": [_episode(e) for e in a.episodes],
    }


def _episode(e: Episode) -> dict[str, Any]:
    return {
        "status": e.status,
        "resolution": e.resolution,
        "seen_firing": e.seen_firing,
        "starts_at": e.starts_at.isoformat(),
        "ends_at": _time(e.ends_at),
        "first_received_at": e.first_received_at.isoformat(),
        "last_received_at": e.last_received_at.isoformat(),
        "seen_count": e.seen_count,
        "stale_firing_count": e.stale_firing_count,
        "absent_since": _time(e.absent_since),
        "annotations": e.annotations,
        "generator_url": e.generator_url,
        "runbook": {
            "url": e.runbook.url,
            "source": e.runbook.source,
            "guidance": e.runbook.guidance,
        },
        "context_state": e.context_state,
        "context": None if e.context is None else [item.stored for item in e.context],
    }


def _payload(p: PayloadRef) -> dict[str, Any]:
    return {
        "receipt": p.receipt,
        "received_at": p.received_at.isoformat(),
        "sha256": p.sha256,
        "size": p.size,
        "remote_addr": p.remote_addr,
        "user_agent": p.user_agent,
        "external_url": p.external_url,
        "summary": p.summary,
        "notification_reason": p.notification_reason,
        "href": f"/api/v1/payloads/{p.receipt}",
    }


def _time(at: datetime | None) -> str | None:
    return at.isoformat() if at else None
