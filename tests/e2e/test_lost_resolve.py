"""A resolve Alertmanager never sends (the alert resolved while silenced) is found by the
receiver's reconciliation: the incident goes stale, then resolves, and the page is resolved."""

from __future__ import annotations

import pytest

from tests.e2e.stack import Stack
from tests.e2e.timeline import (
    alert_states,
    delivered,
    eventually,
    healthy_model,
    incident,
    incidents_of,
    pd_actions,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
ALERT = "TritonHighErrorRate"
MODEL = "e2e-lost-resolve-mixtral"  # a group (alertname, model) of its own


def kinds(stack: Stack, incident_id: int) -> list[str]:
    return [e["kind"] for e in incident(stack, incident_id)["timeline"]]


def silenced_everywhere(stack: Stack) -> bool:
    return all(
        [a["status"]["state"] for a in stack.alertmanagers.alerts(n, filter=[f'model="{MODEL}"'])]
        == ["suppressed"]
        for n in (0, 1)
    )


def test_an_alert_that_resolves_while_silenced_is_resolved_by_reconciliation(stack: Stack):
    healthy_model(stack, MODEL, success_per_s=20)
    stack.pod_a.set_model(MODEL, failure_per_s=10)
    [opened] = eventually(stack, "a page", lambda: incidents_of(stack, ALERT, model=MODEL))
    assert pd_actions(stack, delivered(stack, opened["id"])) == ["trigger"]

    # silenced on one Alertmanager (gossiped to the other), then the errors stop: the resolve
    # is muted with the alert, so Alertmanager never sends it
    silence = stack.alertmanagers.silence({"model": MODEL}, minutes=10)
    try:
        eventually(stack, "silenced on both Alertmanagers", lambda: silenced_everywhere(stack))
        stack.pod_a.set_model(MODEL, failure_per_s=0)
        eventually(
            stack, "resolved in Prometheus", lambda: not alert_states(stack, ALERT, model=MODEL)
        )
        eventually(stack, "marked stale", lambda: "stale" in kinds(stack, opened["id"]))
        done = delivered(stack, opened["id"], "resolved")
    finally:
        stack.alertmanagers.expire(silence)
    timeline = kinds(stack, opened["id"])
    assert timeline.index("stale") < timeline.index("reconciled") < timeline.index("resolved")
    stale = next(e for e in done["timeline"] if e["kind"] == "stale")
    assert "no longer reports it active" in stale["detail"]["reason"]
    assert done["payloads"][-1]["user_agent"] == "receiver-reconcile"
    assert pd_actions(stack, done) == ["trigger", "resolve"]
    # resolved as of when Alertmanager stopped holding it
    assert done["resolved_at"] == done["alerts"][0]["episodes"][-1]["absent_since"]
