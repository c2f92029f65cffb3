"""Alertmanager 0.32+'s ``notification_reason`` and 0.34+'s ``routeLabels``, through the intake
to the API, the UI and the routes; an older Alertmanager's webhooks are unchanged (the fixture
and golden tests). Runs on SQLite and on Postgres."""

from __future__ import annotations

import re
from typing import Any

import pytest
from werkzeug.security import generate_password_hash

from receiver.app import create_app
from receiver.bootstrap import bootstrap
from tests.support.api import detail, incidents, send
from tests.support.payloads import alert, webhook
from tests.support.ui_session import PASSWORD, login

PAGERDUTY = {"type": "pagerduty", "routing_key": "r" * 32, "base_url": "https://127.0.0.1:9"}


def receiver_app(make_settings: Any, clock: Any, **extra: Any) -> Any:
    """A receiver that pages ``ml-pd`` for the route label team=ml-serving only."""
    settings = make_settings(
        {
            **extra,
            "receivers": {"ml-pd": PAGERDUTY, "other-pd": PAGERDUTY},
            "routes": [{"matchers": ['team="ml-serving"'], "receivers": ["ml-pd"]}],
            "default_receivers": ["other-pd"],
            "ui.users": {"alice": generate_password_hash(PASSWORD)},
            "ui.secret_key": "s" * 32,
            "ui.cookie_secure": False,
        }
    )
    container = bootstrap(settings, clock=clock)
    return container, create_app(container=container).test_client()


@pytest.fixture
def routed(make_settings: Any, clock: Any) -> Any:
    container, client = receiver_app(make_settings, clock)
    yield client
    container.engine.dispose()


def newer(*alerts: dict[str, Any], reason: str, **fields: Any) -> dict[str, Any]:
    return {
        **webhook(*alerts, group_key='{}:{alertname="GpuHot"}', common=True),
        "notification_reason": reason,
        **fields,
    }


def test_route_labels_route_filter_and_show_and_each_receipt_keeps_its_reason(routed: Any) -> None:
    hot = alert("GpuHot", gpu="0")
    route = {"routeLabels": {"team": "ml-serving", "gpu": "route-value"}}
    send(routed, newer(hot, reason="first notification", **route))
    send(routed, newer(hot, reason="repeat interval elapsed", **route))
    assert login(routed).status_code == 302  # the read API is behind the UI's login

    (listed,) = incidents(routed, "label=team%3D%22ml-serving%22")
    assert listed["route_labels"] == {"team": "ml-serving", "gpu": "route-value"}
    assert listed["labels"]["team"] == "ml-serving" and listed["labels"]["gpu"] == "0"
    assert incidents(routed, "label=gpu%3D%22route-value%22") == []  # the alert's own wins
    assert incidents(routed, q="ml-serving") != []

    shown = detail(routed, listed["id"])
    assert [d["receiver"] for d in shown["deliveries"]] == ["ml-pd"]
    assert [p["notification_reason"] for p in shown["payloads"]] == [
        "first notification",
        "repeat interval elapsed",
    ]
    (opened,) = shown["timeline"]
    assert opened["kind"] == "opened"
    assert opened["detail"]["notification_reason"] == "first notification"

    page = routed.get(f"/incidents/{listed['id']}").get_data(as_text=True)
    (route_line,) = re.findall(r'<p id="route-labels">(.*?)</p>', page)
    assert route_line.startswith("Alertmanager route:")
    assert "<code>team=ml-serving</code>" in route_line  # key order: JSONB keeps its own
    assert "(first notification)</span>" in page  # on the timeline
    assert '<span class="notification-reason">repeat interval elapsed</span>' in page


def test_without_the_new_fields_nothing_changes(routed: Any) -> None:
    send(
        routed, webhook(alert("GpuHot", gpu="1"), group_key='{}:{alertname="GpuHot"}', common=True)
    )
    assert login(routed).status_code == 302
    (listed,) = incidents(routed)
    assert listed["route_labels"] == {} and "team" not in listed["labels"]
    shown = detail(routed, listed["id"])
    assert [d["receiver"] for d in shown["deliveries"]] == ["other-pd"]
    assert [p["notification_reason"] for p in shown["payloads"]] == [None]
    assert "notification_reason" not in shown["timeline"][0]["detail"]


def test_a_title_template_names_the_route_label_and_the_alerts_own(
    make_settings: Any, clock: Any
) -> None:
    template = "[{route:team}] {alertname} on GPU {label:gpu}"
    container, client = receiver_app(make_settings, clock, **{"intake.title_template": template})
    route = {"routeLabels": {"team": "ml-serving"}}
    for gpu, fields in (("3", route), ("4", {})):
        body = webhook(alert("GpuHot", gpu=gpu), group_key=f'{{}}:{{gpu="{gpu}"}}', common=True)
        send(client, {**body, **fields})
    assert login(client).status_code == 302

    titles = sorted(i["title"] for i in incidents(client))
    container.engine.dispose()
    # without route labels the placeholder is empty and its brackets stay
    assert titles == ["[] GpuHot on GPU 4", "[ml-serving] GpuHot on GPU 3"]
