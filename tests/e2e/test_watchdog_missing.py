"""The dead man's switch end to end: while the Watchdog is silenced in Alertmanager, the
receiver opens a WatchdogMissing incident and pages; when the Watchdog is back, it resolves."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.stack import Stack, watchdog_heartbeat
from tests.e2e.timeline import delivered, eventually, incidents_of, pd_actions

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def new_watchdog_incidents(stack: Stack, earlier: set[int]) -> list[dict[str, Any]]:
    return [i for i in incidents_of(stack, "WatchdogMissing") if i["id"] not in earlier]


def test_a_missing_watchdog_pages_and_its_return_resolves_the_page(stack: Stack):
    assert incidents_of(stack, "Watchdog") == []  # a heartbeat, never an incident
    # an earlier scenario that held the intake for over 20 s rightly opened (and resolved)
    # one of its own: only an incident opened by this silence counts
    earlier = {i["id"] for i in incidents_of(stack, "WatchdogMissing")}
    before = watchdog_heartbeat(stack)
    silence = stack.alertmanagers.silence({"alertname": "Watchdog"}, minutes=10)
    try:
        opened = eventually(
            stack,
            "a WatchdogMissing incident",
            lambda: new_watchdog_incidents(stack, earlier),
            timeout=60,
        )[0]
        page = delivered(stack, opened["id"])
        assert pd_actions(stack, page) == ["trigger"]
        assert page["severity"] == "critical" and page["status"] == "firing"
        assert "alerting may be down" in page["annotations"]["summary"]
    finally:
        stack.alertmanagers.expire(silence)
    done = delivered(stack, opened["id"], "resolved")
    assert pd_actions(stack, done) == ["trigger", "resolve"]
    assert watchdog_heartbeat(stack) > before
    assert [i["id"] for i in new_watchdog_incidents(stack, earlier)] == [opened["id"]]
