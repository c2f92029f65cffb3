"""Concurrent deliveries of one group, through real gunicorn workers and through threads."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from receiver.store.db import make_engine
from receiver.store.tables import AlertEpisode, AlertGroup, Incident, WebhookReceipt
from tests.support.api import AUTH
from tests.support.payloads import FIXTURES
from tests.support.servers import gunicorn

pytestmark = pytest.mark.slow

SENDERS = 20
Answer = tuple[int, dict[str, Any]]
Send = Callable[[bytes], Answer]
GetJson = Callable[[str], Any]
RECORDED = json.loads((FIXTURES / "single-repeat-resolve" / "001.json").read_text())
RECEIVER = RECORDED["path"].rsplit("/", 1)[-1]
INTAKE = f"/api/v1/alertmanager/{RECEIVER}"
HEADERS = {**AUTH, "Content-Type": "application/json"}


def distinct_alert_bodies() -> list[bytes]:
    """The recorded notification, once per sender with its own alert (same groupKey)."""
    bodies = []
    for n in range(SENDERS):
        doc = json.loads(RECORDED["body_raw"])
        alert = doc["alerts"][0]
        alert["labels"]["instance"] = f"10.0.0.{n}:8002"
        alert["fingerprint"] = f"{n + 1:016x}"
        doc["commonLabels"] = {k: v for k, v in alert["labels"].items() if k != "instance"}
        bodies.append(json.dumps(doc).encode())
    return bodies


def all_at_once(send: Send, bodies: list[bytes]) -> list[Answer]:
    """Start one thread per body, release them together, return (status, answer) per body."""
    barrier = threading.Barrier(len(bodies))

    def one(body: bytes) -> Answer:
        barrier.wait(timeout=30)
        return send(body)

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(one, bodies))


def http_sender(base_url: str) -> Send:
    def send(body: bytes) -> Answer:
        with requests.Session() as session:
            answer = session.post(base_url + INTAKE, data=body, headers=HEADERS, timeout=30)
            return answer.status_code, answer.json()

    return send


def row_counts(db_url: str) -> dict[str, int]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return {
                table.__tablename__: conn.scalar(select(func.count()).select_from(table))
                for table in (AlertGroup, Incident, AlertEpisode, WebhookReceipt)
            }
    finally:
        engine.dispose()


def only_incident(get_json: GetJson) -> dict[str, Any]:
    """The one incident the API lists, in detail."""
    listing = get_json("/api/v1/incidents")
    assert [i["status"] for i in listing["incidents"]] == ["firing"], listing
    return get_json(f"/api/v1/incidents/{listing['incidents'][0]['id']}")


def http_json(base_url: str) -> GetJson:
    def get(path: str) -> Any:
        with requests.Session() as session:
            answer = session.get(base_url + path, timeout=10)
            assert answer.status_code == 200, answer.text
            return answer.json()

    return get


def assert_one_deduplicated_incident(results: list[Answer], get_json: GetJson) -> None:
    assert [status for status, _ in results] == [200] * SENDERS, results
    assert sum(answer["new"] for _, answer in results) == 1
    assert sum(answer["duplicate"] for _, answer in results) == SENDERS - 1
    assert len({tuple(answer["incidents"]) for _, answer in results}) == 1
    incident = only_incident(get_json)
    assert incident["counts"] == {
        "notifications": SENDERS,
        "duplicates": SENDERS - 1,
        "alerts": 1,
        "episodes": 1,
    }
    assert [len(a["episodes"]) for a in incident["alerts"]] == [1]
    assert incident["alerts"][0]["episodes"][0]["seen_count"] == SENDERS
    assert len(incident["payloads"]) == SENDERS


def assert_one_incident_holding_every_alert(results: list[Answer], get_json: GetJson) -> None:
    assert [status for status, _ in results] == [200] * SENDERS, results
    assert sum(answer["new"] for _, answer in results) == SENDERS
    assert len({tuple(answer["incidents"]) for _, answer in results}) == 1
    incident = only_incident(get_json)
    assert incident["counts"]["episodes"] == SENDERS
    assert incident["counts"]["alerts"] == SENDERS
    assert incident["counts"]["notifications"] == SENDERS
    assert incident["counts"]["duplicates"] == 0
    assert sorted(a["labels"]["instance"] for a in incident["alerts"]) == sorted(
        f"10.0.0.{n}:8002" for n in range(SENDERS)
    )


def test_twenty_identical_notifications_at_once_through_gunicorn_make_one_incident(
    db_url: str,
) -> None:
    with gunicorn(db_url) as server:
        results = all_at_once(http_sender(server.url), [RECORDED["body_raw"].encode()] * SENDERS)
        assert_one_deduplicated_incident(results, http_json(server.url))
    assert row_counts(db_url) == {
        "alert_groups": 1,
        "incidents": 1,
        "alert_episodes": 1,
        "webhook_receipts": SENDERS,
    }


def test_twenty_different_alerts_of_one_group_at_once_through_gunicorn_share_one_incident(
    db_url: str,
) -> None:
    with gunicorn(db_url) as server:
        results = all_at_once(http_sender(server.url), distinct_alert_bodies())
        assert_one_incident_holding_every_alert(results, http_json(server.url))
    assert row_counts(db_url) == {
        "alert_groups": 1,
        "incidents": 1,
        "alert_episodes": SENDERS,
        "webhook_receipts": SENDERS,
    }


def app_sender(app: Any) -> Send:
    def send(body: bytes) -> Answer:
        answer = app.test_client().post(INTAKE, data=body, headers=HEADERS)
        return answer.status_code, answer.get_json()

    return send


def app_json(app: Any) -> GetJson:
    def get(path: str) -> Any:
        answer = app.test_client().get(path)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return answer.get_json()

    return get


def test_twenty_threads_posting_one_notification_in_process_make_one_incident(
    app: Any, db_url: str
) -> None:
    results = all_at_once(app_sender(app), [RECORDED["body_raw"].encode()] * SENDERS)
    assert_one_deduplicated_incident(results, app_json(app))
    assert row_counts(db_url)["alert_groups"] == 1


def test_twenty_threads_posting_different_alerts_in_process_share_one_incident(
    app: Any, db_url: str
) -> None:
    results = all_at_once(app_sender(app), distinct_alert_bodies())
    assert_one_incident_holding_every_alert(results, app_json(app))
    assert row_counts(db_url)["incidents"] == 1
