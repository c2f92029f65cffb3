"""Monitoring the receiver itself: its alert rules and its Grafana dashboard.

promtool (2.42 and 3.5) checks and unit-tests config/prometheus/receiver-alerts.yml; the dashboard
config/grafana/receiver-dashboard.json is checked for structure. Every metric name both of them
query is looked up in the receiver's REAL /metrics output (the app in-process, after a webhook
and one worker pass), so renaming a metric, or a label the rules aggregate by, fails here.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from receiver.app import create_app
from receiver.bootstrap import bootstrap
from receiver.worker import run_worker
from tests.support import payloads
from tests.support.api import post_webhook
from tests.support.prometheus_tools import alert_rules, promtool
from tests.support.servers import free_port
from tests.support.versions import Versions, on_each_version

ROOT = Path(__file__).parents[2]
RULES = ROOT / "config" / "prometheus" / "receiver-alerts.yml"
RULE_TESTS = ROOT / "tests" / "promtool" / "receiver-alerts.test.yml"
DASHBOARD = ROOT / "config" / "grafana" / "receiver-dashboard.json"
RUNBOOKS = "https://runbooks.example.com/receiver/"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
TARGET_LABELS = {"job", "instance"}  # added by the scrape, not by the receiver
PROMETHEUS_OWN = {"up"}  # series Prometheus writes itself

ALERTS = alert_rules(RULES)


def kebab(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", name).lower()


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def panels() -> list[dict[str, Any]]:
    """Every panel, rows' collapsed panels included."""
    found = []
    for panel in dashboard()["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def dashboard_exprs() -> list[str]:
    exprs = [t["expr"] for p in panels() for t in p.get("targets", [])]
    for variable in dashboard()["templating"]["list"]:
        query = variable.get("query")
        if variable["type"] == "query":  # label_values(metric, label): a metric and a label
            text = query["query"] if isinstance(query, dict) else query
            match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", text)
            assert match, text
            exprs.append(f"sum by ({match[2]}) ({match[1]})")
    return exprs


# --- a small PromQL reader: enough to find metric names, label names and enclosing aggregations

AGGREGATIONS = {
    "sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk", "bottomk",
    "quantile", "count_values",
}  # fmt: skip
CLAUSES = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = CLAUSES | {"and", "or", "unless", "bool", "offset"}
TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\''  # strings
    r"|\{[^}]*\}|\[[^\]]*\]"  # label matchers, ranges (Grafana's $__rate_interval too)
    r"|[A-Za-z_:][\w:]*|\d[\w.+-]*|\.\d\w*|\$\w+|[(),]|\S"
)


@dataclass
class Selector:
    name: str
    matchers: set[str]  # label names matched on
    aggregations: list[str]  # enclosing aggregation operators, innermost first


@dataclass
class Query:
    selectors: list[Selector] = field(default_factory=list)
    grouping: set[str] = field(default_factory=set)  # labels of by/without/on/ignoring/group_*
    made: set[str] = field(default_factory=set)  # labels label_replace() writes


def read(expr: str) -> Query:
    """The selectors of a PromQL expression, with the aggregations around each."""
    query = Query()
    tokens = TOKEN.findall(expr)
    stack: list[tuple[str, str]] = []  # per open paren: (kind, name) kind call|clause|paren
    closed: tuple[str, str] = ("paren", "")
    for i, token in enumerate(tokens):
        before = tokens[i - 1] if i else ""
        after = tokens[i + 1] if i + 1 < len(tokens) else ""
        if token == "(":
            if before in CLAUSES:
                stack.append(("clause", tokens[i - 2] if i > 1 else ""))
            elif re.fullmatch(r"[A-Za-z_]\w*", before) and before not in KEYWORDS:
                stack.append(("call", before))
            elif before == ")" and closed[0] == "clause" and closed[1] in AGGREGATIONS:
                stack.append(("call", closed[1]))  # sum by (x) (...)
            else:
                stack.append(("paren", ""))
        elif token == ")":
            closed = stack.pop()
        elif stack and stack[-1][0] == "clause" and re.fullmatch(r"\w+", token):
            query.grouping.add(token)
        elif token in AGGREGATIONS and after in ("by", "without"):
            continue  # sum by (x) (...): the aggregation, not a metric
        elif re.fullmatch(r"[A-Za-z_:][\w:]*", token) and token not in KEYWORDS and after != "(":
            matchers = set()
            if after.startswith("{"):
                matchers = set(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", after))
            calls = [name for kind, name in reversed(stack) if kind == "call"]
            aggregations = [name for name in calls if name in AGGREGATIONS]
            query.selectors.append(Selector(token, matchers, aggregations))
        if token == "label_replace" and after == "(":
            strings = [t for t in tokens[i:] if t.startswith('"')]
            query.made.add(strings[0].strip('"'))
    assert not stack, f"unbalanced parentheses: {expr}"
    return query


def queries() -> dict[str, Query]:
    """Every expression of the rules and the dashboard, read."""
    exprs = {f"rule {a['alert']}": a["expr"] for a in ALERTS}
    exprs.update({f"dashboard: {e}": e for e in dashboard_exprs()})
    return {where: read(expr) for where, expr in exprs.items()}


# --- the receiver's real /metrics


@dataclass
class Exposed:
    """What the receiver's /metrics showed: sample names with their labels, and families."""

    labels: dict[str, set[str]] = field(default_factory=dict)  # sample name -> label names
    families: dict[str, str] = field(default_factory=dict)  # name as queried -> type

    def add(self, text: str) -> None:
        for family in text_string_to_metric_families(text):
            if family.name.endswith("_created"):
                continue  # prometheus_client's creation time of each counter and histogram
            queried = family.name + ("_total" if family.type == "counter" else "")
            self.families[queried] = family.type
            for sample in family.samples:
                self.labels.setdefault(sample.name, set()).update(sample.labels)

    def names(self) -> set[str]:
        """Names a query can use: every sample, and counters and gauges without one yet."""
        declared = {n for n, kind in self.families.items() if kind in ("counter", "gauge")}
        return set(self.labels) | declared


@pytest.fixture
def exposed(make_settings: Any, clock: Any) -> Iterator[Exposed]:
    """/metrics of an app that took a webhook, before and after one full worker pass.

    Deliveries are dry; Prometheus (context) and Alertmanager (reconcile) are unreachable ports,
    so the worker counts an unreachable context query and an unavailable reconciliation.
    """
    settings = make_settings(
        {
            "receivers": {
                "pd": {
                    "type": "pagerduty",
                    "routing_key": "k" * 32,
                    "base_url": "https://127.0.0.1:9",
                }
            },
            "default_receivers": ["pd"],
            "delivery.dry_run": True,
            "prometheus.url": f"http://127.0.0.1:{free_port()}",
            "context_path": str(ROOT / "config" / "context.yaml"),
            "alertmanager.urls": [f"http://127.0.0.1:{free_port()}"],
            "alertmanager.timeout_seconds": 1,
            "watchdog.missing_after_minutes": 10,
        }
    )
    container = bootstrap(settings, clock=clock)
    try:
        client = create_app(container=container).test_client()
        firing = payloads.alert(
            "TritonHighErrorRate", starts=10, severity="critical", model="llama"
        )
        heartbeat = payloads.alert("Watchdog", starts=10)
        doc = payloads.webhook(firing, heartbeat, receiver="triton", group_key='{}:{model="llama"}')
        answer = post_webhook(client, json.dumps(doc), "triton")
        assert answer.status_code == 200, answer.get_data(as_text=True)
        found = Exposed()
        found.add(client.get("/metrics").get_data(as_text=True))  # the outbox holds a delivery
        clock.advance(seconds=30)
        stop = threading.Event()
        stop.set()  # exactly one pass: context, deliveries, Watchdog check, reconcile, retention
        run_worker(container, stop, poll_seconds=0)
        found.add(client.get("/metrics").get_data(as_text=True))
        yield found
    finally:
        container.engine.dispose()


# --- the rules


@on_each_version
def test_the_receiver_rules_pass_promtool_check(versions: Versions) -> None:
    result = promtool("check", "rules", RULES, on=versions)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


@on_each_version
def test_the_receiver_rules_fire_when_they_should_and_not_otherwise(versions: Versions) -> None:
    result = promtool("test", "rules", RULE_TESTS, on=versions)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    cases = [
        case
        for group in yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
        for case in group.get("alert_rule_test", [])
    ]
    for alert in ALERTS:
        mine = [c for c in cases if c["alertname"] == alert["alert"]]
        assert any(c["exp_alerts"] for c in mine), f"{alert['alert']}: never expected to fire"
        assert any(not c["exp_alerts"] for c in mine), f"{alert['alert']}: never expected quiet"


@pytest.mark.parametrize("alert", ALERTS, ids=lambda rule: rule["alert"])
def test_every_alert_has_a_severity_summary_description_and_runbook(alert: dict[str, Any]) -> None:
    assert alert["alert"].startswith("Receiver")
    assert alert["labels"]["severity"] in {"critical", "warning"}
    assert alert["labels"]["component"] == "receiver"
    annotations = alert["annotations"]
    assert annotations["summary"].strip() and annotations["description"].strip()
    assert "{{ $value" in annotations["description"]
    assert annotations["runbook_url"] == RUNBOOKS + kebab(alert["alert"])


def test_the_alert_names_are_unique() -> None:
    names = [a["alert"] for a in ALERTS]
    assert len(names) == len(set(names))


# --- the dashboard


def test_the_dashboard_is_a_grafana_dashboard_with_a_prometheus_datasource_variable() -> None:
    board = dashboard()
    assert board["title"] == "Alert receiver"
    assert re.fullmatch(r"[\w-]{1,40}", board["uid"])
    assert 36 <= board["schemaVersion"] <= 41
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE


def test_every_panel_has_a_unique_id_and_a_place_on_the_grid() -> None:
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids)), ids
    taken: set[tuple[int, int]] = set()
    for panel in panels():
        grid = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= set(grid), panel["title"]
        assert all(isinstance(grid[k], int) and grid[k] >= 0 for k in "hwxy"), panel["title"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                 for y in range(grid["y"], grid["y"] + grid["h"])}  # fmt: skip
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_every_query_uses_the_datasource_variable() -> None:
    charts = [p for p in panels() if p["type"] != "row"]
    assert charts
    for panel in charts:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]


# --- both against the receiver's real /metrics


def test_the_promql_reader_finds_what_the_queries_use() -> None:
    query = read(
        'time() - max by (kind) (label_replace(receiver_a{state="x", job=~"$job"}, "k", "$1",'
        ' "alertname", "(.*)")) / on () group_left () sum(rate(receiver_b_total[$__rate_interval]'
        ")) > 0.5 or vector(0)"
    )
    assert [(s.name, s.matchers, s.aggregations) for s in query.selectors] == [
        ("receiver_a", {"state", "job"}, ["max"]),
        ("receiver_b_total", set(), ["sum"]),
    ]
    assert query.grouping == {"kind"} and query.made == {"k"}
    found = {s.name for q in queries().values() for s in q.selectors}
    assert len(found) >= 15, found  # the reader did not silently miss most of them


def test_every_metric_the_rules_and_dashboard_query_is_in_the_receivers_metrics(
    exposed: Exposed,
) -> None:
    names = exposed.names() | PROMETHEUS_OWN
    histograms = [n for n, kind in exposed.families.items() if kind == "histogram"]
    assert histograms, "no histogram in /metrics"
    for histogram in histograms:  # each has real series after the webhook and the worker pass
        assert {f"{histogram}_{s}" for s in ("bucket", "sum", "count")} <= set(exposed.labels)
    missing = {
        f"{selector.name} ({where})"
        for where, query in queries().items()
        for selector in query.selectors
        if selector.name not in names
    }
    assert not missing, f"not in the receiver's /metrics: {sorted(missing)}"


def test_the_labels_the_queries_match_and_group_by_are_the_metrics_own(exposed: Exposed) -> None:
    problems = []
    for where, query in queries().items():
        known: set[str] | None = set(TARGET_LABELS) | query.made
        for selector in query.selectors:
            labels = exposed.labels.get(selector.name)
            if labels is None:  # no sample yet (a counter never incremented): labels unknown
                known = None
                continue
            if known is not None:
                known |= labels
            for label in selector.matchers - labels - TARGET_LABELS:
                problems.append(f"{where}: {selector.name} has no label {label!r}")
        for label in query.grouping - (known if known is not None else query.grouping):
            problems.append(f"{where}: no metric of it has the label {label!r}")
    assert not problems, "\n".join(problems)


def test_the_store_gauges_are_aggregated_with_max_never_summed_over_replicas(
    exposed: Exposed,
) -> None:
    """Every web replica reports the same gauge values: collapse them with max, then anything."""
    gauges = {n for n, kind in exposed.families.items() if kind == "gauge"}
    assert "receiver_outbox_deliveries" in gauges
    problems = [
        f"{where}: {s.name} inside {s.aggregations or 'no aggregation'}"
        for where, query in queries().items()
        for s in query.selectors
        if s.name in gauges and s.aggregations[:1] not in (["max"], ["min"])
    ]
    assert not problems, "\n".join(problems)


def test_the_dashboard_charts_every_metric_the_receiver_exports(exposed: Exposed) -> None:
    charted = {s.name for e in dashboard_exprs() for s in read(e).selectors}
    for name, kind in exposed.families.items():
        queried = f"{name}_bucket" if kind == "histogram" else name
        assert queried in charted, f"{queried} has no panel"
