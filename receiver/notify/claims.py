"""A claimed batch as the delivery worker sees it: each delivery with its job, read in one
snapshot, then what its send did; and the attempt row a send leaves."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from receiver.model.delivery import Outcome, SendResult, in_doubt
from receiver.notify import DeliveryJob
from receiver.store.outbox import DeliveryRepository
from receiver.store.queries import IncidentQueries
from receiver.store.snapshots import load_snapshots
from receiver.tracing import TraceContext

NOT_SENT = SendResult(Outcome.RETRY, "not sent", attempted=False)


@dataclass
class Claimed:
    """One delivery of a batch, as the batch's read found it, then its send's result, how long
    it took and when."""

    job: DeliveryJob
    receiver: str
    kind: str
    incident_id: int
    trace: TraceContext | None
    created_at: datetime
    due_at: datetime  # when it fell due (after a failure: the end of its backoff)
    attempts: int  # before this send
    thread_known: bool  # a thread of (incident, receiver) is stored
    thread_last: int  # its last told event
    result: SendResult = NOT_SENT
    elapsed: float = 0.0
    at: datetime = datetime.min
    values: dict[str, Any] = field(default_factory=dict)  # the columns it was settled with
    dead: bool = False

    def sent(self, result: SendResult, elapsed: float, at: datetime) -> None:
        self.result, self.elapsed, self.at = result, elapsed, at


def load_claimed(
    queries: IncidentQueries, claimed: dict[int, bool], now: datetime, public_url: str | None
) -> list[Claimed]:
    """The claimed deliveries (id: reclaimed) with their jobs, in claim order, read in one
    snapshot; ``now``: the claim's time."""
    with queries.session() as session:
        repo = DeliveryRepository(session)
        deliveries = repo.load(list(claimed))
        threads = repo.threads([(d.incident_id, d.receiver) for d in deliveries.values()])
        snapshots = load_snapshots(session, list({d.incident_id for d in deliveries.values()}))
    batch = []
    for delivery_id, reclaimed in claimed.items():
        d = deliveries[delivery_id]
        thread = threads.get((d.incident_id, d.receiver))
        last = (thread.last_event_id or 0) if thread else 0
        incident = snapshots[d.incident_id]  # read with its delivery, in one snapshot
        job = DeliveryJob(
            delivery_id=delivery_id,
            idempotency_key=d.idempotency_key,
            action=d.action,
            incident=incident,
            external=dict(thread.external) if thread else {},
            new_events=tuple(e for e in incident.timeline if e.id > last),
            reclaimed=reclaimed or in_doubt(d.last_error),
            incident_url=_incident_url(public_url, d.incident_id),
            as_of=now,
            last_error=d.last_error,
        )
        trace = TraceContext.continue_from(d.traceparent)  # the webhook's trace
        batch.append(
            Claimed(
                job,
                d.receiver,
                d.kind,
                d.incident_id,
                trace,
                d.created_at,
                d.due_at,
                d.attempts,
                thread is not None,
                last,
            )
        )
    return batch


def attempt_row(
    delivery_id: int, now: datetime, result: SendResult, elapsed: float
) -> dict[str, Any]:
    """The ``delivery_attempts`` row of one send."""
    return {
        "delivery_id": delivery_id,
        "at": now,
        "outcome": result.outcome.value,
        "status_code": result.status_code,
        "latency_ms": int(elapsed * 1000),
        "reason": result.reason[:1000],
        "excerpt": result.excerpt[:500] or None,
    }


def _incident_url(public_url: str | None, incident_id: int) -> str | None:
    if not public_url:
        return None
    return f"{public_url.rstrip('/')}/incidents/{incident_id}"
