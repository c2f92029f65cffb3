"""Composition root: the only place that picks concrete classes. Used by app, CLI and tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property

from sqlalchemy import Engine

from receiver.alertmanager import AlertmanagerClient
from receiver.enrich.context import ContextConfig, ContextConfigError
from receiver.enrich.enricher import ContextEnricher
from receiver.enrich.prometheus import ContextEvaluator, PrometheusClient
from receiver.enrich.runbooks import CatalogueError, RunbookCatalogue
from receiver.enrich.slo import SloCatalogue, SloConfigError
from receiver.intake import IntakeLimits
from receiver.metrics import Metrics
from receiver.model.dedup import FlapPolicy
from receiver.model.delivery import RetryPolicy
from receiver.model.matchers import parse_matchers
from receiver.model.routing import Route, Router
from receiver.notify import build_notifier
from receiver.notify.outbox import DeliveryWorker
from receiver.notify.pacing import SharedPacer
from receiver.reconcile import Reconciler
from receiver.service import IntakeRules
from receiver.settings import ConfigError, Settings
from receiver.store.db import make_engine
from receiver.store.queries import IncidentQueries
from receiver.store.unit_of_work import UnitOfWork
from receiver.watchdog import Watchdog


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Container:
    """Everything a request or command needs, built once per process."""

    settings: Settings
    engine: Engine
    clock: Callable[[], datetime] = utc_now
    metrics: Metrics = field(default_factory=Metrics)
    runbooks: RunbookCatalogue = field(default_factory=RunbookCatalogue)
    context: ContextConfig = field(default_factory=ContextConfig)
    slos: SloCatalogue = field(default_factory=SloCatalogue)

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.engine)

    def close(self) -> None:
        """Close the database connections (commands call it when done)."""
        self.engine.dispose()

    def __enter__(self) -> Container:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def queries(self) -> IncidentQueries:
        return IncidentQueries(self.engine)

    # The rules below are built once per process (settings do not change while it runs).

    @cached_property
    def flap_policy(self) -> FlapPolicy:
        f = self.settings.flapping
        return FlapPolicy(
            threshold=f.threshold,
            window=timedelta(minutes=f.window_minutes),
            hold_down=timedelta(minutes=f.hold_down_minutes),
        )

    @property
    def context_enabled(self) -> bool:
        return bool(self.settings.prometheus.url and self.context.items)

    @cached_property
    def router(self) -> Router:
        routes = tuple(
            Route(
                tuple(m for text in r.matchers for m in parse_matchers(text)),
                tuple(r.receivers),
                r.continue_,
            )
            for r in self.settings.routes
        )
        return Router(routes, tuple(self.settings.default_receivers))

    @cached_property
    def intake_limits(self) -> IntakeLimits:
        i = self.settings.intake
        return IntakeLimits(
            i.max_alerts, i.max_labels, i.max_label_value_length, i.max_annotation_value_length
        )

    @cached_property
    def intake_rules(self) -> IntakeRules:
        return IntakeRules(
            self.flap_policy,
            self.runbooks,
            self.context_enabled,
            router=self.router,
            receiver_kinds={name: r.type for name, r in self.settings.receivers.items()},
            coalesce=timedelta(seconds=self.settings.delivery.coalesce_seconds),
            heartbeat_alertname=self.settings.watchdog.alertname or None,
            title=self.settings.intake.title,
        )


def build_enricher(container: Container) -> ContextEnricher | None:
    """The context step of the worker, or None when no Prometheus (or no query) is configured."""
    if not container.context_enabled:
        return None
    settings = container.settings.prometheus
    evaluator = ContextEvaluator(
        PrometheusClient(settings),
        container.context,
        budget_seconds=settings.budget_seconds,
        cache_seconds=settings.cache_seconds,
        on_outcome=lambda outcome: container.metrics.context_queries.labels(outcome).inc(),
        slos=container.slos,
    )
    return ContextEnricher(container.uow, evaluator, container.clock)


def build_delivery_worker(container: Container) -> DeliveryWorker | None:
    """The outbox step of the worker, or None when no receiver is configured."""
    settings = container.settings
    if not settings.receivers:
        return None
    delivery = settings.delivery
    # every worker process paces Slack channels as one, through the database
    pacer = SharedPacer(container.uow, container.clock, delivery.slack_min_interval_seconds)
    notifiers = {name: build_notifier(name, r) for name, r in settings.receivers.items()}
    policy = RetryPolicy(
        initial=delivery.backoff_initial_seconds,
        maximum=delivery.backoff_max_seconds,
        max_age=timedelta(minutes=delivery.max_age_minutes),
        probe=delivery.probe_seconds,
    )
    metrics = container.metrics

    def on_result(kind: str, outcome: str, seconds: float) -> None:
        metrics.deliveries.labels(kind, outcome).inc()

    return DeliveryWorker(
        container.uow,
        container.queries,
        notifiers,
        pacer,
        policy,
        container.clock,
        public_url=settings.public_url,
        dry_run=delivery.dry_run,
        secrets=settings.secret_values(),
        on_result=on_result,
        on_delivered=lambda kind, seconds: metrics.delivery_latency.labels(kind).observe(seconds),
    )


def build_reconciler(container: Container) -> Reconciler | None:
    """The Alertmanager reconciliation step, or None when no Alertmanager URL is configured."""
    settings = container.settings.alertmanager
    if not settings.urls:
        return None
    client = AlertmanagerClient(settings)
    return Reconciler(container.uow, client, container.intake_rules, settings, container.clock)


def build_watchdog(container: Container) -> Watchdog | None:
    """The dead man's switch, or None when it is off."""
    settings = container.settings.watchdog
    if not settings.enabled:
        return None
    return Watchdog(container.uow, container.intake_rules, settings, container.clock)


def load_slos(settings: Settings) -> SloCatalogue:
    """Read the per-model SLOs (none without ``slos_path``); ConfigError on a bad file."""
    try:
        return SloCatalogue.load(settings.slos_path)
    except SloConfigError as exc:
        raise ConfigError(exc.errors) from None


def load_catalogues(settings: Settings) -> tuple[RunbookCatalogue, ContextConfig]:
    """Read the runbook catalogue and the context queries; ConfigError lists every problem."""
    errors: list[str] = []
    runbooks, context = RunbookCatalogue(), ContextConfig()
    try:
        runbooks = RunbookCatalogue.load(settings.runbooks_path)
    except CatalogueError as exc:
        errors += exc.errors
    try:
        context = ContextConfig.load(settings.context_path)
    except ContextConfigError as exc:
        errors += exc.errors
    if errors:
        raise ConfigError(errors)
    return runbooks, context


def bootstrap(
    settings: Settings,
    clock: Callable[[], datetime] = utc_now,
    engine: Engine | None = None,
) -> Container:
    """Build the container; nothing connects to the database until first use.

    Raises ConfigError when the runbook catalogue or the context queries are invalid.
    """
    runbooks, context = load_catalogues(settings)
    slos = load_slos(settings)
    if engine is None:
        engine = make_engine(settings.database_url, settings.database)
    return Container(
        settings=settings,
        engine=engine,
        clock=clock,
        runbooks=runbooks,
        context=context,
        slos=slos,
    )
