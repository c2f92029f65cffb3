"""The receiver's HTTP API as the tests use it: the test token, posting webhooks, and small
readers of its answers (incidents, details, timelines, /metrics) through Flask's test client,
or (``read_json``) from a receiver serving on a port."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import requests
from prometheus_client.parser import text_string_to_metric_families

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WEBHOOKS = "receiver_webhooks_total"


def post_webhook(client: Any, body: bytes | str, receiver: str | None = None, **kwargs: Any) -> Any:
    """POST a webhook body with the test token."""
    path = "/api/v1/alertmanager" + (f"/{receiver}" if receiver else "")
    headers = {**AUTH, **kwargs.pop("headers", {})}
    kwargs.setdefault("content_type", "application/json")
    return client.post(path, data=body, headers=headers, **kwargs)


def send(client: Any, doc: dict[str, Any] | str, receiver: str | None = None) -> dict[str, Any]:
    """POST a body that must be stored; return the intake's JSON summary."""
    body = doc if isinstance(doc, str) else json.dumps(doc)
    response = post_webhook(client, body, receiver)
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer["status"] == "stored"
    return answer


def incidents(
    client: Any, query: str = "", *, by_id: bool = False, **params: str
) -> list[dict[str, Any]]:
    """Every incident matching a list query (one page of up to 500): ``query`` as written in a
    URL and/or ``params``; newest first as the API lists them, or oldest first by ``by_id``."""
    found = client.get(f"/api/v1/incidents?{urlencode({'limit': 500, **params})}&{query}")
    assert found.status_code == 200, found.get_data(as_text=True)
    listed = found.get_json()["incidents"]
    return sorted(listed, key=lambda i: i["id"]) if by_id else listed


def detail(client: Any, incident_id: int) -> dict[str, Any]:
    response = client.get(f"/api/v1/incidents/{incident_id}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def timeline_kinds(client: Any, incident_id: int) -> list[str]:
    return [event["kind"] for event in detail(client, incident_id)["timeline"]]


def episodes(client: Any, incident_id: int) -> list[dict[str, Any]]:
    """Every episode of an incident, flattened, with its series' alertname and labels."""
    out = []
    for series in detail(client, incident_id)["alerts"]:
        for episode in series["episodes"]:
            out.append({**episode, "alertname": series["alertname"], "labels": series["labels"]})
    return out


def metric(client: Any, name: str, **labels: str) -> float:
    """The value of one sample at /metrics (0 when the series does not exist yet)."""
    text = client.get("/metrics").get_data(as_text=True)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def read_json(base_url: str, path: str, **params: Any) -> Any:
    """GET a JSON document of the read API of a receiver serving at ``base_url``."""
    answer = requests.get(base_url + path, params=params, timeout=10)
    assert answer.status_code == 200, f"{path}: {answer.status_code} {answer.text[:500]}"
    return answer.json()
