"""The incident UI from the server side: auth, CSRF, filters, pagination, escaping, same data as
the JSON API. (tests/browser drives the same pages in a real Chromium.)"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from urllib.parse import quote

import pytest

from receiver.store import label_filters
from tests.support.api import TOKEN, post_webhook
from tests.support.payloads import FIXTURE_SETS, RECORDED_OUTCOMES
from tests.support.ui_session import HOSTILE, PASSWORD, csrf, login


def row_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr class="incident" data-id="(\d+)"', html)]


# the tests that check what the recordings make run on both recorded sets (``ui_app``'s seed)
both_sets = pytest.mark.parametrize("fixture_set", FIXTURE_SETS)


@pytest.mark.parametrize("path", ["/incidents", "/incidents/1", "/"])
def test_pages_need_a_login_and_send_you_back_after_it(ui_app, path):
    client = ui_app.test_client()
    first = client.get(path)
    assert first.status_code == 302 and first.location.startswith("/")
    if path != "/":
        assert first.location == f"/login?next={path}"


def test_the_webhook_token_does_not_open_the_ui(ui_app):
    client = ui_app.test_client()
    assert client.get("/incidents", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 302


def test_a_wrong_password_is_refused_with_a_clear_message(ui_app):
    answer = login(ui_app.test_client(), password="wrong")
    assert answer.status_code == 401
    assert "Invalid username or password" in answer.get_data(as_text=True)


def test_the_login_form_only_redirects_to_local_pages(ui_app):
    client = ui_app.test_client()
    token = csrf(client.get("/login").get_data(as_text=True))
    data = {"username": "alice", "password": PASSWORD, "csrf_token": token}
    answer = client.post("/login?next=https://evil.example/", data=data)
    assert answer.location == "/incidents"


def test_forms_without_the_csrf_token_are_refused(browser):
    for path in ("/incidents/1/ack", "/incidents/1/notes", "/logout"):
        assert browser.post(path, data={"text": "x"}).status_code == 400
        assert browser.post(path, data={"text": "x", "csrf_token": "forged"}).status_code == 400
    detail = browser.get("/api/v1/incidents/1").get_json()
    assert detail["acknowledged_at"] is None
    assert "note" not in [e["kind"] for e in detail["timeline"]]


def test_acknowledging_and_noting_are_on_the_timeline_with_who(browser):
    token = csrf(browser.get("/incidents/1").get_data(as_text=True))
    assert browser.post("/incidents/1/ack", data={"csrf_token": token}).status_code == 302
    browser.post("/incidents/1/ack", data={"csrf_token": token})  # twice: recorded once
    note = {"csrf_token": token, "text": "rolled back <b>v2</b>"}
    assert browser.post("/incidents/1/notes", data=note).status_code == 302

    page = browser.get("/incidents/1").get_data(as_text=True)
    assert 'id="acknowledged">Acknowledged by alice' in page
    assert "rolled back &lt;b&gt;v2&lt;/b&gt;" in page
    timeline = browser.get("/api/v1/incidents/1").get_json()["timeline"]
    assert [(e["kind"], e["detail"]["user"]) for e in timeline if "user" in e["detail"]] == [
        ("acknowledged", "alice"),
        ("note", "alice"),
    ]


@both_sets
def test_the_list_filters_like_the_api_and_keeps_them_in_links(browser):
    for query in (
        "status=firing",
        "severity=critical",
        "alertname=TritonHighLatency",
        "model=llama2_7b",
    ):
        page = browser.get(f"/incidents?{query}&limit=100").get_data(as_text=True)
        api = browser.get(f"/api/v1/incidents?{query}&limit=100").get_json()
        assert row_ids(page) == [i["id"] for i in api["incidents"]], query
    assert 'data-status="firing">firing: <b>2</b>' in browser.get("/incidents").get_data(
        as_text=True
    )


@both_sets
def test_the_list_shows_a_refused_regex_filter_as_an_error_on_the_page(browser, monkeypatch):
    regex = quote('model=~"llama.*"')
    page = browser.get(f"/incidents?label={regex}&limit=100").get_data(as_text=True)
    api = browser.get(f"/api/v1/incidents?label={regex}&limit=100").get_json()
    assert row_ids(page) == [i["id"] for i in api["incidents"]] and len(row_ids(page)) == 2

    invalid = browser.get("/incidents?label=" + quote('model=~"(a)\\1"'))
    monkeypatch.setattr(label_filters, "MAX_REGEX_VALUES", 1)
    costly = browser.get(f"/incidents?label={regex}")

    assert "label: invalid regex" in invalid.get_data(as_text=True)
    assert "label: label &#39;model&#39; takes more than 1 distinct values" in costly.get_data(
        as_text=True
    )
    assert row_ids(costly.get_data(as_text=True)) == []


@both_sets
def test_the_list_pages_through_every_incident_once(browser, fixture_set):
    seen, path = [], "/incidents"
    while path:
        page = browser.get(path).get_data(as_text=True)
        seen += row_ids(page)
        found = re.search(r'id="next-page" href="([^"]+)"', page)
        path = found.group(1).replace("&amp;", "&") if found else None
    api = browser.get("/api/v1/incidents?limit=100").get_json()["incidents"]
    assert seen == [i["id"] for i in api]
    assert len(seen) == RECORDED_OUTCOMES[fixture_set].incidents


@both_sets
def test_the_detail_page_shows_the_incident_as_the_api_has_it(browser):
    detail = browser.get("/api/v1/incidents/3").get_json()
    page = browser.get("/incidents/3").get_data(as_text=True)
    assert page.count('class="event"') == len(detail["timeline"])
    assert page.count('class="alert"') == len(detail["alerts"])
    assert page.count('class="download"') == len(detail["payloads"])
    assert f'href="{detail["runbook_url"]}"' in page


def test_hostile_annotations_render_as_text_and_never_as_links(ui_app, browser):
    body = {
        "receiver": "hostile",
        "groupKey": "{}:hostile",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "Hostile", "model": HOSTILE},
                "annotations": {"summary": HOSTILE, "runbook_url": "javascript:alert(1)"},
                "startsAt": "2026-11-28T00:30:00Z",
                "generatorURL": "javascript:alert(2)",
            }
        ],
    }
    incident = post_webhook(browser, json.dumps(body)).get_json()["incidents"][0]
    page = browser.get(f"/incidents/{incident}").get_data(as_text=True)
    assert "<script>window.__xss" not in page
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in page
    assert 'href="javascript:' not in page
    listing = browser.get("/incidents?alertname=Hostile").get_data(as_text=True)
    assert "<script>window.__xss" not in listing


@both_sets
def test_the_overview_sums_up_open_incidents_history_and_noise(ui_app, clock, fixture_set):
    recorded = RECORDED_OUTCOMES[fixture_set]
    # soon after the recording (0.25: 00:20 to 00:23 of its day, 0.33.1: 01:02 to 01:05); logged
    # in then, as a session opened on 0.25's day would have expired by 0.33.1's
    clock.now = datetime.fromisoformat(recorded.day).replace(hour=2, tzinfo=UTC)
    browser = ui_app.test_client()
    assert login(browser).status_code == 302
    page = browser.get("/overview").get_data(as_text=True)
    overview = ui_app.extensions["receiver"].queries.overview(clock.now)

    # the two GPU incidents whose resolve never came (see test_replay_scenarios)
    assert overview["open_by_severity"] == [("warning", 2)]
    assert overview["open_by_model"] == [("(none)", 2)]
    assert dict(overview["per_day"])[recorded.day] == recorded.incidents
    assert overview["resolved_count"] == recorded.resolved
    assert 0 < overview["mean_time_to_resolve_seconds"] < 120
    noisiest = overview["noisiest"][0]
    assert noisiest["alertname"] == "TritonGPUMemoryHigh" and noisiest["episodes"] > 5
    assert [r["alertname"] for r in overview["most_flapping"]] == ["TritonGPUMemoryHigh"]
    assert f'data-day="{recorded.day}" data-count="{recorded.incidents}"' in page
    assert "warning</a>: <b>2</b>" in page
    assert "Every alert had a runbook." in page  # the recording's alerts all carry runbook_url


def test_the_overview_needs_a_login(ui_app):
    assert ui_app.test_client().get("/overview").status_code == 302


def test_with_the_ui_configured_the_read_api_needs_the_ui_login_not_the_webhook_token(ui_app):
    client = ui_app.test_client()
    for path in ("/api/v1/incidents", "/api/v1/incidents/1", "/api/v1/payloads/1"):
        refused = client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert refused.status_code == 401 and refused.get_json()["error"] == "unauthorized"
    login(client)
    assert client.get("/api/v1/incidents/1").status_code == 200
    assert client.get("/healthz").status_code == 200  # probes stay open


def test_a_utf8_label_name_with_an_html_value_is_escaped_and_found(browser):
    name, value = "gpu.modèle", "<b>A100</b> & \"SXM\" 'x'"
    body = {
        "receiver": "utf8",
        "groupKey": "{}:utf8",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "Utf8Label", name: value},
                "startsAt": "2026-11-28T00:30:00Z",
            }
        ],
    }
    incident = post_webhook(browser, json.dumps(body)).get_json()["incidents"][0]
    page = browser.get(f"/incidents/{incident}").get_data(as_text=True)
    assert "<b>A100</b>" not in page
    escaped = "&lt;b&gt;A100&lt;/b&gt; &amp; &#34;SXM&#34; &#39;x&#39;"
    assert f"<code>{name}={escaped}</code>" in page
    searched = browser.get("/incidents?q=" + quote('<b>a100</b> & "sxm"')).get_data(as_text=True)
    quoted = '"{}"="{}"'.format(name, value.replace('"', '\\"'))  # Go-quoted, like Alertmanager's
    filtered = browser.get("/incidents?label=" + quote(quoted)).get_data(as_text=True)
    assert row_ids(searched) == row_ids(filtered) == [incident]
    other = browser.get("/incidents?label=" + quote(f'"{name}"="A100"')).get_data(as_text=True)
    assert row_ids(other) == [] and "<b>A100</b>" not in searched + filtered
