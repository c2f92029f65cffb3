"""Both Alertmanagers of the HA pair notify the same group: one incident, one page.

The alert is posted to both peers directly (as Prometheus does, but without its rules), so the
receiver gets the group's notification from each Alertmanager (``--cluster.peer-timeout=0s``:
neither waits for the other's gossip) and must count the second as a duplicate.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.stack import Stack
from tests.e2e.timeline import (
    delivered,
    eventually,
    incident,
    incidents_of,
    pd_actions,
    pd_pages,
    receipts_from,
    slack_messages,
)
from tests.support.payloads import rfc3339

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
ALERT = "TritonHighLatency"
MODEL = "e2e-ha-qwen"


def latency_alert(starts: datetime, ends: datetime) -> dict[str, Any]:
    """The alert as Prometheus would post it to Alertmanager's v2 API."""
    return {
        "labels": {"alertname": ALERT, "model": MODEL, "severity": "warning", "team": "inference"},
        "annotations": {
            "summary": f"Triton model {MODEL} mean latency above 500 ms",
            "runbook_url": "https://runbooks.example.com/triton/triton-high-latency",
        },
        "startsAt": rfc3339(starts),
        "endsAt": rfc3339(ends),
        "generatorURL": "http://prometheus.invalid/graph",
    }


def test_both_alertmanagers_notify_yet_there_is_one_incident_and_one_page(stack: Stack) -> None:
    starts = datetime.now(UTC).replace(microsecond=0)
    stack.alertmanagers.post_alerts([latency_alert(starts, starts + timedelta(minutes=10))])

    def from_both() -> dict[str, Any] | None:
        found = incidents_of(stack, ALERT, model=MODEL)
        if len(found) != 1:
            return None
        detail = incident(stack, found[0]["id"])
        return detail if receipts_from(detail) == set(stack.alertmanagers.urls) else None

    detail = eventually(stack, "notifications from both Alertmanagers", from_both)
    assert detail["counts"]["duplicates"] >= 1
    assert detail["counts"]["notifications"] == len(detail["payloads"]) >= 2
    [series] = detail["alerts"]
    [episode] = series["episodes"]
    assert episode["seen_count"] >= 2 and episode["starts_at"] == starts.isoformat()
    paged = delivered(stack, detail["id"])
    assert pd_actions(stack, paged) == ["trigger"]
    assert len(slack_messages(stack, [detail["id"]])) == 1

    ended = datetime.now(UTC)
    stack.alertmanagers.post_alerts([latency_alert(starts, ended)])
    done = delivered(stack, detail["id"], "resolved")
    assert [i["id"] for i in incidents_of(stack, ALERT, model=MODEL)] == [detail["id"]]
    assert pd_actions(stack, done) == ["trigger", "resolve"]
    assert [p["status"] for p in pd_pages(stack, done)] == ["resolved"]
    [message] = slack_messages(stack, [detail["id"]])
    assert message["text"].startswith("[RESOLVED]")
