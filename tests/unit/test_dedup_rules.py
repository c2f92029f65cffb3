"""The pure identity and deduplication rules: classification, flapping, placement, severity."""

from datetime import UTC, datetime, timedelta

import pytest

from receiver.model.alerts import AlertEvent, AlertStatus, most_severe
from receiver.model.dedup import (
    AlertOutcome,
    EpisodeView,
    FlapPolicy,
    IncidentView,
    Placement,
    classify_alert,
    group_fully_resolved,
    place_new_episode,
)

T0 = datetime(2026, 11, 28, 0, 20, 11, tzinfo=UTC)
FIRING, RESOLVED = AlertStatus.FIRING, AlertStatus.RESOLVED
POLICY = FlapPolicy(threshold=3, window=timedelta(minutes=30), hold_down=timedelta(minutes=15))


def event(status):
    return AlertEvent(
        fingerprint="c5e0806ab26b21ed",
        status=status,
        labels={"alertname": "TritonGPUMemoryHigh"},
        annotations={},
        starts_at=T0,
        ends_at=None if status is FIRING else T0 + timedelta(seconds=3),
    )


@pytest.mark.parametrize(
    ("stored", "incoming", "outcome"),
    [
        (None, FIRING, AlertOutcome.NEW),
        (None, RESOLVED, AlertOutcome.RESOLVED_UNSEEN),
        (FIRING, FIRING, AlertOutcome.REPEAT),
        (FIRING, RESOLVED, AlertOutcome.RESOLVED),
        (RESOLVED, FIRING, AlertOutcome.STALE_FIRING),
        (RESOLVED, RESOLVED, AlertOutcome.DUPLICATE_RESOLVED),
    ],
)
def test_an_alert_is_classified_by_its_status_and_the_stored_episode(stored, incoming, outcome):
    known = None if stored is None else EpisodeView(status=stored)
    assert classify_alert(event(incoming), known) is outcome


def test_a_resolve_for_an_unknown_episode_is_recorded_as_unseen():
    assert classify_alert(event(RESOLVED), None).value == "resolved_unseen"


def test_a_stale_firing_after_a_resolve_never_counts_as_new():
    outcome = classify_alert(event(FIRING), EpisodeView(status=RESOLVED))
    assert outcome is not AlertOutcome.NEW
    assert outcome is AlertOutcome.STALE_FIRING


@pytest.mark.parametrize(
    ("offsets_minutes", "expected"),
    [
        ([], 1),
        ([-1], 2),
        ([-30], 2),  # exactly at the window edge: inside
        ([-30.001], 1),  # just outside
        ([-31, -45, -600], 1),
        ([-29, -30, -30.5], 3),
        ([0], 1),  # the same start is the new one itself, not an earlier one
        ([1, 5], 1),  # future starts are ignored
        ([-1, -2, 1], 3),
    ],
)
def test_starts_in_window_counts_earlier_starts_within_the_window(offsets_minutes, expected):
    earlier = [T0 + timedelta(minutes=m) for m in offsets_minutes]
    assert POLICY.starts_in_window(earlier, T0) == expected


def test_the_window_length_comes_from_the_policy():
    earlier = [T0 - timedelta(minutes=10)]
    assert FlapPolicy(window=timedelta(minutes=5)).starts_in_window(earlier, T0) == 1
    assert FlapPolicy(window=timedelta(minutes=10)).starts_in_window(earlier, T0) == 2


@pytest.mark.parametrize(("count", "flapping"), [(1, False), (2, False), (3, True), (4, True)])
def test_a_series_is_flapping_from_the_threshold_on(count, flapping):
    assert POLICY.is_flapping(count) is flapping


def test_the_default_policy_matches_the_documented_defaults():
    assert FlapPolicy() == POLICY


OPEN = IncidentView(id=1, open=True, flapping=False, resolved_at=None)


def resolved_incident(flapping, minutes_before_new_start):
    return IncidentView(
        id=7,
        open=False,
        flapping=flapping,
        resolved_at=T0 - timedelta(minutes=minutes_before_new_start),
    )


@pytest.mark.parametrize(
    ("open_incident", "series_latest", "starts", "placement"),
    [
        # the group's open incident takes every new episode, flapping or not
        (OPEN, None, 1, Placement.JOIN_OPEN),
        (OPEN, resolved_incident(True, 1), 5, Placement.JOIN_OPEN),
        # no history for the series: always a new incident, even if the count says flapping
        (None, None, 1, Placement.NEW),
        (None, None, 5, Placement.NEW),
        # flapping by count reopens the latest incident, however long ago it resolved
        (None, resolved_incident(False, 600), 3, Placement.REOPEN),
        (None, resolved_incident(True, 600), 4, Placement.REOPEN),
        # a flapping incident resolved less than hold_down ago is reopened
        (None, resolved_incident(True, 0), 1, Placement.REOPEN),
        (None, resolved_incident(True, 14.99), 1, Placement.REOPEN),
        # at or after hold_down: a new incident
        (None, resolved_incident(True, 15), 1, Placement.NEW),
        (None, resolved_incident(True, 60), 2, Placement.NEW),
        # a resolved incident that was not flapping: a new incident
        (None, resolved_incident(False, 1), 2, Placement.NEW),
    ],
)
def test_a_new_episode_is_placed_by_the_rules(open_incident, series_latest, starts, placement):
    assert place_new_episode(open_incident, series_latest, starts, T0, POLICY) is placement


def test_a_flapping_incident_without_a_resolve_time_is_not_held():
    latest = IncidentView(id=7, open=False, flapping=True, resolved_at=None)
    assert place_new_episode(None, latest, 1, T0, POLICY) is Placement.NEW


def test_the_hold_down_length_comes_from_the_policy():
    latest = resolved_incident(True, 20)
    short = FlapPolicy(hold_down=timedelta(minutes=10))
    long = FlapPolicy(hold_down=timedelta(minutes=30))
    assert place_new_episode(None, latest, 1, T0, short) is Placement.NEW
    assert place_new_episode(None, latest, 1, T0, long) is Placement.REOPEN


@pytest.mark.parametrize(
    ("status", "truncated", "fully_resolved"),
    [
        (RESOLVED, 0, True),
        (RESOLVED, 1, False),
        (RESOLVED, 2, False),
        (FIRING, 0, False),
        (FIRING, 2, False),
    ],
)
def test_only_an_untruncated_resolved_notification_resolves_the_group(
    status, truncated, fully_resolved
):
    assert group_fully_resolved(status, truncated) is fully_resolved


@pytest.mark.parametrize(
    ("severities", "expected"),
    [
        (["warning", "critical", "info"], "critical"),
        (["info", "error", "warning"], "error"),
        (["info", "warning"], "warning"),
        (["info"], "info"),
        (["page", "info"], "info"),  # unknown ranks below info
        (["page", "warning", "bogus"], "warning"),
        (["page"], "page"),
        ([None, "warning", None], "warning"),
        ([None, "page"], "page"),
        (["", "info"], "info"),
        ([None, None], None),
        ([None, ""], None),
        ([], None),
        (["WARNING", "Critical"], "Critical"),  # case-insensitive, original spelling kept
        (["page", "other"], "page"),  # equally unknown: the first wins
    ],
)
def test_most_severe_orders_known_severities_and_ranks_unknown_last(severities, expected):
    assert most_severe(severities) == expected
