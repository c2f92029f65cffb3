"""Contract tests of the stand-ins, driven by the real clients (pagerduty 7.2, slack_sdk 3.48)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pagerduty
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from tests.standins.conftest import SLACK_CHANNELS, SLACK_TOKEN
from tests.standins.pagerduty import PagerDutyStandIn
from tests.standins.slack import SlackStandIn
from tests.support.clock import ManualClock

ROUTING_KEY = "R0TRITON0123456789ABCDEFGHIJKLMN"  # 32 characters, like an integration key
PAYLOAD = {"summary": "s", "source": "x", "severity": "info"}
TRIGGER = {"event_action": "trigger", "payload": PAYLOAD}
META = {"event_type": "alert_fired", "event_payload": {"fingerprint": "5e4a"}}


def events_client(standin: PagerDutyStandIn, key: str = ROUTING_KEY) -> pagerduty.EventsApiV2Client:
    """A client trusting the stand-in's CA that fails fast: no network retry, 1 ms backoff."""
    ssl_context = standin.client_ssl_context()
    client = pagerduty.EventsApiV2Client(key, base_url=standin.base_url, verify=ssl_context)
    client.max_network_attempts = 0
    client.sleep_timer = 0.001
    return client


def web(standin: SlackStandIn, token: str = SLACK_TOKEN, **kwargs: Any) -> WebClient:
    return WebClient(token=token, base_url=standin.base_url, **kwargs)


@pytest.fixture
def events(pagerduty_standin: PagerDutyStandIn) -> Iterator[pagerduty.EventsApiV2Client]:
    with events_client(pagerduty_standin) as client:
        yield client


@pytest.fixture
def monotonic() -> ManualClock:
    return ManualClock()


@pytest.fixture
def slack(monotonic: ManualClock) -> Iterator[SlackStandIn]:
    """A Slack stand-in whose rate-limit clock only moves when the test moves it."""
    with SlackStandIn(token=SLACK_TOKEN, channels=SLACK_CHANNELS, clock=monotonic) as standin:
        yield standin
    assert standin.errors == []


def test_a_trigger_is_accepted_with_a_generated_dedup_key(pagerduty_standin, events):
    link = {"href": "https://runbooks.example/gpu-memory", "text": "runbook"}
    key = events.trigger("GPU 0 memory at 97%", "triton-0", severity="warning", links=[link])
    assert re.fullmatch(r"[0-9a-f]{32}", key)
    [request] = pagerduty_standin.requests
    assert request["status"] == 202 and request["json"]["routing_key"] == ROUTING_KEY
    accepted = {"status": "success", "message": "Event processed", "dedup_key": key}
    assert request["response"] == accepted
    [alert] = pagerduty_standin.alerts()
    assert (alert["dedup_key"], alert["status"], alert["severity"]) == (key, "triggered", "warning")


def test_a_client_without_the_test_ca_fails_the_tls_handshake(pagerduty_standin):
    with pagerduty.EventsApiV2Client(ROUTING_KEY, base_url=pagerduty_standin.base_url) as client:
        client.max_network_attempts = 0
        with pytest.raises(pagerduty.Error) as info:
            client.trigger("s", "x")
    assert isinstance(info.value.__cause__, httpx2.ConnectError)
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value.__cause__)
    assert pagerduty_standin.requests == []


def test_pagerduty_needs_https_and_httpx2_deprecates_verify_as_a_path(pagerduty_standin):
    with pytest.raises(pagerduty.UrlError):
        pagerduty.EventsApiV2Client(ROUTING_KEY, base_url="http://127.0.0.1:9")
    with pytest.warns(DeprecationWarning, match="verify=<str>"):
        client = pagerduty.EventsApiV2Client(
            ROUTING_KEY, base_url=pagerduty_standin.base_url, verify=pagerduty_standin.ca_file
        )
    with client:
        assert client.trigger("s", "x", dedup_key="k") == "k"


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ({**TRIGGER, "payload": {**PAYLOAD, "severity": "fatal"}}, "payload.severity"),
        ({**TRIGGER, "payload": {**PAYLOAD, "summary": "s" * 1025}}, "payload.summary"),
        ({**TRIGGER, "payload": {"summary": "s", "severity": "info"}}, "payload.source"),
        ({"event_action": "trigger"}, "'payload' is required"),
        ({"event_action": "resolve"}, "'dedup_key' is required"),
        ({"event_action": "acknowledge", "dedup_key": "k" * 256}, "'dedup_key' must be"),
        ({"event_action": "snooze", "dedup_key": "k"}, "'event_action'"),
        ({**TRIGGER, "images": [{"src": "http://example.com/a.png"}]}, "https"),
    ],
)
def test_an_invalid_event_is_a_400_with_errors(pagerduty_standin, events, event, error):
    response = events.post("/v2/enqueue", json=event)
    assert response.status_code == 400
    body = response.json()
    assert (body["status"], body["message"]) == ("invalid event", "Event object is invalid")
    assert any(error in e for e in body["errors"]), body["errors"]
    assert pagerduty_standin.events == []


def test_a_short_routing_key_and_a_non_json_body_are_400(pagerduty_standin, events):
    with events_client(pagerduty_standin, key="short") as client:
        response = client.post("/v2/enqueue", json=TRIGGER)
    assert response.status_code == 400 and "routing_key" in response.json()["errors"][0]
    assert events.post("/v2/enqueue", content=b"{not json").status_code == 400
    assert pagerduty_standin.requests[-1]["json"] is None


def test_pages_follow_pagerduty_alert_deduplication(pagerduty_standin, events):
    events.trigger("GPU hot", "triton-0", dedup_key="gpu0")
    events.trigger("GPU hot again", "triton-0", dedup_key="gpu0")  # merged into the open alert
    events.acknowledge("gpu0")
    events.resolve("gpu0")
    events.resolve("gpu0")  # no open alert: accepted, dropped
    events.trigger("GPU hot", "triton-0", dedup_key="gpu0")  # a new alert
    assert pagerduty_standin.pages == 2
    alerts = pagerduty_standin.alerts()
    assert [(a["status"], a["events"]) for a in alerts] == [("resolved", 4), ("triggered", 1)]
    assert len(pagerduty_standin.events) == 6


def test_two_500s_are_retried_by_the_client_then_it_succeeds(pagerduty_standin, events):
    pagerduty_standin.fail(500, times=2)  # EventsApiV2Client sets retry[500] = 2
    assert events.trigger("s", "x", dedup_key="k") == "k"
    faults = [(r["status"], r["fault"]) for r in pagerduty_standin.requests]
    assert faults == [(500, "fail"), (500, "fail"), (202, None)]
    assert pagerduty_standin.pages == 1


def test_retry_429_zero_means_the_default_unbounded_retry(pagerduty_standin, events):
    pagerduty_standin.fail(429, times=3)
    events.retry[429] = 0  # "0 has no effect; the default behavior will take effect"
    assert events.trigger("s", "x", dedup_key="k") == "k"
    assert [r["status"] for r in pagerduty_standin.requests] == [429, 429, 429, 202]


def test_a_bounded_429_retry_returns_the_throttle_response(pagerduty_standin, events):
    pagerduty_standin.fail(429, retry_after=30)
    events.retry[429] = 1  # one retry, then the response comes back
    response = events.post("/v2/enqueue", json=TRIGGER)
    assert (response.status_code, response.headers["Retry-After"]) == (429, "30")
    assert response.json()["status"] == "throttle event"
    assert len(pagerduty_standin.requests) == 2 and pagerduty_standin.pages == 0


def test_a_fault_for_some_seconds_follows_the_stand_in_clock(monotonic):
    with PagerDutyStandIn(clock=monotonic) as standin, events_client(standin) as client:
        client.retry = {}  # no retries: see each answer
        standin.fail(503, seconds=5)
        assert client.post("/v2/enqueue", json=TRIGGER).status_code == 503
        monotonic.advance(5)
        assert client.post("/v2/enqueue", json=TRIGGER).status_code == 202


def test_a_hang_times_the_client_out_and_close_drops_it_quickly(pagerduty_standin, events):
    events.timeout = 0.2
    pagerduty_standin.hang(60)
    with pytest.raises(pagerduty.Error) as info:
        events.trigger("s", "x", dedup_key="k")
    assert isinstance(info.value.__cause__, httpx2.ReadTimeout)
    started = time.monotonic()
    pagerduty_standin.close()
    assert time.monotonic() - started < 2
    [request] = pagerduty_standin.requests
    assert (request["fault"], request["status"], pagerduty_standin.pages) == ("hang", None, 0)


def test_a_released_request_is_served_late_though_the_client_gave_up(pagerduty_standin, events):
    events.timeout = 0.2
    pagerduty_standin.hang(60)
    with pytest.raises(pagerduty.Error):
        events.trigger("s", "x", dedup_key="k")
    pagerduty_standin.release()
    pagerduty_standin.close()  # joins the handler thread
    assert pagerduty_standin.requests[0]["status"] == 202 and pagerduty_standin.pages == 1


def test_a_post_returns_the_channel_id_and_a_ts(slack_standin):
    answer = web(slack_standin).chat_postMessage(channel="#triton-alerts", text="GPU 0 hot")
    assert answer["channel"] == "C0TRITON1" and re.fullmatch(r"\d{10}\.\d{6}", answer["ts"])
    [message] = slack_standin.messages("C0TRITON1")
    assert (message["ts"], message["text"], message["updates"]) == (answer["ts"], "GPU 0 hot", [])
    call = slack_standin.calls[0]
    assert call["content_type"] == "application/json"
    assert call["json"] == {"channel": "#triton-alerts", "text": "GPU 0 hot"}


def test_an_update_replaces_the_stored_message(slack_standin):
    client = web(slack_standin)
    posted = client.chat_postMessage(channel="triton-alerts", text="firing")
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*resolved*"}}]
    updated = client.chat_update(
        channel=posted["channel"], ts=posted["ts"], text="ok", blocks=blocks
    )
    assert (updated["ts"], updated["text"]) == (posted["ts"], "ok")
    [message] = slack_standin.messages("C0TRITON1")
    assert (message["text"], message["blocks"], len(message["updates"])) == ("ok", blocks, 1)


@pytest.mark.parametrize(
    ("channel", "error"),
    [("C0TRITON1", "message_not_found"), ("#triton-alerts", "channel_not_found")],
)
def test_an_update_needs_a_channel_id_and_an_existing_ts(slack_standin, channel, error):
    with pytest.raises(SlackApiError) as info:
        web(slack_standin).chat_update(channel=channel, ts="1700000000.000100", text="x")
    assert info.value.response["error"] == error


def test_a_reply_needs_an_existing_parent(slack, monotonic):
    client = web(slack)
    parent = client.chat_postMessage(channel="#triton-alerts", text="firing")
    monotonic.advance(1)
    reply = client.chat_postMessage(channel="#triton-alerts", text="ack", thread_ts=parent["ts"])
    assert [r["ts"] for r in slack.replies("C0TRITON1", parent["ts"])] == [reply["ts"]]
    assert [m["reply_count"] for m in slack.messages("C0TRITON1")] == [1]
    monotonic.advance(1)
    with pytest.raises(SlackApiError) as info:
        client.chat_postMessage(channel="#triton-alerts", text="x", thread_ts="1700000000.000100")
    assert info.value.response["error"] == "thread_not_found"


def test_two_posts_in_one_second_to_one_channel_are_rate_limited(slack, monotonic):
    client = web(slack)
    client.chat_postMessage(channel="#triton-alerts", text="one")
    with pytest.raises(SlackApiError) as info:  # slack_sdk does not retry 429 by default
        client.chat_postMessage(channel="#triton-alerts", text="two")
    assert (info.value.response.status_code, info.value.response["error"]) == (429, "ratelimited")
    assert info.value.response.headers["Retry-After"] == "1"
    client.chat_postMessage(channel="#other", text="elsewhere")  # the limit is per channel
    monotonic.advance(1)
    client.chat_postMessage(channel="#triton-alerts", text="two")
    assert [c["status"] for c in slack.calls] == [200, 429, 200, 200]
    with SlackStandIn(token=SLACK_TOKEN, rate_limit=False, clock=monotonic) as unlimited:
        for text in ("a", "b"):
            web(unlimited).chat_postMessage(channel="#triton-alerts", text=text)


def test_metadata_is_in_history_only_with_include_all_metadata(slack_standin):
    client = web(slack_standin)
    client.chat_postMessage(channel="#triton-alerts", text="firing", metadata=META)
    history = client.conversations_history(channel="C0TRITON1", include_all_metadata=True)
    assert history["messages"][0]["metadata"] == META and history["has_more"] is False
    assert "metadata" not in client.conversations_history(channel="C0TRITON1")["messages"][0]
    call = slack_standin.calls[1]  # slack_sdk sends this "GET" method as a form POST
    assert call["http_method"] == "POST"
    assert call["content_type"] == "application/x-www-form-urlencoded"
    assert call["params"] == {"channel": "C0TRITON1", "include_all_metadata": "1"}


def test_history_is_newest_first_within_oldest_and_limit(slack, monotonic):
    client = web(slack)
    posted = []
    for text in ("one", "two", "three"):
        posted.append(client.chat_postMessage(channel="#triton-alerts", text=text)["ts"])
        monotonic.advance(1)
    page = client.conversations_history(channel="C0TRITON1", limit=2)
    assert [m["text"] for m in page["messages"]] == ["three", "two"] and page["has_more"] is True
    newer = client.conversations_history(channel="C0TRITON1", oldest=posted[0])
    assert [m["ts"] for m in newer["messages"]] == posted[:0:-1]


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text}}


@pytest.mark.parametrize(
    ("text", "blocks", "error"),
    [
        ("t", [_section("x")] * 51, "invalid_blocks"),
        ("t", [_section("x" * 3001)], "invalid_blocks"),
        ("t", [_header("h" * 151)], "invalid_blocks"),
        ("x" * 40001, None, "msg_too_long"),
        ("t", [_section("x" * 3000), _header("h" * 150), *[_section("x")] * 48], None),
    ],
)
def test_block_kit_limits(slack_standin, text, blocks, error):
    client = web(slack_standin)
    if error is None:
        assert client.chat_postMessage(channel="#triton-alerts", text=text, blocks=blocks)["ok"]
        return
    with pytest.raises(SlackApiError) as info:
        client.chat_postMessage(channel="#triton-alerts", text=text, blocks=blocks)
    assert info.value.response["error"] == error
    assert slack_standin.messages("C0TRITON1") == []


def test_blocks_without_text_make_slack_sdk_warn(slack_standin):
    with pytest.warns(UserWarning, match="top-level `text` argument is missing"):
        web(slack_standin).chat_postMessage(channel="#triton-alerts", blocks=[_section("x")])


@pytest.mark.parametrize(("token", "error"), [("xoxb-wrong", "invalid_auth"), ("", "not_authed")])
def test_a_wrong_or_missing_token_is_refused(slack_standin, token, error):
    with pytest.raises(SlackApiError) as info:
        web(slack_standin, token=token).chat_postMessage(channel="#triton-alerts", text="x")
    assert info.value.response["error"] == error and slack_standin.messages("C0TRITON1") == []


def test_unknown_methods_and_missing_channels_are_errors():
    with SlackStandIn(token=SLACK_TOKEN, missing_channels={"#gone"}) as standin:
        client = web(standin)
        with pytest.raises(SlackApiError, match="unknown_method"):
            client.api_call("chat.postMessages")
        with pytest.raises(SlackApiError, match="channel_not_found"):
            client.chat_postMessage(channel="#gone", text="x")


def test_an_injected_error_hits_only_the_chosen_method_and_times(slack_standin):
    client = web(slack_standin)
    slack_standin.fail(error="message_not_found", methods={"chat.update"}, times=1)
    posted = client.chat_postMessage(channel="#triton-alerts", text="firing")
    with pytest.raises(SlackApiError, match="message_not_found"):
        client.chat_update(channel=posted["channel"], ts=posted["ts"], text="resolved")
    client.chat_update(channel=posted["channel"], ts=posted["ts"], text="resolved")
    assert [c["fault"] for c in slack_standin.calls] == [None, "fail", None]


def test_an_outage_is_a_non_json_500_and_a_hang_a_client_timeout(slack_standin):
    slack_standin.fail(error=None, times=1)
    with pytest.raises(SlackApiError) as info:
        web(slack_standin).chat_postMessage(channel="#triton-alerts", text="x")
    assert info.value.response.status_code == 500
    slack_standin.hang(60)
    with pytest.raises(TimeoutError):
        web(slack_standin, timeout=0.2).chat_postMessage(channel="#triton-alerts", text="x")
    assert [c["fault"] for c in slack_standin.calls] == ["fail", "hang"]
