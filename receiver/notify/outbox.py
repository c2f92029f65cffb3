"""The worker's delivery step: claim due deliveries, send outside any transaction, settle.

A delivery is claimed (``sending``) and committed before the network call; a worker that dies
mid-send leaves it ``sending``, and another worker reclaims it after ``CLAIM_TIMEOUT`` with the
same idempotency key (PagerDuty merges a repeated trigger by dedup key; Slack posts carry the
key in their metadata and are looked up before posting again).

Work goes by batches: one claim and one read for up to ``BATCH`` deliveries, then each send is
settled before the next starts. A worker that dies mid-batch leaves the delivery it was on and
the batch's unsent rest ``sending``; they are reclaimed after ``CLAIM_TIMEOUT``.
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
from receiver.model.delivery import IN_DOUBT, Outages, Outcome, RetryPolicy, SendResult
from receiver.notify import Notifier, redact
from receiver.notify.claims import Claimed, attempt_row, load_claimed
from receiver.notify.pacing import Pacer, send_paced
from receiver.store.queries import IncidentQueries
from receiver.store.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)
CLAIM_TIMEOUT = timedelta(seconds=60)  # longer than any notifier timeout
SEND_BUDGET = CLAIM_TIMEOUT / 2  # a batch starts no send later than this after its claim
BATCH = 20
# Deliveries held back for one Slack slot fall due microseconds apart (each put back from its
# own clock reading); a claim takes those due within this much more too, so they are claimed
# together and go out oldest first, not one by one in microsecond order.
CLAIM_AHEAD = timedelta(milliseconds=10)
RELEASE_CHUNK = 1000  # deliveries released per transaction after an outage


class DeliveryWorker:
    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        queries: IncidentQueries,
        notifiers: dict[str, Notifier],
        pacer: Pacer,
        policy: RetryPolicy,
        clock: Callable[[], datetime],
        public_url: str | None = None,
        dry_run: bool = False,
        secrets: tuple[str, ...] = (),
        on_result: Callable[[str, str, float], None] = lambda kind, outcome, seconds: None,
        on_delivered: Callable[[str, float], None] = lambda kind, seconds: None,
        rand: Callable[[], float] = random.random,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.uow_factory, self.queries, self.notifiers = uow_factory, queries, notifiers
        self.pacer = pacer  # Slack channels' posting slots, shared by every worker
        self.policy, self.clock, self.public_url = policy, clock, public_url
        self.dry_run, self.secrets = dry_run, secrets
        self.on_result, self.on_delivered, self.rand = on_result, on_delivered, rand
        self.monotonic = monotonic
        self.next_due: datetime | None = None  # see drain()
        self.outages = Outages()  # this worker's probes; releases go through the database

    def close(self) -> None:
        for notifier in self.notifiers.values():
            notifier.close()

    def run_once(self, limit: int = BATCH) -> int:
        """Send up to ``limit`` due deliveries; return how many were attempted or settled.

        One transaction claims the batch and one read loads every job; then each send, outside
        any transaction, is settled in a short one of its own before the next send starts, so
        a worker that dies re-sends at most the one it was on. Deliveries held back unsent (by
        pacing) are put back together at the end. A batch starts no send later than
        ``SEND_BUDGET`` after its claim and puts the rest back in the queue, so a slow vendor
        cannot keep the batch's claims until they look abandoned.
        """
        now = self.clock()
        with self.uow_factory() as uow:
            claimed = dict(
                (d.id, reclaimed)
                for d, reclaimed in uow.deliveries.claim(
                    limit, now, now - CLAIM_TIMEOUT, due_by=now + CLAIM_AHEAD
                )
            )
            uow.commit()
        if not claimed:
            return 0
        started = self.monotonic()
        batch, unsent = load_claimed(self.queries, claimed, now, self.public_url), []
        for item in batch:
            with tracing.scope(
                item.trace, delivery_id=item.job.delivery_id, receiver=item.receiver
            ):
                if self.monotonic() - started > SEND_BUDGET.total_seconds():
                    out_of_time = SendResult(
                        Outcome.RETRY,
                        "batch out of time",
                        attempted=False,
                        in_doubt=item.job.reclaimed,  # still to be looked for
                    )
                    item.sent(out_of_time, 0.0, self.clock())
                else:
                    self._send(item)
                if not item.result.attempted:  # held back: nothing to lose, settled together
                    unsent.append(item)
                    continue
                self._settle([item])
                self._report(item)
        if unsent:
            self._settle(unsent)
            for item in unsent:
                with tracing.scope(
                    item.trace, delivery_id=item.job.delivery_id, receiver=item.receiver
                ):
                    self._report(item)
        return len(batch)

    def drain(self, max_rounds: int = 100) -> int:
        """Batches until none is due; ``next_due`` then says when the soonest of those this
        worker put back (held by pacing, or to retry) and has not claimed since falls due, so
        the caller can wake for it."""
        if self.next_due is not None and self.next_due <= self.clock():
            self.next_due = None  # due now: this drain claims it (and puts it back if need be)
        total = 0
        for _ in range(max_rounds):
            count = self.run_once()
            if not count:
                break
            total += count
        return total

    def _send(self, item: Claimed) -> None:
        job, notifier = item.job, self.notifiers.get(item.receiver)
        started = time.perf_counter()
        if notifier is None:
            result = SendResult(Outcome.GIVE_UP, f"receiver {item.receiver!r} not configured")
        elif self.dry_run:
            rendered = json.dumps(notifier.render(job), default=str)
            result = SendResult(Outcome.OK, "dry run: rendered, not sent", excerpt=rendered[:500])
        else:
            result = send_paced(self.pacer, notifier, job)
        elapsed = time.perf_counter() - started
        # whatever a vendor echoed back, no secret reaches the database, the API or the logs
        reason = f"{IN_DOUBT}: {result.reason}" if result.in_doubt else result.reason
        result = replace(
            result,
            reason=redact(reason, list(self.secrets)),
            excerpt=redact(result.excerpt, list(self.secrets)),
        )
        item.sent(result, elapsed, self.clock())

    def _report(self, item: Claimed) -> None:
        job, result = item.job, item.result
        if item.dead:
            log.error(
                "delivery %s to %s is dead: %s", job.idempotency_key, item.receiver, result.reason
            )
        if not result.attempted:
            return
        self.on_result(item.kind, result.outcome.value, item.elapsed)
        log.info(
            "%s %s of incident %s: %s (%s)",
            item.kind,
            job.action,
            item.incident_id,
            result.outcome.value,
            result.reason,
            extra={
                "incident_id": item.incident_id,
                "action": job.action,
                "outcome": result.outcome.value,
                "status": result.status_code,
                "latency_ms": round(item.elapsed * 1000, 2),
            },
        )

    def _settle(self, items: list[Claimed]) -> None:
        """Record sends in one transaction: each attempt, the delivery's next state, what the
        vendor taught. Plain writes of what the batch's read found: nobody else changes a
        claimed delivery or its thread (one open delivery per incident and receiver is ever
        claimed). A success after an outage then releases the receiver's backlog."""
        released = []
        with self.uow_factory() as uow:
            for item in items:
                job, result, at = item.job, item.result, item.at
                attempts = item.attempts + (1 if result.attempted else 0)
                item.values, item.dead = self._next_state(item, attempts)
                attempt = (
                    attempt_row(job.delivery_id, at, result, item.elapsed)
                    if result.attempted
                    else None
                )
                uow.deliveries.settle(job.delivery_id, item.values, attempt)
                if result.outcome is Outcome.OK:
                    told = job.incident.timeline if result.told_changes else ()
                    uow.deliveries.remember(
                        item.thread_known,
                        item.incident_id,
                        item.receiver,
                        {**job.external, **result.external},
                        max([item.thread_last, *(e.id for e in told)]),
                        at,
                    )
                    backed_off = item.due_at if item.attempts else None
                    if self.outages.succeeded(item.receiver, at, backed_off):
                        count = uow.deliveries.release(item.receiver, at, RELEASE_CHUNK)
                        released.append((item.receiver, at, count))
            uow.commit()
        for receiver, at, count in released:
            self._release(receiver, at, count)
        for item in items:
            if item.result.outcome is Outcome.OK:
                self.on_delivered(item.kind, (item.at - item.created_at).total_seconds())
            due = item.values.get("due_at")
            if due is not None and (self.next_due is None or due < self.next_due):
                self.next_due = due

    def _release(self, receiver: str, now: datetime, first: int) -> None:
        """The receiver answers again: the settle released its first chunk of deliveries
        backing off (``first`` of them); the rest follow by chunks in short transactions of
        their own, so a backlog of thousands never holds the writer long."""
        total, count = first, first
        while count == RELEASE_CHUNK:
            with self.uow_factory() as uow:
                count = uow.deliveries.release(receiver, now, RELEASE_CHUNK)
                uow.commit()
            total += count
        if total:
            log.info("%s answers again: %d delivery(ies) backing off are due now", receiver, total)

    def _next_state(self, item: Claimed, attempts: int) -> tuple[dict[str, Any], bool]:
        """The delivery's columns after its send (``attempts`` counts it), and whether it is
        dead. A retry is due its delay after the send; one held back unsent, from the claim's
        time, as the pacing decided (so each post held for a channel falls due at its turn).
        The receiver's probe is tried again at the probe delay; the others back off."""
        result, now = item.result, item.at
        if result.outcome is Outcome.OK:
            return {"state": "sent", "sent_at": now, "last_error": None}, False
        firing = item.job.incident.status == "firing"
        too_old = self.policy.is_dead(item.created_at, now, result.in_doubt, firing)
        if result.outcome is Outcome.GIVE_UP or too_old:
            return {"state": "dead", "last_error": result.reason}, True
        base, probe = now, self.policy.probe_delay(result.retry_after)
        if not result.attempted:
            base, delay = item.job.as_of or now, result.retry_after or 0.0
        elif self.outages.failed(item.receiver, item.job.delivery_id, now, probe):
            delay = probe
        else:
            delay = self.policy.delay(attempts, result.retry_after, self.rand)
        due = base + timedelta(seconds=delay)
        return {"state": "pending", "due_at": due, "last_error": result.reason}, False
