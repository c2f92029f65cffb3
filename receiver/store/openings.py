"""The opening path: the first notification of a group, every alert firing, in a few statements.

For a group never seen, the full intake (``receiver.service.apply_notification``) can only
reach one outcome: one new incident holding one new episode per alert, its first timeline
events, its label index and a trigger per routed receiver. ``plan_opening`` works out those
rows with the same rules (and the helpers of ``receiver.store.incidents``); ``OpeningRepository``
inserts them with one Core statement per table. ``tests/integration/test_intake_shortcuts.py``
holds the result to the full intake's, row for row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert

from receiver.enrich.runbooks import RunbookCatalogue
from receiver.model.alerts import AlertStatus, Notification, most_severe
from receiver.store.incidents import MAX_SEVERITY, MAX_TITLE, _brief, _clip, _search_text
from receiver.store.repositories import (
    MAX_INDEXED_LABEL_VALUE,
    CoreRepository,
    add_receipt_row,
    insert_or_ignore,
)
from receiver.store.tables import (
    AlertEpisode,
    AlertGroup,
    Delivery,
    Incident,
    IncidentEvent,
    IncidentLabel,
    IncidentReceipt,
)

FIRING = AlertStatus.FIRING.value
_groups = AlertGroup.__table__
ADD_INCIDENT = insert(Incident.__table__).returning(Incident.__table__.c.id)
ADD_EPISODES = insert(AlertEpisode.__table__)
ADD_EVENTS = insert(IncidentEvent.__table__)
ADD_LABELS = insert(IncidentLabel.__table__)
ADD_DELIVERIES = insert(Delivery.__table__)
LINK = insert(IncidentReceipt.__table__)


@dataclass
class Opening:
    """The rows one opening writes, before the ids exist."""

    incident: dict[str, Any]
    episodes: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    labels: set[tuple[str, str]] = field(default_factory=set)
    missing_runbooks: list[str] = field(default_factory=list)


def plan_opening(
    n: Notification, now: datetime, runbooks: RunbookCatalogue, context_enabled: bool
) -> Opening:
    """The incident a new group's notification opens (every alert firing, each fingerprint
    once), as ``IncidentWriter`` would build it alert by alert."""
    first = n.alerts[0]
    title = n.common_annotations.get("summary") or first.annotations.get("summary")
    title = (title or first.alertname)[:MAX_TITLE]
    labels = n.common_labels or first.labels
    search_text = _search_text([title, n.receiver, *labels.values()])
    severity = _clip(first.labels.get("severity"), MAX_SEVERITY)
    incident: dict[str, Any] = {
        "status": FIRING,
        "receiver": n.receiver,
        "alertname": _clip(labels.get("alertname", first.alertname), 255),
        "title": title,
        "labels": labels,
        "annotations": n.common_annotations or first.annotations,
        "external_url": n.external_url,
        "opened_at": min(a.starts_at for a in n.alerts),
        "resolved_at": None,
        "first_received_at": now,
        "last_received_at": now,
        "notification_count": 1,
        "duplicate_count": 0,
        "alert_count": len(n.alerts),
        "episode_count": len(n.alerts),
        "flapping": False,
        "flap_count": 1,
        "truncated": False,
        "opened_by_resolve": False,
        "runbook_url": None,
        "guidance": None,
        "runbook_missing": False,
        "acknowledged_at": None,
        "acknowledged_by": None,
    }
    opening = Opening(incident)
    for i, alert in enumerate(n.alerts):
        kind = "opened" if i == 0 else "alert_added"
        opening.events.append(
            {"at": now, "kind": kind, "fingerprint": alert.fingerprint, "detail": _brief(alert)}
        )
        runbook = runbooks.resolve(alert.labels, alert.annotations)
        if incident["runbook_url"] is None and runbook.url:
            incident["runbook_url"] = runbook.url
        if incident["guidance"] is None and runbook.guidance:
            incident["guidance"] = runbook.guidance
        if runbook.missing:
            incident["runbook_missing"] = True
            opening.missing_runbooks.append(alert.alertname)
        opening.episodes.append(
            {
                "fingerprint": alert.fingerprint,
                "fingerprint_derived": alert.fingerprint_derived,
                "status": FIRING,
                "resolution": None,
                "seen_firing": True,
                "alertname": _clip(alert.alertname, 255),
                "labels": alert.labels,
                "annotations": alert.annotations,
                "generator_url": alert.generator_url,
                "starts_at": alert.starts_at,
                "ends_at": None,
                "first_received_at": now,
                "last_received_at": now,
                "seen_count": 1,
                "stale_firing_count": 0,
                "absent_since": None,
                "runbook_url": runbook.url,
                "runbook_source": runbook.source,
                "guidance": runbook.guidance,
                "context_state": "pending" if context_enabled else "none",
                "context_claimed_at": None,
                "context": None,
            }
        )
        opening.labels |= {
            (name, value)
            for name, value in alert.labels.items()
            if len(value.encode()) <= MAX_INDEXED_LABEL_VALUE and len(name.encode()) <= 255
        }
        extra = [v for v in alert.labels.values() if v.lower() not in search_text]
        if extra:
            search_text = _search_text([search_text, *extra])
        severity = most_severe([severity, _clip(alert.labels.get("severity"), MAX_SEVERITY)])
    incident["search_text"], incident["severity"] = search_text, severity
    return opening


class OpeningRepository(CoreRepository):
    def create_group(self, n: Notification, now: datetime) -> int | None:
        """Insert the group; None if it exists after all (another writer was first)."""
        stmt = insert_or_ignore(
            self._conn.dialect.name, _groups, ("receiver", "group_key_sha256"), "id"
        )
        row = {
            "receiver": n.receiver,
            "group_key": n.group_key,
            "group_key_sha256": n.group_key_sha256,
            "group_key_derived": n.group_key_derived,
            "group_labels": n.group_labels,
            "first_seen_at": now,
            "last_seen_at": now,
        }
        return self._conn.execute(stmt, row).scalar_one_or_none()

    def add_receipt(self, body: bytes, body_sha256: str, values: dict[str, Any]) -> int:
        """Store the body (once per content) and the receipt."""
        return add_receipt_row(self._conn, body, body_sha256, values)

    def add_incident(self, group_id: int, opening: Opening) -> int:
        """Insert the planned incident, open in this group; its id."""
        row = {**opening.incident, "group_id": group_id, "open_group_id": group_id}
        return self._conn.execute(ADD_INCIDENT, row).scalar_one()

    def add_details(
        self, group_id: int, incident_id: int, receipt_id: int, opening: Opening
    ) -> None:
        """Its episodes, timeline, label index and the link to the receipt."""
        ids = {"group_id": group_id, "incident_id": incident_id}
        self._execute(ADD_EPISODES, [{**e, **ids} for e in opening.episodes])
        caused = {"incident_id": incident_id, "receipt_id": receipt_id}
        self._execute(ADD_EVENTS, [{**e, **caused} for e in opening.events])
        labels = [{"incident_id": incident_id, "name": k, "value": v} for k, v in opening.labels]
        self._execute(ADD_LABELS, labels)
        self._execute(LINK, [caused])

    def add_triggers(
        self, incident_id: int, receivers: list[tuple[str, str]], now: datetime, trace: str | None
    ) -> None:
        """The first delivery (a trigger, seq 1) to each (name, kind) routed to."""
        rows = [
            {
                "incident_id": incident_id,
                "receiver": name,
                "kind": kind,
                "action": "trigger",
                "seq": 1,
                "idempotency_key": f"{incident_id}:{name}:trigger:1",
                "state": "pending",
                "due_at": now,
                "created_at": now,
                "claimed_at": None,
                "sent_at": None,
                "attempts": 0,
                "last_error": None,
                "traceparent": trace,
            }
            for name, kind in receivers
        ]
        self._execute(ADD_DELIVERIES, rows)

    def _execute(self, stmt: Any, rows: list[dict[str, Any]]) -> None:
        if rows:
            self._conn.execute(stmt, rows[0] if len(rows) == 1 else rows)
