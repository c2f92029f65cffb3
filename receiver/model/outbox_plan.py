"""Which deliveries one notification queues or cancels (pure: the outbox's state comes in).

Opened: a trigger per routed receiver. Changed: one update per receiver, coalesced (a pending
update absorbs later changes); a re-firing inside a hold-down cancels the held resolve, and
one after a resolve was sent pages again. Resolved: a resolve, held back by the hold-down
while flapping or one start short. Repeats and duplicates queue nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from receiver.model.dedup import FlapPolicy
from receiver.model.intake_state import FIRING, IncidentRow, IntakePlan

Route = Callable[[dict[str, str]], list[tuple[str, str]]]  # labels -> [(receiver, kind)]


@dataclass(frozen=True)
class ReceiverOutbox:
    """One incident's deliveries to one receiver, as far as queueing needs them."""

    kind: str
    last_seq: int  # of any delivery, cancelled ones too
    last_action: str | None  # of the newest one not cancelled
    pending: dict[str, tuple[int, ...]] = field(default_factory=dict)  # action: ids


@dataclass(frozen=True)
class QueuedDelivery:
    incident_ref: int
    receiver: str
    kind: str
    action: str  # trigger | update | resolve
    seq: int
    due_at: datetime


@dataclass(frozen=True)
class DeliveryPlan:
    cancel: tuple[int, ...] = ()  # ids of pending deliveries no longer wanted
    queue: tuple[QueuedDelivery, ...] = ()


@dataclass(frozen=True)
class OutboxRules:
    route: Route
    flapping: FlapPolicy
    coalesce: timedelta = timedelta(seconds=2)


def idempotency_key(incident_id: int, receiver: str, action: str, seq: int) -> str:
    """The key a delivery is sent with: the same on every try, never on two deliveries."""
    return f"{incident_id}:{receiver}:{action}:{seq}"


def outbox_needed(plan: IntakePlan) -> list[int]:
    """The stored incidents whose deliveries the plan may queue after or cancel."""
    out = []
    for ref, change in plan.changes.items():
        row = plan.incident(ref)
        if ref > 0 and change != "opened" and row is not None and not row.opened_by_resolve:
            out.append(ref)
    return out


def plan_deliveries(
    plan: IntakePlan,
    outbox: dict[int, dict[str, ReceiverOutbox]],
    rules: OutboxRules,
    now: datetime,
) -> DeliveryPlan:
    """Turn what changed into deliveries; ``outbox`` holds those of ``outbox_needed``."""
    cancel: list[int] = []
    queue: list[QueuedDelivery] = []
    for ref in plan.touched:
        change, incident = plan.changes.get(ref), plan.incident(ref)
        if change is None or incident is None or incident.opened_by_resolve:
            continue
        if change == "opened":
            for name, kind in rules.route(incident.labels):
                queue.append(QueuedDelivery(ref, name, kind, "trigger", 1, now))
            continue
        for name, sent in outbox.get(ref, {}).items():  # in the order first queued
            queued = _next_for(change, incident, sent, rules, now)
            if queued is not None:
                action, due, cancelled = queued
                cancel += cancelled
                if action:
                    queue.append(
                        QueuedDelivery(ref, name, sent.kind, action, sent.last_seq + 1, due)
                    )
    return DeliveryPlan(tuple(sorted(cancel)), tuple(queue))


def _next_for(
    change: str, incident: IncidentRow, sent: ReceiverOutbox, rules: OutboxRules, now: datetime
) -> tuple[str | None, datetime, tuple[int, ...]] | None:
    """For a receiver the incident was routed to: the action to queue (and when), and the
    pending deliveries it cancels."""
    if change == "resolved":
        # a series that already re-fired may be about to flap: hold the resolve back so a
        # re-firing inside the hold-down updates the page instead of paging again
        at_risk = incident.flapping or rules.flapping.may_flap(incident.flap_count)
        hold = rules.flapping.hold_down if at_risk else timedelta(0)
        return "resolve", now + hold, sent.pending.get("update", ())
    if incident.status != FIRING:
        return None
    held = sent.pending.get("resolve", ())  # cancelled: the page stays open, updated
    if not held and sent.last_action == "resolve":
        return "trigger", now, ()  # resolved at the vendor: page again
    if sent.pending.get("update"):
        return None, now, held  # a pending update absorbs this change
    return "update", now + rules.coalesce, held
