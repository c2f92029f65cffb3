"""Security headers and cookie flags on every answer; the context chart drawn as inline SVG."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from receiver.store.tables import AlertEpisode
from receiver.web.security import CONTENT_SECURITY_POLICY
from tests.support.api import AUTH, post_webhook
from tests.support.ui_session import HOSTILE

UI_PATHS = ["/login", "/incidents", "/incidents/1", "/overview", "/api/v1/incidents"]


@pytest.mark.parametrize("path", UI_PATHS)
def test_pages_and_api_forbid_framing_sniffing_inline_script_and_caching(browser, path):
    answer = browser.get(path)
    assert answer.status_code == 200
    assert answer.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert answer.headers["Cache-Control"] == "no-store"


def test_webhook_answers_and_errors_carry_the_headers_too(ui_app):
    client = ui_app.test_client()
    refused = client.post("/api/v1/alertmanager", data=b"{}", content_type="application/json")
    assert refused.status_code == 401
    assert refused.headers["X-Content-Type-Options"] == "nosniff"
    assert refused.headers["Cache-Control"] == "no-store"


def test_static_files_may_be_cached_but_not_sniffed(browser):
    answer = browser.get("/ui-static/app.js")
    assert answer.status_code == 200
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers.get("Cache-Control") != "no-store"
    answer.close()


def test_pages_hold_no_inline_script_or_style_the_policy_would_block(browser):
    for path in UI_PATHS[1:4]:
        html = browser.get(path).get_data(as_text=True)
        assert re.search(r"<script(?![^>]*\bsrc=)", html) is None, path
        assert " style=" not in html and "<style" not in html, path
        assert re.search(r"\son[a-z]+=", html) is None, path


def test_the_session_cookie_is_httponly_samesite_and_secure_when_configured(make_settings, clock):
    from werkzeug.security import generate_password_hash

    from receiver.app import create_app
    from receiver.bootstrap import bootstrap

    settings = make_settings(
        {"ui.users": {"alice": generate_password_hash("pw")}, "ui.secret_key": "k" * 32}
    )
    container = bootstrap(settings, clock=clock)
    client = create_app(container=container).test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    cookie = client.get("/login").headers.get("Set-Cookie") or ""
    answer = client.post(
        "/login", data={"username": "alice", "password": "pw", "csrf_token": token}
    )
    cookie = answer.headers["Set-Cookie"] or cookie
    container.engine.dispose()
    assert answer.status_code == 302
    assert cookie.startswith("receiver_session=")
    assert "; Secure" in cookie and "; HttpOnly" in cookie and "SameSite=Lax" in cookie


def series_item(points: list[list[float]]) -> dict:
    return {
        "key": "gpu_utilization",
        "title": "GPU utilization",
        "unit": "percent",
        "query": 'nv_gpu_utilization{gpu_uuid="GPU-1"}',
        "time": "2026-11-28T00:10:00+00:00",
        "evaluated_at": "2026-11-28T00:10:01+00:00",
        "status": "ok",
        "values": [{"labels": {"gpu_uuid": "GPU-1"}, "value": 87.5, "display": "87.5 %"}],
        "series": [{"labels": {"gpu_uuid": HOSTILE}, "points": points}],
    }


def store_context(ui_app, incident_id: int, items: list[dict]) -> None:
    container = ui_app.extensions["receiver"]
    with container.uow() as uow:
        incident = uow.session.execute(
            select(AlertEpisode.id).where(AlertEpisode.incident_id == incident_id)
        ).scalars()
        for episode_id in incident:
            uow.episodes.save_context(episode_id, items)
        uow.commit()


def test_a_context_series_is_drawn_as_a_chart_with_escaped_labels(ui_app, browser):
    body = {
        "receiver": "ui",
        "status": "firing",
        "groupKey": "{}:chart",
        "alerts": [{"status": "firing", "labels": {"alertname": "TritonGPUMemoryHigh"},
                    "startsAt": "2026-11-28T00:10:00Z"}],
    }  # fmt: skip
    answer = post_webhook(ui_app.test_client(), json.dumps(body), "ui").get_json()
    incident_id = answer["incidents"][0]
    store_context(ui_app, incident_id, [series_item([[-1800, 0.0], [-900, 50.0], [0, 87.5]])])

    html = browser.get(f"/incidents/{incident_id}").get_data(as_text=True)
    chart = re.search(
        r'<figure class="chart" data-key="gpu_utilization">(.*?)</figure>', html, re.S
    )
    assert chart, "no chart drawn for the series"
    points = re.search(r'<polyline [^>]*points="([^"]+)"', chart.group(1)).group(1).split()
    assert len(points) == 3
    xs = [float(p.split(",")[0]) for p in points]
    assert xs == sorted(xs) and xs[0] < 10 and xs[-1] > 230  # the whole 30 minutes, in order
    assert "<script>window.__xss" not in html and "&lt;script&gt;window.__xss" in chart.group(1)
    assert "30 min before the start" in chart.group(1)
    # the JSON API carries the same points
    api = browser.get(f"/api/v1/incidents/{incident_id}").get_json()
    assert api["context"]["items"][0]["series"][0]["points"][1] == [-900, 50.0]


def test_an_item_without_a_series_draws_no_chart(ui_app, browser):
    item = series_item([])
    del item["series"]
    store_context(ui_app, 1, [item])
    html = browser.get("/incidents/1").get_data(as_text=True)
    assert 'data-key="gpu_utilization"' in html and '<figure class="chart"' not in html


def test_the_overview_draws_one_bar_per_day_without_inline_styles(browser):
    html = browser.get("/overview").get_data(as_text=True)
    assert len(re.findall(r'<rect class="bar"', html)) == 30
    assert AUTH  # the webhook credentials exist, yet the overview needed the UI login (fixture)


def budget_item(left: float) -> dict:
    return {
        "key": "slo_budget_remaining",
        "title": "Error budget remaining",
        "unit": "budget",
        "query": "1 - ...",
        "time": "2026-11-28T00:10:00+00:00",
        "evaluated_at": "2026-11-28T00:10:01+00:00",
        "status": "ok",
        "objective": "99.9 % over 30d",
        "values": [{"labels": {}, "value": left, "display": f"{left * 100:.1f} % left"}],
    }


@pytest.mark.parametrize(
    ("left", "width", "low"), [(0.62, "74.4", False), (0.1, "12.0", True), (-3.0, "0", True)]
)
def test_the_error_budget_left_is_drawn_as_a_bar_red_when_low(ui_app, browser, left, width, low):
    store_context(ui_app, 1, [budget_item(left)])
    html = browser.get("/incidents/1").get_data(as_text=True)
    bar = re.search(r'<svg class="budget( budget-low)?".*?</svg>', html, re.S)
    assert bar, "no budget bar"
    assert bool(bar.group(1)) is low
    assert f'<rect class="budget-left" x="0" y="0" width="{width}"' in bar.group(0)
    assert "objective 99.9 % over 30d" in html
