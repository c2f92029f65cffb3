"""What the notifiers send: PagerDuty events and Slack Block Kit, within the vendors' limits."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from pydantic import TypeAdapter

from receiver.model.snapshot import AlertSeries, Counts, Episode, Group, IncidentSnapshot
from receiver.notify import DeliveryJob
from receiver.notify.pagerduty import MAX_EVENT_BYTES, PagerDutyNotifier
from receiver.notify.slack_blocks import change_lines, incident_blocks, incident_text
from receiver.settings import PagerDutyReceiver
from tests.support.snapshots import at, context_item, episode, event, series, snapshot

GROUP_KEY = '{}/{severity="critical"}:{alertname="TritonHighErrorRate", model="llama2_7b"}'


def incident(**changes: Any) -> IncidentSnapshot:
    base: dict[str, Any] = {
        "id": 7,
        "status": "firing",
        "severity": "critical",
        "alertname": "TritonHighErrorRate",
        "receiver": "triton-critical",
        "title": "High inference error rate on llama2_7b",
        "labels": {
            "alertname": "TritonHighErrorRate",
            "model": "llama2_7b",
            "instance": "10.0.0.5:8002",
            "job": "triton",
            "severity": "critical",
        },
        "annotations": {"summary": "High inference error rate on llama2_7b"},
        "opened_at": at("2026-11-28T00:21:15+00:00"),
        "counts": Counts(notifications=3, duplicates=2, alerts=2, episodes=2),
        "flapping": False,
        "runbook_url": "https://runbooks.example.com/triton/high-error-rate",
        "guidance": "Roll back <bad> versions & shed load",
        "group": Group("triton-critical", GROUP_KEY, False, {}),
        "alerts": tuple(
            series(
                f"fp{i}",
                episode(generator_url="http://prom:9090/graph?g0=x"),
                labels={"alertname": "TritonHighErrorRate", "instance": f"10.0.0.{i}"},
            )
            for i in range(2)
        ),
        "context": (
            context_item("Pending requests (queue)", ("7",)),
            context_item("GPU utilization", reason="no data"),
        ),
    }
    base.update(changes)
    return snapshot(**base)


def notifier(**settings: Any) -> PagerDutyNotifier:
    config = TypeAdapter(PagerDutyReceiver).validate_python(
        {"type": "pagerduty", "routing_key": "R" * 32, **settings}
    )
    return PagerDutyNotifier("pd", config)


@pytest.fixture
def pd():
    built = notifier()
    yield built
    built.close()


def job(action: str = "trigger", **incident_changes: Any) -> DeliveryJob:
    return DeliveryJob(1, "7:pd:trigger:1", action, incident(**incident_changes))


def test_the_default_dedup_key_is_the_sha256_of_the_group_key_like_alertmanager(pd):
    event = pd.event(job())
    assert event["dedup_key"] == hashlib.sha256(GROUP_KEY.encode()).hexdigest()


def test_the_incident_strategy_gives_each_incident_its_own_key():
    per_incident = notifier(dedup_key="incident")
    try:
        first = per_incident.event(job())["dedup_key"]
        second = per_incident.event(job(id=8))["dedup_key"]
    finally:
        per_incident.close()
    assert first != second and len(first) == 64


def test_a_trigger_carries_what_the_on_call_engineer_needs(pd):
    event = pd.event(job())
    payload = event["payload"]
    assert event["event_action"] == "trigger"
    assert payload["summary"] == "[2 firing] High inference error rate on llama2_7b"
    assert payload["severity"] == "critical"
    assert (payload["source"], payload["component"], payload["class"]) == (
        "10.0.0.5:8002",
        "llama2_7b",
        "TritonHighErrorRate",
    )
    details = payload["custom_details"]
    assert details["labels"]["model"] == "llama2_7b"
    assert details["counts"]["alerts"] == 2
    assert details["context"] == {
        "Pending requests (queue)": "7",
        "GPU utilization": "unavailable: no data",
    }
    assert {link["text"] for link in event["links"]} == {"Runbook", "Prometheus graph"}
    assert "routing_key" not in json.dumps(event)  # the client adds it, never our payload


def test_the_summary_is_cut_to_pagerduty_limit(pd):
    assert len(pd.event(job(title="x" * 5000))["payload"]["summary"]) == 1024


@pytest.mark.parametrize(
    ("severity", "expected"),
    [("critical", "critical"), ("warning", "warning"), ("page", "critical"), ("bogus", "error")],
)
def test_severity_labels_map_to_pagerduty_severities(pd, severity, expected):
    assert pd.event(job(severity=severity))["payload"]["severity"] == expected


def test_a_resolve_names_only_the_dedup_key(pd):
    event = pd.event(job("resolve"))
    assert event == {"event_action": "resolve", "dedup_key": pd.dedup_key(incident())}


def test_an_oversized_event_drops_its_bulkiest_details_to_fit(pd):
    huge = {"summary": "x", "description": "y" * (MAX_EVENT_BYTES + 10)}
    event = pd.event(job(annotations=huge))
    assert len(json.dumps(event)) < MAX_EVENT_BYTES
    assert event["payload"]["custom_details"]["annotations"] == "(omitted: event too large)"


def test_a_non_http_generator_url_is_never_a_link(pd):
    alerts = (series("fp0", episode(generator_url="javascript:x")),)
    links = pd.event(job(alerts=alerts))["links"]
    assert [link["text"] for link in links] == ["Runbook"]


def test_slack_blocks_stay_within_block_kit_limits_and_escape_alert_text():
    blocks = incident_blocks(incident(title="T" * 400, guidance="<script>x</script>" * 500), None)
    assert len(blocks) <= 50
    assert len(blocks[0]["text"]["text"]) <= 150
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert all(len(text) <= 3000 for text in sections)
    assert "<script>" not in "".join(sections)
    assert "&lt;script&gt;" in "".join(sections)


def test_slack_blocks_show_status_counts_context_and_link_buttons():
    blocks = incident_blocks(incident(), "https://receiver.example/incidents/7")
    text = json.dumps(blocks)
    assert "FIRING: High inference error rate on llama2_7b" in text
    assert "*Alerts:* 2 (2 firing)" in text
    assert "Pending requests (queue): 7" in text
    assert "_unavailable: no data_" in text
    buttons = [e["url"] for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert buttons == [
        "https://runbooks.example.com/triton/high-error-rate",
        "https://receiver.example/incidents/7",
    ]
    assert incident_text(incident(status="resolved")).startswith("[RESOLVED]")


def test_only_timeline_changes_become_thread_lines():
    events = (
        event("opened", "2026-11-28T00:21:15+00:00"),
        event("alert_added", "2026-11-28T00:21:20+00:00", summary="GPU 1"),
        event("truncated", "2026-11-28T00:21:21+00:00"),
        event("resolved", "2026-11-28T00:22:00+00:00"),
    )
    assert change_lines(events) == [
        "00:21:20 UTC: alert added GPU 1",
        "00:22:00 UTC: incident resolved",
    ]


def two_alerts(first_status: str = "firing", *earlier: Episode) -> tuple[AlertSeries, ...]:
    """Two GPU alerts; ``earlier`` episodes come before the first one's."""
    return tuple(
        series(
            f"fp{i}",
            *(earlier if i == 0 else ()),
            episode(
                status=first_status if i == 0 else "firing",
                starts_at=f"2026-11-28T00:2{i}:00+00:00",
                annotations={"summary": f"GPU {i} memory high"},
            ),
            labels={"alertname": "TritonGPUMemoryHigh", "gpu_uuid": f"GPU-{i}"},
        )
        for i in range(2)
    )


@pytest.mark.parametrize("strategy", ["alert", "episode"])
def test_per_alert_strategies_send_one_event_per_alert_with_its_own_key(strategy):
    per_alert = notifier(dedup_key=strategy)
    try:
        events = per_alert.events(job(alerts=two_alerts("resolved")))
        resolved = per_alert.events(job("resolve", alerts=two_alerts()))
    finally:
        per_alert.close()
    assert [e["event_action"] for e in events] == ["resolve", "trigger"]
    assert events[1]["payload"]["summary"] == "GPU 1 memory high"
    assert events[1]["payload"]["timestamp"] == "2026-11-28T00:21:00+00:00"
    assert len({e["dedup_key"] for e in events}) == 2
    assert [e["event_action"] for e in resolved] == ["resolve", "resolve"]
    assert [e["dedup_key"] for e in resolved] == [e["dedup_key"] for e in events]


def test_the_episode_strategy_keys_each_firing_and_the_alert_strategy_each_series():
    earlier = episode(
        status="resolved",
        starts_at="2026-11-28T00:10:00",
        annotations={"summary": "GPU 0 memory high"},
    )
    refired = two_alerts("firing", earlier)
    by_alert, by_episode = notifier(dedup_key="alert"), notifier(dedup_key="episode")
    try:
        alert_events = by_alert.events(job(alerts=refired))
        episode_events = by_episode.events(job(alerts=refired))
    finally:
        by_alert.close()
        by_episode.close()
    assert len(alert_events) == 2  # the latest firing of each series
    assert [e["event_action"] for e in episode_events] == ["resolve", "trigger", "trigger"]


def test_the_slo_status_reaches_pagerduty_and_slack_as_context_lines():
    from receiver.notify.pagerduty import _details
    from receiver.notify.slack_blocks import _context_lines

    budget = context_item("Error budget remaining", ("50.0 % left (21.6 of 43.2 min)",))
    burn = context_item("Error budget burn rate (current)", ("14.40x",))
    incident = snapshot(context=(budget, burn))
    details = _details(incident)["context"]
    assert details["Error budget remaining"] == "50.0 % left (21.6 of 43.2 min)"
    assert details["Error budget burn rate (current)"] == "14.40x"
    lines = _context_lines(incident)
    assert "• Error budget remaining: 50.0 % left (21.6 of 43.2 min)" in lines
