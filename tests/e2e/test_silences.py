"""A silence created on one Alertmanager is gossiped to its peer; the silenced alert never
reaches the receiver, while an unsilenced alert of the same group does.

The absence is observed, not waited for: both alerts are posted together, so the notification
that brings the unsilenced one would have carried the silenced one too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.stack import Stack
from tests.e2e.timeline import delivered, eventually, incidents_of
from tests.support.payloads import rfc3339

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
ALERT = "TritonHighLatency"
MODEL = "e2e-silenced-phi"  # the group: alertname and model
SILENCED, SHOWN = "10.0.0.1:8002", "10.0.0.2:8002"


def latency_alert(instance: str, starts: datetime, ends: datetime) -> dict[str, Any]:
    labels = {"alertname": ALERT, "model": MODEL, "instance": instance, "severity": "warning"}
    return {
        "labels": {**labels, "team": "inference"},
        "annotations": {"summary": f"{MODEL} slow on {instance}"},
        "startsAt": rfc3339(starts),
        "endsAt": rfc3339(ends),
    }


def states(stack: Stack, n: int) -> dict[str, str]:
    """instance -> Alertmanager state (active, suppressed) of the group's alerts on node ``n``."""
    found = stack.alertmanagers.alerts(n, filter=[f'model="{MODEL}"'])
    return {a["labels"]["instance"]: a["status"]["state"] for a in found}


def test_a_silence_set_on_one_peer_keeps_its_alert_from_both_peers_notifications(
    stack: Stack,
) -> None:
    cluster = stack.alertmanagers
    silence = cluster.silence({"model": MODEL, "instance": SILENCED}, n=0)

    def active_on_peer() -> bool:
        return any(
            s["id"] == silence and s["status"]["state"] == "active" for s in cluster.silences(1)
        )

    eventually(stack, "the silence gossiped to the other Alertmanager", active_on_peer)
    starts = datetime.now(UTC).replace(microsecond=0)
    later = starts + timedelta(minutes=10)
    cluster.post_alerts(
        [latency_alert(SILENCED, starts, later), latency_alert(SHOWN, starts, later)]
    )
    wanted = {SILENCED: "suppressed", SHOWN: "active"}
    for n in range(cluster.size):
        eventually(
            stack,
            f"the alert suppressed on Alertmanager {n}",
            lambda n=n: states(stack, n) == wanted,
        )

    [opened] = eventually(
        stack, "the group's incident", lambda: incidents_of(stack, ALERT, model=MODEL)
    )
    paged = delivered(stack, opened["id"])
    assert [s["labels"]["instance"] for s in paged["alerts"]] == [SHOWN]
    assert incidents_of(stack, ALERT, model=MODEL, instance=SILENCED) == []

    ended = datetime.now(UTC)
    cluster.post_alerts(
        [latency_alert(SILENCED, starts, ended), latency_alert(SHOWN, starts, ended)]
    )
    done = delivered(stack, opened["id"], "resolved")
    assert [s["labels"]["instance"] for s in done["alerts"]] == [SHOWN]  # not even its resolve
    cluster.expire(silence)
    assert [s["id"] for s in cluster.silences(0) if s["status"]["state"] == "active"] == []
