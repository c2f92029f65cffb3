"""Configurable limits on what one webhook may carry: beyond them a 400 naming the field, the
request kept among the rejected, nothing stored, and the receiver still serving."""

from __future__ import annotations

import json

import pytest

from receiver.app import create_app
from receiver.bootstrap import bootstrap
from tests.support.api import post_webhook, send
from tests.support.payloads import alert, webhook
from tests.support.storage import assert_nothing_stored, assert_still_serving, rejected_rows

LIMITS = {
    "intake.max_alerts": 3,
    "intake.max_labels": 5,
    "intake.max_label_value_length": 64,
    "intake.max_annotation_value_length": 100,
}


@pytest.fixture
def limited(make_settings, clock):
    container = bootstrap(make_settings(LIMITS), clock=clock)
    yield container, create_app(container=container).test_client()
    container.engine.dispose()


def refused(client, doc) -> list[dict[str, str]]:
    answer = post_webhook(client, json.dumps(doc))
    assert answer.status_code == 400, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["error"] == "invalid_payload"
    return body["errors"]


def many_labels(n: int) -> dict[str, str]:
    return {f"l{i}": "x" for i in range(n)}


@pytest.mark.parametrize(
    ("doc", "field", "words"),
    [
        (webhook(*(alert(instance=f"h{i}") for i in range(4))), "alerts", "at most 3 per request"),
        (webhook(alert(**many_labels(4))), "alerts[0].labels", "6 entries; at most 5"),
        (webhook(alert(instance="v" * 65)), "alerts[0].labels.instance", "64 characters"),
        (webhook(alert(**{"n" * 65: "x"})), f"alerts[0].labels.{'n' * 64}", "for a name"),
    ],
    ids=["alerts", "label count", "label value", "label name"],
)
def test_a_webhook_over_a_limit_is_refused_naming_the_field_and_nothing_is_stored(
    limited, doc, field, words
):
    container, client = limited
    errors = refused(client, doc)
    assert errors[0]["field"] == field and words in errors[0]["message"]
    assert_nothing_stored(client, container.engine)
    (row,) = rejected_rows(container.engine)
    assert (row.status_code, row.reason) == (400, "invalid_payload")
    assert_still_serving(client)


def test_annotations_have_their_own_longer_limit(limited):
    _, client = limited
    ok = alert()
    ok["annotations"]["description"] = "d" * 100
    assert send(client, webhook(ok))["new"] == 1
    too_long = alert(instance="h2")
    too_long["annotations"]["description"] = "d" * 101
    (error,) = refused(client, webhook(too_long))
    assert error["field"] == "alerts[0].annotations.description"


def test_exactly_at_every_limit_is_accepted(limited):
    _, client = limited
    labels = {"instance": "v" * 64, "n" * 64: "x", "severity": "warning"}  # 5 with alertname...
    at_limit = [alert(**labels, gpu=str(i)) for i in range(3)]
    assert send(client, webhook(*at_limit))["new"] == 3


def test_the_defaults_take_a_large_real_group(make_settings, clock):
    container = bootstrap(make_settings(), clock=clock)
    client = create_app(container=container).test_client()
    try:
        big = webhook(*(alert(instance=f"host-{i}") for i in range(1000)))
        assert send(client, big)["new"] == 1000
    finally:
        container.engine.dispose()
