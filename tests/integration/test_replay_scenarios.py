"""Replay the recorded Alertmanager scenarios and check the incidents they leave behind.

The incident-by-incident checks are of the 0.25 set; every set is replayed whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from receiver.replay import AppTarget, load_items, replay
from tests.support.api import AUTH, detail, incidents
from tests.support.payloads import FIXTURE_SETS, FIXTURES


def replay_folder(app: Any, folder: str, root: Path = FIXTURES) -> list[dict[str, Any]]:
    """Replay a fixture folder of a recorded set; every request must be stored. The answers."""
    items = load_items([root / folder], warn=lambda _m: None)
    results = replay(items, AppTarget(app, AUTH))
    assert [r.status for r in results] == [200] * len(items), [r.answer for r in results]
    return [r.answer for r in results]


def episode_keys(d: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(fingerprint prefix, startsAt hh:mm:ss, status) of every episode of an incident."""
    return sorted(
        (a["fingerprint"][:8], e["starts_at"][11:19], e["status"])
        for a in d["alerts"]
        for e in a["episodes"]
    )


def kinds(d: dict[str, Any]) -> list[str]:
    return [e["kind"] for e in d["timeline"]]


def test_a_repeated_then_resolved_alert_is_one_incident_with_counted_repeats(app, client):
    answers = replay_folder(app, "single-repeat-resolve")
    assert [a["new"] for a in answers] == [1, 0, 0, 0, 0, 0]
    assert [a["duplicate"] for a in answers] == [0, 1, 1, 1, 1, 0]
    (only,) = incidents(client, by_id=True)
    d = detail(client, only["id"])
    assert d["status"] == "resolved"
    assert d["resolved_at"].startswith("2026-11-28T00:20:5")  # the alert's endsAt
    assert d["counts"] == {"notifications": 6, "duplicates": 4, "alerts": 1, "episodes": 1}
    assert episode_keys(d) == [("8f6376e5", "00:20:11", "resolved")]
    assert d["alerts"][0]["episodes"][0]["seen_count"] == 6
    assert kinds(d) == ["opened", "alert_resolved", "resolved"]
    assert len(d["payloads"]) == 6


def test_a_growing_group_stays_one_incident_until_its_last_alert_resolves(app, client):
    answers = replay_folder(app, "group-growth")
    assert [a["new"] for a in answers] == [1, 0, 3, 0, 0, 0, 0]
    assert [a["resolved"] for a in answers] == [0, 0, 0, 0, 1, 2, 1]
    (only,) = incidents(client, by_id=True)
    assert [a["incidents"] for a in answers] == [[only["id"]]] * 7
    d = detail(client, only["id"])
    assert d["status"] == "resolved"
    assert d["counts"]["alerts"] == 4 and d["counts"]["episodes"] == 4
    assert {s for _, _, s in episode_keys(d)} == {"resolved"}
    assert kinds(d).count("alert_added") == 3
    assert kinds(d)[-1] == "resolved"
    # still firing after the partial resolve: the incident resolved only with the last alert
    assert only["resolved_at"] > "2026-11-28T00:20:4"


def test_truncated_notifications_never_resolve_the_alerts_they_leave_out(app, client):
    answers = replay_folder(app, "truncated-max-alerts")
    (only,) = incidents(client, by_id=True)
    d = detail(client, only["id"])
    assert d["truncated"] is True
    assert "truncated" in kinds(d)
    # eeb12b98 was never seen firing (truncated away) and arrives resolved: recorded as such
    assert ("eeb12b98", "00:20:22", "resolved") in episode_keys(d)
    unseen = [a for a in d["alerts"] if a["fingerprint"].startswith("eeb12b98")]
    assert unseen[0]["episodes"][0]["seen_firing"] is False
    assert "alert_resolved_unseen" in kinds(d)
    # it stayed open through notifications 3-6 although only 2 of 4 alerts were listed
    assert [a["incidents"] for a in answers] == [[only["id"]]] * 7
    assert d["status"] == "resolved"
    assert kinds(d)[-1] == "resolved"


def test_flapping_series_rejoins_its_incident_instead_of_paging_again(app, client):
    replay_folder(app, "flapping")
    gpu = incidents(client, by_id=True, receiver="triton-gpu")
    # 21:00 opens one incident; 21:10 opens a second (2 starts in 30 min); 21:20 is the third
    # start: the series is flapping and the episode rejoins the latest incident.
    assert len(gpu) == 2
    first, flapping = (detail(client, i["id"]) for i in gpu)
    assert episode_keys(first) == [("c5e0806a", "00:21:00", "resolved")]
    assert first["flapping"] is False
    assert episode_keys(flapping) == [
        ("c5e0806a", "00:21:10", "resolved"),
        ("c5e0806a", "00:21:20", "resolved"),
    ]
    assert flapping["flapping"] is True and flapping["flap_count"] == 3
    assert kinds(flapping) == [
        "opened",
        "alert_resolved",
        "resolved",
        "reopened",
        "flapping",
        "alert_resolved",
        "resolved",
    ]


def test_a_stale_firing_from_the_slower_peer_never_reopens_a_resolved_episode(app, client):
    replay_folder(app, "flapping")
    max2 = incidents(client, by_id=True, receiver="triton-gpu-max2")
    stale = [
        e
        for i in max2
        for a in detail(client, i["id"])["alerts"]
        for e in a["episodes"]
        if e["stale_firing_count"]
    ]
    assert len(stale) == 1
    assert stale[0]["starts_at"][11:19] == "00:21:10"
    assert stale[0]["status"] == "resolved"
    assert all(i["status"] == "resolved" for i in max2)


def test_ha_duplicates_and_stale_firings_are_absorbed(app, client):
    answers = replay_folder(app, "ha-duplicates")
    assert [(a["new"], a["duplicate"], a["resolved"], a["stale"]) for a in answers] == [
        (1, 0, 0, 0),
        (0, 0, 1, 0),
        (0, 0, 0, 1),
        (0, 1, 0, 0),
        (2, 0, 0, 0),
        (0, 2, 0, 0),
    ]
    gpu, critical = incidents(client, by_id=True)
    assert gpu["status"] == "resolved" and gpu["counts"]["notifications"] == 4
    assert critical["status"] == "firing"
    assert critical["counts"] == {"notifications": 2, "duplicates": 1, "alerts": 2, "episodes": 2}


def test_retries_after_5xx_store_one_incident_with_every_retry_counted(app, client):
    answers = replay_folder(app, "retry-after-5xx")
    assert answers[0]["new"] == 2 and sum(a["new"] for a in answers) == 2
    (only,) = incidents(client, by_id=True)
    assert only["status"] == "resolved"
    assert only["counts"] == {"notifications": 13, "duplicates": 11, "alerts": 2, "episodes": 2}


@pytest.mark.parametrize(
    ("folder", "fingerprint", "notifications"),
    [("inhibited-then-delivered", "9a4f5ff6", 3), ("silenced-then-expired", "76f5bacf", 4)],
)
def test_alerts_delivered_late_after_inhibition_or_silence_open_and_resolve_once(
    app, client, folder, fingerprint, notifications
):
    replay_folder(app, folder)
    (only,) = incidents(client, by_id=True)
    d = detail(client, only["id"])
    assert d["status"] == "resolved"
    assert d["counts"]["notifications"] == notifications
    assert [fp for fp, _, _ in episode_keys(d)] == [fingerprint]


def test_the_whole_recording_gives_one_incident_per_group_episode(app, client):
    replay_folder(app, "all")
    found = incidents(client, by_id=True)
    summary = sorted((i["receiver"], i["alertname"], i["status"], i["flapping"]) for i in found)
    assert summary == sorted(
        [
            ("triton-critical", "TritonHighErrorRate", "resolved", False),  # mistral_7b
            ("triton-critical", "TritonHighErrorRate", "resolved", False),  # llama2_7b x2
            ("triton-critical", "TritonNoHealthyPods", "resolved", False),
            ("triton-default", "TritonHighLatency", "resolved", False),  # mistral_7b
            ("triton-default", "TritonHighLatency", "resolved", False),  # llama2_7b
            ("triton-gpu", "TritonGPUMemoryHigh", "resolved", False),  # group of 4
            ("triton-gpu", "TritonGPUMemoryHigh", "resolved", True),  # flapping GPU
            # resolved while inhibited by TritonNoHealthyPods: the resolve never came
            ("triton-gpu", "TritonGPUMemoryHigh", "firing", False),
            ("triton-gpu-max2", "TritonGPUMemoryHigh", "resolved", False),
            ("triton-gpu-max2", "TritonGPUMemoryHigh", "resolved", False),
            ("triton-gpu-max2", "TritonGPUMemoryHigh", "resolved", True),
            ("triton-gpu-max2", "TritonGPUMemoryHigh", "firing", False),
        ]
    )
    flapping = [i for i in found if i["flapping"] and i["receiver"] == "triton-gpu"]
    # in the full recording the series also fired at 00:20:22 (group growth): 21:00 is its
    # second start, so 21:10 (the third) already rejoins the 21:00 incident
    assert flapping[0]["counts"]["episodes"] == 3


@pytest.mark.parametrize("version", FIXTURE_SETS)
@pytest.mark.parametrize("folder", sorted(p.name for p in FIXTURES.iterdir() if p.is_dir()))
def test_every_request_of_every_recorded_folder_is_stored(app, folder, version):
    assert replay_folder(app, folder, FIXTURE_SETS[version])


@pytest.mark.parametrize("version", FIXTURE_SETS)
def test_replaying_the_same_recording_twice_changes_no_incident(app, client, version):
    def states() -> list[tuple[int, str, int]]:
        found = incidents(client, by_id=True)
        return [(i["id"], i["status"], i["counts"]["episodes"]) for i in found]

    replay_folder(app, "all", FIXTURE_SETS[version])
    before = states()
    answers = replay_folder(app, "all", FIXTURE_SETS[version])
    assert sum(a["new"] for a in answers) == 0
    assert states() == before
