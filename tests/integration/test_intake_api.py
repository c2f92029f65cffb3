"""The webhook intake's HTTP contract: authentication, rejections and tolerance.

What gets stored (deduplication, outages, atomicity) is in test_intake_storage.py.

Every test taking ``client``, ``container`` or ``make_settings`` runs on SQLite and on Postgres.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from receiver.app import create_app
from receiver.bootstrap import Container, bootstrap
from tests.support.api import AUTH, TOKEN, WEBHOOKS, detail, incidents, metric, post_webhook, send
from tests.support.payloads import FIXTURES, VALID, alert, webhook
from tests.support.storage import assert_nothing_stored, assert_still_serving, rejected_rows

# -- authentication ---------------------------------------------------------------------------

BAD_CREDENTIALS = {
    "no header": {},
    "wrong token": {"Authorization": f"Bearer {TOKEN}-not"},
    "token with another scheme": {"Authorization": f"Token {TOKEN}"},
    "token as basic auth": {"Authorization": f"Basic {TOKEN}"},
    "scheme without value": {"Authorization": "Bearer"},
}


@pytest.mark.parametrize("headers", BAD_CREDENTIALS.values(), ids=BAD_CREDENTIALS.keys())
def test_a_webhook_without_valid_credentials_is_refused_and_not_kept(
    client: Any, container: Container, headers: dict[str, str]
) -> None:
    response = client.post(
        "/api/v1/alertmanager/team-a", data=VALID, content_type="application/json", headers=headers
    )

    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert TOKEN not in response.get_data(as_text=True)
    assert rejected_rows(container.engine) == []  # unauthenticated bodies are not kept
    # counted without the (unauthenticated) receiver name from the URL
    assert metric(client, WEBHOOKS, result="unauthorized", receiver="") == 1
    assert_nothing_stored(client, container.engine)
    assert_still_serving(client)


def test_basic_auth_is_accepted_when_configured_and_challenged_when_wrong(
    make_settings: Any, clock: Any
) -> None:
    settings = make_settings({"auth.basic_auth": {"username": "am", "password": "s3cret"}})
    container = bootstrap(settings, clock=clock)
    try:
        client = create_app(container=container).test_client()

        def basic(user_password: str) -> dict[str, str]:
            return {"Authorization": "Basic " + base64.b64encode(user_password.encode()).decode()}

        good = client.post(
            "/api/v1/alertmanager",
            data=VALID,
            content_type="application/json",
            headers=basic("am:s3cret"),
        )
        wrong = client.post(
            "/api/v1/alertmanager",
            data=VALID,
            content_type="application/json",
            headers=basic("am:guess"),
        )

        assert good.status_code == 200
        assert good.get_json()["new"] == 1
        assert wrong.status_code == 401
        assert 'Basic realm="receiver"' in wrong.headers["WWW-Authenticate"]
        assert "s3cret" not in wrong.get_data(as_text=True)
        assert post_webhook(client, VALID).status_code == 200  # the bearer token still works
    finally:
        container.engine.dispose()


def test_the_bearer_token_never_appears_in_any_response_or_log(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    near_miss = {"Authorization": f"Bearer {TOKEN[:-1]}"}
    answers = [
        post_webhook(client, VALID, "team-a"),
        post_webhook(client, VALID, headers=near_miss),
        post_webhook(client, '{"alerts": "' + TOKEN + '"}'),
        post_webhook(client, VALID, content_type="text/plain"),
        client.get("/api/v1/incidents"),
        client.get("/metrics"),
        client.get("/readyz"),
    ]
    answers.append(client.get(f"/api/v1/incidents/{answers[0].get_json()['incidents'][0]}"))

    assert [a.status_code for a in answers] == [200, 401, 400, 415, 200, 200, 200, 200]
    for answer in answers:
        assert TOKEN not in answer.get_data(as_text=True)
    assert TOKEN not in caplog.text


# -- rejections -------------------------------------------------------------------------------

BIG = json.dumps(webhook(alert("DiskFull", runbook="x" * 3000)))
BAD_TYPES = {
    "receiver": 7,
    "truncatedAlerts": "2",
    "alerts": [
        {"status": "firing", "labels": {"alertname": 5}, "startsAt": "2026-11-28T00:00:00Z"}
    ],
}
ALERTS_WITHOUT_NAME = webhook(alert("DiskFull"), alert("DiskFull"))
ALERTS_WITHOUT_NAME["alerts"][1]["labels"] = {"severity": "page"}
BAD_STATUS = webhook(alert("DiskFull"), status="pending")
BAD_STATUS["alerts"][0]["status"] = "active"
BAD_TIME = webhook(alert("DiskFull"), alert("DiskFull", instance="host-2"))
BAD_TIME["alerts"][1]["startsAt"] = "yesterday at noon"


def invalid(body: str | dict[str, Any], *fields: str) -> tuple[Any, ...]:
    text = body if isinstance(body, str) else json.dumps(body)
    return (text, "application/json", 400, "invalid_payload", set(fields))


# name: (body, content type, status, error code, offending fields when a 400)
REJECTIONS: dict[str, tuple[Any, ...]] = {
    "text/plain": (VALID, "text/plain", 415, "unsupported_media_type", None),
    "no content type": (VALID, None, 415, "unsupported_media_type", None),
    "malformed JSON": invalid('{"alerts": [', "(body)"),
    "a JSON array": invalid(f"[{VALID}]", "(body)"),
    "wrong types": invalid(BAD_TYPES, "receiver", "truncatedAlerts", "alerts[0].labels.alertname"),
    "missing alerts": invalid('{"receiver": "team-a"}', "alerts"),
    "an alert without alertname": invalid(ALERTS_WITHOUT_NAME, "alerts[1].labels"),
    "bad statuses": invalid(BAD_STATUS, "status", "alerts[0].status"),
    "an unparseable startsAt": invalid(BAD_TIME, "alerts[1].startsAt"),
    "a body over the size limit": (BIG, "application/json", 413, "payload_too_large", None),
}
LIMITS = {
    "intake.max_body_bytes": 2048,
    "intake.rejected_body_bytes": 40,
    "intake.rejected_keep": 3,
}


@pytest.fixture
def strict(make_settings: Any, clock: Any) -> Iterator[Container]:
    """A receiver with small intake limits: 2 KiB bodies, 40 bytes kept of 3 rejected requests."""
    container = bootstrap(make_settings(LIMITS), clock=clock)
    yield container
    container.engine.dispose()


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code", "fields"), REJECTIONS.values(), ids=REJECTIONS.keys()
)
def test_a_rejected_webhook_is_answered_in_json_recorded_counted_and_stores_nothing(
    strict: Container,
    body: str,
    content_type: str | None,
    status: int,
    code: str,
    fields: set[str] | None,
) -> None:
    client = create_app(container=strict).test_client()

    response = post_webhook(client, body, "team-a", content_type=content_type)

    assert response.status_code == status
    assert response.is_json
    answer = response.get_json()
    assert answer["error"] == code
    if fields is not None:
        assert {e["field"] for e in answer["errors"]} == fields
        assert all(e["message"] for e in answer["errors"])
    [row] = rejected_rows(strict.engine)
    assert (row.status_code, row.reason, row.receiver) == (status, code, "team-a")
    assert row.body_size == len(body.encode())
    if status == 413:
        assert row.body is None  # a too-large body is never read
    else:
        assert row.body == body.encode()[:40]
    assert metric(client, WEBHOOKS, result=code, receiver="team-a") == 1
    assert_nothing_stored(client, strict.engine)
    assert_still_serving(client)


def test_the_rejected_request_log_keeps_only_the_newest_requests(strict: Container) -> None:
    client = create_app(container=strict).test_client()
    bodies = [f'{{"broken": {n}' for n in range(7)]

    for body in bodies:
        assert post_webhook(client, body).status_code == 400

    assert [row.body for row in rejected_rows(strict.engine)] == [b.encode() for b in bodies[-3:]]
    assert metric(client, WEBHOOKS, result="invalid_payload", receiver="") == 7
    assert_still_serving(client)


def chunked_request(path: str, body: bytes) -> Request:
    """A request as a WSGI server hands over a chunked upload: no Content-Length."""
    environ = EnvironBuilder(
        path=path,
        method="POST",
        input_stream=io.BytesIO(body),
        content_type="application/json",
        headers=AUTH,
    ).get_environ()
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True  # what gunicorn sets
    return Request(environ)


def test_a_chunked_body_over_the_limit_is_refused_as_too_large(strict: Container) -> None:
    client = create_app(container=strict).test_client()

    response = client.open(chunked_request("/api/v1/alertmanager/team-a", BIG.encode()))

    assert response.status_code == 413
    assert response.get_json()["error"] == "payload_too_large"
    [row] = rejected_rows(strict.engine)
    assert (row.status_code, row.body) == (413, None)
    assert_nothing_stored(client, strict.engine)


def test_a_chunked_body_within_the_limit_is_stored(strict: Container) -> None:
    client = create_app(container=strict).test_client()

    response = client.open(chunked_request("/api/v1/alertmanager/team-a", VALID.encode()))

    assert response.status_code == 200
    assert response.get_json()["new"] == 1


def test_a_rejection_with_an_overlong_receiver_name_is_still_recorded(
    client: Any, container: Container
) -> None:
    name = "r" * 300

    response = post_webhook(client, VALID, name)

    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_receiver"
    [row] = rejected_rows(container.engine)
    assert row.reason == "invalid_receiver"


def test_unauthenticated_requests_cannot_create_metric_series_at_will(client: Any) -> None:
    for n in range(20):
        client.post(f"/api/v1/alertmanager/probe-{n}", data=VALID, content_type="application/json")

    text = client.get("/metrics").get_data(as_text=True)
    series = [line for line in text.splitlines() if line.startswith(WEBHOOKS + "{")]
    assert len(series) <= 1, series


UNUSUAL_LABELS = {
    "a 40 character severity": alert("DiskFull", severity="page-" + "x" * 35),
    "a 300 character alertname": alert("Disk" + "Full" * 74),
}


@pytest.mark.parametrize("entry", UNUSUAL_LABELS.values(), ids=UNUSUAL_LABELS.keys())
def test_a_valid_alert_with_unusual_labels_is_not_answered_as_an_outage(
    client: Any, container: Container, entry: dict[str, Any]
) -> None:
    response = post_webhook(client, json.dumps(webhook(entry)), "team-a")

    assert response.status_code != 503, "a permanent problem reported as a transient outage"
    assert response.status_code == 200
    assert len(incidents(client)) == 1


def test_a_nul_character_in_a_label_is_refused_with_its_field(client: Any) -> None:
    body = json.dumps(webhook(alert("DiskFull", mount="/data\u0000")))

    response = post_webhook(client, body, "team-a")

    assert response.status_code == 400
    fields = [e["field"] for e in response.get_json()["errors"]]
    assert fields == ["alerts[0].labels"]
    assert incidents(client) == []


# -- tolerance --------------------------------------------------------------------------------


def test_fields_the_receiver_does_not_know_are_ignored(client: Any) -> None:
    doc = webhook(alert("DiskFull"))
    doc["notification_reason"] = "repeat_interval"
    doc["routeLabels"] = {"team": "storage"}
    doc["alerts"][0]["silencedBy"] = []

    answer = send(client, json.dumps(doc))

    assert (answer["alerts"], answer["new"]) == (1, 1)
    assert len(incidents(client)) == 1


def test_a_minimal_payload_is_stored_with_identity_derived_as_alertmanager_would(
    client: Any,
) -> None:
    recorded = json.loads(json.loads((FIXTURES / "all" / "055.json").read_text())["body_raw"])
    labels = recorded["alerts"][0]["labels"]
    minimal = {
        "alerts": [{"status": "firing", "labels": labels, "startsAt": "2026-11-28T00:22:02.795Z"}]
    }

    first = send(client, json.dumps(minimal), "pods")
    [incident] = incidents(client)
    shown = detail(client, incident["id"])

    assert first["receiver"] == "pods"
    [series] = shown["alerts"]
    assert series["fingerprint"] == recorded["alerts"][0]["fingerprint"]
    assert series["fingerprint_derived"] is True
    assert shown["group"]["group_key_derived"] is True
    assert shown["group"]["group_key"] == 'derived:{alertname="TritonNoHealthyPods"}'
    # the same episode sent later by Alertmanager itself is a repeat, not a new incident
    again = send(client, json.dumps({**minimal, "alerts": recorded["alerts"]}), "pods")
    assert (again["new"], again["duplicate"], again["incidents"]) == (0, 1, [incident["id"]])
