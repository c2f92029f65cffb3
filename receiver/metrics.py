"""The receiver's own Prometheus metrics, one registry per application (no globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.webhooks = Counter(
            "receiver_webhooks_total",
            "Webhook requests by result (stored, rejected reason, unavailable) and receiver.",
            ["result", "receiver"],
            registry=self.registry,
        )
        self.alerts = Counter(
            "receiver_alerts_total",
            "Alerts in stored webhooks by outcome (new, duplicate, resolved, stale, ...).",
            ["outcome"],
            registry=self.registry,
        )
        self.runbook_missing = Counter(
            "receiver_runbook_missing_total",
            "New alert episodes with no runbook (neither annotation nor catalogue), by alertname.",
            ["alertname"],
            registry=self.registry,
        )
        self.context_queries = Counter(
            "receiver_context_queries_total",
            "Context queries to Prometheus by outcome (ok, empty, cached, error, timeout, "
            "unreachable, budget).",
            ["outcome"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "receiver_deliveries_total",
            "Delivery attempts by receiver type and outcome (ok, retry, give_up).",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.reconcile = Counter(
            "receiver_reconcile_runs_total",
            "Reconciliation passes against Alertmanager by outcome (ok, unavailable).",
            ["outcome"],
            registry=self.registry,
        )
        self.stale = Counter(
            "receiver_stale_alerts_total",
            "Firing alerts Alertmanager stopped reporting: marked stale, back again, resolved.",
            ["action"],
            registry=self.registry,
        )
        self.watchdog = Counter(
            "receiver_watchdog_checks_total",
            "Dead man's switch checks by result (ok, missing, opened, resolved).",
            ["result"],
            registry=self.registry,
        )
        self.intake_seconds = Histogram(
            "receiver_intake_duration_seconds",
            "Time to validate and durably store one webhook.",
            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
