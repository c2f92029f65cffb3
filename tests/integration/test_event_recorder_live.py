"""The real Alertmanager 0.33.1 with its event recorder posting to a real receiver: a silenced
alert's incident names its silence and who made it. Skips without $RECEIVER_TEST_NEWEST_BIN
(fails in CI: tests/support/versions.py), and uses the shipped event-recorder.yml."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import create_engine, text

from tests.support.alertmanager import AlertmanagerCluster
from tests.support.api import TOKEN, read_json
from tests.support.databases import migrated_sqlite
from tests.support.payloads import rfc3339
from tests.support.servers import gunicorn
from tests.support.versions import NEWEST

SHIPPED = Path(__file__).parents[2] / "config" / "alertmanager" / "event-recorder.yml"


def config(receiver_url: str, token_file: Path) -> dict[str, Any]:
    auth = {"authorization": {"type": "Bearer", "credentials_file": str(token_file)}}
    recorder = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    [output] = recorder["event_recorder"]["webhook_outputs"]
    output.update(url=f"{receiver_url}/api/v1/event-recorder", http_config=auth)
    hook = {"url": f"{receiver_url}/api/v1/alertmanager/am", "http_config": auth}
    return {
        "route": {
            "receiver": "am",
            "group_by": ["alertname"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [{"name": "am", "webhook_configs": [hook]}],
        **recorder,
    }


def poll(what: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := what()):
        assert time.monotonic() < deadline, "not within the deadline"
        time.sleep(0.2)
    return found


def muted(database: str) -> int:
    engine = create_engine(database)
    try:
        with engine.connect() as conn:
            query = "SELECT count(*) FROM alertmanager_events WHERE kind = 'silenceMutedAlert'"
            return int(conn.execute(text(query)).scalar_one())
    finally:
        engine.dispose()


def test_a_silenced_alert_shows_its_silence_and_creator_on_its_incident(tmp_path: Path) -> None:
    binary = NEWEST.require("alertmanager")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    database = migrated_sqlite(tmp_path / "receiver.db")
    with gunicorn(database, workers=1) as receiver:
        cluster = AlertmanagerCluster(
            config(receiver.url, token_file),
            size=1,
            tmp_dir=tmp_path,
            binary=binary,
            extra_args=["--enable-feature=event-recorder"],
        )
        with cluster:
            silence = cluster.silence(
                {"alertname": "QuietDisk"}, comment="replacing disk", created_by="bob@example.com"
            )
            now = datetime.now(UTC)
            alert = {"labels": {"alertname": "QuietDisk", "instance": "db3:9100"},
                     "startsAt": rfc3339(now - timedelta(seconds=5))}  # fmt: skip
            cluster.post_alerts([alert])
            poll(lambda: muted(database))  # the event recorder reported the mute
            cluster.expire(silence)  # now it is notified: an incident

            def incident() -> dict[str, Any] | None:
                listed = read_json(receiver.url, "/api/v1/incidents")["incidents"]
                mine = [i for i in listed if i["alertname"] == "QuietDisk"]
                if not mine:
                    return None
                detail = read_json(receiver.url, f"/api/v1/incidents/{mine[0]['id']}")
                return detail if detail["mutes"] else None

            detail = poll(incident)

    [mute] = detail["mutes"]
    assert mute["kind"] == "silenced"
    assert mute["silence"]["id"] == silence
    assert mute["silence"]["created_by"] == "bob@example.com"
    assert mute["silence"]["comment"] == "replacing disk"
    assert mute["labels"]["alertname"] == "QuietDisk"
