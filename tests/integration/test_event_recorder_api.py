"""The event recorder's intake (``POST /api/v1/event-recorder``) and the mutes an incident
shows, replaying tests/fixtures/alertmanager-0.33.1-events.

Every test taking ``client`` or ``container`` runs on SQLite and on Postgres.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import update

from receiver.app import create_app
from receiver.bootstrap import Container, bootstrap
from receiver.store.tables import AlertmanagerEvent
from receiver.worker import prune_events
from tests.support.am_events import PATH, RECORDED, post_event, replay
from tests.support.api import AUTH, TOKEN, incidents
from tests.support.databases import receiver_settings
from tests.support.servers import free_port
from tests.support.storage import row_count


def test_the_recorded_events_are_stored_once_even_when_sent_again(
    client: Any, container: Container
) -> None:
    replay(client)
    stored = row_count(container.engine, "alertmanager_events")
    replay(client)  # the webhook output retries: nothing new

    assert stored == 19  # 20 events; the repeated FanNoise silence mute is one row
    assert row_count(container.engine, "alertmanager_events") == stored


def test_an_inhibited_alerts_incident_shows_the_rule_and_the_inhibiting_alert(
    client: Any,
) -> None:
    replay(client)
    [slow] = [i for i in incidents(client) if i["alertname"] == "DiskSlow"]

    detail = client.get(f"/api/v1/incidents/{slow['id']}").get_json()

    [mute] = detail["mutes"]
    assert mute["kind"] == "inhibited"
    assert mute["inhibited_by"] == ["efb0c6c488e007da"]  # DiskFull's fingerprint
    assert mute["rules"][0]["equal"] == ["instance"]


def test_an_incident_shows_the_group_alertmanager_put_its_alert_in(browser: Any) -> None:
    replay(browser)
    [full] = [i for i in incidents(browser) if i["alertname"] == "DiskFull"]

    [grouping] = browser.get(f"/api/v1/incidents/{full['id']}").get_json()["groupings"]
    page = browser.get(f"/incidents/{full['id']}").get_data(as_text=True)

    assert grouping["fingerprint"] == "efb0c6c488e007da"
    assert (grouping["receiver"], grouping["group_key"]) == ("hook", '{}:{alertname="DiskFull"}')
    assert grouping["count"] == 2  # grouped when it fired and again when it resolved
    assert (
        "receiver <code>hook</code>, group <code>{}:{alertname=&#34;DiskFull&#34;}</code>" in page
    )


def test_a_batch_is_accepted(client: Any, container: Container) -> None:
    events = [json.loads(r["body_raw"]) for r in RECORDED if r["path"] == "/events"]
    response = post_event(client, json.dumps(events))
    assert response.status_code == 200
    assert response.get_json() == {"events": len(events)}
    assert row_count(container.engine, "alertmanager_events") == 19


def test_events_need_the_webhook_credentials_for_every_method(client: Any) -> None:
    body = RECORDED[0]["body_raw"]
    for method in ("post", "options"):  # other methods: 405, no view runs
        response = getattr(client, method)(PATH, data=body, content_type="application/json")
        assert response.status_code == 401, method
    wrong = post_event(client, body, Authorization=f"Bearer {TOKEN}-not")
    assert wrong.status_code == 401


def test_an_invalid_event_is_a_400_naming_the_problem(client: Any, container: Container) -> None:
    response = post_event(client, '{"@timestamp": "2026-12-08T01:52:34Z", "data": {}}')
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "invalid_event"
    assert body["errors"][0]["field"] == "data"
    assert "exactly one event kind" in body["message"]
    assert post_event(client, "not json").status_code == 400
    assert client.post(PATH, data="{}", content_type="text/plain", headers=AUTH).status_code == 415
    gzipped = {**AUTH, "Content-Encoding": "gzip"}  # read as the webhook's body is: as sent
    assert (
        client.post(PATH, data="{}", content_type="application/json", headers=gzipped).status_code
        == 415
    )
    too_large = "[" + " " * container.settings.intake.max_body_bytes + "]"
    assert (
        client.post(PATH, data=too_large, content_type="application/json", headers=AUTH).status_code
        == 413
    )
    assert row_count(container.engine, "alertmanager_events") == 0


def test_events_get_503_when_the_database_is_unreachable(clock: Any) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/receiver"
    container = bootstrap(receiver_settings(url), clock=clock)
    try:
        client = create_app(container=container).test_client()
        response = post_event(client, RECORDED[0]["body_raw"])
        assert response.status_code == 503
        assert response.get_json()["error"] == "storage_unavailable"
    finally:
        container.engine.dispose()


def recorded_silence() -> dict[str, Any]:
    """The FanNoise silence as created (its id is new at each recording)."""
    [body] = [r["body"] for r in RECORDED if "silenceCreated" in r["body_raw"]]
    return body["data"]["silenceCreated"]["silence"]


def test_the_incident_page_says_why_no_one_was_paged(browser: Any) -> None:
    replay(browser)  # FanNoise is notified once its silence expired
    by_name = {i["alertname"]: i["id"] for i in incidents(browser)}

    fan = browser.get(f"/incidents/{by_name['FanNoise']}").get_data(as_text=True)
    slow = browser.get(f"/incidents/{by_name['DiskSlow']}").get_data(as_text=True)
    full = browser.get(f"/incidents/{by_name['DiskFull']}").get_data(as_text=True)

    assert "Why wasn't I paged?" in fan
    assert recorded_silence()["id"] in fan
    assert "alice@example.com" in fan and "disk swap, ticket OPS-42" in fan
    assert "seen 2\u00d7" in fan
    assert "disk swap moved to Friday, ticket OPS-42" in fan  # the mute after the update
    assert "inhibited" in slow and "efb0c6c488e007da" in slow and "alertname=DiskFull" in slow
    assert "reported no silence or inhibition" in full


def test_events_last_seen_past_retention_are_pruned(client: Any, container: Container) -> None:
    replay(client)
    old = container.clock() - timedelta(days=container.settings.retention.event_days, seconds=1)
    with container.engine.begin() as conn:
        conn.execute(
            update(AlertmanagerEvent)
            .where(AlertmanagerEvent.kind != "silenceMutedAlert")
            .values(last_at=old)
        )

    assert prune_events(container) == 17
    assert row_count(container.engine, "alertmanager_events") == 2
