"""The recorder's pure parts against the set it wrote (tests/fixtures/alertmanager-0.33.1)."""

from __future__ import annotations

import json

from tests.fixtures.recording import load_set, summary, timeline_line
from tests.fixtures.scenarios import alertmanager_config, duplicates, scenarios
from tests.support.payloads import FIXTURE_SETS

ROOT = FIXTURE_SETS["0.33.1"]
REQUESTS = [json.loads(p.read_text()) for p in sorted((ROOT / "all").glob("*.json"))]
FIRST = json.loads((ROOT / "single-repeat-resolve" / "index.json").read_text())["files"][0]
START = REQUESTS[FIRST["seq"] - 1]["received_unix"] - FIRST["t"]


def test_the_scenario_folders_are_what_the_recorder_picks_from_all():
    for name, (describe, chosen) in scenarios(REQUESTS, START).items():
        index = json.loads((ROOT / name / "index.json").read_text())
        assert index["describe"] == describe
        picked = chosen["requests"] if isinstance(chosen, dict) else chosen
        files = sorted((ROOT / name).glob("[0-9]*.json"))
        assert [json.loads(f.read_text()) for f in files] == picked, name


def test_the_start_read_back_from_the_set_is_the_recorded_one_to_a_millisecond():
    requests, start = load_set(ROOT)
    assert requests == REQUESTS
    for entry in json.loads((ROOT / "flapping" / "index.json").read_text())["files"]:
        assert abs(requests[entry["seq"] - 1]["received_unix"] - start - entry["t"]) <= 0.0015


def test_index_entries_and_timeline_lines_come_from_the_request():
    index = json.loads((ROOT / "group-growth" / "index.json").read_text())
    entry = index["files"][0]
    assert summary(REQUESTS[entry["seq"] - 1], "001.json", START) == entry
    line = timeline_line(REQUESTS[0], START)
    assert line in (ROOT / "timeline.txt").read_text().splitlines()


def test_a_duplicate_is_the_same_content_from_either_node_whatever_its_reason():
    first = {"seq": 1, "received_unix": 0.0, "response_status": 200}
    body = {"receiver": "r", "groupKey": "k", "status": "firing", "externalURL": "http://a"}
    copy = {**body, "externalURL": "http://b", "notification_reason": "first notification"}
    peer = {**first, "seq": 2, "received_unix": 0.5, "body": copy}
    late = {**first, "seq": 3, "received_unix": 11.0, "body": body}
    found = duplicates([{**first, "body": body}, peer, late])
    assert [p["seqs"] for p in found["pairs"]] == [[1, 2]]
    assert found["pairs"][0]["same_node"] is False


def test_the_max2_receiver_truncates_and_every_receiver_sends_resolved():
    config = alertmanager_config(lambda name: f"http://hook/{name}")
    hooks = {r["name"]: r["webhook_configs"][0] for r in config["receivers"]}
    assert hooks["triton-gpu-max2"]["max_alerts"] == 2
    assert all(h["send_resolved"] for h in hooks.values())
