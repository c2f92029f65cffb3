"""The outbox against misbehaving vendors: 5xx, 429, hangs, invalid events, old deliveries,
Slack rate limits, lost messages, pacing, and the ``receiver outbox`` commands for dead ones.

The stand-ins run on a ManualClock that moves with the receiver's FakeClock (``env.advance``),
so "a minute of 500s" or "Retry-After: 30" pass without sleeping. Only the hang test waits for
real (the receiver's 0.5 s timeout), and each failing PagerDuty attempt includes the client's
own quick retry (0.5 s), so those tests keep failing attempts few.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.support.envs import CHANNEL_ID, ROUTING_KEY
from tests.support.payloads import alert, critical, group_body

INVALID = {
    "status": "invalid event",
    "message": "Event object is invalid",
    "errors": ["'payload.summary' is missing or blank"],
}


def open_incident(env, doc=None) -> int:
    """Post one firing critical alert (unless given another body); return its incident id."""
    (incident_id,) = env.post(doc or group_body(critical()))["incidents"]
    return incident_id


def pd_delivery(env, incident_id: int, action: str = "trigger") -> dict:
    (found,) = [
        d
        for d in env.incident(incident_id)["deliveries"]
        if d["receiver"] == "pd" and d["action"] == action
    ]
    return found


def test_a_minute_of_pagerduty_500s_ends_in_exactly_one_accepted_trigger(make_env):
    env = make_env({"delivery.probe_seconds": 20})
    env.pd.fail(500, seconds=60)
    start = env.mono.now
    incident_id = open_incident(env)
    env.drain()
    for _ in range(5):
        assert env.pd.events == []
        env.advance(10)
        env.drain()
    env.advance(10)
    env.drain()
    assert [e["event_action"] for e in env.pd.events] == ["trigger"]
    assert env.pd.pages == 1
    # the only delivery of a failing receiver is its probe: tried every probe interval
    assert env.attempts(incident_id, "pd") == [[500, 500, 500, 202]]
    accepted = [r for r in env.pd.requests if r["status"] == 202]
    assert [r["at"] - start for r in accepted] == [60]
    assert pd_delivery(env, incident_id)["state"] == "sent"


def test_a_429_with_retry_after_is_not_retried_before_the_time_it_asked_for(make_env):
    env = make_env()
    env.pd.fail(429, seconds=30, retry_after=30)
    incident_id = open_incident(env)
    env.drain()
    asked = len(env.pd.requests)
    env.advance(29)
    env.drain()
    assert len(env.pd.requests) == asked and env.pd.events == []
    env.advance(1)
    env.drain()
    assert [e["event_action"] for e in env.pd.events] == ["trigger"]
    assert env.attempts(incident_id, "pd") == [[429, 202]]


def test_a_throttled_pagerduty_is_asked_once_per_attempt(make_env):
    env = make_env()
    env.pd.fail(429, times=1, retry_after=30)
    incident_id = open_incident(env)
    env.drain()
    assert len(env.pd.requests) == 1
    assert env.attempts(incident_id, "pd") == [[429]]


def test_a_429_without_retry_after_waits_for_the_jittered_backoff(make_env):
    """The first failure of a receiver is its probe (retried at the probe interval, here
    longer); the next delivery that fails meanwhile waits for the jittered backoff."""
    env = make_env({"delivery.backoff_initial_seconds": 4, "delivery.probe_seconds": 10})
    env.pd.fail(429, times=2)  # one request per attempt: the client does not retry by itself
    probe = open_incident(env)
    env.drain()
    incident_id = open_incident(env, group_body(critical(), key="other"))
    env.drain()
    first = pd_delivery(env, incident_id)
    assert first["state"] == "pending" and first["last_error"] == "HTTP 429"
    waited = datetime.fromisoformat(first["due_at"]) - env.clock.now
    assert 2 <= waited.total_seconds() <= 4  # initial * [0.5, 1.0]
    env.advance(1.9)
    env.drain()
    assert env.pd.events == []
    env.advance(2.1)
    env.drain()
    assert [e["event_action"] for e in env.pd.events] == ["trigger", "trigger"]
    assert env.attempts(incident_id, "pd") == [[429, 202]]
    assert env.attempts(probe, "pd") == [[429, 202]]  # released by that success, not at 10 s


def test_a_hanging_pagerduty_times_out_and_the_retry_pages_once(make_env):
    env = make_env({"receivers.pd.timeout_seconds": 0.5})
    env.pd.hang(seconds=30, times=1)
    incident_id = open_incident(env)
    env.drain()  # waits the receiver's 0.5 s timeout for real
    first = pd_delivery(env, incident_id)
    assert first["state"] == "pending" and first["last_error"].startswith("network error")
    env.advance(2)  # delivery.probe_seconds
    env.drain()
    env.pd.release()  # the hung trigger now arrives late, as it may at PagerDuty
    env.pd.close()
    assert [e["event_action"] for e in env.pd.events] == ["trigger", "trigger"]
    assert env.pd.pages == 1  # merged by dedup key
    assert env.attempts(incident_id, "pd") == [[None, 202]]
    assert pd_delivery(env, incident_id)["state"] == "sent"


def test_an_invalid_event_is_dead_at_once_with_pagerdutys_errors(make_env):
    env = make_env()
    env.pd.fail(400, times=1, body=INVALID)
    incident_id = open_incident(env)
    env.drain()
    env.advance(3600)
    env.drain()
    dead = pd_delivery(env, incident_id)
    assert dead["state"] == "dead"
    assert "'payload.summary' is missing or blank" in dead["last_error"]
    assert len(env.pd.requests) == 1
    assert env.attempts(incident_id, "pd") == [[400]]


def test_a_delivery_failing_past_max_age_is_dead_and_never_tried_again(make_env):
    env = make_env({"delivery.max_age_minutes": 1, "delivery.backoff_initial_seconds": 10})
    # every call, for ever; refused, so nothing is in doubt (a 5xx would be: test_slack_reclaim)
    env.slack.fail("ratelimited", retry_after=1)
    incident_id = open_incident(env, group_body(alert("TritonHighLatency")))
    env.drain()
    for _ in range(10):
        env.advance(10)
        env.drain()
    (delivery,) = env.incident(incident_id)["deliveries"]
    assert delivery["state"] == "dead"
    assert delivery["last_error"] == "slack: ratelimited"
    tried = len(env.slack.calls)
    assert tried == len(delivery["attempts"]) >= 2
    env.advance(3600)
    env.drain()
    assert len(env.slack.calls) == tried


def test_a_slack_rate_limit_is_honoured_and_the_message_posted_once(make_env):
    env = make_env()
    env.slack.fail("ratelimited", times=1, retry_after=20)
    incident_id = open_incident(env, group_body(alert("TritonHighLatency")))
    env.drain()
    env.advance(19)
    env.drain()
    assert len(env.slack.calls) == 1
    env.advance(1)
    env.drain()
    assert [c["status"] for c in env.slack.calls] == [429, 200]
    assert len(env.slack.messages(CHANNEL_ID)) == 1
    assert env.attempts(incident_id, "slack") == [[429, 200]]


def test_a_lost_slack_message_is_posted_afresh_instead_of_updated(make_env):
    env = make_env()
    firing = alert("TritonHighLatency")
    env.post(group_body(firing))
    env.drain()
    env.slack.fail("message_not_found", times=1, methods=["chat.update"])
    env.post(group_body({**firing, "status": "resolved", "endsAt": firing["startsAt"]}))
    env.drain()
    assert [c["method"] for c in env.slack.calls] == [
        "chat.postMessage",
        "chat.update",
        "chat.postMessage",
    ]
    texts = [m["text"] for m in env.slack.messages(CHANNEL_ID)]
    assert texts == [
        "[FIRING] TritonHighLatency on host-1",
        "[RESOLVED] TritonHighLatency on host-1",
    ]
    assert [d.state for d in env.deliveries()] == ["sent", "sent"]


@pytest.mark.parametrize("channel", [CHANNEL_ID, "#triton-alerts"])
def test_a_second_post_to_one_channel_waits_for_the_pacing_interval(make_env, channel):
    env = make_env(
        {"delivery.slack_min_interval_seconds": 1}, channel=channel, slack_rate_limit=True
    )
    env.post(group_body(alert("TritonHighLatency", model="a"), key="a"))
    env.post(group_body(alert("TritonHighLatency", model="b"), key="b"))

    def posts() -> list[int]:
        return [c["status"] for c in env.slack.calls if c["method"] == "chat.postMessage"]

    env.drain()
    assert posts() == [200]  # no 429: held back, not refused
    assert [d.attempts for d in env.deliveries()] == [1, 0]
    env.advance(1)
    env.drain()
    assert posts() == [200, 200]
    assert len(env.slack.messages(CHANNEL_ID)) == 2
    lists = env.slack.methods().count("conversations.list")
    assert lists == (0 if channel == CHANNEL_ID else 1)  # a name is resolved once


def test_a_slack_receiver_with_a_sub_second_timeout_still_posts(make_env):
    env = make_env({"receivers.slack.timeout_seconds": 0.5})
    env.post(group_body(alert("TritonHighLatency")))
    env.drain()
    assert [d.state for d in env.deliveries()] == ["sent"]
    assert len(env.slack.messages(CHANNEL_ID)) == 1


def test_a_resolve_never_overtakes_a_trigger_that_is_still_being_retried(make_env):
    env = make_env({"delivery.backoff_initial_seconds": 10})
    env.slack.fail("service_unavailable", status=503, times=1)
    firing = alert("TritonHighLatency")
    env.post(group_body(firing))
    env.drain()
    env.post(group_body({**firing, "status": "resolved", "endsAt": firing["startsAt"]}))
    env.drain()
    assert [d.state for d in env.deliveries()] == ["pending", "pending"]
    assert len(env.slack.calls) == 1
    env.advance(10)
    env.drain()
    calls = [c["method"] for c in env.slack.calls][1:]  # a 503 may have posted: looked for first
    assert calls == ["conversations.history", "chat.postMessage", "chat.update"]
    assert [m["text"][:10] for m in env.slack.messages(CHANNEL_ID)] == ["[RESOLVED]"]


def test_outbox_list_shows_a_dead_delivery_and_outbox_retry_sends_it_again(cli, make_env, db_url):
    env = make_env()  # only the variables given to cli() below configure the command
    env.pd.fail(400, times=1, body=INVALID)
    incident_id = open_incident(env)
    env.drain()
    dead_id = pd_delivery(env, incident_id)["id"]
    cli_env = {
        "RECEIVER_DATABASE_URL": db_url,
        "RECEIVER_RECEIVERS__PD__TYPE": "pagerduty",
        "RECEIVER_RECEIVERS__PD__ROUTING_KEY": ROUTING_KEY,
        "RECEIVER_RECEIVERS__PD__BASE_URL": env.pd.base_url,
    }
    listed = cli("outbox", "list", **cli_env)
    retried = cli("outbox", "retry", dead_id, **cli_env)
    again = cli("outbox", "retry", dead_id, **cli_env)
    assert listed.exit_code == 0, listed.output
    (row,) = [line.split() for line in listed.output.splitlines()[1:]]
    assert row[:6] == [str(dead_id), str(incident_id), "pd", "trigger", "dead", "1"]
    assert "payload.summary" in listed.output and ROUTING_KEY not in listed.output
    assert retried.exit_code == 0 and "1 delivery(ies) queued again" in retried.output
    assert again.exit_code == 1  # no longer dead
    env.advance_to(datetime.now(UTC))  # the command stamps the real time
    env.drain()
    assert [e["event_action"] for e in env.pd.events] == ["trigger"]
    assert pd_delivery(env, incident_id)["state"] == "sent"
    assert env.attempts(incident_id, "pd") == [[400, 202]]


def test_a_flapping_critical_alert_pages_once_and_resolves_after_the_hold_down(make_env):
    """Fire and resolve five times, 2 minutes apart: PagerDuty is paged for the first firing,
    and for the second (two starts are not flapping yet, but its resolve is held back); every
    later re-firing lands inside a held-back resolve and only updates the open PagerDuty alert."""
    env = make_env()
    for n in range(5):
        start = 2 * n  # minutes after the fixture's start
        env.advance_to(datetime.fromisoformat(alert("X", starts=start)["startsAt"]))
        env.post(group_body(critical(starts=start)))
        env.drain()
        env.advance(30)
        env.post(group_body(critical(status="resolved", starts=start, ends=start + 0.5)))
        env.drain()
    actions = [e["event_action"] for e in env.pd.events]
    assert env.pd.pages == 2
    assert actions.count("trigger") == 2 + 3  # two pages, then three merged updates
    assert actions[-1] != "resolve"  # the last resolve is still held back
    assert len(env.pd.alerts(status="triggered")) == 1
    env.advance(15 * 60)  # flapping.hold_down_minutes
    env.drain()
    assert env.pd.events[-1]["event_action"] == "resolve"
    assert env.pd.alerts(status="triggered") == []


def test_the_alert_strategy_pages_per_alert_and_resolves_each_as_it_resolves(make_env):
    env = make_env({"receivers.pd.dedup_key": "alert"})
    gpu = [critical("TritonGPUMemoryHigh", gpu_uuid=f"GPU-{i}") for i in range(2)]
    env.post(group_body(*gpu, key="gpus"))
    env.drain()
    assert env.pd.pages == 2  # one PagerDuty alert per alert of the group
    partial = critical("TritonGPUMemoryHigh", gpu_uuid="GPU-0", status="resolved")
    env.post(group_body(partial, gpu[1], key="gpus"))
    env.advance(1)
    env.drain()
    assert len(env.pd.alerts(status="triggered")) == 1  # GPU-0's alert resolved, GPU-1's open
    env.post(
        group_body(critical("TritonGPUMemoryHigh", gpu_uuid="GPU-1", status="resolved"), key="gpus")
    )
    env.advance(1)
    env.drain()
    assert env.pd.alerts(status="triggered") == [] and env.pd.pages == 2


def test_the_incident_list_says_whether_it_paged_posted_or_failed(make_env):
    env = make_env()
    open_incident(env)
    listed = env.client.get("/api/v1/incidents").get_json()["incidents"]
    assert listed[0]["notified"] == ["pending"]
    env.drain()
    listed = env.client.get("/api/v1/incidents").get_json()["incidents"]
    assert listed[0]["notified"] == ["paged", "posted"]
    env.pd.fail(400, times=1)
    open_incident(env, group_body(critical(), key="other"))
    env.drain()
    listed = env.client.get("/api/v1/incidents").get_json()["incidents"]
    assert sorted(i["notified"] for i in listed) == [["paged", "posted"], ["posted", "failed"]]
