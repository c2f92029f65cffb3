"""The intake's decision on hand-built state, no database: what one notification changes
(``receiver.model.incident.decide``) and which deliveries it queues or cancels
(``receiver.model.outbox_plan.plan_deliveries``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from receiver.model.alerts import AlertEvent, AlertStatus, Notification, Runbook
from receiver.model.dedup import AlertOutcome, FlapPolicy
from receiver.model.incident import (
    DecisionRules,
    decide,
    incidents_needed,
    open_firing_needed,
)
from receiver.model.intake_state import EpisodeRow, GroupState, IncidentRow, IntakePlan
from receiver.model.outbox_plan import OutboxRules, ReceiverOutbox, plan_deliveries

T0 = datetime(2026, 11, 28, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)
POLICY = FlapPolicy(threshold=3, window=timedelta(minutes=30), hold_down=timedelta(minutes=15))
RULES = DecisionRules(POLICY, lambda labels, annotations: Runbook(url="https://runbooks/x"))
OUTBOX = OutboxRules(lambda labels: [("pd", "pagerduty"), ("chat", "slack")], POLICY)
GROUP = 7


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


def alert(fp: str, status: str = "firing", starts: float = 0, ends: float | None = None):
    return AlertEvent(
        fingerprint=fp,
        status=AlertStatus(status),
        labels={"alertname": "GpuHot", "gpu": fp, "severity": "warning"},
        annotations={"summary": f"gpu {fp} hot"},
        starts_at=at(starts),
        ends_at=at(ends) if ends is not None else None,
    )


def notification(*alerts: AlertEvent, status: str = "firing", truncated: int = 0):
    return Notification(
        receiver="triton",
        group_key='{}:{alertname="GpuHot"}',
        status=AlertStatus(status),
        alerts=list(alerts),
        truncated_alerts=truncated,
    )


def incident(ref: int, status: str = "firing", **values) -> IncidentRow:
    base = {
        "ref": ref,
        "status": status,
        "receiver": "triton",
        "alertname": "GpuHot",
        "severity": "warning",
        "title": "gpu hot",
        "labels": {"alertname": "GpuHot"},
        "annotations": {},
        "external_url": None,
        "search_text": "gpu hot triton gpuhot",
        "opened_at": at(0),
        "resolved_at": None if status == "firing" else at(20),
        "first_received_at": at(0),
        "last_received_at": at(20),
        "notification_count": 3,
        "duplicate_count": 1,
        "alert_count": 1,
        "episode_count": 1,
        "flap_count": 1,
    }
    return IncidentRow(**{**base, **values})


def episode(ref: int, incident_ref: int, fp: str, starts: float, status: str = "firing"):
    return EpisodeRow(
        ref=ref,
        incident_ref=incident_ref,
        fingerprint=fp,
        starts_at=at(starts),
        status=status,
        ends_at=None if status == "firing" else at(starts + 10),
        resolution=None if status == "firing" else "resolved",
        annotations={"summary": f"gpu {fp} hot"},
        last_received_at=at(20),
        seen_count=2,
    )


def state(*episodes: EpisodeRow, incidents=(), open_id=None, open_firing=None) -> GroupState:
    return GroupState(
        GROUP,
        episodes={(e.fingerprint, e.starts_at): e for e in episodes},
        incidents={i.ref: i for i in incidents},
        open_incident_id=open_id,
        open_firing=open_firing,
    )


def kinds(plan: IntakePlan) -> list[str]:
    return [e.kind for e in plan.events]


def test_a_repeat_needs_no_incident_and_only_counts():
    stored = episode(11, 5, "a", 0)
    n = notification(alert("a"))
    assert not incidents_needed(n, state(stored))
    plan = decide(n, GroupState(GROUP, episodes=state(stored).episodes), NOW, RULES)
    assert plan.counts[AlertOutcome.REPEAT] == 1
    assert plan.counted_incidents == (5,) and plan.changed_incidents == ()
    assert plan.seen_episodes == (11,) and plan.changed_episodes == ()
    assert plan.events == () and plan.changes == {}


def test_a_repeat_with_new_annotations_rewrites_them_and_still_changes_no_incident():
    stored = episode(11, 5, "a", 0)
    moved = AlertEvent(**{**alert("a").__dict__, "annotations": {"summary": "hotter"}})
    plan = decide(notification(moved), state(stored), NOW, RULES)
    (changed,) = plan.changed_episodes
    assert changed.annotations == {"summary": "hotter"} and changed.seen_count == 3
    assert plan.seen_episodes == () and plan.changes == {}


def test_a_stale_firing_after_the_resolve_counts_and_reopens_nothing():
    resolved = episode(11, 5, "a", 0, status="resolved")
    n = notification(alert("a"))
    assert not incidents_needed(n, state(resolved))
    plan = decide(n, state(resolved), NOW, RULES)
    assert plan.counts[AlertOutcome.STALE_FIRING] == 1
    (changed,) = plan.changed_episodes
    assert changed.stale_firing_count == 1 and changed.status == "resolved"
    assert plan.new_incidents == () and plan.changes == {}


def test_a_new_alert_joins_the_open_incident():
    open_ = incident(5)
    s = state(episode(11, 5, "a", 0), incidents=[open_], open_id=5)
    plan = decide(notification(alert("a"), alert("b", starts=3)), s, NOW, RULES)
    assert plan.new_incidents == ()
    (new,) = plan.new_episodes
    assert new.row.incident_ref == 5 and new.runbook_url == "https://runbooks/x"
    assert kinds(plan) == ["alert_added"] and plan.changes == {5: "changed"}
    assert plan.recount == (5,)
    assert (5, "gpu", "b") in plan.labels


def test_a_new_group_indexes_each_label_once_and_searches_every_alerts_own_values():
    a, b = alert("a"), alert("b", starts=1)
    b.labels["node"] = "Node-7"  # a label only the second alert has
    plan = decide(notification(a, b), state(), NOW, RULES)
    (opened,) = plan.new_incidents
    assert sorted(plan.labels) == [
        (-1, "alertname", "GpuHot"),
        (-1, "gpu", "a"),
        (-1, "gpu", "b"),
        (-1, "node", "Node-7"),
        (-1, "severity", "warning"),
    ]
    words = opened.search_text.split()
    assert {"a", "b", "node-7", "warning"} <= set(words)
    assert words.count("gpuhot") == 1 and words.count("warning") == 1


def test_a_new_group_takes_the_severity_of_its_most_severe_alert():
    warning, critical, info = alert("a"), alert("b", starts=1), alert("c", starts=2)
    critical.labels["severity"], info.labels["severity"] = "critical", "info"
    plan = decide(notification(warning, critical, info), state(), NOW, RULES)
    assert plan.new_incidents[0].severity == "critical"


def test_a_label_too_long_for_the_index_is_searched_only():
    long_ = alert("a")
    long_.labels["prompt"] = "é" * 256  # 512 bytes: the longest value the index keeps
    longer = alert("b", starts=1)
    longer.labels["prompt"] = "é" * 257
    plan = decide(notification(long_, longer), state(), NOW, RULES)
    assert [v for _, name, v in plan.labels if name == "prompt"] == ["é" * 256]
    assert "é" * 257 in plan.new_incidents[0].search_text


def test_a_newer_start_of_a_firing_series_supersedes_the_old_episode():
    s = state(episode(11, 5, "a", 0), incidents=[incident(5)], open_id=5)
    plan = decide(notification(alert("a", starts=40)), s, NOW, RULES)
    (ended,) = plan.changed_episodes
    assert ended.resolution == "superseded" and ended.ends_at == at(40)
    assert kinds(plan) == ["alert_superseded", "alert_added"]
    assert plan.incident(5).status == "firing"


def test_a_series_starting_a_third_time_in_the_window_reopens_its_incident_as_flapping():
    earlier = [episode(11, 5, "a", 0, "resolved"), episode(12, 5, "a", 15, "resolved")]
    s = state(*earlier, incidents=[incident(5, "resolved", flap_count=2)])
    plan = decide(notification(alert("a", starts=25)), s, NOW, RULES)
    row = plan.incident(5)
    assert row.status == "firing" and row.resolved_at is None
    assert row.flapping and row.flap_count == 3
    assert kinds(plan) == ["reopened", "flapping"] and plan.new_incidents == ()


def test_a_start_inside_the_hold_down_of_a_flapping_incident_reopens_it():
    old = episode(11, 5, "a", 0, "resolved")
    held = incident(5, "resolved", flapping=True, resolved_at=at(50))
    plan = decide(notification(alert("a", starts=64)), state(old, incidents=[held]), NOW, RULES)
    assert kinds(plan) == ["reopened"] and plan.incident(5).status == "firing"


def test_a_start_once_the_hold_down_is_over_opens_a_new_incident():
    old = episode(11, 5, "a", 0, "resolved")
    over = incident(5, "resolved", flapping=True, resolved_at=at(50))
    plan = decide(notification(alert("a", starts=65)), state(old, incidents=[over]), NOW, RULES)
    (opened,) = plan.new_incidents
    assert opened.ref == -1 and opened.status == "firing" and opened.episode_count == 1
    assert kinds(plan) == ["opened"] and plan.changes == {-1: "opened"}


def test_resolving_the_last_firing_episode_resolves_the_incident_at_its_end():
    n = notification(alert("a", "resolved", 0, ends=30))
    assert open_firing_needed(n)
    firing = episode(11, 5, "a", 0)
    s = state(firing, incidents=[incident(5)], open_id=5, open_firing=(firing,))
    plan = decide(n, s, NOW, RULES)
    assert plan.incident(5).status == "resolved" and plan.incident(5).resolved_at == at(30)
    assert kinds(plan) == ["alert_resolved", "resolved"] and plan.changes == {5: "resolved"}


def test_a_truncated_resolved_notification_leaves_the_absent_alerts_firing():
    a, b = episode(11, 5, "a", 0), episode(12, 5, "b", 0)
    n = notification(alert("a", "resolved", 0, ends=4), status="resolved", truncated=1)
    s = state(a, incidents=[incident(5)], open_id=5, open_firing=(a, b))
    plan = decide(n, s, NOW, RULES)
    row = plan.incident(5)
    assert row.status == "firing" and row.truncated
    assert kinds(plan) == ["alert_resolved", "truncated"]
    # untruncated, the same notification says the whole group is over
    whole = decide(notification(*n.alerts, status="resolved"), s, NOW, RULES)
    assert whole.incident(5).status == "resolved"
    assert {e.fingerprint: e.resolution for e in whole.changed_episodes} == {
        "a": "resolved",
        "b": "group_resolved",
    }


def outbox(**pending: tuple[int, ...]) -> dict[int, dict[str, ReceiverOutbox]]:
    last = "resolve" if pending.pop("resolved", None) else "trigger"
    return {5: {"pd": ReceiverOutbox("pagerduty", 2, last, dict(pending))}}


def test_a_change_queues_one_update_and_a_pending_update_absorbs_the_next():
    s = state(episode(11, 5, "a", 0), incidents=[incident(5)], open_id=5)
    plan = decide(notification(alert("a"), alert("b")), s, NOW, RULES)
    (update,) = plan_deliveries(plan, outbox(), OUTBOX, NOW).queue
    assert (update.action, update.seq, update.due_at) == ("update", 3, NOW + OUTBOX.coalesce)
    assert plan_deliveries(plan, outbox(update=(41,)), OUTBOX, NOW).queue == ()


def test_a_resolve_is_held_back_while_the_series_may_flap_and_cancels_pending_updates():
    firing = episode(11, 5, "a", 0)
    n = notification(alert("a", "resolved", 0, ends=30))
    for flap_count, hold in ((1, timedelta(0)), (2, POLICY.hold_down)):
        s = state(firing, incidents=[incident(5, flap_count=flap_count)], open_id=5)
        s = GroupState(**{**s.__dict__, "open_firing": (firing,)})
        plan = decide(n, s, NOW, RULES)
        deliveries = plan_deliveries(plan, outbox(update=(41,)), OUTBOX, NOW)
        assert deliveries.cancel == (41,)
        assert [(q.action, q.due_at) for q in deliveries.queue] == [("resolve", NOW + hold)]


def test_a_refiring_inside_the_hold_down_cancels_the_held_resolve_and_updates_the_page():
    old = episode(11, 5, "a", 0, "resolved")
    held = incident(5, "resolved", flapping=True, resolved_at=NOW - timedelta(minutes=1))
    plan = decide(notification(alert("a", starts=70)), state(old, incidents=[held]), NOW, RULES)
    deliveries = plan_deliveries(plan, outbox(resolve=(42,)), OUTBOX, NOW)
    assert deliveries.cancel == (42,)
    assert [q.action for q in deliveries.queue] == ["update"]
    # once the resolve went out, the re-firing pages again
    again = plan_deliveries(plan, outbox(resolved=(43,)), OUTBOX, NOW)
    assert [q.action for q in again.queue] == ["trigger"] and again.cancel == ()


def test_an_opened_incident_triggers_every_routed_receiver_and_a_repeat_queues_nothing():
    plan = decide(notification(alert("a")), GroupState(GROUP, created=True), NOW, RULES)
    queued = plan_deliveries(plan, {}, OUTBOX, NOW).queue
    assert [(q.incident_ref, q.receiver, q.action, q.seq) for q in queued] == [
        (-1, "pd", "trigger", 1),
        (-1, "chat", "trigger", 1),
    ]
    repeat = decide(notification(alert("a")), state(episode(11, 5, "a", 0)), NOW, RULES)
    assert plan_deliveries(repeat, {}, OUTBOX, NOW) == plan_deliveries(
        IntakePlan({}, ()), {}, OUTBOX, NOW
    )


def test_route_labels_no_alert_carries_join_the_incidents_labels_and_index():
    n = replace(
        notification(alert("a"), alert("b", starts=1)),
        route_labels={"team": "ml-serving", "gpu": "from-the-route"},
    )
    plan = decide(n, state(), NOW, RULES)
    (opened,) = plan.new_incidents
    assert opened.route_labels == {"team": "ml-serving", "gpu": "from-the-route"}
    assert opened.labels["team"] == "ml-serving" and opened.labels["gpu"] == "a"  # the alerts win
    assert (-1, "team", "ml-serving") in plan.labels
    assert (-1, "gpu", "from-the-route") not in plan.labels
    assert "ml-serving" in opened.search_text


def test_every_event_of_a_notification_says_why_alertmanager_sent_it():
    n = replace(
        notification(alert("a"), alert("b", starts=1)), notification_reason="first notification"
    )
    plan = decide(n, state(), NOW, RULES)
    assert kinds(plan) == ["opened", "alert_added"]
    assert {e.detail["notification_reason"] for e in plan.events} == {"first notification"}
    plain = decide(notification(alert("a")), state(), NOW, RULES)
    assert "notification_reason" not in plain.events[0].detail
