"""Replay the recorded Alertmanager scenarios and check the incidents they leave behind.

Every check runs on both recorded sets. Where they differ, the expectations are per set (keyed
by the set id) and each difference says why, from the recordings (see the README.md and
timeline.txt of tests/fixtures/alertmanager-0.25 and alertmanager-0.33.1). Most differences come
from two facts of the 0.33.1 recording: node :19093 sent almost every notification (in 0.25
repeats alternated between the nodes, so some folders hold a peer's copies more), and its
scenarios started about 3 s earlier in the driver's schedule (+1.9 s, not +4.9 s).
"""

from __future__ import annotations

from typing import Any

import pytest

from receiver.replay import AppTarget, load_items, replay
from tests.support.api import AUTH, detail, incidents
from tests.support.payloads import FIXTURE_SETS


def replay_folder(app: Any, folder: str, version: str) -> list[dict[str, Any]]:
    """Replay a fixture folder of a recorded set; every request must be stored. The answers."""
    items = load_items([FIXTURE_SETS[version] / folder], warn=lambda _m: None)
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


def counts_of(incident: dict[str, Any]) -> tuple[int, int, int, int]:
    """(notifications, duplicates, alerts, episodes) of an incident."""
    c = incident["counts"]
    return c["notifications"], c["duplicates"], c["alerts"], c["episodes"]


both_sets = pytest.mark.parametrize("version", FIXTURE_SETS)

# single-repeat-resolve: (new per request, duplicate per request, the alert's endsAt, startsAt).
# 0.33.1 has one repeat fewer: the alert's first notification left at +1.9 s (0.25: +4.9 s), so
# its resolve at +49.9 s came where 0.25's fourth repeat did (0.25 resolved at +52.9 s).
SINGLE = {
    "0.25": ([1, 0, 0, 0, 0, 0], [0, 1, 1, 1, 1, 0], "2026-11-28T00:20:58", "00:20:11"),
    "0.33.1": ([1, 0, 0, 0, 0], [0, 1, 1, 1, 0], "2026-12-08T01:03:36", "01:02:47"),
}


@both_sets
def test_a_repeated_then_resolved_alert_is_one_incident_with_counted_repeats(app, client, version):
    new, duplicate, ends_at, starts_at = SINGLE[version]
    answers = replay_folder(app, "single-repeat-resolve", version)
    assert [a["new"] for a in answers] == new
    assert [a["duplicate"] for a in answers] == duplicate
    (only,) = incidents(client, by_id=True)
    d = detail(client, only["id"])
    assert d["status"] == "resolved"
    assert d["resolved_at"].startswith(ends_at)  # the alert's endsAt
    n = len(answers)
    assert d["counts"] == {"notifications": n, "duplicates": n - 2, "alerts": 1, "episodes": 1}
    assert episode_keys(d) == [("8f6376e5", starts_at, "resolved")]
    assert d["alerts"][0]["episodes"][0]["seen_count"] == n
    assert kinds(d) == ["opened", "alert_resolved", "resolved"]
    assert len(d["payloads"]) == n


# group-growth: (new per request, resolved per request, the endsAt of the last alert to resolve).
# 0.25 grew 1 -> 4 in one notification and holds two repeats from the peer (:19094); 0.33.1 grew
# 1 -> 2 -> 4 (cd17ac97 rose before the group's next flush) and resolved cd17ac97 before the
# last two, all from :19093.
GROWTH = {
    "0.25": ([1, 0, 3, 0, 0, 0, 0], [0, 0, 0, 0, 1, 2, 1], "2026-11-28T00:20:49"),
    "0.33.1": ([1, 1, 2, 0, 0, 0], [0, 0, 0, 1, 1, 2], "2026-12-08T01:03:28"),
}


@both_sets
def test_a_growing_group_stays_one_incident_until_its_last_alert_resolves(app, client, version):
    new, resolved, last_ends_at = GROWTH[version]
    answers = replay_folder(app, "group-growth", version)
    assert [a["new"] for a in answers] == new
    assert [a["resolved"] for a in answers] == resolved
    (only,) = incidents(client, by_id=True)
    assert [a["incidents"] for a in answers] == [[only["id"]]] * len(answers)
    d = detail(client, only["id"])
    assert d["status"] == "resolved"
    assert d["counts"]["alerts"] == 4 and d["counts"]["episodes"] == 4
    assert {s for _, _, s in episode_keys(d)} == {"resolved"}
    assert kinds(d).count("alert_added") == 3
    assert kinds(d)[-1] == "resolved"
    # still firing after the partial resolve: the incident resolved only with the last alert
    assert only["resolved_at"].startswith(last_ends_at)


# truncated-max-alerts: the alert that max_alerts 2 kept out until it arrived resolved. Which
# one depends on the order the others resolved in: 0.25 listed c5e0806a firing and never
# eeb12b98 firing; 0.33.1 listed eeb12b98 firing (+40.9 s) and never c5e0806a firing.
UNSEEN = {"0.25": ("eeb12b98", "00:20:22"), "0.33.1": ("c5e0806a", "01:03:00")}


@both_sets
def test_truncated_notifications_never_resolve_the_alerts_they_leave_out(app, client, version):
    fingerprint, starts_at = UNSEEN[version]
    answers = replay_folder(app, "truncated-max-alerts", version)
    (only,) = incidents(client, by_id=True)
    d = detail(client, only["id"])
    assert d["truncated"] is True
    assert "truncated" in kinds(d)
    # never seen firing (truncated away) and arrives resolved: recorded as such
    assert (fingerprint, starts_at, "resolved") in episode_keys(d)
    unseen = [a for a in d["alerts"] if a["fingerprint"].startswith(fingerprint)]
    assert unseen[0]["episodes"][0]["seen_firing"] is False
    assert "alert_resolved_unseen" in kinds(d)
    # it stayed open through every notification although only 2 of 4 alerts were listed
    assert [a["incidents"] for a in answers] == [[only["id"]]] * len(answers)
    assert d["status"] == "resolved"
    assert kinds(d)[-1] == "resolved"


# flapping: the three starts of the GPU series (sim2 GPU1) 10 s apart, at the sets' own times
FLAP_STARTS = {
    "0.25": ("00:21:00", "00:21:10", "00:21:20"),
    "0.33.1": ("01:03:38", "01:03:48", "01:03:58"),
}


@both_sets
def test_flapping_series_rejoins_its_incident_instead_of_paging_again(app, client, version):
    one, two, three = FLAP_STARTS[version]
    replay_folder(app, "flapping", version)
    gpu = incidents(client, by_id=True, receiver="triton-gpu")
    # the first start opens one incident; the second opens a second (2 starts in 30 min); the
    # third start: the series is flapping and the episode rejoins the latest incident.
    assert len(gpu) == 2
    first, flapping = (detail(client, i["id"]) for i in gpu)
    assert episode_keys(first) == [("c5e0806a", one, "resolved")]
    assert first["flapping"] is False
    assert episode_keys(flapping) == [
        ("c5e0806a", two, "resolved"),
        ("c5e0806a", three, "resolved"),
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


# (folder, receiver, startsAt of the episodes that got a stale firing). In 0.25 it is the flapping
# GPU series' 00:21:10 episode (:19094's firing after :19093's resolve); 0.33.1's flapping folder
# has no peer copy at all, its stale firing is :19094's copy of the llama2_7b critical group
# (2 alerts) 0.1 s after :19093's resolve, in ha-duplicates.
STALE = {
    "0.25": ("flapping", "triton-gpu-max2", ["00:21:10"]),
    "0.33.1": ("ha-duplicates", "triton-critical", ["01:03:51", "01:03:52"]),
}


@both_sets
def test_a_stale_firing_from_the_slower_peer_never_reopens_a_resolved_episode(app, client, version):
    folder, receiver, starts = STALE[version]
    replay_folder(app, folder, version)
    found = incidents(client, by_id=True, receiver=receiver)
    stale = [
        e
        for i in found
        for a in detail(client, i["id"])["alerts"]
        for e in a["episodes"]
        if e["stale_firing_count"]
    ]
    assert sorted(e["starts_at"][11:19] for e in stale) == starts
    assert {e["status"] for e in stale} == {"resolved"}
    assert all(i["status"] == "resolved" for i in found)


# ha-duplicates: (new, duplicate, resolved, stale) per request, and per incident oldest first
# (receiver, status, counts_of; a stale firing is a duplicate notification too). 0.25: the
# flapping GPU episode (firing, resolve, the peer's stale firing and resolve) and the critical
# llama2_7b group from both nodes after the outage, whose resolve is not in the folder. 0.33.1
# has no peer copy of a GPU notification: its folder is the critical group's firings and resolve
# from :19093, then :19094's stale firing and resolve.
HA = {
    "0.25": (
        [(1, 0, 0, 0), (0, 0, 1, 0), (0, 0, 0, 1), (0, 1, 0, 0), (2, 0, 0, 0), (0, 2, 0, 0)],
        [
            ("triton-gpu-max2", "resolved", (4, 2, 1, 1)),
            ("triton-critical", "firing", (2, 1, 2, 2)),
        ],
    ),
    "0.33.1": (
        [(2, 0, 0, 0), (0, 2, 0, 0), (0, 2, 0, 0), (0, 0, 2, 0), (0, 0, 0, 2), (0, 2, 0, 0)],
        [("triton-critical", "resolved", (6, 4, 2, 2))],
    ),
}


@both_sets
def test_ha_duplicates_and_stale_firings_are_absorbed(app, client, version):
    sums, expected = HA[version]
    answers = replay_folder(app, "ha-duplicates", version)
    assert [(a["new"], a["duplicate"], a["resolved"], a["stale"]) for a in answers] == sums
    found = incidents(client, by_id=True)
    assert [(i["receiver"], i["status"], counts_of(i)) for i in found] == expected


# retry-after-5xx: (notifications, duplicates); every try of the outage is replayed (each is
# stored here), all but the first and the resolve are duplicates. 0.25 holds 13 (7 answered
# 503); 0.33.1 18 (10 answered 503), among them :19094's tries listing only 49cd6cd0, and after
# the resolve :19094's stale firing and resolve.
RETRIES = {"0.25": (13, 11), "0.33.1": (18, 16)}


@both_sets
def test_retries_after_5xx_store_one_incident_with_every_retry_counted(app, client, version):
    notifications, duplicates = RETRIES[version]
    answers = replay_folder(app, "retry-after-5xx", version)
    assert answers[0]["new"] == 2 and sum(a["new"] for a in answers) == 2
    (only,) = incidents(client, by_id=True)
    assert only["status"] == "resolved"
    assert only["counts"] == {
        "notifications": notifications,
        "duplicates": duplicates,
        "alerts": 2,
        "episodes": 2,
    }


# silenced-then-expired: 0.25 holds a repeat from each node, 0.33.1 only :19093's
@both_sets
@pytest.mark.parametrize(
    ("folder", "fingerprint", "notifications"),
    [
        ("inhibited-then-delivered", "9a4f5ff6", {"0.25": 3, "0.33.1": 3}),
        ("silenced-then-expired", "76f5bacf", {"0.25": 4, "0.33.1": 3}),
    ],
)
def test_alerts_delivered_late_after_inhibition_or_silence_open_and_resolve_once(
    app, client, folder, fingerprint, notifications, version
):
    replay_folder(app, folder, version)
    (only,) = incidents(client, by_id=True)
    d = detail(client, only["id"])
    assert d["status"] == "resolved"
    assert d["counts"]["notifications"] == notifications[version]
    assert [fp for fp, _, _ in episode_keys(d)] == [fingerprint]


# all: (receiver, alertname, status, flapping) of every incident. The same in both sets but for
# triton-gpu-max2's flapping series: in 0.25 max_alerts 2 never listed c5e0806a in the group, so
# its 00:21:00 start was its first there (an incident of its own, then 00:21:10 + 00:21:20
# flapping); in 0.33.1 the group's last notification listed it resolved (01:03:00, unseen), so
# 01:03:38 is its second start and 01:03:48 already rejoins: one max2 incident fewer.
WHOLE_GPU_MAX2 = {
    "0.25": [("resolved", False), ("resolved", False), ("resolved", True), ("firing", False)],
    "0.33.1": [("resolved", False), ("resolved", True), ("firing", False)],
}


@both_sets
def test_the_whole_recording_gives_one_incident_per_group_episode(app, client, version):
    replay_folder(app, "all", version)
    found = incidents(client, by_id=True)
    summary = sorted((i["receiver"], i["alertname"], i["status"], i["flapping"]) for i in found)
    max2 = [("triton-gpu-max2", "TritonGPUMemoryHigh", *s) for s in WHOLE_GPU_MAX2[version]]
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
            *max2,
        ]
    )
    flapping = [i for i in found if i["flapping"] and i["receiver"] == "triton-gpu"]
    # in the full recording the series also fired inside the group growth (0.25: 00:20:22,
    # 0.33.1: 01:03:00): the flapping folder's first start is its second, so the next one (the
    # third) already rejoins that incident
    assert flapping[0]["counts"]["episodes"] == 3


@pytest.mark.parametrize("version", FIXTURE_SETS)
@pytest.mark.parametrize(
    "folder", sorted(p.name for p in FIXTURE_SETS["0.25"].iterdir() if p.is_dir())
)
def test_every_request_of_every_recorded_folder_is_stored(app, folder, version):
    assert replay_folder(app, folder, version)


@pytest.mark.parametrize("version", FIXTURE_SETS)
def test_replaying_the_same_recording_twice_changes_no_incident(app, client, version):
    def states() -> list[tuple[int, str, int]]:
        found = incidents(client, by_id=True)
        return [(i["id"], i["status"], i["counts"]["episodes"]) for i in found]

    replay_folder(app, "all", version)
    before = states()
    answers = replay_folder(app, "all", version)
    assert sum(a["new"] for a in answers) == 0
    assert states() == before
