"""The worker's delivery step: claim due deliveries, send outside any transaction, settle.

A delivery is claimed (``sending``) and committed before the network call; a worker that dies
mid-send leaves it ``sending``, and another worker reclaims it after ``CLAIM_TIMEOUT`` with the
same idempotency key (PagerDuty merges a repeated trigger by dedup key; Slack posts carry the
key in their metadata and are looked up before posting again).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from receiver import tracing
from receiver.model.delivery import Outcome, RetryPolicy, SendResult
from receiver.notify import DeliveryJob, Notifier, redact
from receiver.store.queries import IncidentQueries
from receiver.store.tables import Delivery, DeliveryAttempt
from receiver.store.unit_of_work import UnitOfWork
from receiver.tracing import TraceContext

log = logging.getLogger(__name__)
CLAIM_TIMEOUT = timedelta(seconds=60)  # longer than any notifier timeout
BATCH = 20


class DeliveryWorker:
    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        queries: IncidentQueries,
        notifiers: dict[str, Notifier],
        policy: RetryPolicy,
        clock: Callable[[], datetime],
        public_url: str | None = None,
        dry_run: bool = False,
        secrets: tuple[str, ...] = (),
        on_result: Callable[[str, str, float], None] = lambda kind, outcome, seconds: None,
        on_delivered: Callable[[str, float], None] = lambda kind, seconds: None,
        rand: Callable[[], float] = random.random,
    ):
        self.uow_factory, self.queries, self.notifiers = uow_factory, queries, notifiers
        self.policy, self.clock, self.public_url = policy, clock, public_url
        self.dry_run, self.secrets = dry_run, secrets
        self.on_result, self.on_delivered, self.rand = on_result, on_delivered, rand

    def close(self) -> None:
        for notifier in self.notifiers.values():
            notifier.close()

    def run_once(self, limit: int = BATCH) -> int:
        """Send up to ``limit`` due deliveries; return how many were attempted or settled."""
        now = self.clock()
        with self.uow_factory() as uow:
            claimed = [
                (d.id, reclaimed)
                for d, reclaimed in uow.deliveries.claim(limit, now, now - CLAIM_TIMEOUT)
            ]
            uow.commit()
        for delivery_id, reclaimed in claimed:
            self._deliver(delivery_id, reclaimed)
        return len(claimed)

    def drain(self, max_rounds: int = 100) -> int:
        total = 0
        for _ in range(max_rounds):
            count = self.run_once()
            if not count:
                break
            total += count
        return total

    def _deliver(self, delivery_id: int, reclaimed: bool) -> None:
        job, delivery = self._job(delivery_id, reclaimed)
        trace = TraceContext.continue_from(delivery["traceparent"])  # the webhook's trace
        with tracing.scope(trace, delivery_id=delivery_id, receiver=delivery["receiver"]):
            self._send(job, delivery)

    def _send(self, job: DeliveryJob, delivery: dict[str, Any]) -> None:
        notifier = self.notifiers.get(delivery["receiver"])
        started = time.perf_counter()
        if notifier is None:
            result = SendResult(
                Outcome.GIVE_UP, f"receiver {delivery['receiver']!r} not configured"
            )
        elif self.dry_run:
            rendered = json.dumps(notifier.render(job), default=str)
            result = SendResult(Outcome.OK, "dry run: rendered, not sent", excerpt=rendered[:500])
        else:
            result = notifier.send(job)
        elapsed = time.perf_counter() - started
        # whatever a vendor echoed back, no secret reaches the database, the API or the logs
        result = replace(
            result,
            reason=redact(result.reason, list(self.secrets)),
            excerpt=redact(result.excerpt, list(self.secrets)),
        )
        self._settle(job.delivery_id, job, result, elapsed)
        if result.attempted:
            self.on_result(delivery["kind"], result.outcome.value, elapsed)
            log.info(
                "%s %s of incident %s: %s (%s)",
                delivery["kind"],
                job.action,
                delivery["incident_id"],
                result.outcome.value,
                result.reason,
                extra={
                    "incident_id": delivery["incident_id"],
                    "action": job.action,
                    "outcome": result.outcome.value,
                    "status": result.status_code,
                    "latency_ms": round(elapsed * 1000, 2),
                },
            )

    def _job(self, delivery_id: int, reclaimed: bool) -> tuple[DeliveryJob, dict[str, Any]]:
        with self.uow_factory() as uow:
            d = uow.deliveries.get(delivery_id)
            thread = uow.deliveries.thread(d.incident_id, d.receiver)
            delivery = {
                "receiver": d.receiver,
                "kind": d.kind,
                "incident_id": d.incident_id,
                "traceparent": d.traceparent,
            }
            action, key = d.action, d.idempotency_key
            external = dict(thread.external) if thread else {}
            last = thread.last_event_id if thread else 0
        incident = self.queries.get_incident(delivery["incident_id"]) or {}
        job = DeliveryJob(
            delivery_id=delivery_id,
            idempotency_key=key,
            action=action,
            incident=incident,
            external=external,
            new_events=[e for e in incident.get("timeline", []) if e["id"] > last],
            reclaimed=reclaimed,
            incident_url=self._incident_url(delivery["incident_id"]),
        )
        return job, delivery

    def _incident_url(self, incident_id: int) -> str | None:
        if not self.public_url:
            return None
        return f"{self.public_url.rstrip('/')}/incidents/{incident_id}"

    def _settle(
        self, delivery_id: int, job: DeliveryJob, result: SendResult, elapsed: float
    ) -> None:
        now = self.clock()
        with self.uow_factory() as uow:
            if result.attempted:
                delivery = uow.deliveries.record_attempt(
                    delivery_id, _attempt(now, result, elapsed)
                )
            else:
                delivery = uow.deliveries.get(delivery_id)
            self._transition(delivery, result, now)
            if result.outcome is Outcome.OK:
                self.on_delivered(delivery.kind, (now - delivery.created_at).total_seconds())
                told = job.incident.get("timeline", []) if result.told_changes else []
                last_event = max((e["id"] for e in told), default=0)
                uow.deliveries.remember(
                    delivery.incident_id, delivery.receiver, result.external, last_event, now
                )
            uow.commit()

    def _transition(self, delivery: Delivery, result: SendResult, now: datetime) -> None:
        if result.outcome is Outcome.OK:
            delivery.state, delivery.sent_at, delivery.last_error = "sent", now, None
            return
        delivery.last_error = result.reason
        if result.outcome is Outcome.GIVE_UP or self.policy.is_dead(delivery.created_at, now):
            delivery.state = "dead"
            log.error(
                "delivery %s to %s is dead: %s",
                delivery.idempotency_key,
                delivery.receiver,
                result.reason,
            )
            return
        if result.attempted:
            delay = self.policy.delay(delivery.attempts, result.retry_after, self.rand)
        else:
            delay = result.retry_after or 0.0
        delivery.state, delivery.due_at = "pending", now + timedelta(seconds=delay)


def _attempt(now: datetime, result: SendResult, elapsed: float) -> DeliveryAttempt:
    return DeliveryAttempt(
        at=now,
        outcome=result.outcome.value,
        status_code=result.status_code,
        latency_ms=int(elapsed * 1000),
        reason=result.reason[:1000],
        excerpt=result.excerpt[:500] or None,
    )
