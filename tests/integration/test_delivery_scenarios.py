"""Replay the recorded Alertmanager scenarios through the outbox; check what the vendors got.

Each scenario is replayed one request at a time at its recorded time (FakeClock), draining the
outbox after each request; then the clock moves past ``flapping.hold_down_minutes`` and the
outbox drains once more, for each recorded set. tests/golden/<scenario>.json (0.25's; a newer
set's in tests/golden/alertmanager-<version>/) holds, in order: the deliveries still held back
after the replay, the events PagerDuty accepted (event_action, dedup_key[:8], severity, class)
and its page count, the Slack calls (method, channel, thread reply?) and the final
messages (text, edits, replies), and every outbox row (incident, receiver, action, state).
Rewrite them with RECEIVER_TEST_UPDATE_GOLDEN=1, then review the diff by hand.

What each 0.25 golden proves (reviewed against index.json and timeline.txt of the recording):
- single-repeat-resolve: one trigger and one resolve per receiver whatever the 4 repeats from
  alternating nodes; PagerDuty pages once; Slack posts once and edits that message to RESOLVED.
- group-growth: one trigger; one update per notification that changed the group (3 alerts added
  in one notification = one update; partial resolve; two more resolved), none for the 2 repeats;
  one resolve only when the last alert resolves; all on one Slack message (4 edits, 4 replies).
- truncated-max-alerts: the same through max_alerts 2: the alerts truncated away never resolve
  the incident early; the unseen resolve is an update; one resolve at the very end.
- flapping: 21:00 and 21:10 open incidents (new Slack posts, 2 starts are not flapping yet);
  the 21:10 incident's resolve is held back (its series re-fired: one start short of
  flapping), so the 21:20 re-firing cancels it and is an update of the same message, never a
  second page; its final resolve is held (pending after the replay) and only sent once the
  hold-down has passed; the stale firing and the duplicate resolve send nothing.
- ha-duplicates: the stale firing, the peer's duplicate resolve and the duplicate firing 52 ms
  later send nothing: 1 Slack post + resolve for the GPU, 1 PagerDuty page for the critical.
- retry-after-5xx: Alertmanager's 13 retries and the peer's copies are one trigger and one
  resolve per receiver; one page.
- inhibited-then-delivered, silenced-then-expired: the warning delivered late goes to Slack only
  (no PagerDuty), posted once and resolved once.
- all: 12 incidents = 12 Slack messages (two stay FIRING: their resolve came while inhibited);
  the 3 critical incidents page exactly once each and are resolved; in the flapping series a
  re-firing within the hold-down cancels the held resolve (cancelled row) and queues an update
  instead of a new trigger; the last resolves of both flapping incidents wait for the hold-down.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest

from tests.support.envs import CHANNEL_ID
from tests.support.golden import check_golden, golden_name
from tests.support.payloads import FIXTURE_SETS, FIXTURES, alert, critical, group_body

SCENARIOS = [
    "single-repeat-resolve",
    "group-growth",
    "truncated-max-alerts",
    "flapping",
    "ha-duplicates",
    "retry-after-5xx",
    "inhibited-then-delivered",
    "silenced-then-expired",
    "all",
]
RUNBOOK = "https://runbooks.example.com/triton/high-error-rate"


def recorded_body(folder: str, name: str = "001.json") -> dict:
    """A 0.25 request as a sample body for the hand-made scenarios below."""
    return json.loads((FIXTURES / folder / name).read_text())["body"]


@pytest.mark.parametrize("version", FIXTURE_SETS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_recorded_scenario_sends_exactly_what_its_golden_file_says(
    make_env, scenario, version
):
    env = make_env()
    env.replay(scenario, FIXTURE_SETS[version])
    held = env.outbox("pending")
    env.advance(timedelta(minutes=env.settings.flapping.hold_down_minutes + 1).total_seconds())
    env.drain()
    assert env.outbox("pending", "sending", "dead") == []
    check_golden(golden_name(scenario, version), {"held_after_replay": held, **env.observed()})


def test_three_quick_changes_become_one_update_per_receiver(make_env):
    env = make_env({"delivery.coalesce_seconds": 30})
    firing = [critical(instance="10.0.0.1")]
    env.post(group_body(*firing))
    env.drain()
    for instance in ("10.0.0.2", "10.0.0.3", "10.0.0.4"):
        env.advance(2)
        firing.append(critical(instance=instance))
        env.post(group_body(*firing))
        env.drain()
    env.advance(25)  # 29 s after the first change
    env.drain()
    assert [e[0] for e in env.pd_events()] == ["trigger"]
    env.advance(1)
    env.drain()
    assert [row[1:] for row in env.outbox()] == [
        ["pd", "trigger", "sent"],
        ["slack", "trigger", "sent"],
        ["pd", "update", "sent"],
        ["slack", "update", "sent"],
    ]
    update = env.pd.events[-1]
    assert update["event_action"] == "trigger"  # an update re-sends the trigger, merged
    assert update["payload"]["summary"].startswith("[4 firing] ")
    assert env.pd.pages == 1
    (message,) = env.slack.messages(CHANNEL_ID)
    (reply,) = env.slack.replies(CHANNEL_ID, message["ts"])
    assert reply["text"].count("alert added") == 3


def test_a_resolve_inside_the_coalescing_window_replaces_the_pending_update(make_env):
    env = make_env({"delivery.coalesce_seconds": 30})
    first, second = critical(instance="10.0.0.1"), critical(instance="10.0.0.2")
    env.post(group_body(first))
    env.drain()
    env.advance(2)
    env.post(group_body(first, second))
    env.advance(2)
    resolved = [{**a, "status": "resolved", "endsAt": a["startsAt"]} for a in (first, second)]
    env.post(group_body(*resolved))
    env.drain()
    assert [row[1:] for row in env.outbox()] == [
        ["pd", "trigger", "sent"],
        ["slack", "trigger", "sent"],
        ["pd", "update", "cancelled"],
        ["slack", "update", "cancelled"],
        ["pd", "resolve", "sent"],
        ["slack", "resolve", "sent"],
    ]
    assert [e[0] for e in env.pd_events()] == ["trigger", "resolve"]


def test_a_dry_run_sends_nothing_but_records_every_delivery_as_sent(make_env):
    env = make_env({"delivery.dry_run": True})
    (incident_id,) = env.post(group_body(critical()))["incidents"]
    env.drain()
    assert env.pd.requests == [] and env.slack.calls == []
    deliveries = env.incident(incident_id)["deliveries"]
    assert [(d["receiver"], d["state"]) for d in deliveries] == [("pd", "sent"), ("slack", "sent")]
    assert all(d["attempts"][0]["reason"].startswith("dry run") for d in deliveries)
    assert '"event_action": "trigger"' in deliveries[0]["attempts"][0]["excerpt"]


def test_a_warning_never_pages_and_a_critical_pages_as_critical(make_env):
    env = make_env()
    env.post(group_body(alert("TritonHighLatency", model="a"), key="warning"))
    env.post(group_body(critical(), key="critical"))
    env.drain()
    key = hashlib.sha256(b'{}:{group="critical"}').hexdigest()[:8]
    assert env.pd_events() == [["trigger", key, "critical", "TritonHighErrorRate"]]
    assert [row[1] for row in env.outbox()] == ["slack", "pd", "slack"]


@pytest.mark.parametrize(
    ("label", "expected"),
    [("critical", "critical"), ("page", "critical"), ("warning", "warning"), ("bogus", "error")],
)
def test_the_severity_label_maps_to_the_pagerduty_severity(make_env, label, expected):
    env = make_env({"routes": [{"matchers": [], "receivers": ["pd"]}]})
    env.post(group_body(alert("TritonHighErrorRate", severity=label)))
    env.drain()
    assert [e["payload"]["severity"] for e in env.pd.events] == [expected]


def test_a_trigger_carries_the_dedup_key_summary_details_and_links_pagerduty_needs(make_env):
    env = make_env({"public_url": "https://receiver.example.com"})
    body = recorded_body("single-repeat-resolve")
    body["commonAnnotations"]["summary"] = "x" * 3000
    (incident_id,) = env.post(body, "triton-critical")["incidents"]
    env.drain()
    (event,) = env.pd.events
    assert event["dedup_key"] == hashlib.sha256(body["groupKey"].encode()).hexdigest()
    payload = event["payload"]
    assert 100 < len(payload["summary"]) <= 1024 and set(payload["summary"]) == {"x"}
    assert payload["component"] == "mistral_7b"
    assert payload["class"] == "TritonHighErrorRate"
    assert payload["source"] == "127.0.0.1:19100"
    details = payload["custom_details"]
    assert details["labels"] == body["commonLabels"]
    assert details["counts"] == {"notifications": 1, "duplicates": 0, "alerts": 1, "episodes": 1}
    assert details["context"] == {} and details["runbook"] == RUNBOOK
    links = {link["text"]: link["href"] for link in event["links"]}
    assert links["Runbook"] == RUNBOOK
    assert links["Prometheus graph"].startswith("http://127.0.0.1:19090/graph")
    assert links["Incident in receiver"] == f"https://receiver.example.com/incidents/{incident_id}"
