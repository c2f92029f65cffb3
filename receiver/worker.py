"""The background worker: context for new episodes, due deliveries, the Watchdog check,
reconciliation with Alertmanager, then retention (raw payloads, then whole incidents).

Context comes first so a page usually carries it; a delivery never waits for context longer
than one pass (the context budget bounds it).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from receiver.alertmanager import AlertmanagerUnavailable
from receiver.bootstrap import (
    Container,
    build_delivery_worker,
    build_enricher,
    build_reconciler,
    build_watchdog,
)
from receiver.enrich.enricher import ContextEnricher
from receiver.notify.outbox import DeliveryWorker
from receiver.reconcile import Reconciler
from receiver.store.health import describe
from receiver.store.retention import TABLES
from receiver.store.unit_of_work import UnitOfWork
from receiver.watchdog import Watchdog

log = logging.getLogger(__name__)
WATCHDOG_CHECK_SECONDS = 5.0
WORKER_HEARTBEAT = "receiver-worker"  # its last pass: /metrics shows it, an alert watches it
WORKER_BEAT_SECONDS = 30.0


def prune_raw_payloads(container: Container) -> int:
    """Delete raw payloads older than ``intake.raw_retention_days``; return receipts deleted."""
    days = container.settings.intake.raw_retention_days
    return _prune_older(container, days, lambda uow, before: uow.receipts.prune(before))


def prune_events(container: Container) -> int:
    """Delete event-recorder events last seen over ``retention.event_days`` ago."""
    days = container.settings.retention.event_days
    return _prune_older(container, days, lambda uow, before: uow.am_events.prune(before))


def _prune_older(
    container: Container, days: float, prune: Callable[[UnitOfWork, datetime], int]
) -> int:
    """One maintenance transaction deleting what ``prune`` finds older than ``days``."""
    seconds = container.settings.database.maintenance_timeout_seconds
    with container.uow() as uow, uow.allow(seconds):
        deleted = prune(uow, container.clock() - timedelta(days=days))
        uow.commit()
    return deleted


@dataclass
class IncidentPrune:
    """What incident retention deleted: rows per table, in how many passes."""

    days: float
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    passes: int = 0

    @property
    def incidents(self) -> int:
        return self.rows["incidents"]

    def details(self) -> str:
        """The rows deleted per table, e.g. ``alert_episodes 4, deliveries 2, ...``."""
        return ", ".join(f"{table} {n}" for table, n in self.rows.items() if n) or "nothing"


def prune_incidents(
    container: Container, days: float | None = None, max_passes: int | None = None
) -> IncidentPrune | None:
    """Delete resolved incidents older than ``days`` (else ``retention.incident_days``) with
    their rows, ``retention.batch`` a transaction, until a pass finds fewer or ``max_passes``
    ran; None when retention is off."""
    settings = container.settings.retention
    days = settings.incident_days if days is None else days
    if days is None:
        return None
    cutoff = container.clock() - timedelta(days=days)
    seconds = container.settings.database.maintenance_timeout_seconds
    report = IncidentPrune(days)
    while max_passes is None or report.passes < max_passes:
        with container.uow() as uow, uow.allow(seconds):
            counts = uow.retention.prune(cutoff, settings.batch)
            uow.commit()
        report.passes += 1
        for table, n in counts.items():
            report.rows[table] += n
        container.metrics.incidents_pruned.inc(counts["incidents"])
        if counts["incidents"] < settings.batch:
            break
    return report


def prune(container: Container) -> None:
    """The hourly retention step: raw payloads and events, then a bounded number of incident
    passes."""
    if deleted := prune_raw_payloads(container):
        log.info("pruned %d raw payload(s) past retention", deleted)
    if deleted := prune_events(container):
        log.info("pruned %d event-recorder event(s) past retention", deleted)
    passes = container.settings.retention.passes_per_run
    report = prune_incidents(container, max_passes=passes)
    if report is not None and report.incidents:
        log.info(
            "pruned %d incident(s) resolved more than %g days ago in %d pass(es): %s",
            report.incidents,
            report.days,
            report.passes,
            report.details(),
        )


class Every:
    """True once per ``seconds`` (first call included), on the monotonic clock."""

    def __init__(self, seconds: float):
        self.seconds, self.next = seconds, 0.0

    def due(self) -> bool:
        now = time.monotonic()
        if now < self.next:
            return False
        self.next = now + self.seconds
        return True


def record_pass(container: Container) -> None:
    """Note that a worker is alive (the heartbeat ``receiver-worker``, host name as source)."""
    with container.uow() as uow:
        uow.heartbeats.beat(WORKER_HEARTBEAT, socket.gethostname(), container.clock())
        uow.commit()


def reconcile(container: Container, reconciler: Reconciler) -> None:
    """One reconciliation pass, counted; an unreachable Alertmanager only skips it."""
    metrics = container.metrics
    try:
        report = reconciler.run_once()
    except AlertmanagerUnavailable as exc:
        metrics.reconcile.labels("unavailable").inc()
        log.warning("reconcile skipped: no Alertmanager answered (%s)", exc)
        return
    metrics.reconcile.labels("ok").inc()
    metrics.stale.labels("marked").inc(len(report.marked_stale))
    metrics.stale.labels("cleared").inc(len(report.cleared))
    metrics.stale.labels("resolved").inc(len(report.resolved))


def seconds_to_next_pass(
    container: Container, deliverer: DeliveryWorker | None, poll_seconds: float
) -> float:
    """Seconds to the next pass: the poll interval, or less when a delivery this worker put
    back falls due sooner (a Slack post held by pacing goes out on time, not a poll later)."""
    due = deliverer.next_due if deliverer is not None else None
    if due is None:
        return poll_seconds
    return min(poll_seconds, max(0.0, (due - container.clock()).total_seconds()))


class Outage:
    """Logs a database outage once when it starts and once when it ends, not every pass."""

    def __init__(self) -> None:
        self.since: float | None = None

    def failed(self, step: str, exc: SQLAlchemyError) -> None:
        if self.since is None:
            self.since = time.monotonic()
            log.warning(
                "database unavailable (%s: %s); the worker keeps trying every pass",
                step,
                describe(exc),
            )
        else:
            log.debug("%s skipped, database still unavailable: %s", step, describe(exc))

    def passed(self) -> None:
        if self.since is not None:
            log.info("database answers again after %.0f s", time.monotonic() - self.since)
            self.since = None


Step = tuple[str, Callable[[], bool], Callable[[], object]]  # name, due now?, the work


def _always() -> bool:
    return True


def worker_steps(
    container: Container,
    enricher: ContextEnricher | None,
    deliverer: DeliveryWorker | None,
    reconciler: Reconciler | None,
    watchdog: Watchdog | None,
    prune_every_seconds: float,
) -> list[Step]:
    """The steps of a pass, in order: context, deliveries, Watchdog, reconcile, heartbeat,
    retention (each of the configured ones)."""
    steps: list[Step] = []
    if enricher is not None:
        steps.append(("context", _always, enricher.drain))
    if deliverer is not None:
        steps.append(("deliveries", _always, deliverer.drain))
    if watchdog is not None:
        counted = container.metrics.watchdog
        steps.append(
            (
                "watchdog",
                Every(WATCHDOG_CHECK_SECONDS).due,
                lambda: counted.labels(watchdog.check()).inc(),
            )
        )
    if reconciler is not None:
        every = Every(container.settings.alertmanager.reconcile_interval_seconds)
        steps.append(("reconcile", every.due, lambda: reconcile(container, reconciler)))
    steps.append(("heartbeat", Every(WORKER_BEAT_SECONDS).due, lambda: record_pass(container)))
    steps.append(("retention", Every(prune_every_seconds).due, lambda: prune(container)))
    return steps


def run_worker(
    container: Container,
    stop: threading.Event,
    poll_seconds: float = 0.5,
    prune_every_seconds: float = 3600,
) -> None:
    """Work now and every ``poll_seconds`` until ``stop`` is set; survive database outages.

    A pass always happens first (``stop`` already set means exactly one pass). A step that
    the database fails (within its timeouts) is skipped until it is next due; the other steps
    go on, and an outage is logged when it starts and when it ends.
    """
    enricher = build_enricher(container)
    deliverer = build_delivery_worker(container)
    reconciler = build_reconciler(container)
    watchdog = build_watchdog(container)
    steps = worker_steps(container, enricher, deliverer, reconciler, watchdog, prune_every_seconds)
    outage = Outage()
    try:
        while True:
            failed = False
            for name, due, work in steps:
                try:
                    if due():
                        work()
                except SQLAlchemyError as exc:
                    outage.failed(name, exc)
                    failed = True
            if not failed:
                outage.passed()
            if stop.wait(seconds_to_next_pass(container, deliverer, poll_seconds)):
                return
    finally:
        if enricher is not None:
            enricher.evaluator.close()
        if deliverer is not None:
            deliverer.close()
        if reconciler is not None:
            reconciler.client.close()
