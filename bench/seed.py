"""Seed a database with N realistic incidents, fast: bulk Core inserts, not the webhook path.

    .venv/bin/python -m bench.seed sqlite:///var/bench/100k.db
    .venv/bin/python -m bench.seed postgresql://postgres@127.0.0.1:5432/bench_100k -n 100000

The database is created (Postgres: the database itself, if missing) and migrated with the
project's migrations; it must hold no data yet (``--replace`` starts it over). The rows are
the ones the intake, the worker and the delivery step write: alert groups, incidents with their
indexed labels, alert episodes (flapping series with several), the timeline, raw payloads and
receipts (only for the last ``intake.raw_retention_days``, as retention leaves them), GPU and
queue context snapshots (for the last ``--context-days``), runbooks (the shipped catalogue
decides, so some alerts have none), outbox deliveries with their attempts and notification
threads. Times spread over ``--days`` up to ``--now`` (default: now, so the overview's 30 days
hold data). The same ``--seed`` gives the same database.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import itertools
import json
import math
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, event, func, insert, select, text
from sqlalchemy.engine import make_url

from receiver.enrich.context import ContextConfig, format_value
from receiver.enrich.runbooks import Runbook, RunbookCatalogue
from receiver.model.incident_text import MAX_TITLE, search_text
from receiver.store import migrate
from receiver.store.db import make_engine
from receiver.store.tables import (
    AlertEpisode,
    AlertGroup,
    Delivery,
    DeliveryAttempt,
    Incident,
    IncidentEvent,
    IncidentLabel,
    IncidentReceipt,
    NotificationThread,
    PayloadBody,
    WebhookReceipt,
)

REPO = Path(__file__).resolve().parents[1]
CHUNK = 2000  # incidents generated and inserted per transaction
ROWS_PER_STATEMENT = 1000

# -- what the fleet looks like -----------------------------------------------------------------

CLUSTERS = ["prod-us-east-1", "prod-eu-west-1", "prod-ap-south-1", "staging-us-east-1"]
MODELS = [
    "llama2_7b",
    "llama2_13b",
    "llama3_8b",
    "llama3_70b",
    "mistral_7b",
    "mixtral_8x7b",
    "codellama_34b",
    "gemma_7b",
    "phi3_mini",
    "qwen2_72b",
    "falcon_40b",
    "t5_xl",
]
NODES_PER_CLUSTER = 24
GPUS_PER_NODE = 8
USERS = ["alice", "bob", "chen", "dana", "emeka", "farah", "goran", "hiro"]
NOTES = [
    "rolled back to the previous model version",
    "scaled the deployment to 6 replicas",
    "known issue: noisy neighbour on this node, drained it",
    "load test from the perf team, expected",
    "opened a ticket with the platform team",
    "cordoned the node, GPU reports Xid 79",
]


@dataclass(frozen=True)
class Rule:
    """One Prometheus alerting rule (the shipped monitoring design, and a few more)."""

    alertname: str
    severity: str | None
    receiver: str
    scope: str  # model: one alert per model version; gpu: one alert per GPU of the pod
    weight: float
    summary: str
    description: str
    expr: str
    runbook_annotation: bool = False


RULES = [
    Rule(
        "TritonHighErrorRate",
        "critical",
        "triton-critical",
        "model",
        10,
        "High inference error rate on {model} ({instance})",
        "Model {model} version {version} on {instance} fails {value:.2f} requests/s "
        "(threshold 0.01/s).",
        'rate(nv_inference_request_failure{job="triton"}[5m]) > 0.01',
        runbook_annotation=True,
    ),
    Rule(
        "TritonHighLatency",
        "warning",
        "triton-warnings",
        "model",
        18,
        "High inference latency on {model} ({instance})",
        "Requests to {model} version {version} on {instance} wait {value:.0f} ms in the queue.",
        "rate(nv_inference_queue_duration_us[5m]) / rate(nv_inference_request_success[5m]) "
        "/ 1000 > 200",
    ),
    Rule(
        "TritonQueueBacklog",
        "warning",
        "triton-warnings",
        "model",
        10,
        "Request queue growing for {model} ({instance})",
        "{value:.0f} requests pending for {model} version {version} on {instance}.",
        "nv_inference_pending_request_count > 50",
    ),
    Rule(
        "TritonModelLoadFailure",
        "critical",
        "triton-critical",
        "model",
        3,
        "Model {model} failed to load on {instance}",
        "Triton on {instance} reports {model} version {version} as UNAVAILABLE.",
        "nv_model_ready_state == 0",
    ),
    Rule(
        "TritonNoHealthyPods",
        "critical",
        "triton-critical",
        "model",
        2,
        "Fewer than 2 healthy Triton pods serve {model}",
        "Only {value:.0f} pod(s) of {model} pass readiness in {cluster}.",
        'count by (model) (up{job="triton"} == 1) < 2',
        runbook_annotation=True,
    ),
    Rule(
        "TritonGPUMemoryHigh",
        "warning",
        "triton-gpu",
        "gpu",
        20,
        "GPU memory above 90% on {gpu_uuid} ({instance})",
        "GPU {gpu_uuid} on {instance} uses {value:.0f}% of its memory (OOM risk).",
        "nv_gpu_memory_used_bytes / nv_gpu_memory_total_bytes > 0.9",
        runbook_annotation=True,
    ),
    Rule(
        "TritonGPUUtilizationLow",
        "info",
        "triton-gpu",
        "gpu",
        12,
        "GPU {gpu_uuid} idle on {instance}",
        "GPU {gpu_uuid} on {instance} ran at {value:.0f}% for 30 minutes.",
        "avg_over_time(nv_gpu_utilization[30m]) < 0.05",
    ),
    Rule(
        "TritonGPUXidError",
        "critical",
        "triton-critical",
        "gpu",
        3,
        "GPU {gpu_uuid} reported Xid errors ({instance})",
        "GPU {gpu_uuid} on {instance} logged Xid {value:.0f}.",
        "increase(dcgm_xid_errors[5m]) > 0",
    ),
    Rule(
        "TritonGPUTemperatureHigh",
        "warning",
        "triton-gpu",
        "gpu",
        8,
        "GPU {gpu_uuid} running hot ({instance})",
        "GPU {gpu_uuid} on {instance} is at {value:.0f} °C.",
        "dcgm_gpu_temp > 85",
        runbook_annotation=True,
    ),
    Rule(
        "TritonMetricsAbsent",
        None,
        "triton-warnings",
        "model",
        1,
        "No Triton metrics from {instance}",
        "Prometheus has scraped nothing from {instance} for 10 minutes.",
        'absent(nv_inference_count{job="triton"})',
    ),
]
RULE_WEIGHTS = list(itertools.accumulate(r.weight for r in RULES))

# receivers of the route tree, by incident receiver and severity (as config/receiver.example.yaml)
PAGERDUTY, SLACK = "pagerduty-ml-serving", "slack-triton"


def routed_receivers(severity: str | None) -> list[tuple[str, str]]:
    if severity == "critical":
        return [(PAGERDUTY, "pagerduty"), (SLACK, "slack")]
    if severity == "warning" or severity is None:
        return [(SLACK, "slack")]
    return []  # info: recorded, not sent


# -- the plan: groups and the times of their incidents ------------------------------------------


@dataclass
class GroupPlan:
    id: int
    rule: Rule
    cluster: str
    node: int
    model: str
    pod: str
    instance: str
    gpus: list[str]
    incidents: list[IncidentPlan] = field(default_factory=list)


@dataclass
class IncidentPlan:
    group: GroupPlan
    opened: float  # unix seconds
    duration: float  # seconds until resolved (firing ones: unused)
    firing: bool = False
    id: int = 0


def hexid(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


class Fleet:
    """Clusters, nodes with their GPUs and models; pods come and go (a new one per group)."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.nodes: list[tuple[str, int, str, list[str]]] = []
        for c, cluster in enumerate(CLUSTERS):
            for n in range(NODES_PER_CLUSTER):
                model = MODELS[(c * 7 + n * 5) % len(MODELS)]
                gpus = [
                    f"GPU-{hexid(rng, 8)}-{hexid(rng, 4)}-{hexid(rng, 4)}-{hexid(rng, 4)}-"
                    f"{hexid(rng, 12)}"
                    for _ in range(GPUS_PER_NODE)
                ]
                self.nodes.append((cluster, n, model, gpus))

    def group(self, gid: int) -> GroupPlan:
        rng = self.rng
        rule = RULES[bisect.bisect(RULE_WEIGHTS, rng.random() * RULE_WEIGHTS[-1])]
        cluster, node, model, gpus = rng.choice(self.nodes)
        slug = model.replace("_", "-")
        pod = f"triton-{slug}-{hexid(rng, 9)}-{hexid(rng, 5)}"
        c = CLUSTERS.index(cluster)
        instance = f"10.{40 + c}.{rng.randrange(256)}.{rng.randrange(1, 255)}:8002"
        return GroupPlan(gid, rule, cluster, node, model, pod, instance, gpus)


def plan(
    rng: random.Random, n: int, now: float, days: float, firing_share: float
) -> tuple[list[GroupPlan], list[IncidentPlan]]:
    """Groups with 1-5 incidents each, one after another; ids follow the opening times."""
    fleet = Fleet(rng)
    start = now - days * 86400
    groups: list[GroupPlan] = []
    incidents: list[IncidentPlan] = []
    while len(incidents) < n:
        group = fleet.group(len(groups) + 1)
        wanted = rng.choices([1, 2, 3, 4, 5], [50, 25, 13, 8, 4])[0]
        at = start + rng.random() * days * 86400
        for _ in range(wanted):
            if at > now - 120 or len(incidents) >= n:
                break
            duration = min(rng.lognormvariate(math.log(900), 1.3), 3 * 86400)
            duration = max(duration, 45.0)
            incident = IncidentPlan(group, at, duration)
            group.incidents.append(incident)
            incidents.append(incident)
            at += duration + rng.expovariate(1 / 43200) + 60
        if group.incidents:
            groups.append(group)
    # the last incident of a group may still be firing; recent ones more likely (stale ones exist:
    # a resolve sent while silenced never arrives)
    lasts = [g.incidents[-1] for g in groups]
    keyed = sorted(
        lasts,
        key=lambda i: rng.random() ** (1 / (0.3 + (i.opened - start) / (days * 86400))),
        reverse=True,
    )
    for incident in keyed[: round(firing_share * n)]:
        incident.firing = True
    incidents.sort(key=lambda i: i.opened)
    for ident, incident in enumerate(incidents, 1):
        incident.id = ident
    return groups, incidents


# -- rows ---------------------------------------------------------------------------------------


def ts(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def fingerprint(labels: dict[str, str]) -> str:
    raw = "\x1f".join(f"{k}\x1e{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def group_labels(g: GroupPlan) -> dict[str, str]:
    return {"alertname": g.rule.alertname, "cluster": g.cluster, "pod": g.pod}


def group_key(g: GroupPlan) -> str:
    route = f'{{severity="{g.rule.severity}"}}' if g.rule.severity else "{}"
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(group_labels(g).items()))
    return f"{{}}/{route}:{{{inner}}}"


@dataclass
class Alert:
    labels: dict[str, str]
    annotations: dict[str, str]
    fingerprint: str
    generator_url: str
    runbook: Runbook


@dataclass
class Episode:
    alert: Alert
    starts: float
    ends: float | None
    resolution: str | None
    seen_firing: bool = True


class Seeder:
    def __init__(self, engine: Engine, args: argparse.Namespace, now: float):
        self.engine, self.args, self.now = engine, args, now
        self.rng = random.Random(args.seed)
        self.catalogue = RunbookCatalogue.load(REPO / "config" / "runbooks.yaml")
        self.context = ContextConfig.load(REPO / "config" / "context.yaml")
        self.params = self.context.param_map
        self.retention_from = now - args.retention_days * 86400
        self.context_from = now - args.context_days * 86400
        self.ids = {
            name: itertools.count(1)
            for name in ("episode", "event", "receipt", "delivery", "attempt")
        }
        self.counts: dict[str, int] = {}
        self.dropped: list[tuple[str, str]] = []
        self._runbooks: dict[tuple[str, str, bool], Runbook] = {}
        self._queries: dict[tuple[str, ...], list[str | None]] = {}
        self._pool: dict[tuple[str, str], list[tuple[list[Any], list[Any] | None]]] = {}

    # -- alerts -------------------------------------------------------------------------------

    def alerts(self, g: GroupPlan, count: int) -> list[Alert]:
        rule, rng = g.rule, self.rng
        base = {
            "alertname": rule.alertname,
            "cluster": g.cluster,
            "instance": g.instance,
            "job": "triton",
            "model": g.model,
            "namespace": "llm-serving",
            "pod": g.pod,
            "service": "triton-inference",
            "team": "ml-serving",
        }
        if rule.severity:
            base["severity"] = rule.severity
        out = []
        if rule.scope == "gpu":
            picks = sorted(rng.sample(range(len(g.gpus)), count))
            variants = [{"gpu": str(i), "gpu_uuid": g.gpus[i]} for i in picks]
        else:
            variants = [{"version": str(v)} for v in range(1, count + 1)]
        for variant in variants:
            labels = {**base, **variant}
            values = {**labels, "value": rng.uniform(1, 100)}
            annotations = {
                "summary": rule.summary.format_map(values),
                "description": rule.description.format_map(values),
            }
            if rule.runbook_annotation:
                slug = rule.alertname.removeprefix("Triton").lower()
                annotations["runbook_url"] = f"https://runbooks.example.com/triton/{slug}"
            key = (rule.alertname, g.model, rule.runbook_annotation)
            if key not in self._runbooks:
                self._runbooks[key] = self.catalogue.resolve(labels, annotations)
            out.append(
                Alert(
                    labels,
                    annotations,
                    fingerprint(labels),
                    f"http://prometheus.{g.cluster}.example.com/graph?g0.expr="
                    + rule.expr.replace(" ", "+")
                    + "&g0.tab=1",
                    self._runbooks[key],
                )
            )
        return out

    def context_items(self, labels: dict[str, str], at: float) -> list[dict[str, Any]]:
        """What the worker stores: each configured item at the episode's start."""
        rng = self.rng
        key = tuple(labels.get(k, "") for k in ("model", "instance", "gpu_uuid", "pod"))
        if key not in self._queries:
            self._queries[key] = [spec.render(labels, self.params) for spec in self.context.items]
        when = ts(at).isoformat()
        evaluated = ts(at + rng.uniform(2, 20)).isoformat()
        items = []
        for spec, query in zip(self.context.items, self._queries[key], strict=True):
            item: dict[str, Any] = {
                "key": spec.key,
                "title": spec.title,
                "unit": spec.unit,
                "query": query,
                "time": when,
                "evaluated_at": evaluated,
            }
            if query is None:
                needed = ", ".join(spec.needed_labels(self.params))
                items.append(
                    {**item, "status": "unavailable", "reason": f"the alert has none of: {needed}"}
                )
                continue
            if rng.random() < 0.03:
                items.append({**item, "status": "unavailable", "reason": "timeout after 0.5 s"})
                continue
            item["status"] = "ok"
            item["values"], series = rng.choice(self._answers(spec, labels.get("model", "")))
            if series is not None:
                item["series"] = series
            items.append(item)
        return items

    def _answers(self, spec: Any, model: str) -> list[tuple[list[Any], list[Any] | None]]:
        """A pool of answers per item and model (values, and the chart before the alert)."""
        key = (spec.key, model)
        if key not in self._pool:
            rng, pool = self.rng, []
            for _ in range(64):
                value = self._value(spec.unit)
                values = [
                    {
                        "labels": {"model": model, "version": "1"},
                        "value": value,
                        "display": format_value(value, spec.unit),
                    }
                ]
                series = None
                if getattr(spec, "series", False):
                    walk = [value]
                    for _ in range(30):
                        walk.append(round(max(0.0, walk[-1] * rng.uniform(0.9, 1.1)), 4))
                    points = [[-60.0 * (30 - i), v] for i, v in enumerate(reversed(walk))]
                    series = [{"labels": {"model": model}, "points": points}]
                pool.append((values, series))
            self._pool[key] = pool
        return self._pool[key]

    def _value(self, unit: str) -> float:
        rng = self.rng
        if unit == "percent":
            return round(rng.uniform(20, 100), 2)
        if unit == "bytes":
            return float(rng.choice([40, 80]) * 2**30 * rng.uniform(0.3, 1.0) // 1)
        if unit == "ms":
            return round(rng.lognormvariate(math.log(80), 1.0), 3)
        if unit == "count":
            return float(rng.randrange(0, 400))
        return round(rng.uniform(0, 300), 3)

    # -- one incident -------------------------------------------------------------------------

    def incident_rows(self, p: IncidentPlan, rows: dict[str, list[dict[str, Any]]]) -> None:
        rng, g, rule = self.rng, p.group, p.group.rule
        gid, iid = g.id, p.id
        n_alerts = rng.choices([1, 2, 3, 4, 5], [45, 25, 15, 10, 5])[0]
        alerts = self.alerts(g, n_alerts)
        firing = p.firing
        end = None if firing else p.opened + p.duration
        horizon = self.now - 30 if firing else end  # firing ones stay open until now
        span = max(horizon - p.opened, 45.0)
        flapping = span > 3600 and rng.random() < 0.04
        opened_by_resolve = not firing and n_alerts == 1 and rng.random() < 0.004

        # episodes: the first alert opens the incident; others join within the first minutes
        episodes: list[Episode] = []
        for i, alert in enumerate(alerts):
            starts = p.opened if i == 0 else p.opened + rng.uniform(0, min(span * 0.5, 900))
            if flapping and i == 0:
                count = rng.randint(3, 5)
                at = starts
                for k in range(count):
                    last = k == count - 1
                    ends = (None if firing else end) if last else at + rng.uniform(60, 240)
                    episodes.append(Episode(alert, at, ends, None if ends is None else "resolved"))
                    if not last:
                        at = ends + rng.uniform(60, 300)  # 5 starts fit in 45 minutes
                continue
            if firing:
                still = i == 0 or rng.random() < 0.6
                ends = None if still else starts + rng.uniform(60, max(61, horizon - starts))
                ends = None if ends is None or ends >= horizon else ends
            else:
                ends = end if i == 0 else starts + rng.uniform(30, max(31, end - starts))
                ends = min(ends, end)
            resolution = None
            if ends is not None:
                grouped = not firing and rng.random() < 0.05
                resolution = "group_resolved" if grouped else "resolved"
            episodes.append(Episode(alert, starts, ends, resolution))
        if opened_by_resolve:
            episodes[0].seen_firing = False

        # notifications as the receiver got them (group_wait, then group_interval)
        delay = rng.uniform(1, 30)
        first_received = p.opened + delay
        changes: list[tuple[float, str, Episode | None]] = []
        for e in episodes:
            changes.append((e.starts + delay, "start", e))
            if e.ends is not None:
                changes.append((e.ends + delay + rng.uniform(0, 60), "end", e))
        changes.sort(key=lambda c: c[0])
        if not firing:
            resolved_at = max(e.ends for e in episodes if e.ends is not None)
            last_change = changes[-1][0]
        else:
            resolved_at = None
            last_change = changes[-1][0]
        repeats = rng.randint(0, 3) if span < 3600 else rng.randint(1, 12)
        last_received = max(last_change, min(self.now - 5, last_change + repeats * 14400))
        if firing:
            last_received = max(last_change, self.now - rng.uniform(10, 14400))

        severity = rule.severity
        labels = alerts[0].labels
        title = (alerts[0].annotations.get("summary") or rule.alertname)[:MAX_TITLE]
        search = search_text([title, rule.receiver, *labels.values()])
        extra = [v for a in alerts for v in a.labels.values() if v.lower() not in search]
        if extra:
            search = search_text([search, *dict.fromkeys(extra)])
        runbook = next((a.runbook for a in alerts if a.runbook.url), alerts[0].runbook)
        guidance = next((a.runbook.guidance for a in alerts if a.runbook.guidance), None)
        ack_at = ack_by = None
        if (firing and rng.random() < 0.35) or (
            not firing and severity in ("critical", "warning") and rng.random() < 0.2
        ):
            ack_at = first_received + rng.uniform(60, min(span, 3600) if span > 60 else 60)
            ack_by = rng.choice(USERS)
        flap_count = sum(1 for e in episodes if e.alert is alerts[0]) if flapping else 1
        notification_count = len(changes) + repeats
        rows["incidents"].append(
            {
                "id": iid,
                "group_id": gid,
                "open_group_id": gid if firing else None,
                "status": "firing" if firing else "resolved",
                "receiver": rule.receiver,
                "alertname": rule.alertname,
                "severity": severity,
                "title": title,
                "labels": labels,
                "annotations": alerts[0].annotations,
                "external_url": f"https://alertmanager.{g.cluster}.example.com",
                "search_text": search,
                "opened_at": ts(p.opened),
                "resolved_at": ts(resolved_at) if resolved_at is not None else None,
                "first_received_at": ts(first_received),
                "last_received_at": ts(last_received),
                "notification_count": notification_count,
                "duplicate_count": repeats,
                "alert_count": n_alerts,
                "episode_count": len(episodes),
                "flapping": flapping,
                "flap_count": flap_count,
                "truncated": n_alerts > 2 and rng.random() < 0.02,
                "opened_by_resolve": opened_by_resolve,
                "runbook_url": runbook.url,
                "guidance": guidance,
                "runbook_missing": any(a.runbook.missing for a in alerts),
                "acknowledged_at": ts(ack_at) if ack_at else None,
                "acknowledged_by": ack_by,
            }
        )
        seen: set[tuple[str, str]] = set()
        for a in alerts:
            for name, value in a.labels.items():
                if (name, value) not in seen:
                    seen.add((name, value))
                    rows["incident_labels"].append(
                        {"incident_id": iid, "name": name, "value": value}
                    )

        for e in episodes:
            received = e.starts + delay
            last = (e.ends + delay) if e.ends is not None else last_received
            with_context = e.starts >= self.context_from
            pending = e.ends is None and e.starts > self.now - 120
            rows["alert_episodes"].append(
                {
                    "id": next(self.ids["episode"]),
                    "group_id": gid,
                    "incident_id": iid,
                    "fingerprint": e.alert.fingerprint,
                    "fingerprint_derived": False,
                    "status": "firing" if e.ends is None else "resolved",
                    "resolution": e.resolution,
                    "seen_firing": e.seen_firing,
                    "alertname": rule.alertname,
                    "labels": e.alert.labels,
                    "annotations": e.alert.annotations,
                    "generator_url": e.alert.generator_url,
                    "starts_at": ts(e.starts),
                    "ends_at": ts(e.ends) if e.ends is not None else None,
                    "first_received_at": ts(received),
                    "last_received_at": ts(max(last, received)),
                    "seen_count": 1 + rng.randint(0, repeats + 1),
                    "stale_firing_count": 1 if rng.random() < 0.01 else 0,
                    "runbook_url": e.alert.runbook.url,
                    "runbook_source": e.alert.runbook.source,
                    "guidance": e.alert.runbook.guidance,
                    "context_state": ("pending" if pending else "done" if with_context else "none"),
                    "context_claimed_at": None if pending or not with_context else ts(received),
                    "context": None
                    if pending or not with_context
                    else self.context_items(e.alert.labels, e.starts),
                }
            )

        # receipts: one per notification that changed something, plus repeats (byte-identical)
        receipt_at: list[tuple[float, int]] = []
        bodies: dict[str, tuple[bytes, float]] = {}
        keep_raw = first_received >= self.retention_from
        for n, (at, kind, _e) in enumerate(changes):
            rid = next(self.ids["receipt"])
            receipt_at.append((at, rid))
            if keep_raw:
                active = [x for x in episodes if x.starts + delay <= at]
                body = self.body(g, active, at, firing or n < len(changes) - 1)
                sha = hashlib.sha256(body).hexdigest()
                bodies.setdefault(sha, (body, at))
                self.receipt_rows(rows, rid, iid, g, at, sha, kind, len(active))
        for k in range(repeats if keep_raw else 0):
            at = min(last_received, changes[-1][0] + (k + 1) * 14400)
            rid = next(self.ids["receipt"])
            sha = next(iter(bodies))  # a repeat: the same bytes again
            self.receipt_rows(rows, rid, iid, g, at, sha, "repeat", n_alerts)
        for sha, (body, at) in bodies.items():
            rows["payload_bodies"].append(
                {"sha256": sha, "body": body, "size": len(body), "first_received_at": ts(at)}
            )

        def receipt_for(at: float) -> int:
            i = bisect.bisect_right([r[0] for r in receipt_at], at + 1e-6) - 1
            return receipt_at[max(i, 0)][1]

        # the timeline: state changes only
        def event(at: float, kind: str, fp: str | None, detail: dict[str, Any]) -> None:
            rows["incident_events"].append(
                {
                    "id": next(self.ids["event"]),
                    "incident_id": iid,
                    "at": ts(at),
                    "kind": kind,
                    "fingerprint": fp,
                    "detail": detail,
                    "receipt_id": receipt_for(at),
                }
            )

        def brief(e: Episode) -> dict[str, Any]:
            return {
                "alertname": rule.alertname,
                "starts_at": ts(e.starts).isoformat(),
                "summary": e.alert.annotations.get("summary"),
            }

        timeline: list[tuple[float, str, str | None, dict[str, Any]]] = []
        first = True
        for at, kind, e in changes:
            assert e is not None
            if kind == "start":
                if first:
                    name = "opened_by_resolve" if opened_by_resolve else "opened"
                    timeline.append((at, name, e.alert.fingerprint, brief(e)))
                    first = False
                else:
                    timeline.append((at, "alert_added", e.alert.fingerprint, brief(e)))
            else:
                resolution = {"resolution": e.resolution or "resolved"}
                timeline.append((at, "alert_resolved", e.alert.fingerprint, resolution))
        if flapping:
            third = sorted(e.starts for e in episodes if e.alert is alerts[0])[2]
            detail = {"starts_in_window": flap_count, "labels": alerts[0].labels}
            timeline.append((third + delay, "flapping", alerts[0].fingerprint, detail))
        if resolved_at is not None:
            timeline.append((last_change, "resolved", None, {}))
        if rows["incidents"][-1]["truncated"]:
            timeline.append((first_received + 5, "truncated", None, {"truncated_alerts": 3}))
        if ack_at:
            timeline.append((ack_at, "acknowledged", None, {"user": ack_by}))
        if rng.random() < 0.03:
            note_at = first_received + rng.uniform(60, span + 3600)
            user = rng.choice(USERS)
            timeline.append((note_at, "note", None, {"user": user, "text": rng.choice(NOTES)}))
        timeline.sort(key=lambda t: t[0])
        for at, kind, fp, detail in timeline:
            event(at, kind, fp, detail)

        self.delivery_rows(rows, iid, severity, changes, resolved_at, first_received)

    def receipt_rows(
        self,
        rows: dict[str, list[dict[str, Any]]],
        rid: int,
        iid: int,
        g: GroupPlan,
        at: float,
        sha: str,
        kind: str,
        alerts: int,
    ) -> None:
        summary = {
            "status": "stored",
            "receiver": g.rule.receiver,
            "alerts": alerts,
            "new": 1 if kind == "start" else 0,
            "duplicate": alerts - (1 if kind in ("start", "end") else 0),
            "resolved": 1 if kind == "end" else 0,
            "stale": 0,
            "incidents": [iid],
            "receipt": rid,
        }
        rows["webhook_receipts"].append(
            {
                "id": rid,
                "received_at": ts(at),
                "receiver": g.rule.receiver,
                "group_id": g.id,
                "body_sha256": sha,
                "remote_addr": f"10.{40 + CLUSTERS.index(g.cluster)}.0.{9 + (rid % 2)}",
                "user_agent": "Alertmanager/0.27.0",
                "external_url": f"https://alertmanager.{g.cluster}.example.com",
                "summary": summary,
            }
        )
        rows["incident_receipts"].append({"incident_id": iid, "receipt_id": rid})

    def body(self, g: GroupPlan, active: list[Episode], at: float, firing: bool) -> bytes:
        """The webhook as Alertmanager sends it (v4), for the raw payload store."""
        alerts = []
        for e in active:
            ended = e.ends is not None and e.ends + 1 <= at
            alerts.append(
                {
                    "status": "resolved" if ended else "firing",
                    "labels": e.alert.labels,
                    "annotations": e.alert.annotations,
                    "startsAt": ts(e.starts).isoformat().replace("+00:00", "Z"),
                    "endsAt": ts(e.ends).isoformat().replace("+00:00", "Z")
                    if ended and e.ends is not None
                    else "0001-01-01T00:00:00Z",
                    "generatorURL": e.alert.generator_url,
                    "fingerprint": e.alert.fingerprint,
                }
            )
        common = {
            k: v
            for k, v in active[0].alert.labels.items()
            if all(e.alert.labels.get(k) == v for e in active)
        }
        doc = {
            "receiver": g.rule.receiver,
            "status": "firing" if firing else "resolved",
            "alerts": alerts,
            "groupLabels": group_labels(g),
            "commonLabels": common,
            "commonAnnotations": active[0].alert.annotations if len(active) == 1 else {},
            "externalURL": f"https://alertmanager.{g.cluster}.example.com",
            "version": "4",
            "groupKey": group_key(g),
            "truncatedAlerts": 0,
        }
        return (json.dumps(doc, separators=(",", ":")) + "\n").encode()

    def delivery_rows(
        self,
        rows: dict[str, list[dict[str, Any]]],
        iid: int,
        severity: str | None,
        changes: list[tuple[float, str, Episode | None]],
        resolved_at: float | None,
        first_received: float,
    ) -> None:
        rng = self.rng
        for receiver, kind in routed_receivers(severity):
            actions = [(first_received, "trigger")]
            actions += [(at, "update") for at, k, _ in changes[1:] if k == "start"]
            if resolved_at is not None:
                actions.append((changes[-1][0], "resolve"))
            external: dict[str, Any] = {}
            last_sent = first_received
            for seq, (at, action) in enumerate(actions, 1):
                did = next(self.ids["delivery"])
                due = at + (2 if action == "update" else 0)
                recent = at > self.now - 90
                if recent:
                    state = "pending"
                elif action == "update" and rng.random() < 0.3:
                    state = "cancelled"  # coalesced into the next change
                elif rng.random() < 0.015:
                    state = "dead"
                else:
                    state = "sent"
                attempts = 0
                sent_at = None
                last_error = None
                if state in ("sent", "dead"):
                    if state == "dead":
                        tries = rng.randint(4, 7)
                    else:
                        tries = rng.choices([1, 2, 3], [92, 6, 2])[0]
                    at_try = due + rng.uniform(0.05, 1.5)
                    for t in range(tries):
                        last = t == tries - 1
                        latency = int(rng.lognormvariate(math.log(180), 0.5))
                        if last and state == "sent":
                            outcome, code, reason = (
                                "ok",
                                202 if kind == "pagerduty" else 200,
                                ("accepted" if kind == "pagerduty" else "posted"),
                            )
                            excerpt = (
                                '{"status":"success","message":"Event processed",'
                                f'"dedup_key":"{hexid(rng, 32)}"}}'
                                if kind == "pagerduty"
                                else None
                            )
                            sent_at = at_try + latency / 1000
                        elif last:
                            outcome, code = "give_up", 400
                            reason = (
                                "HTTP 400: Event object is invalid"
                                if kind == "pagerduty"
                                else "slack: channel_not_found"
                            )
                            excerpt = '{"status":"invalid event"}' if kind == "pagerduty" else None
                            last_error = reason
                        else:
                            outcome = "retry"
                            code = rng.choice([429, 500, 502, 503])
                            reason, excerpt = f"HTTP {code}", None
                            last_error = reason
                        rows["delivery_attempts"].append(
                            {
                                "id": next(self.ids["attempt"]),
                                "delivery_id": did,
                                "at": ts(at_try),
                                "outcome": outcome,
                                "status_code": code,
                                "latency_ms": latency,
                                "reason": reason,
                                "excerpt": excerpt,
                            }
                        )
                        at_try += latency / 1000 + 2 ** (t + 1) * rng.uniform(0.8, 1.2)
                        attempts += 1
                    if state == "sent":
                        last_sent = sent_at or at_try
                        if kind == "pagerduty":
                            external = {"dedup_key": hashlib.sha256(str(iid).encode()).hexdigest()}
                        else:
                            external = {"channel": "C04TRITON", "ts": f"{first_received:.6f}"}
                rows["deliveries"].append(
                    {
                        "id": did,
                        "incident_id": iid,
                        "receiver": receiver,
                        "kind": kind,
                        "action": action,
                        "seq": seq,
                        "idempotency_key": f"{iid}:{receiver}:{action}:{seq}",
                        "state": state,
                        "due_at": ts(due),
                        "created_at": ts(at),
                        "claimed_at": ts(due) if state in ("sent", "dead") else None,
                        "sent_at": ts(sent_at) if sent_at else None,
                        "attempts": attempts,
                        "last_error": last_error,
                    }
                )
            if external:
                rows["notification_threads"].append(
                    {
                        "incident_id": iid,
                        "receiver": receiver,
                        "external": external,
                        "last_event_id": 0,
                        "updated_at": ts(last_sent),
                    }
                )

    # -- the whole database -------------------------------------------------------------------

    def run(self) -> None:
        args = self.args
        started = time.monotonic()
        groups, incidents = plan(
            self.rng, args.incidents, self.now, args.days, 1 - args.resolved_share
        )
        print(
            f"planned {len(incidents)} incidents in {len(groups)} groups "
            f"({time.monotonic() - started:.1f} s)",
            file=sys.stderr,
        )
        with self.engine.begin() as conn:
            _tune(conn)
            group_rows = []
            for g in groups:
                key = group_key(g)
                first = g.incidents[0].opened + 5
                last_plan = g.incidents[-1]
                last = self.now - 30 if last_plan.firing else last_plan.opened + last_plan.duration
                group_rows.append(
                    {
                        "id": g.id,
                        "receiver": g.rule.receiver,
                        "group_key": key,
                        "group_key_sha256": hashlib.sha256(key.encode()).hexdigest(),
                        "group_key_derived": False,
                        "group_labels": group_labels(g),
                        "first_seen_at": ts(first),
                        "last_seen_at": ts(max(first, min(last, self.now - 5))),
                    }
                )
            self.insert(conn, AlertGroup, group_rows)
            # a bulk load builds secondary indexes faster at the end than row by row; they come
            # back from the database's own DDL in their creation order (on SQLite that order
            # breaks ties between equally good indexes: keep the migrated one)
            self.dropped = secondary_indexes(conn, TABLE_ORDER)
            for name, _ddl in self.dropped:
                conn.exec_driver_sql(f'DROP INDEX "{name}"')
        for start in range(0, len(incidents), CHUNK):
            rows: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLE_ORDER}
            for p in incidents[start : start + CHUNK]:
                self.incident_rows(p, rows)
            with self.engine.begin() as conn:
                _tune(conn)
                for name in TABLE_ORDER:
                    self.insert(conn, TABLES[name], rows[name])
            done = start + len(rows["incidents"])
            if done % 20000 == 0 or done == len(incidents):
                elapsed = time.monotonic() - started
                print(f"  {done} incidents ({elapsed:.0f} s)", file=sys.stderr)
        self.finish()
        total = time.monotonic() - started
        print(f"seeded in {total:.0f} s: " + ", ".join(f"{k} {v}" for k, v in self.counts.items()))

    def insert(self, conn: Connection, model: Any, rows: list[dict[str, Any]]) -> None:
        """Many rows per statement: the engine renders INSERT ... VALUES (...), (...), ...
        (SQLAlchemy's insertmanyvalues, switched on for plain inserts in ``prepare``)."""
        if rows:
            conn.execute(insert(model.__table__), rows)
            name = model.__tablename__
            self.counts[name] = self.counts.get(name, 0) + len(rows)

    def finish(self) -> None:
        """Indexes back, sequences past the ids given here, planner statistics as a settled
        database has them; then check the schema is exactly the migrated one."""
        started = time.monotonic()
        with self.engine.begin() as conn:
            for _name, ddl in self.dropped:
                conn.exec_driver_sql(ddl)
            if conn.dialect.name == "postgresql":
                for name in ("alert_groups", *ID_TABLES):
                    conn.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                            f"(SELECT coalesce(max(id), 1) FROM {name}))"
                        )
                    )
        if self.engine.dialect.name == "postgresql" and not self.args.no_analyze:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
        print(f"  indexes and statistics ({time.monotonic() - started:.0f} s)", file=sys.stderr)
        if drift := migrate.drift(self.engine):
            raise SystemExit(f"schema differs from the models after seeding: {drift}")


TABLES = {
    "incidents": Incident,
    "incident_labels": IncidentLabel,
    "alert_episodes": AlertEpisode,
    "payload_bodies": PayloadBody,
    "webhook_receipts": WebhookReceipt,
    "incident_receipts": IncidentReceipt,
    "incident_events": IncidentEvent,
    "deliveries": Delivery,
    "delivery_attempts": DeliveryAttempt,
    "notification_threads": NotificationThread,
}
TABLE_ORDER = list(TABLES)
ID_TABLES = (
    "incidents",
    "alert_episodes",
    "incident_events",
    "webhook_receipts",
    "deliveries",
    "delivery_attempts",
)


def secondary_indexes(conn: Connection, tables: list[str]) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of the tables' non-unique indexes, oldest first."""
    if conn.dialect.name == "sqlite":
        rows = conn.exec_driver_sql(
            "SELECT name, sql, tbl_name FROM sqlite_master WHERE type = 'index'"
            " AND sql IS NOT NULL AND sql NOT LIKE 'CREATE UNIQUE%' ORDER BY rowid"
        )
    else:
        rows = conn.exec_driver_sql(
            "SELECT c.relname, pg_get_indexdef(c.oid), t.relname FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid"
            " JOIN pg_namespace n ON n.oid = t.relnamespace"
            " WHERE n.nspname = current_schema() AND NOT i.indisunique ORDER BY c.oid"
        )
    return [(name, ddl) for name, ddl, table in rows if table in tables]


def _tune(conn: Connection) -> None:
    """Settings of the seeding session only (the database keeps its own)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL synchronous_commit TO off")


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA cache_size=-262144")  # 256 MB
    cursor.execute("PRAGMA synchronous=OFF")  # a crash while seeding: seed again
    cursor.close()


# -- databases ----------------------------------------------------------------------------------


def prepare(url: str, replace: bool) -> Engine:
    """A migrated, empty database at ``url`` (created if missing)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        if replace:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
    else:
        admin = parsed.set(drivername="postgresql", database="postgres")
        with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (parsed.database,)
            ).fetchone()
            if exists and replace:
                conn.execute(f'DROP DATABASE "{parsed.database}" WITH (FORCE)')
                exists = None
            if not exists:
                conn.execute(f'CREATE DATABASE "{parsed.database}"')
    engine = make_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _tune_sqlite)
    # executemany as multi-row INSERT statements of up to 1000 rows (not one row per statement)
    engine.dialect.use_insertmanyvalues_wo_returning = engine.dialect.name == "sqlite"
    engine.dialect.insertmanyvalues_page_size = ROWS_PER_STATEMENT
    migrate.upgrade(engine)
    with engine.connect() as conn:
        present = conn.scalar(select(func.count()).select_from(AlertGroup))
    if present:
        engine.dispose()
        raise SystemExit(f"{url} already holds data; use --replace to start it over")
    return engine


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="sqlite:///path.db or postgresql://user@host/dbname")
    parser.add_argument("-n", "--incidents", type=int, default=100_000)
    parser.add_argument("--days", type=float, default=90, help="spread over this many days")
    parser.add_argument("--now", help="ISO time the data ends at (default: now)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--resolved-share", type=float, default=0.70)
    parser.add_argument("--retention-days", type=float, default=30, help="raw payloads kept")
    parser.add_argument("--context-days", type=float, default=30, help="context snapshots since")
    parser.add_argument("--replace", action="store_true", help="start the database over")
    parser.add_argument("--no-analyze", action="store_true", help="Postgres: skip VACUUM ANALYZE")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    now = datetime.fromisoformat(args.now) if args.now else datetime.now(UTC)
    engine = prepare(args.url, args.replace)
    try:
        Seeder(engine, args, now.timestamp()).run()
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
