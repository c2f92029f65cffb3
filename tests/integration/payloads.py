"""Hand-written Alertmanager webhook bodies and small readers of the receiver's HTTP answers.

Times are minutes after ``T0`` so tests read as timelines: ``alert("DiskFull", starts=5)``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, func, select, table

from receiver.store.tables import RejectedRequest
from tests.conftest import post_webhook

T0 = datetime(2026, 11, 28, 0, 0, 0, tzinfo=UTC)
WEBHOOKS = "receiver_webhooks_total"
ZERO_TIME = "0001-01-01T00:00:00Z"


def ts(minutes: float) -> str:
    """RFC 3339 text of ``T0 + minutes``, as Alertmanager writes it."""
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def fake_fingerprint(labels: dict[str, str]) -> str:
    """A stable 16-hex id per label set (any string will do for the receiver)."""
    text = json.dumps(labels, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def alert(
    name: str = "DiskFull",
    status: str = "firing",
    starts: float = 0,
    ends: float | None = None,
    **labels: str,
) -> dict[str, Any]:
    """One entry of ``alerts``; a resolved alert ends one minute after it started by default."""
    all_labels = {"alertname": name, "severity": "warning", **labels}
    if status == "resolved" and ends is None:
        ends = starts + 1
    return {
        "status": status,
        "labels": all_labels,
        "annotations": {"summary": f"{name} on {labels.get('instance', 'host-1')}"},
        "startsAt": ts(starts),
        "endsAt": ts(ends) if ends is not None else ZERO_TIME,
        "generatorURL": "http://prometheus.example/graph",
        "fingerprint": fake_fingerprint(all_labels),
    }


def webhook(
    *alerts: dict[str, Any],
    receiver: str = "team-a",
    group_key: str | None = None,
    status: str | None = None,
    truncated: int = 0,
) -> dict[str, Any]:
    """A version 4 body; the root status is firing while any listed alert fires."""
    names = sorted({a["labels"]["alertname"] for a in alerts})
    if status is None:
        status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    group_labels = {"alertname": names[0]} if len(names) == 1 else {}
    common = {"alertname": names[0]} if len(names) == 1 else {}
    return {
        "receiver": receiver,
        "status": status,
        "alerts": list(alerts),
        "groupLabels": group_labels,
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "version": "4",
        "groupKey": group_key or "{}:" + json.dumps(group_labels, sort_keys=True),
        "truncatedAlerts": truncated,
    }


def send(client: Any, doc: dict[str, Any] | str, receiver: str | None = None) -> dict[str, Any]:
    """POST a body that must be stored; return the intake's JSON summary."""
    body = doc if isinstance(doc, str) else json.dumps(doc)
    response = post_webhook(client, body, receiver)
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer["status"] == "stored"
    return answer


def incidents(client: Any, query: str = "") -> list[dict[str, Any]]:
    """Every incident matching a list query (one page of up to 500)."""
    response = client.get(f"/api/v1/incidents?limit=500&{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["incidents"]


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


def row_count(engine: Engine, table_name: str) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table(table_name))).scalar_one()


# -- storage helpers --------------------------------------------------------------------------

VALID = json.dumps(webhook(alert("DiskFull", instance="host-1")))
STORED_TABLES = (
    "alert_groups",
    "incidents",
    "incident_labels",
    "alert_episodes",
    "incident_events",
    "webhook_receipts",
    "incident_receipts",
    "payload_bodies",
)


def rejected_rows(engine: Engine) -> list[Any]:
    """The rejected_requests rows, oldest first."""
    rejected = RejectedRequest.__table__
    with engine.connect() as conn:
        return list(conn.execute(select(rejected).order_by(rejected.c.id)))


def assert_nothing_stored(client: Any, engine: Engine) -> None:
    assert incidents(client) == []
    for name in STORED_TABLES:
        assert row_count(engine, name) == 0, name


def assert_still_serving(client: Any) -> None:
    """A valid webhook is stored (as the only incident) after whatever happened before."""
    answer = send(client, VALID)
    assert answer["new"] == 1
    assert [i["alertname"] for i in incidents(client)] == ["DiskFull"]
