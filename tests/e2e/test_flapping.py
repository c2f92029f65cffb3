"""A GPU whose memory crosses 90 % again and again: paged at most twice, then shown as flapping.

docs/semantics.md and docs/delivery.md (threshold 3 starts, hold-down as configured): the first
two starts open an incident each (two starts are not flapping yet) and page; the second
incident's resolve is held back (one start short of flapping); the third start rejoins it as
flapping and only updates the page; its final resolve goes out after the hold-down.
"""

from __future__ import annotations

import pytest

from tests.e2e.stack import Stack
from tests.e2e.timeline import (
    delivered,
    episodes_of,
    eventually,
    gpu_memory,
    incident,
    incidents_of,
    pd_actions,
    pd_pages,
    slack_messages,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
ALERT = "TritonGPUMemoryHigh"
GPU = "GPU-e2e-flap-0001"  # on pod B: its own group (alertname, instance)
STARTS = 3


def states(stack: Stack) -> list[str]:
    """Status of each episode of the flapping GPU, oldest first."""
    return [e["status"] for e in episodes_of(stack, ALERT, gpu_uuid=GPU)]


def test_a_flapping_gpu_pages_at_most_twice_and_its_incident_shows_flapping(
    stack: Stack,
) -> None:
    gpu_memory(stack, GPU, 0.5, pod="b")
    assert incidents_of(stack, ALERT, gpu_uuid=GPU) == []

    for start in range(1, STARTS + 1):
        gpu_memory(stack, GPU, 0.96, pod="b")
        fired = ["resolved"] * (start - 1) + ["firing"]
        eventually(stack, f"start {start} firing", lambda f=fired: states(stack) == f)
        gpu_memory(stack, GPU, 0.5, pod="b")
        ended = ["resolved"] * start
        eventually(stack, f"start {start} resolved", lambda e=ended: states(stack) == e)

    first, second = incidents_of(stack, ALERT, gpu_uuid=GPU)
    assert [e["incident"] for e in episodes_of(stack, ALERT, gpu_uuid=GPU)] == [
        first["id"],
        second["id"],
        second["id"],
    ]
    assert (first["flapping"], second["flapping"]) == (False, True)
    assert second["flap_count"] == STARTS
    assert "flapping" in [e["kind"] for e in incident(stack, second["id"])["timeline"]]

    # the final resolve waits for the hold-down, then goes out once
    final = delivered(stack, second["id"], "resolved")
    delivered(stack, first["id"], "resolved")
    # page, resolve; page again (2 starts are not flapping); the re-firing updates the open
    # PagerDuty alert (a trigger with its dedup key, merged); the held resolve
    assert pd_actions(stack, final) == ["trigger", "resolve", "trigger", "trigger", "resolve"]
    assert [p["status"] for p in pd_pages(stack, final)] == ["resolved", "resolved"]  # 2 pages
    first_message, second_message = slack_messages(stack, [first["id"], second["id"]])
    assert first_message["text"].startswith("[RESOLVED]")
    assert second_message["text"].startswith("[RESOLVED]")
    shown = " ".join(str(block) for block in second_message["blocks"])
    assert "(flapping)" in shown
