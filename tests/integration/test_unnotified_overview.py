"""The overview's alerts that fired but notified no one in the last day, from the event
recorder's events (tests/fixtures/alertmanager-0.33.1-events). In the recording FanNoise is
silenced, its silence updated, then expired, and FanNoise notified; most tests leave that last
notification out, as the day stood while the silence held.

Every test runs on SQLite and on Postgres. "Now" is the test clock, moved to the recording's
time; the UI session is opened again after each move (sessions last ``ui.session_hours``).
"""

from __future__ import annotations

import copy
import html
import json
import re
from datetime import datetime, timedelta
from typing import Any

from tests.support.am_events import RECORDED, post_event, recorded_event, replay
from tests.support.ui_session import login

MUTES = [json.loads(r["body_raw"]) for r in RECORDED if '"silenceMutedAlert"' in r["body_raw"]]
LAST_MUTE = max(datetime.fromisoformat(m["@timestamp"]) for m in MUTES)  # FanNoise's third
SILENCE = MUTES[-1]["data"]["silenceMutedAlert"]["silence"]  # as updated
FAN_NOISE = "ee6ada5566052b4b"
DISK_SLOW = "c52171f27d6a1609"
DISK_FULL = "efb0c6c488e007da"
ROW = re.compile(r'<tr class="unnotified" data-fingerprint="([0-9a-f]+)".*?</tr>', re.S)


def before_the_expiry(request: dict[str, Any]) -> bool:
    """Every recorded request but FanNoise's notification once its silence expired."""
    body = request["body_raw"]
    notified = request["path"] == "/hook/hook" or '"notification"' in body
    return not (notified and "FanNoise" in body)


def unnotified_at(browser: Any, clock: Any, now: datetime) -> str:
    """The overview's section of alerts that notified no one, as the page shows it at ``now``."""
    clock.now = now
    assert login(browser).status_code == 302
    page = browser.get("/overview").get_data(as_text=True)
    found = re.search(r'<section id="unnotified">.*?</section>', page, re.S)
    assert found, "no such section on the overview"
    return found.group(0)


def rows(section: str) -> dict[str, str]:
    """Each listed alert's row, by fingerprint, in the page's order."""
    return {m.group(1): m.group(0) for m in ROW.finditer(section)}


def text(markup: str) -> str:
    """What a reader sees: cells and paragraphs apart, other tags dropped, entities read,
    spaces collapsed."""
    spaced = re.sub(r"</?(?:td|th|tr|p)\b[^>]*>", " ", markup)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", spaced)).split())


def test_a_silenced_alert_is_listed_with_its_silence_and_notified_ones_are_not(
    browser: Any, clock: Any
) -> None:
    replay(browser, keep=before_the_expiry)
    listed = rows(unnotified_at(browser, clock, LAST_MUTE + timedelta(hours=1)))

    assert list(listed) == [FAN_NOISE]  # DiskSlow was inhibited, then notified; DiskFull notified
    fan = text(listed[FAN_NOISE])
    assert 'data-why="silenced"' in listed[FAN_NOISE]
    assert "FanNoise instance=db2:9100 severity=info" in fan
    assert f"silenced by silence {SILENCE['id']}" in fan
    # the silence as updated (its first mutes carry it as created: they are listed too)
    assert "made by alice@example.com (“disk swap moved to Friday, ticket OPS-42”)" in fan
    assert "made by alice@example.com (“disk swap, ticket OPS-42”)" in fan
    assert "until 2026-12-08 06:07:48 UTC" in fan
    assert "2026-12-08 04:07:47 UTC 2026-12-08 04:07:49 UTC 4\u00d7" in fan  # created, muted 3x


def test_an_alert_notified_once_its_silence_expired_is_not_listed(browser: Any, clock: Any) -> None:
    replay(browser)

    assert rows(unnotified_at(browser, clock, LAST_MUTE + timedelta(hours=1))) == {}


def test_an_inhibited_alert_never_notified_names_the_rule_and_the_inhibiting_alert(
    browser: Any, clock: Any
) -> None:
    def neither_notification(request: dict[str, Any]) -> bool:
        body = request["body_raw"]
        notified = request["path"] == "/hook/hook" or '"notification"' in body
        return before_the_expiry(request) and not (notified and "DiskSlow" in body)

    replay(browser, keep=neither_notification)
    listed = rows(unnotified_at(browser, clock, LAST_MUTE + timedelta(hours=1)))

    assert list(listed) == [FAN_NOISE, DISK_SLOW]  # the most recently seen first
    slow = text(listed[DISK_SLOW])
    assert 'data-why="inhibited"' in listed[DISK_SLOW]
    assert "DiskSlow instance=db1:9100 severity=warning" in slow
    inhibitor = "alertname=DiskFull instance=db1:9100 severity=critical"
    assert f"inhibited by {DISK_FULL} ({inhibitor})" in slow
    assert 'rule source severity="critical" → target severity="warning" equal on instance' in slow


def test_an_alert_muted_more_than_a_day_ago_is_not_listed(browser: Any, clock: Any) -> None:
    replay(browser, keep=before_the_expiry)
    day = timedelta(days=1)

    within = unnotified_at(browser, clock, LAST_MUTE + day - timedelta(seconds=1))
    past = unnotified_at(browser, clock, LAST_MUTE + day + timedelta(seconds=1))

    assert list(rows(within)) == [FAN_NOISE]
    assert rows(past) == {}
    assert "None in the last 24 h." in past
    assert "Latest event: " in past and "not reporting" not in past


def test_an_unmuted_alert_is_listed_only_past_the_grace_and_its_labels_are_escaped(
    browser: Any, clock: Any
) -> None:
    created = recorded_event("alertCreated", "DiskFull")
    alert = created["data"]["alertCreated"]["alert"]
    alert["fingerprint"] = "1234567890123456789"  # 112210f47de98115
    hostile = "<script>window.__xss=1</script>"
    alert["labels"] = {
        "labels": [
            {"key": "alertname", "value": "Quiet<b>"},
            {"key": "service.name", "value": hostile},  # a UTF-8 label name
        ]
    }
    seen = datetime.fromisoformat(created["@timestamp"])
    assert post_event(browser, json.dumps(created)).status_code == 200

    waiting = unnotified_at(browser, clock, seen + timedelta(minutes=9))
    overdue = unnotified_at(browser, clock, seen + timedelta(minutes=11))

    assert rows(waiting) == {}
    assert "once first seen at least 10 min ago" in text(waiting)
    [row] = rows(overdue).values()
    assert 'data-why="no notification recorded"' in row
    assert "<script>" not in row and "Quiet<b>" not in row
    assert f"Quiet<b> service.name={hostile}" in text(row)
    assert "no notification recorded: a time interval muted it" in text(row)


def test_the_list_is_bounded_and_says_how_many_more(browser: Any, clock: Any) -> None:
    muted = recorded_event("silenceMutedAlert", "FanNoise")
    start = datetime.fromisoformat(muted["@timestamp"])
    events = []
    for n in range(103):
        event = copy.deepcopy(muted)
        event["@timestamp"] = (start + timedelta(seconds=n)).isoformat()
        alert = event["data"]["silenceMutedAlert"]["mutedAlert"]
        alert["fingerprint"] = str(10**18 + n)
        alert["labels"]["labels"][1]["value"] = f"db{n}:9100"  # instance
        events.append(event)
    assert post_event(browser, json.dumps(events)).status_code == 200

    section = unnotified_at(browser, clock, start + timedelta(hours=1))

    listed = rows(section)
    assert len(listed) == 100
    assert next(iter(listed)) == format(10**18 + 102, "016x")  # the most recent first
    assert format(10**18 + 2, "016x") not in listed  # the oldest three are counted only
    assert '<p class="more">and 3 more</p>' in section


def test_without_events_the_overview_says_the_event_recorder_is_not_reporting(
    browser: Any, clock: Any
) -> None:
    section = text(unnotified_at(browser, clock, LAST_MUTE))

    assert "Alertmanager's event recorder is not reporting" in section
    assert "config/alertmanager/event-recorder.yml" in section
    assert "--enable-feature=event-recorder" in section
