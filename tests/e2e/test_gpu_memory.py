"""GPU memory over 90 % on several GPUs of one pod: one incident that grows, shrinks and ends."""

from __future__ import annotations

import pytest

from tests.e2e.stack import Stack
from tests.e2e.timeline import (
    alert_states,
    delivered,
    episodes_of,
    eventually,
    gpu_memory,
    incidents_of,
    pd_actions,
    pd_pages,
    sent_actions,
    slack_messages,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
ALERT = "TritonGPUMemoryHigh"
GPU_1, GPU_2 = "GPU-e2e-grow-0001", "GPU-e2e-grow-0002"


def firing_gpus(stack: Stack, instance: str) -> dict[str, str]:
    """gpu_uuid -> status of each episode of the pod's GPU alerts (latest episode per GPU)."""
    found = episodes_of(stack, ALERT, instance=instance)
    return {e["labels"]["gpu_uuid"]: e["status"] for e in found}


def test_gpus_filling_up_one_after_another_are_one_incident_paged_and_resolved_once(
    stack: Stack,
) -> None:
    instance = stack.pod_a.target
    gpu_memory(stack, GPU_1, 0.5)
    gpu_memory(stack, GPU_2, 0.5)
    assert incidents_of(stack, ALERT, instance=instance) == []

    # 1. GPU 1 crosses 90 %: an incident, a page, a Slack message
    gpu_memory(stack, GPU_1, 0.95)
    eventually(stack, "GPU 1 firing", lambda: firing_gpus(stack, instance) == {GPU_1: "firing"})
    [opened] = incidents_of(stack, ALERT, instance=instance)
    first = delivered(stack, opened["id"])
    assert pd_actions(stack, first) == ["trigger"]

    # 2. GPU 2 joins the same group: the same incident grows (updates, no second page)
    gpu_memory(stack, GPU_2, 0.97)
    both = {GPU_1: "firing", GPU_2: "firing"}
    eventually(stack, "GPU 2 joining", lambda: firing_gpus(stack, instance) == both)
    grown = delivered(stack, opened["id"])
    assert grown["counts"]["alerts"] == 2 and grown["status"] == "firing"
    assert "alert_added" in [e["kind"] for e in grown["timeline"]]

    # 3. GPU 1 back under: a partial resolve, the incident stays open
    gpu_memory(stack, GPU_1, 0.5)
    partial = {GPU_1: "resolved", GPU_2: "firing"}
    eventually(stack, "GPU 1 resolved", lambda: firing_gpus(stack, instance) == partial)
    assert [i["status"] for i in incidents_of(stack, ALERT, instance=instance)] == ["firing"]

    # 4. GPU 2 back under: the group is over, the incident resolves once
    gpu_memory(stack, GPU_2, 0.5)
    eventually(
        stack,
        "both resolved in Prometheus",
        lambda: alert_states(stack, ALERT, instance=instance) == [],
    )
    done = delivered(stack, opened["id"], "resolved")
    actions = pd_actions(stack, done)
    assert actions[0] == "trigger" and actions[-1] == "resolve" and actions.count("resolve") == 1
    assert set(actions[1:-1]) <= {"trigger"}  # updates re-send the trigger: merged, no page
    assert [p["status"] for p in pd_pages(stack, done)] == ["resolved"]
    for receiver in ("pagerduty", "slack"):  # one trigger, an update per change, one resolve
        sent = sent_actions(done, receiver)
        assert sent[0] == "trigger" and sent[-1] == "resolve", sent
        assert sent.count("trigger") == sent.count("resolve") == 1 and "update" in sent, sent
    [message] = slack_messages(stack, [opened["id"]])
    assert message["text"].startswith("[RESOLVED]") and len(message["updates"]) >= 2
    assert [i["id"] for i in incidents_of(stack, ALERT, instance=instance)] == [opened["id"]]
    assert sorted(e["resolution"] for e in episodes_of(stack, ALERT, instance=instance)) == [
        "resolved",
        "resolved",
    ]
