"""The receiver's own Prometheus metrics, one registry per application (no globals).

Under gunicorn (several processes) and ``receiver serve`` (web and worker), set
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory shared by the processes (``serve`` does it):
counters and histograms are then written there by every process and /metrics adds them up.
Gauges of the current state (outbox depth, open incidents, ...) are read from the database at
scrape time, so every replica reports the same values.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from receiver.store.gauges import StoreGauges

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
disable_created_metrics()  # no *_created series beside every counter and histogram


class Metrics:
    def __init__(self) -> None:
        if directory := os.environ.get(MULTIPROC_ENV):
            os.makedirs(directory, exist_ok=True)  # each process writes its files there
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
        self.incidents_pruned = Counter(
            "receiver_incidents_pruned_total",
            "Resolved incidents deleted by retention (retention.incident_days), with their rows.",
            registry=self.registry,
        )
        self.delivery_latency = Histogram(
            "receiver_delivery_latency_seconds",
            "From the webhook that caused a delivery to its successful send, by receiver type.",
            ["kind"],
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800),
            registry=self.registry,
        )
        self.intake_seconds = Histogram(
            "receiver_intake_duration_seconds",
            "Time to validate and durably store one webhook.",
            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )


def exposition(metrics: Metrics | None, read_gauges: Callable[[], StoreGauges] | None) -> bytes:
    """The text to answer a scrape with: this process (or all of them) plus the store gauges.
    ``metrics`` None: a process with no counters of its own (gunicorn's master)."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        counted = CollectorRegistry()
        MultiProcessCollector(counted, path=directory)
    else:
        counted = metrics.registry if metrics is not None else CollectorRegistry()
    text = generate_latest(counted)
    if read_gauges is not None:
        state = CollectorRegistry()
        state.register(_StoreCollector(read_gauges))
        text += generate_latest(state)
    return text


class _StoreCollector(Collector):
    def __init__(self, read: Callable[[], StoreGauges]):
        self.read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = self.read()
        outbox = GaugeMetricFamily(
            "receiver_outbox_deliveries",
            "Deliveries waiting (pending), being sent (sending) or given up (dead), by type.",
            labels=["kind", "state"],
        )
        for (kind, state), count in sorted(g.outbox.items()):
            outbox.add_metric([kind, state], count)
        yield outbox
        yield GaugeMetricFamily(
            "receiver_outbox_oldest_due_seconds",
            "How late the most overdue pending delivery is (0: none overdue).",
            value=g.oldest_due_seconds,
        )
        incidents = GaugeMetricFamily(
            "receiver_open_incidents", "Firing incidents by severity.", labels=["severity"]
        )
        for severity, count in sorted(g.open_incidents.items()):
            incidents.add_metric([severity], count)
        yield incidents
        yield GaugeMetricFamily(
            "receiver_flapping_incidents", "Firing incidents that are flapping.", g.flapping_open
        )
        yield GaugeMetricFamily(
            "receiver_stale_alerts",
            "Firing alerts that Alertmanager no longer reports active (resolved after a grace).",
            value=g.stale_alerts,
        )
        beats = GaugeMetricFamily(
            "receiver_heartbeat_last_seen_timestamp_seconds",
            "When the always-firing Watchdog alert last arrived (heartbeat=its alertname), and "
            "when a worker last made a pass (heartbeat=receiver-worker).",
            labels=["heartbeat"],
        )
        for name, at in sorted(g.heartbeats.items()):
            beats.add_metric([name], at)
        yield beats
