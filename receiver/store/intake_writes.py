"""The intake's writes: an ``IntakePlan`` applied in Core statements built once.

Rows are written in one fixed order after the group's lock (``receiver.store.intake``): new
incidents, the body and the receipt, new episodes, changed incidents (by id), changed
episodes (by id), the timeline, the label index, the receipt's links, the heartbeat, then
the outbox. Every intake takes its locks in this order, so two never wait on each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, distinct, func, insert, select, update

from receiver.model.intake_state import FIRING, EpisodeRow, IncidentRow, IntakePlan, NewEpisode
from receiver.model.outbox_plan import DeliveryPlan, QueuedDelivery, idempotency_key
from receiver.store.repositories import CoreRepository, add_receipt_row, insert_or_ignore
from receiver.store.tables import (
    AlertEpisode,
    Delivery,
    Incident,
    IncidentEvent,
    IncidentLabel,
    IncidentReceipt,
)
from receiver.store.watch import HeartbeatRepository

_incidents, _episodes, _deliveries = Incident.__table__, AlertEpisode.__table__, Delivery.__table__
i, e, d = _incidents.c, _episodes.c, _deliveries.c
_INCIDENT_FIELDS = [f for f in IncidentRow.__dataclass_fields__ if f != "ref"]
_SET_FIELDS = [f for f in _INCIDENT_FIELDS if f not in ("alert_count", "episode_count")]

ADD_INCIDENT = insert(_incidents).returning(i.id)
SET_INCIDENT = (
    update(_incidents)
    .where(i.id == bindparam("b_id"))
    .values(
        open_group_id=bindparam("b_open_group_id"),
        **{f: bindparam(f"b_{f}") for f in _SET_FIELDS},
    )
)
RECOUNT = (
    update(_incidents)
    .where(i.id == bindparam("b_id"))
    .values(
        alert_count=select(func.count(distinct(e.fingerprint)))
        .where(e.incident_id == i.id)
        .scalar_subquery(),
        episode_count=select(func.count()).where(e.incident_id == i.id).scalar_subquery(),
    )
)
COUNT_INCIDENTS = (
    update(_incidents)
    .where(i.id.in_(bindparam("ids", expanding=True)))
    .values(
        notification_count=i.notification_count + 1,
        duplicate_count=i.duplicate_count + 1,
        last_received_at=bindparam("b_now"),
    )
)
_EPISODE_SET = (
    "status",
    "ends_at",
    "resolution",
    "annotations",
    "last_received_at",
    "seen_count",
    "stale_firing_count",
)
SET_EPISODE = (
    update(_episodes)
    .where(e.id == bindparam("b_id"))
    .values(**{f: bindparam(f"b_{f}") for f in _EPISODE_SET})
)
_SET_BINDS = [(f, f"b_{f}") for f in _SET_FIELDS]
_EPISODE_SET_BINDS = [(f, f"b_{f}") for f in _EPISODE_SET]
COUNT_EPISODES = (
    update(_episodes)
    .where(e.id.in_(bindparam("ids", expanding=True)))
    .values(last_received_at=bindparam("b_now"), seen_count=e.seen_count + 1)
)
ADD_EPISODES = insert(_episodes)
ADD_EVENTS = insert(IncidentEvent.__table__)
LINK = insert(IncidentReceipt.__table__)
CANCEL = (
    update(_deliveries).where(d.id.in_(bindparam("ids", expanding=True))).values(state="cancelled")
)
ADD_DELIVERIES = insert(_deliveries)


@dataclass(frozen=True)
class Receipt:
    """The request as received: its body (None when stored already) and where it came from."""

    body: bytes | None
    body_sha256: str
    received_at: datetime
    receiver: str
    remote_addr: str | None
    user_agent: str | None
    external_url: str | None
    notification_reason: str | None = None


class IntakeWrites(CoreRepository):
    def apply(
        self,
        group_id: int,
        plan: IntakePlan,
        deliveries: DeliveryPlan,
        receipt: Receipt,
        summarize: Callable[[list[int]], dict[str, Any]],
        heartbeat: str | None = None,
        trace: str | None = None,
    ) -> int:
        """Write the plan; the receipt's id. ``summarize`` turns the ids of the incidents the
        plan touched into the summary the receipt keeps."""
        now = receipt.received_at
        ids = {ref: ref for ref in plan.touched if ref > 0}
        for row in plan.new_incidents:
            values = _incident_values(row, group_id)
            ids[row.ref] = self._conn.execute(ADD_INCIDENT, values).scalar_one()
        touched = sorted(ids[ref] for ref in plan.touched)
        receipt_id = add_receipt_row(
            self._conn,
            receipt.body,
            receipt.body_sha256,
            {
                "received_at": now,
                "receiver": receipt.receiver,
                "group_id": group_id,
                "remote_addr": receipt.remote_addr,
                "user_agent": (receipt.user_agent or "")[:255] or None,
                "external_url": receipt.external_url,
                "summary": summarize(touched),
                "notification_reason": receipt.notification_reason,
            },
        )
        self._many(ADD_EPISODES, [_episode_values(n, ids, group_id) for n in plan.new_episodes])
        if plan.counted_incidents:
            self._conn.execute(COUNT_INCIDENTS, {"ids": list(plan.counted_incidents), "b_now": now})
        self._many(SET_INCIDENT, [_set_incident(row, group_id) for row in plan.changed_incidents])
        self._many(RECOUNT, [{"b_id": ref} for ref in plan.recount])
        self._many(SET_EPISODE, [_set_episode(row) for row in plan.changed_episodes])
        if plan.seen_episodes:
            self._conn.execute(COUNT_EPISODES, {"ids": list(plan.seen_episodes), "b_now": now})
        caused = {"at": now, "receipt_id": receipt_id}
        events = [
            {
                **caused,
                "incident_id": ids[ev.incident_ref],
                "kind": ev.kind,
                "fingerprint": ev.fingerprint,
                "detail": ev.detail,
            }
            for ev in plan.events
        ]
        self._many(ADD_EVENTS, events)
        labels = [{"incident_id": ids[r], "name": k, "value": v} for r, k, v in plan.labels]
        dialect = self._conn.dialect.name
        self._many(insert_or_ignore(dialect, IncidentLabel.__table__), labels)
        links = [{"incident_id": n, "receipt_id": receipt_id} for n in touched]
        self._many(LINK, links)
        if heartbeat:
            HeartbeatRepository(self.session).beat(heartbeat, receipt.receiver, now)
        if deliveries.cancel:
            self._conn.execute(CANCEL, {"ids": list(deliveries.cancel)})
        self._many(ADD_DELIVERIES, [_delivery(q, ids, now, trace) for q in deliveries.queue])
        return receipt_id

    def _many(self, stmt: Any, rows: list[dict[str, Any]]) -> None:
        if rows:
            self._conn.execute(stmt, rows[0] if len(rows) == 1 else rows)


# The rows' fields are their columns; a frozen row keeps them in ``__dict__`` (as ``evolve``
# assumes), which is read directly: a webhook of 10 new alerts converts 11 rows.


def _incident_values(row: IncidentRow, group_id: int) -> dict[str, Any]:
    values = dict(row.__dict__)
    del values["ref"]
    values["group_id"] = group_id
    values["open_group_id"] = group_id if row.status == FIRING else None
    return values


def _set_incident(row: IncidentRow, group_id: int) -> dict[str, Any]:
    columns = row.__dict__
    values = {bound: columns[name] for name, bound in _SET_BINDS}
    values["b_id"] = row.ref
    values["b_open_group_id"] = group_id if row.status == FIRING else None
    return values


def _episode_values(new: NewEpisode, ids: dict[int, int], group_id: int) -> dict[str, Any]:
    values = {**new.row.__dict__, **new.__dict__}
    del values["row"], values["ref"]
    values["incident_id"] = ids[values.pop("incident_ref")]
    values["group_id"] = group_id
    return values


def _set_episode(row: EpisodeRow) -> dict[str, Any]:
    columns = row.__dict__
    values = {bound: columns[name] for name, bound in _EPISODE_SET_BINDS}
    values["b_id"] = row.ref
    return values


def _delivery(
    q: QueuedDelivery, ids: dict[int, int], now: datetime, trace: str | None
) -> dict[str, Any]:
    incident_id = ids[q.incident_ref]
    return {
        "incident_id": incident_id,
        "receiver": q.receiver,
        "kind": q.kind,
        "action": q.action,
        "seq": q.seq,
        "idempotency_key": idempotency_key(incident_id, q.receiver, q.action, q.seq),
        "state": "pending",
        "due_at": q.due_at,
        "created_at": now,
        "attempts": 0,
        "traceparent": trace,
    }
