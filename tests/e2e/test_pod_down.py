"""One of the two Triton pods stops answering its scrape: fewer than 2 healthy pods."""

from __future__ import annotations

import pytest

from tests.e2e.stack import Stack
from tests.e2e.timeline import (
    alert_states,
    delivered,
    eventually,
    incidents_of,
    pd_actions,
    pd_pages,
    slack_messages,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
ALERT = "TritonFewHealthyPods"


def healthy_pods(stack: Stack) -> float:
    return stack.prometheus.value('count(up{job="triton"} == 1) or on () vector(0)')


def test_a_pod_down_opens_one_incident_that_resolves_when_it_is_back(stack: Stack) -> None:
    assert healthy_pods(stack) == 2
    assert incidents_of(stack, ALERT) == []

    with stack.pod_b.unavailable():
        eventually(stack, "pod B down in Prometheus", lambda: healthy_pods(stack) == 1)
        [opened] = eventually(stack, "an incident", lambda: incidents_of(stack, ALERT))
        assert (opened["status"], opened["severity"]) == ("firing", "critical")
        paged = delivered(stack, opened["id"])
        assert pd_actions(stack, paged) == ["trigger"]
        assert [m["text"][:8] for m in slack_messages(stack, [opened["id"]])] == ["[FIRING]"]

    eventually(stack, "both pods up again", lambda: healthy_pods(stack) == 2)
    eventually(stack, "the alert resolved in Prometheus", lambda: alert_states(stack, ALERT) == [])
    done = delivered(stack, opened["id"], "resolved")
    assert [i["id"] for i in incidents_of(stack, ALERT)] == [opened["id"]]
    assert pd_actions(stack, done) == ["trigger", "resolve"]
    assert [p["status"] for p in pd_pages(stack, done)] == ["resolved"]
    [message] = slack_messages(stack, [opened["id"]])
    assert message["text"].startswith("[RESOLVED]")
