"""The intake story: one notification, one transaction, then a summary for the sender."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError

from receiver.enrich.runbooks import RunbookCatalogue
from receiver.intake import parse_webhook
from receiver.model.alerts import AlertEvent, AlertStatus, Notification
from receiver.model.dedup import (
    AlertOutcome,
    EpisodeView,
    FlapPolicy,
    IncidentView,
    Placement,
    classify_alert,
    earlier_than,
    group_fully_resolved,
    place_new_episode,
)
from receiver.model.errors import InvalidPayload, StorageUnavailable
from receiver.model.routing import Router
from receiver.store.deadlines import timed_out
from receiver.store.health import describe
from receiver.store.incidents import IncidentWriter
from receiver.store.openings import plan_opening
from receiver.store.repeats import RepeatRaced
from receiver.store.tables import AlertEpisode, Incident, WebhookReceipt
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
    shortcuts: bool = True  # see apply_shortcut (tests turn it off to compare)


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
    shortcuts = rules.shortcuts
    for attempt in range(1, RACE_RETRIES + 1):
        try:
            with uow_factory() as uow:
                now = clock()
                result = apply_shortcut(uow, notification, raw, now, rules) if shortcuts else None
                if result is None:
                    result = apply_notification(uow, notification, raw, now, rules)
                uow.commit()
            _log_changes(result)
            return result
        except RepeatRaced as exc:
            log.warning("repeat shortcut raced on %s, full intake: %s", notification.receiver, exc)
            shortcuts, last_reason = False, _db_reason(exc)
        except IntegrityError as exc:
            # Another worker or replica created the same row first; the retry sees it.
            log.info("intake race on %s, retrying (%d): %s", notification.receiver, attempt, exc)
            last_reason = _db_reason(exc)
        except DataError as exc:
            # a value the database refuses (validation should have caught it): not transient
            log.error("webhook for %s not storable: %s", notification.receiver, _db_reason(exc))
            message = f"a value cannot be stored ({_db_reason(exc)})"
            raise InvalidPayload([{"field": "(body)", "message": message}]) from exc
        except DBAPIError as exc:
            if not exc.connection_invalidated or timed_out(exc) or attempt == RACE_RETRIES:
                # a deadline that passed would pass again: answer now, the sender retries
                raise StorageUnavailable(_db_reason(exc)) from exc
            # a pooled connection the server dropped (a restart, a failover): the pool has
            # let it go, the retry takes a fresh one
            log.warning("database connection lost, retrying (%d): %s", attempt, _db_reason(exc))
            last_reason = _db_reason(exc)
        except SQLAlchemyError as exc:
            raise StorageUnavailable(_db_reason(exc)) from exc
    raise StorageUnavailable(f"conflicting concurrent writes: {last_reason}")


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


def _db_reason(exc: Exception) -> str:
    return describe(exc)  # names no stored value


def apply_shortcut(
    uow: UnitOfWork, n: Notification, raw: RawRequest, now: datetime, rules: IntakeRules
) -> IntakeResult | None:
    """The two commonest notifications, each in a few Core statements instead of the full
    intake: a repeat (every alert stored and firing: only counters change) and the first
    notification of a group (every alert firing: one new incident). Both store exactly what
    ``apply_notification`` would (tests/integration/test_intake_shortcuts.py). None, having changed
    nothing the full intake does not change as well, for anything else.
    """
    if n.status is not AlertStatus.FIRING or n.truncated_alerts:
        return None
    fingerprints = {a.fingerprint for a in n.alerts}
    if len(fingerprints) != len(n.alerts) or any(
        a.status is not AlertStatus.FIRING or a.alertname == rules.heartbeat_alertname
        for a in n.alerts
    ):
        return None
    group_id = uow.repeats.lock_group(n.receiver, n.group_key_sha256, now)
    if group_id is None:
        return _open_group(uow, n, raw, now, rules)
    return _repeat(uow, n, raw, now, group_id)


def _repeat(
    uow: UnitOfWork, n: Notification, raw: RawRequest, now: datetime, group_id: int
) -> IntakeResult | None:
    pairs = {(a.fingerprint, a.starts_at) for a in n.alerts}
    stored, body_known = uow.repeats.episodes(group_id, pairs, raw.body_sha256)
    episodes = [stored.get((a.fingerprint, a.starts_at)) for a in n.alerts]
    if any(e is None or e.status != AlertStatus.FIRING.value for e in episodes):
        return None
    known = [e for e in episodes if e is not None]
    changed = {
        e.id: a.annotations
        for e, a in zip(known, n.alerts, strict=True)
        if e.annotations != a.annotations
    }
    uow.repeats.count_repeat(known, changed, now)
    result = IntakeResult(receiver=n.receiver, accepted=len(n.alerts))
    result.counts[AlertOutcome.REPEAT] = len(n.alerts)
    result.incident_ids = sorted({e.incident_id for e in known})
    receipt = _receipt_row(n, raw, now, group_id, result)
    body = None if body_known else raw.body
    result.receipt_id = uow.repeats.add_receipt(body, raw.body_sha256, receipt, result.incident_ids)
    return result


def _open_group(
    uow: UnitOfWork, n: Notification, raw: RawRequest, now: datetime, rules: IntakeRules
) -> IntakeResult | None:
    group_id = uow.openings.create_group(n, now)
    if group_id is None:  # created meanwhile by another writer: the full intake sorts it out
        return None
    opening = plan_opening(n, now, rules.runbooks, rules.context_enabled)
    incident_id = uow.openings.add_incident(group_id, opening)
    result = IntakeResult(receiver=n.receiver, accepted=len(n.alerts))
    result.counts[AlertOutcome.NEW] = len(n.alerts)
    result.incident_ids = [incident_id]
    result.missing_runbooks = opening.missing_runbooks
    receipt = _receipt_row(n, raw, now, group_id, result)
    result.receipt_id = uow.openings.add_receipt(raw.body, raw.body_sha256, receipt)
    uow.openings.add_details(group_id, incident_id, result.receipt_id, opening)
    receivers = rules.router.receivers_for(opening.incident["labels"])
    routed = [(name, rules.receiver_kinds[name]) for name in receivers]
    uow.openings.add_triggers(incident_id, routed, now, current_traceparent())
    return result


def _receipt_row(
    n: Notification, raw: RawRequest, now: datetime, group_id: int, result: IntakeResult
) -> dict[str, Any]:
    return {
        "received_at": now,
        "receiver": n.receiver,
        "group_id": group_id,
        "remote_addr": raw.remote_addr,
        "user_agent": (raw.user_agent or "")[:255] or None,
        "external_url": n.external_url,
        "summary": result.stored_summary(),
    }


def apply_notification(
    uow: UnitOfWork, n: Notification, raw: RawRequest, now: datetime, rules: IntakeRules
) -> IntakeResult:
    """The intake inside the caller's transaction: receipt, episodes, incidents, outbox."""
    group = uow.groups.lock_or_create(
        n.receiver, n.group_key, n.group_key_sha256, n.group_key_derived, n.group_labels, now
    )
    receipt = uow.receipts.add(
        raw.body,
        raw.body_sha256,
        WebhookReceipt(
            received_at=now,
            receiver=n.receiver,
            group_id=group.id,
            remote_addr=raw.remote_addr,
            user_agent=(raw.user_agent or "")[:255] or None,
            external_url=n.external_url,
            summary={},
        ),
    )
    result = IntakeResult(receiver=n.receiver, accepted=len(n.alerts), receipt_id=receipt.id)
    beats = [a for a in n.alerts if a.alertname == rules.heartbeat_alertname]
    if beats:
        uow.heartbeats.beat(beats[0].alertname, n.receiver, now)
        result.heartbeats = len(beats)
        n = dataclasses.replace(
            n, alerts=[a for a in n.alerts if a.alertname != rules.heartbeat_alertname]
        )
    if not n.alerts:
        receipt.summary = result.stored_summary()
        return result
    writer = IncidentWriter(uow, group, n, receipt.id, now, rules.runbooks, rules.context_enabled)
    policy = rules.flapping
    since = earlier_than(min(a.starts_at for a in n.alerts), policy.window)
    known = uow.episodes.find(group.id, ((a.fingerprint, a.starts_at) for a in n.alerts), since)
    seen: set[tuple[str, datetime]] = set()
    # Firing alerts first: a payload that resolves one alert and fires another keeps the group's
    # incident open instead of closing it and opening a new one.
    for alert in sorted(n.alerts, key=lambda a: a.status is not AlertStatus.FIRING):
        key = (alert.fingerprint, alert.starts_at)
        if key in seen:
            continue
        seen.add(key)
        episode = known.get(key)
        outcome = classify_alert(
            alert, EpisodeView(AlertStatus(episode.status)) if episode else None
        )
        result.counts[outcome] += 1
        episode = _apply_outcome(writer, outcome, alert, episode, known, policy)
        known[key] = episode
    writer.finish(group_fully_resolved(n.status, n.truncated_alerts))
    _queue_deliveries(uow, writer, rules, now)
    result.incident_ids = sorted(writer.touched)
    result.missing_runbooks = writer.missing_runbooks
    receipt.summary = result.stored_summary()
    uow.receipts.link(receipt.id, writer.touched)
    return result


def _queue_deliveries(
    uow: UnitOfWork, writer: IncidentWriter, rules: IntakeRules, now: datetime
) -> None:
    """Turn what changed into outbox rows; repeats and duplicates queue nothing.

    Opened: a trigger per routed receiver. Changed: one update per receiver, coalesced (a
    pending update absorbs later changes); a re-firing inside a hold-down cancels the held
    resolve. Resolved: a resolve, held back by the hold-down while flapping or one start short.
    """
    trace = current_traceparent()
    for incident_id in sorted(writer.touched):
        change = writer.change_of(incident_id)
        incident = writer.incident(incident_id)
        if change is None or incident.opened_by_resolve:
            continue
        if change == "opened":
            for name in rules.router.receivers_for(incident.labels):
                uow.deliveries.enqueue(
                    incident, name, rules.receiver_kinds[name], "trigger", now, now, trace
                )
            continue
        for name, kind in uow.deliveries.receivers_of(incident_id).items():
            if change == "resolved":
                uow.deliveries.cancel_pending(incident_id, name, ("update",))
                # a series that already re-fired may be about to flap: hold the resolve back so a
                # re-firing inside the hold-down updates the page instead of paging again
                at_risk = incident.flapping or rules.flapping.may_flap(incident.flap_count)
                hold = rules.flapping.hold_down if at_risk else timedelta(0)
                uow.deliveries.enqueue(incident, name, kind, "resolve", now + hold, now, trace)
            elif incident.status == AlertStatus.FIRING.value:
                held = uow.deliveries.cancel_pending(incident_id, name, ("resolve",))
                reopened = not held and uow.deliveries.last_action(incident_id, name) == "resolve"
                if reopened:
                    uow.deliveries.enqueue(incident, name, kind, "trigger", now, now, trace)
                elif uow.deliveries.pending(incident_id, name, "update") is None:
                    due = now + rules.coalesce
                    uow.deliveries.enqueue(incident, name, kind, "update", due, now, trace)


def _apply_outcome(
    writer: IncidentWriter,
    outcome: AlertOutcome,
    alert: AlertEvent,
    episode: AlertEpisode | None,
    known: dict[tuple[str, datetime], AlertEpisode],
    policy: FlapPolicy,
) -> AlertEpisode:
    if episode is not None:
        writer.record_seen(episode, outcome, alert)
        return episode
    if outcome is AlertOutcome.RESOLVED_UNSEEN:
        return writer.add_unseen_resolved(alert)
    series = sorted(
        (e for (fp, _), e in known.items() if fp == alert.fingerprint), key=lambda e: e.starts_at
    )
    for earlier in series:
        if earlier.status == AlertStatus.FIRING and earlier.starts_at < alert.starts_at:
            writer.supersede(earlier, alert.starts_at)
    starts = policy.starts_in_window([e.starts_at for e in series], alert.starts_at)
    latest = writer.incident(series[-1].incident_id) if series else None
    placement = place_new_episode(
        writer.open_view(), _view(latest) if latest else None, starts, alert.starts_at, policy
    )
    target = {
        Placement.JOIN_OPEN: writer.open_incident,
        Placement.REOPEN: latest,
        Placement.NEW: None,
    }[placement]
    return writer.add_firing(alert, target, starts, policy.is_flapping(starts))


def _view(incident: Incident) -> IncidentView:
    return IncidentView(
        id=incident.id,
        open=incident.status == "firing",
        flapping=incident.flapping,
        resolved_at=incident.resolved_at,
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


def acknowledge_incident(
    uow_factory: UnitOfWorkFactory, incident_id: int, actor: Actor, clock: Clock
) -> bool:
    """Record who acknowledged an incident (the first acknowledgement counts); False if absent."""
    try:
        with uow_factory() as uow:
            found = uow.incidents.acknowledge(incident_id, actor.name, actor.detail(), clock())
            uow.commit()
    except SQLAlchemyError as exc:
        raise StorageUnavailable(_db_reason(exc)) from exc
    return found


def add_incident_note(
    uow_factory: UnitOfWorkFactory, incident_id: int, actor: Actor, text: str, clock: Clock
) -> bool:
    """Add a note to the incident's timeline; False if there is no such incident."""
    try:
        with uow_factory() as uow:
            found = uow.incidents.add_note(incident_id, {**actor.detail(), "text": text}, clock())
            uow.commit()
    except SQLAlchemyError as exc:
        raise StorageUnavailable(_db_reason(exc)) from exc
    return found
