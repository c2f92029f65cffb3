"""An error burst on one model, from Triton's counters to one page and one Slack message."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.stack import Stack
from tests.e2e.timeline import (
    alert_states,
    context_items,
    delivered,
    eventually,
    healthy_model,
    incident,
    incidents_of,
    pd_actions,
    pd_pages,
    receipts_from,
    slack_messages,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
MODEL = "e2e-burst-llama"
ALERT = "TritonHighErrorRate"


def test_an_error_burst_pages_once_posts_once_and_resolves_both_in_place(stack: Stack) -> None:
    healthy_model(stack, MODEL, success_per_s=20)
    assert incidents_of(stack, ALERT, model=MODEL) == []

    # 1. the burst: a third of the requests fail
    stack.pod_a.set_model(MODEL, failure_per_s=10)
    eventually(
        stack,
        "the alert firing in Prometheus",
        lambda: alert_states(stack, ALERT, model=MODEL) == ["firing"],
    )
    [opened] = eventually(
        stack, "an incident for the burst", lambda: incidents_of(stack, ALERT, model=MODEL)
    )
    assert (opened["status"], opened["severity"]) == ("firing", "critical")
    assert opened["labels"]["model"] == MODEL and opened["labels"]["team"] == "inference"
    assert opened["runbook_url"] == "https://runbooks.example.com/triton/triton-high-error-rate"

    # 2. the worker snapshots the context at the alert's start and notifies both
    def context_done() -> dict[str, Any] | None:
        detail = incident(stack, opened["id"])
        return detail if detail["context"]["state"] == "done" else None

    detail = eventually(stack, "the context snapshot", context_done)
    items = context_items(detail)
    for key in ("request_rate", "failure_rate"):
        assert items[key]["status"] == "ok", items[key]
        [value] = items[key]["values"]
        assert value["value"] is not None and value["value"] > 0, items[key]
    assert (
        items["failure_rate"]["values"][0]["value"] <= items["request_rate"]["values"][0]["value"]
    )

    delivered(stack, opened["id"])
    assert pd_actions(stack, detail) == ["trigger"]
    [page] = pd_pages(stack, detail)
    assert (page["status"], page["severity"]) == ("triggered", "critical")
    [message] = slack_messages(stack, [opened["id"]])
    assert message["text"].startswith("[FIRING]")

    # 3. the burst stops: the failure rate falls out of the window and the alert resolves
    stack.pod_a.set_model(MODEL, failure_per_s=0)
    eventually(
        stack,
        "the alert resolved in Prometheus",
        lambda: alert_states(stack, ALERT, model=MODEL) == [],
    )
    eventually(
        stack,
        "the incident resolved",
        lambda: [i["status"] for i in incidents_of(stack, ALERT, model=MODEL)] == ["resolved"],
    )

    detail = delivered(stack, opened["id"], "resolved")
    assert pd_actions(stack, detail) == ["trigger", "resolve"]
    assert [p["status"] for p in pd_pages(stack, detail)] == ["resolved"]
    [message] = slack_messages(stack, [opened["id"]])  # updated in place, not posted again
    assert message["text"].startswith("[RESOLVED]") and message["updates"]
    assert [i["id"] for i in incidents_of(stack, ALERT, model=MODEL)] == [opened["id"]]
    assert len(detail["alerts"]) == 1 and len(detail["alerts"][0]["episodes"]) == 1
    assert receipts_from(detail) == set(stack.alertmanagers.urls)  # both HA peers notified
    assert detail["counts"]["duplicates"] >= 1
