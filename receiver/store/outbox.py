"""The outbox: deliveries (queued by the intake, store/intake_writes.py) claimed and settled
by workers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, exists, insert, select, update
from sqlalchemy.orm import Session, aliased

from receiver.store.repositories import changed_rows
from receiver.store.tables import Delivery, DeliveryAttempt, NotificationThread

OPEN_STATES = ("pending", "sending")
_deliveries = Delivery.__table__


class DeliveryRepository:
    def __init__(self, session: Session):
        self.session = session

    # -- claiming and settling (worker) ---------------------------------------------------------

    def claim(
        self, limit: int, now: datetime, stale_before: datetime, due_by: datetime | None = None
    ) -> list[tuple[Delivery, bool]]:
        """Due deliveries whose earlier siblings are all settled, marked ``sending``: first
        those a dead worker left ``sending`` since before ``stale_before``, then the pending
        ones due by ``due_by`` (default ``now``), oldest first. Oldest, not soonest due: one
        held back (pacing, a retry) keeps its place in line when it falls due again, before
        deliveries queued after it.

        Returns (delivery, reclaimed): reclaimed when a previous claim died mid-send.
        ``FOR UPDATE SKIP LOCKED`` lets several workers claim side by side on Postgres.
        The pending ones are walked in id order with due_at read from an index (migration
        0011), so a claim reads about the pending deliveries older than the ones it takes,
        never the sent history nor every due one (docs/benchmarks.md, "Outbox claim").
        """
        stale = self._claimable(
            (Delivery.state == "sending") & (Delivery.claimed_at < stale_before), limit
        )
        rows = list(self.session.scalars(stale))
        if len(rows) < limit:
            due = (Delivery.state == "pending") & (Delivery.due_at <= (due_by or now))
            rows += self.session.scalars(self._claimable(due, limit - len(rows)))
        claimed = []
        for delivery in rows:
            claimed.append((delivery, delivery.state == "sending"))
            delivery.state, delivery.claimed_at = "sending", now
        return claimed

    def _claimable(self, condition: Any, limit: int) -> Select[Delivery]:
        """Deliveries meeting ``condition`` with no earlier open sibling (same incident and
        receiver), oldest first, locked (skipping those another worker holds)."""
        earlier = aliased(Delivery)
        blocked = exists().where(
            earlier.incident_id == Delivery.incident_id,
            earlier.receiver == Delivery.receiver,
            earlier.id < Delivery.id,
            earlier.state.in_(OPEN_STATES),
        )
        return (
            select(Delivery)
            .where(condition, ~blocked)
            .order_by(Delivery.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )

    def revive(self, delivery_ids: list[int], now: datetime) -> int:
        """Dead deliveries back to pending, due now, with a fresh age (for ``outbox retry``)."""
        return changed_rows(
            self.session,
            update(Delivery)
            .where(Delivery.id.in_(delivery_ids), Delivery.state == "dead")
            .values(state="pending", due_at=now, created_at=now),
        )

    def release(self, receiver: str, now: datetime, limit: int) -> int:
        """Up to ``limit`` of the receiver's deliveries backing off after failed sends fall due
        at ``now`` (its vendor answers again); how many. Rows another worker is claiming
        (locked) are skipped: they are being sent. Oldest first, along the claim's index: the
        ones released before (due ``now``) are passed over in the index."""
        backing_off = (
            select(Delivery.id)
            .where(
                Delivery.state == "pending",
                Delivery.due_at > now,
                Delivery.receiver == receiver,
                Delivery.attempts > 0,
            )
            .order_by(Delivery.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        stmt = update(_deliveries).where(_deliveries.c.id.in_(backing_off)).values(due_at=now)
        return changed_rows(self.session, stmt)

    def load(self, delivery_ids: list[int]) -> dict[int, Delivery]:
        """Deliveries by id, in one statement."""
        rows = self.session.scalars(select(Delivery).where(Delivery.id.in_(delivery_ids)))
        return {d.id: d for d in rows}

    def threads(self, keys: list[tuple[int, str]]) -> dict[tuple[int, str], NotificationThread]:
        """Notification threads by (incident id, receiver), in one statement."""
        if not keys:
            return {}
        rows = self.session.scalars(
            select(NotificationThread).where(
                NotificationThread.incident_id.in_({incident_id for incident_id, _ in keys})
            )
        )
        wanted = set(keys)
        return {
            (t.incident_id, t.receiver): t for t in rows if (t.incident_id, t.receiver) in wanted
        }

    def settle(
        self, delivery_id: int, values: dict[str, Any], attempt: dict[str, Any] | None
    ) -> None:
        """Set a delivery's columns after a send, counting and storing the attempt (column ->
        value) unless nothing was sent."""
        stmt = update(_deliveries).where(_deliveries.c.id == delivery_id).values(values)
        if attempt is not None:
            stmt = stmt.values(attempts=_deliveries.c.attempts + 1)
            self.session.execute(insert(DeliveryAttempt.__table__), attempt)
        self.session.execute(stmt)

    def remember(
        self,
        known: bool,
        incident_id: int,
        receiver: str,
        external: dict[str, Any],
        last_event_id: int,
        now: datetime,
    ) -> None:
        """Store the thread of (incident, receiver): what sends taught (``external``) and the
        last event told; ``known``: it is stored already (else it is added)."""
        values = {"external": external, "last_event_id": last_event_id, "updated_at": now}
        threads = NotificationThread.__table__
        if known:
            self.session.execute(
                update(threads)
                .where(threads.c.incident_id == incident_id, threads.c.receiver == receiver)
                .values(values)
            )
        else:
            row = {"incident_id": incident_id, "receiver": receiver, **values}
            self.session.execute(insert(threads), row)
