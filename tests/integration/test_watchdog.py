"""The dead man's switch: the Watchdog alert is a heartbeat, its absence an incident of its own."""

from __future__ import annotations

import json

import pytest

from receiver.app import create_app
from receiver.bootstrap import bootstrap, build_watchdog
from tests.support.api import detail, incidents, post_webhook
from tests.support.payloads import alert, webhook

ROUTED = {
    "receivers": {
        "pd": {"type": "pagerduty", "routing_key": "r" * 32, "base_url": "https://127.0.0.1:9"}
    },
    "routes": [{"matchers": ['severity="critical"'], "receivers": ["pd"]}],
}


@pytest.fixture
def env(make_settings, clock):
    """A container with the Watchdog watched (missing after 10 min), its app, and the check."""
    container = bootstrap(
        make_settings({**ROUTED, "watchdog.missing_after_minutes": 10}), clock=clock
    )
    yield container, create_app(container=container).test_client(), build_watchdog(container)
    container.engine.dispose()


def watchdog_webhook(name: str = "Watchdog") -> str:
    """The heartbeat as Alertmanager sends it (``name``: another alert in its place)."""
    doc = webhook(
        alert(name, starts=-24 * 60, severity="none"),
        receiver="heartbeat",
        group_key='{}:{alertname="Watchdog"}',
    )
    return json.dumps(doc)


def test_a_watchdog_alert_is_a_heartbeat_and_never_an_incident(env, clock):
    container, client, _ = env
    answer = post_webhook(client, watchdog_webhook(), "heartbeat").get_json()
    assert answer["heartbeats"] == 1 and answer["incidents"] == [] and answer["new"] == 0
    post_webhook(client, watchdog_webhook(), "heartbeat")
    assert incidents(client) == []
    with container.uow() as uow:
        beat = uow.heartbeats.get("Watchdog")
        assert (beat.count, beat.last_seen_at, beat.receiver) == (2, clock.now, "heartbeat")


def test_a_missing_watchdog_opens_one_routed_incident_and_its_return_resolves_it(env, clock):
    _container, client, watchdog = env
    post_webhook(client, watchdog_webhook(), "heartbeat")
    last_beat = clock.now
    clock.advance(minutes=9, seconds=59)
    assert watchdog.check() == "ok"
    assert incidents(client) == []

    clock.advance(seconds=1)
    assert watchdog.check() == "opened"
    (opened,) = incidents(client)
    assert opened["status"] == "firing" and opened["severity"] == "critical"
    assert opened["labels"]["alertname"] == "WatchdogMissing"
    page = detail(client, opened["id"])
    (alert,) = page["alerts"]
    assert alert["episodes"][0]["starts_at"] == clock.now.isoformat()  # the moment it was overdue
    assert "has not arrived since" in alert["episodes"][0]["annotations"]["description"]
    assert [(d["receiver"], d["action"]) for d in page["deliveries"]] == [("pd", "trigger")]

    for _ in range(3):  # later checks, by this worker or another: the same incident, no new page
        clock.advance(minutes=1)
        assert watchdog.check() == "missing"
    assert [i["id"] for i in incidents(client)] == [opened["id"]]
    assert len(detail(client, opened["id"])["deliveries"]) == 1

    clock.advance(minutes=5)
    post_webhook(client, watchdog_webhook(), "heartbeat")
    back = clock.now
    assert watchdog.check() == "resolved"
    page = detail(client, opened["id"])
    assert page["status"] == "resolved" and page["resolved_at"] == back.isoformat()
    assert [(d["action"]) for d in page["deliveries"]] == ["trigger", "resolve"]
    assert watchdog.check() == "ok"
    assert last_beat < back


def test_a_watchdog_never_seen_is_missing_counted_from_the_worker_start(env, clock):
    _container, client, watchdog = env
    clock.advance(minutes=10)
    assert watchdog.check() == "opened"
    (opened,) = incidents(client)
    description = detail(client, opened["id"])["alerts"][0]["episodes"][0]["annotations"]
    assert "since the worker started" in description["description"]


def test_without_a_limit_there_is_no_watchdog_check_but_heartbeats_still_open_nothing(
    make_settings, clock
):
    container = bootstrap(make_settings(), clock=clock)
    client = create_app(container=container).test_client()
    try:
        assert build_watchdog(container) is None
        assert post_webhook(client, watchdog_webhook(), "hb").get_json()["heartbeats"] == 1
        assert incidents(client) == []
    finally:
        container.engine.dispose()


def test_with_no_heartbeat_name_a_watchdog_alert_is_an_ordinary_alert(make_settings, clock):
    container = bootstrap(make_settings({"watchdog.alertname": ""}), clock=clock)
    client = create_app(container=container).test_client()
    try:
        answer = post_webhook(client, watchdog_webhook(), "hb").get_json()
        assert answer["heartbeats"] == 0 and answer["new"] == 1
        assert [i["alertname"] for i in incidents(client)] == ["Watchdog"]
    finally:
        container.engine.dispose()
