"""The intake story: one notification, one transaction, then a summary for the sender."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from receiver.enrich.runbooks import RunbookCatalogue
from receiver.intake import parse_webhook
from receiver.model.alerts import Notification
from receiver.model.am_events import AmEvent
from receiver.model.dedup import AlertOutcome, FlapPolicy, earlier_than
from receiver.model.errors import StorageUnavailable
from receiver.model.incident import DecisionRules, decide, incidents_needed, open_firing_needed
from receiver.model.intake_state import IntakePlan
from receiver.model.outbox_plan import OutboxRules, outbox_needed, plan_deliveries
from receiver.model.routing import Router
from receiver.model.titles import TitleTemplate
from receiver.store.errors import WriteRaced, storage_errors
from receiver.store.intake_writes import Receipt
from receiver.store.unit_of_work import UnitOfWork, UnitOfWorkFactory
from receiver.tracing import current_traceparent

log = logging.getLogger(__name__)
RACE_RETRIES = 3
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class IntakeRules:
    """The pure rules an intake applies: flapping, runbooks, context, routing and the outbox."""

    flapping: FlapPolicy
    runbooks: RunbookCatalogue
    context_enabled: bool = False
    router: Router = field(default_factory=Router)
    receiver_kinds: dict[str, str] = field(default_factory=dict)
    coalesce: timedelta = timedelta(seconds=2)
    heartbeat_alertname: str | None = None  # the Watchdog: recorded, never an incident
    title: TitleTemplate | None = None

    @cached_property
    def decision(self) -> DecisionRules:
        return DecisionRules(
            self.flapping, self.runbooks.resolve, self.context_enabled, title=self.title
        )

    @cached_property
    def outbox(self) -> OutboxRules:
        return OutboxRules(self._route, self.flapping, self.coalesce)

    def _route(self, labels: dict[str, str]) -> list[tuple[str, str]]:
        return [(name, self.receiver_kinds[name]) for name in self.router.receivers_for(labels)]


@dataclass(frozen=True)
class RawRequest:
    """What the web layer knows about the request besides the parsed body."""

    body: bytes
    body_sha256: str
    remote_addr: str | None = None
    user_agent: str | None = None


@dataclass
class IntakeResult:
    """The JSON summary answered to the sender once the transaction has committed."""

    receiver: str
    accepted: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {o.value: 0 for o in AlertOutcome})
    incident_ids: list[int] = field(default_factory=list)
    receipt_id: int | None = None
    missing_runbooks: list[str] = field(default_factory=list)  # alertnames of new episodes
    heartbeats: int = 0

    def count(self, plan: IntakePlan, heartbeats: int) -> None:
        """Take the outcomes and missing runbooks of the decided plan."""
        self.counts.update({outcome.value: n for outcome, n in plan.counts.items()})
        self.missing_runbooks = list(plan.missing_runbooks)
        self.heartbeats = heartbeats

    def summarize(self, incident_ids: list[int]) -> dict[str, object]:
        """Once the incidents have their ids: the summary the receipt keeps."""
        self.incident_ids = incident_ids
        return self.stored_summary()

    def stored_summary(self) -> dict[str, object]:
        """What the receipt keeps: the answer without the receipt's own id."""
        summary = self.as_json()
        del summary["receipt"]
        return summary

    def as_json(self) -> dict[str, object]:
        c = self.counts
        return {
            "status": "stored",
            "receiver": self.receiver,
            "alerts": self.accepted,
            "new": c[AlertOutcome.NEW],
            "duplicate": c[AlertOutcome.REPEAT] + c[AlertOutcome.DUPLICATE_RESOLVED],
            "resolved": c[AlertOutcome.RESOLVED] + c[AlertOutcome.RESOLVED_UNSEEN],
            "stale": c[AlertOutcome.STALE_FIRING],
            "heartbeats": self.heartbeats,
            "incidents": self.incident_ids,
            "receipt": self.receipt_id,
        }


def handle_webhook(
    uow_factory: UnitOfWorkFactory,
    notification: Notification,
    raw: RawRequest,
    clock: Clock,
    rules: IntakeRules,
) -> IntakeResult:
    """Store a notification durably, or raise StorageUnavailable (the sender retries)."""
    last_reason = ""  # a text, not the error: its traceback would keep the connection alive
    for attempt in range(1, RACE_RETRIES + 1):
        try:
            with storage_errors(), uow_factory() as uow:
                result = apply_notification(uow, notification, raw, clock(), rules)
                uow.commit()
            _log_changes(result)
            return result
        except WriteRaced as exc:
            # another worker or replica wrote the same row first, or the server dropped a
            # pooled connection: the retry sees the other's rows, or takes a fresh connection
            log.info("intake on %s raced, retrying (%d): %s", notification.receiver, attempt, exc)
            last_reason = exc.reason
    raise StorageUnavailable(f"conflicting concurrent writes: {last_reason}")


def apply_notification(
    uow: UnitOfWork, n: Notification, raw: RawRequest, now: datetime, rules: IntakeRules
) -> IntakeResult:
    """The intake inside the caller's transaction: lock and load the group's state, decide
    what the notification changes, write it (receipt, incidents, episodes, timeline, outbox)."""
    result = IntakeResult(receiver=n.receiver, accepted=len(n.alerts))
    beats = [a for a in n.alerts if a.alertname == rules.heartbeat_alertname]
    if beats:
        n = replace(n, alerts=[a for a in n.alerts if a.alertname != rules.heartbeat_alertname])
    group_id, created = uow.intake.lock_group(n, now)
    state = uow.intake.group_state(n, group_id, created, _since(n, now, rules), raw.body_sha256)
    if incidents_needed(n, state):
        state = uow.intake.with_incidents(state, open_firing_needed(n))
    plan = decide(n, state, now, rules.decision)
    stored = outbox_needed(plan)
    outbox = uow.intake.outbox(stored) if stored else {}
    deliveries = plan_deliveries(plan, outbox, rules.outbox, now)
    result.count(plan, heartbeats=len(beats))
    receipt = Receipt(
        body=None if state.body_known else raw.body,
        body_sha256=raw.body_sha256,
        received_at=now,
        receiver=n.receiver,
        remote_addr=raw.remote_addr,
        user_agent=raw.user_agent,
        external_url=n.external_url,
        notification_reason=n.notification_reason,
    )
    heartbeat = beats[0].alertname if beats else None
    result.receipt_id = uow.intake_writes.apply(
        group_id, plan, deliveries, receipt, result.summarize, heartbeat, current_traceparent()
    )
    return result


def _since(n: Notification, now: datetime, rules: IntakeRules) -> datetime:
    """Where the flap window of the notification's earliest alert begins."""
    starts = [a.starts_at for a in n.alerts] or [now]
    return earlier_than(min(starts), rules.flapping.window)


def apply_conclusion(
    uow: UnitOfWork, payload: dict[str, Any], now: datetime, rules: IntakeRules, source: str
) -> IntakeResult:
    """Store what the receiver concluded itself (a lost resolve, a missing Watchdog) exactly as
    a webhook with this body: same rules, same timeline and outbox, and exported and replayed
    like any other payload. Runs inside the caller's transaction."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    raw = RawRequest(body, hashlib.sha256(body).hexdigest(), None, f"receiver-{source}")
    return apply_notification(uow, parse_webhook(body), raw, now, rules)


def rfc3339(at: datetime) -> str:
    """A time as Alertmanager writes it."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _log_changes(result: IntakeResult) -> None:
    """One line per webhook that changed something; repeats stay quiet."""
    summary = result.as_json()
    if summary["new"] or summary["resolved"]:
        log.info(
            "webhook for %s: %s new, %s resolved, %s duplicate; incidents %s",
            result.receiver,
            summary["new"],
            summary["resolved"],
            summary["duplicate"],
            result.incident_ids,
        )


@dataclass(frozen=True)
class Actor:
    """Who acts on an incident, how they got in and from where: kept with every action."""

    name: str
    via: str  # "ui:password", "ui:oidc", "ui:header", ...
    address: str | None = None

    def detail(self) -> dict[str, str]:
        out = {"user": self.name, "via": self.via}
        if self.address:
            out["from"] = self.address
        return out


def record_alertmanager_events(
    uow_factory: UnitOfWorkFactory, events: list[AmEvent], clock: Clock
) -> int:
    """Store the event recorder's events (a re-send changes nothing), or raise
    StorageUnavailable (its webhook output retries)."""
    with storage_errors(retry=False), uow_factory() as uow:
        uow.am_events.add(events, clock())
        uow.commit()
    return len(events)


def acknowledge_incident(
    uow_factory: UnitOfWorkFactory, incident_id: int, actor: Actor, clock: Clock
) -> bool:
    """Record who acknowledged an incident (the first acknowledgement counts); False if absent."""
    with storage_errors(retry=False), uow_factory() as uow:
        found = uow.incidents.acknowledge(incident_id, actor.name, actor.detail(), clock())
        uow.commit()
    return found


def add_incident_note(
    uow_factory: UnitOfWorkFactory, incident_id: int, actor: Actor, text: str, clock: Clock
) -> bool:
    """Add a note to the incident's timeline; False if there is no such incident."""
    with storage_errors(retry=False), uow_factory() as uow:
        found = uow.incidents.add_note(incident_id, {**actor.detail(), "text": text}, clock())
        uow.commit()
    return found
