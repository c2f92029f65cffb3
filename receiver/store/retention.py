"""Retention of whole incidents: resolved ones past the cut-off go, with every row only they use.

One pass is one short transaction over at most ``limit`` incidents, oldest first. It locks their
groups, then them (``FOR UPDATE SKIP LOCKED`` on Postgres, in the order an intake locks, so the
two do not deadlock; what another transaction holds is left for the next pass), checks again
under the locks that none has a delivery still to send, then deletes children before parents:
delivery attempts, deliveries, notification threads, labels, timeline events, alert episodes,
the links to webhook receipts, the receipts no other incident is linked to, the incidents; then
the bodies no receipt is left using and the alert groups nothing refers to any more (and idle
since the cut-off). Every statement finds its rows through an index on the incident, delivery,
receipt, body or group id (docs/benchmarks.md has the plans).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, exists, select

from receiver.store.outbox import OPEN_STATES
from receiver.store.repositories import CoreRepository, delete_unused_bodies
from receiver.store.tables import (
    AlertEpisode,
    AlertGroup,
    Delivery,
    DeliveryAttempt,
    Incident,
    IncidentEvent,
    IncidentLabel,
    IncidentReceipt,
    NotificationThread,
    WebhookReceipt,
)

# the tables a pass deletes from, in the order it does (reports list them so)
TABLES = (
    "delivery_attempts",
    "deliveries",
    "notification_threads",
    "incident_labels",
    "incident_events",
    "alert_episodes",
    "incident_receipts",
    "webhook_receipts",
    "incidents",
    "payload_bodies",
    "alert_groups",
)
CHUNK = 500  # ids bound per statement (SQLite's limit on variables is far above)

_incidents = Incident.__table__
_deliveries = Delivery.__table__
_links = IncidentReceipt.__table__
_receipts = WebhookReceipt.__table__
_groups = AlertGroup.__table__


def _no_open_delivery() -> Any:
    """No delivery of the incident is waiting or being sent."""
    return ~exists().where(
        _deliveries.c.incident_id == _incidents.c.id, _deliveries.c.state.in_(OPEN_STATES)
    )


def due_incidents(resolved_before: datetime, limit: int) -> Select[Any]:
    """Resolved incidents past the cut-off with nothing left to send, oldest first.

    An incident resolves after it opened, so ``opened_at`` bounds the range too: the scan walks
    an index on ``opened_at`` in order (``ix_incidents_status_opened_at`` on SQLite,
    ``ix_incidents_opened_at_resolved_at`` on Postgres) and stops after ``limit`` rows.
    """
    return (
        select(_incidents.c.id, _incidents.c.group_id)
        .where(
            _incidents.c.status == "resolved",
            _incidents.c.opened_at < resolved_before,
            _incidents.c.resolved_at < resolved_before,
            _no_open_delivery(),
        )
        .order_by(_incidents.c.opened_at, _incidents.c.id)
        .limit(limit)
    )


def _chunks(ids: Sequence[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(ids), CHUNK):
        yield list(ids[start : start + CHUNK])


class IncidentRetention(CoreRepository):
    """Deletes old resolved incidents and the rows that belong only to them."""

    def prune(self, resolved_before: datetime, limit: int) -> dict[str, int]:
        """One pass: up to ``limit`` incidents resolved before ``resolved_before``, with their
        rows; the rows deleted per table (every table of ``TABLES``, zero included)."""
        counts = dict.fromkeys(TABLES, 0)
        claimed = self._claim(resolved_before, limit)
        if not claimed:
            return counts
        ids = sorted(claimed)
        counts.update(self._delete_children(ids))
        shas, counts["incident_receipts"], counts["webhook_receipts"] = self._delete_receipts(ids)
        counts["incidents"] = self._delete(_incidents, _incidents.c.id, ids)
        counts["payload_bodies"] = delete_unused_bodies(self._conn, shas)
        groups = sorted(set(claimed.values()))
        counts["alert_groups"] = self._delete_unused_groups(groups, resolved_before)
        return counts

    def _claim(self, resolved_before: datetime, limit: int) -> dict[int, int]:
        """Lock the pass's incidents (id -> group id) in the order an intake locks: the groups
        first (an intake holds its group's row while it reads and writes the group's incidents),
        then the incidents; skip whatever another transaction holds. Then, with nothing left to
        change them, check again that none has a delivery to send."""
        due = {
            row.id: row.group_id
            for row in self._conn.execute(due_incidents(resolved_before, limit))
        }
        if not due:
            return {}
        lock_groups = (
            select(_groups.c.id)
            .where(_groups.c.id.in_(sorted(set(due.values()))))
            .order_by(_groups.c.id)
            .with_for_update(skip_locked=True)
        )
        groups = set(self._conn.scalars(lock_groups))
        lock_incidents = (
            select(_incidents.c.id)
            .where(_incidents.c.id.in_(sorted(i for i, g in due.items() if g in groups)))
            .order_by(_incidents.c.id)
            .with_for_update(skip_locked=True)
        )
        claimed = {i: due[i] for i in self._conn.scalars(lock_incidents)}
        if not claimed:
            return {}
        still_due = select(_incidents.c.id).where(
            _incidents.c.id.in_(sorted(claimed)),
            _incidents.c.status == "resolved",
            _incidents.c.resolved_at < resolved_before,
            _no_open_delivery(),
        )
        return {i: claimed[i] for i in self._conn.scalars(still_due)}

    def _delete_children(self, ids: list[int]) -> dict[str, int]:
        """The rows hanging off the incidents themselves, children first."""
        deliveries = self._ids(select(_deliveries.c.id).where(_deliveries.c.incident_id.in_(ids)))
        attempts = DeliveryAttempt.__table__
        counts = {"delivery_attempts": self._delete(attempts, attempts.c.delivery_id, deliveries)}
        for model in (Delivery, NotificationThread, IncidentLabel, IncidentEvent, AlertEpisode):
            table = model.__table__
            counts[table.name] = self._delete(table, table.c.incident_id, ids)
        return counts

    def _delete_receipts(self, ids: list[int]) -> tuple[list[str], int, int]:
        """The links to receipts, then the receipts no other incident is linked to (a receipt
        only ever gains links in the intake that stores it); the bodies those used, and how
        many links and receipts went."""
        linked = self._ids(select(_links.c.receipt_id).where(_links.c.incident_id.in_(ids)))
        shared: set[int] = set()
        for chunk in _chunks(linked):
            elsewhere = select(_links.c.receipt_id).where(
                _links.c.receipt_id.in_(chunk), _links.c.incident_id.not_in(ids)
            )
            shared.update(self._conn.scalars(elsewhere))
        links = self._delete(_links, _links.c.incident_id, ids)
        shas: set[str] = set()
        only_ours = [r for r in linked if r not in shared]
        for chunk in _chunks(only_ours):
            stmt = delete(_receipts).where(_receipts.c.id.in_(chunk))
            shas.update(self._conn.scalars(stmt.returning(_receipts.c.body_sha256)))
        return sorted(shas), links, len(only_ours)

    def _delete_unused_groups(self, group_ids: list[int], idle_before: datetime) -> int:
        """Of these groups (locked by the claim), those idle since the cut-off that no incident,
        episode or receipt refers to."""
        g = _groups.c.id
        referred = (
            exists().where(_incidents.c.group_id == g)
            | exists().where(AlertEpisode.__table__.c.group_id == g)
            | exists().where(_receipts.c.group_id == g)
        )
        stmt = delete(_groups).where(
            g.in_(group_ids), _groups.c.last_seen_at < idle_before, ~referred
        )
        return self._conn.execute(stmt).rowcount

    def _ids(self, stmt: Select[Any]) -> list[Any]:
        """The distinct values a one-column query finds, sorted."""
        return sorted(set(self._conn.scalars(stmt)))

    def _delete(self, table: Any, column: Any, values: list[Any]) -> int:
        """Delete the rows whose ``column`` is one of ``values``; how many went."""
        deleted = 0
        for chunk in _chunks(values):
            deleted += self._conn.execute(delete(table).where(column.in_(chunk))).rowcount
        return deleted
