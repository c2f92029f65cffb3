"""Expectation summaries: stable (no ids, no receive times), readable, and a diff on change."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

from receiver import expect


def episode(starts: str, ends: str | None, resolution: str | None, **extra: Any) -> dict:
    return {
        "status": "resolved" if ends else "firing",
        "resolution": resolution,
        "seen_firing": True,
        "starts_at": f"2026-11-28T00:{starts}+00:00",
        "ends_at": f"2026-11-28T00:{ends}+00:00" if ends else None,
        "first_received_at": "2026-11-28T04:00:00+00:00",
        "last_received_at": "2026-11-28T04:00:09+00:00",
        "seen_count": 3,
        "stale_firing_count": 0,
        **extra,
    }


def detail_doc(incident_id: int = 7, receiver: str = "triton-gpu", **extra: Any) -> dict[str, Any]:
    """An incident as the read API shows it, with ids and receive times everywhere."""
    return {
        "id": incident_id,
        "status": "resolved",
        "severity": "warning",
        "receiver": receiver,
        "title": "GPU memory above 90%",
        "opened_at": "2026-11-28T00:21:00+00:00",
        "first_received_at": "2026-11-28T04:00:00+00:00",
        "counts": {"notifications": 6, "duplicates": 0, "alerts": 1, "episodes": 2},
        "flapping": True,
        "flap_count": 3,
        "truncated": False,
        "opened_by_resolve": False,
        "runbook_url": "https://runbooks.example.com/gpu",
        "runbook_missing": False,
        "group": {"receiver": receiver, "group_key": "{}:{}", "group_labels": {"alertname": "G"}},
        "alerts": [
            {
                "fingerprint": "c5e0806a",
                "labels": {"alertname": "G", "gpu": "1"},
                "episodes": [
                    episode("21:20.795", None, None),
                    episode("21:10.795", "21:15.795", "group_resolved"),
                ],
            }
        ],
        "timeline": [
            {"id": 40 + i, "at": "2026-11-28T04:00:00+00:00", "kind": k}
            for i, k in enumerate(["opened", "note", "resolved", "acknowledged", "reopened"])
        ],
        "deliveries": [
            {"id": 9001, "receiver": "slack", "action": "trigger", "state": "sent"},
            {"id": 9002, "receiver": "slack", "action": "resolve", "state": "cancelled"},
            {"id": 9003, "receiver": "slack", "action": "update", "state": "pending"},
        ],
        **extra,
    }


def test_the_summary_keeps_decisions_and_alert_times_and_drops_ids_receive_times_and_people():
    (incident,) = expect.summarize([detail_doc()])["incidents"]
    text = json.dumps(incident)
    assert "04:00" not in text  # no receive time
    assert '"id"' not in text and "900" not in text
    assert incident["group"] == {"alertname": "G"}
    assert incident["timeline"] == ["opened", "resolved", "reopened"]  # no note, no ack
    assert incident["deliveries"] == ["slack trigger", "slack resolve (cancelled)", "slack update"]
    (alert,) = incident["alerts"]
    assert [e["starts_at"][11:19] for e in alert["episodes"]] == ["00:21:10", "00:21:20"]
    group_resolved, firing = alert["episodes"]
    assert "ends_at" not in group_resolved  # ended at a receive time
    assert firing["ends_at"] is None
    assert firing == {
        "starts_at": "2026-11-28T00:21:20.795+00:00",
        "ends_at": None,
        "status": "firing",
        "resolution": None,
        "seen_firing": True,
        "seen": 3,
        "stale": 0,
    }


def test_incidents_are_ordered_by_receiver_then_first_start_whatever_their_ids():
    early = detail_doc(9, "triton-gpu")
    early["alerts"][0]["episodes"] = [episode("20:11.795", None, None)]
    late, other = detail_doc(1, "triton-gpu"), detail_doc(5, "triton-critical")
    summary = expect.summarize([late, early, other])["incidents"]
    firsts = [(i["receiver"], i["alerts"][0]["episodes"][0]["starts_at"][14:19]) for i in summary]
    assert firsts == [
        ("triton-critical", "21:10"),
        ("triton-gpu", "20:11"),
        ("triton-gpu", "21:10"),
    ]


@pytest.mark.parametrize("name", ["expect.yaml", "expect.json"])
def test_a_written_summary_loads_back_equal(tmp_path, name):
    summary = expect.summarize([detail_doc(), detail_doc(8, "triton-critical")])
    path = tmp_path / name
    path.write_text(expect.dumps(summary, path))
    assert expect.load(path) == summary
    assert expect.differences(expect.load(path), summary, name) == []


def test_the_yaml_is_commented_and_has_one_line_per_episode():
    text = expect.dumps(expect.summarize([detail_doc()]))
    assert text.startswith("# What `receiver replay` made of these requests")
    episodes = [line for line in text.splitlines() if "starts_at" in line]
    assert len(episodes) == 2
    assert all(line.lstrip().startswith("- {starts_at: ") for line in episodes)
    assert "  counts: {notifications: 6, duplicates: 0, alerts: 1, episodes: 2}" in text


def test_a_difference_is_a_unified_diff_from_the_expectation_to_the_replay():
    expected = expect.summarize([detail_doc()])
    actual = copy.deepcopy(expected)
    actual["incidents"][0]["status"] = "firing"
    actual["incidents"][0]["deliveries"].append("pd trigger")
    lines = expect.differences(yaml.safe_load(expect.dumps(expected)), actual, "e.yaml")
    assert lines[:2] == ["--- e.yaml (expected)", "+++ this replay"]
    assert "-  status: resolved" in lines and "+  status: firing" in lines
    assert "+  - pd trigger" in lines
    assert not [line for line in lines if line.startswith(("-", "+")) and "slack" in line]


@pytest.mark.parametrize(
    ("content", "message"),
    [("incidents: {}\n", "no list of incidents"), ("- a\n", "no list"), ("{: :", "not JSON")],
)
def test_a_file_that_is_no_expectation_is_an_error_naming_it(tmp_path, content, message):
    path = tmp_path / "e.yaml"
    path.write_text(content)
    with pytest.raises(expect.ExpectationError, match=message) as caught:
        expect.load(path)
    assert str(caught.value).startswith(str(path))
