"""Alertmanager webhook bodies: hand-written ones, and the recorded sets of ``FIXTURE_SETS``.

Times are minutes after ``T0`` so tests read as timelines: ``alert("DiskFull", starts=5)``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

FIXTURE_ROOT = Path(__file__).parents[1] / "fixtures"
FIXTURE_SETS = {v: FIXTURE_ROOT / f"alertmanager-{v}" for v in ("0.25", "0.33.1")}
FIXTURES = FIXTURE_SETS["0.25"]  # for tests that pick a recorded request by its number


@dataclass(frozen=True)
class RecordedOutcome:
    """What replaying a set's ``all/`` makes: incidents, how many resolved, the day recorded."""

    incidents: int
    resolved: int
    day: str


# tests/integration/test_replay_scenarios.py checks these incident by incident. 0.33.1 makes one
# incident fewer: its triton-gpu-max2 group listed the flapping GPU series (resolved, unseen), so
# there the flapping scenario's first start is the series' second and the next one already
# rejoins its incident, as on triton-gpu in both sets (0.25 never listed the series in its max2
# group: there its first start opened one incident and its second another).
RECORDED_OUTCOMES = {
    "0.25": RecordedOutcome(incidents=12, resolved=10, day="2026-11-28"),
    "0.33.1": RecordedOutcome(incidents=11, resolved=9, day="2026-12-08"),
}
T0 = datetime(2026, 11, 28, 0, 0, 0, tzinfo=UTC)
ZERO_TIME = "0001-01-01T00:00:00Z"


def rfc3339(moment: datetime) -> str:
    """A time as Alertmanager writes it: RFC 3339 in UTC, ``Z`` for the offset."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def ts(minutes: float) -> str:
    """RFC 3339 text of ``T0 + minutes``, as Alertmanager writes it."""
    return rfc3339(T0 + timedelta(minutes=minutes))


def fake_fingerprint(labels: dict[str, str]) -> str:
    """A stable 16-hex id per label set (any string will do for the receiver)."""
    text = json.dumps(labels, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def alert(
    name: str = "DiskFull",
    status: str = "firing",
    starts: float = 0,
    ends: float | None = None,
    annotations: dict[str, str] | None = None,
    **labels: str,
) -> dict[str, Any]:
    """One entry of ``alerts``; a resolved alert ends one minute after it started by default;
    the annotations are a summary naming the instance unless given."""
    all_labels = {"alertname": name, "severity": "warning", **labels}
    if status == "resolved" and ends is None:
        ends = starts + 1
    if annotations is None:
        annotations = {"summary": f"{name} on {labels.get('instance', 'host-1')}"}
    return {
        "status": status,
        "labels": all_labels,
        "annotations": annotations,
        "startsAt": ts(starts),
        "endsAt": ts(ends) if ends is not None else ZERO_TIME,
        "generatorURL": "http://prometheus.example/graph",
        "fingerprint": fake_fingerprint(all_labels),
    }


def alert_doc(labels: dict[str, str], state: str, minute: int, **extra: Any) -> dict[str, Any]:
    """An alert entry of exactly ``labels`` and ``extra`` fields (no fingerprint, annotations or
    severity unless given) starting ``minute`` minutes after T0; resolved: ended a minute later."""
    return {
        "status": state,
        "labels": labels,
        "startsAt": ts(minute),
        "endsAt": ts(minute + 1) if state == "resolved" else ZERO_TIME,
        **extra,
    }


def critical(name: str = "TritonHighErrorRate", **labels: str) -> dict[str, Any]:
    """A firing critical alert of one model (PagerDuty and Slack by the example routes)."""
    return alert(name, severity="critical", model="llama2_7b", **labels)


def webhook(
    *alerts: dict[str, Any],
    receiver: str = "team-a",
    group_key: str | None = None,
    status: str | None = None,
    truncated: int = 0,
    group_labels: dict[str, str] | None = None,
    common: bool = False,
) -> dict[str, Any]:
    """A version 4 body; the root status is firing while any listed alert fires. The group
    labels are the alertname when all alerts share one, unless given; so are the common labels,
    with no common annotations, unless ``common``: then both are what every alert shares, as
    Alertmanager sends them."""
    names = sorted({a["labels"]["alertname"] for a in alerts})
    if status is None:
        status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    if group_labels is None:
        group_labels = {"alertname": names[0]} if len(names) == 1 else {}
    if common:
        common_labels = _common([a["labels"] for a in alerts])
        common_annotations = _common([a["annotations"] for a in alerts])
    else:
        common_labels = {"alertname": names[0]} if len(names) == 1 else {}
        common_annotations = {}
    return {
        "receiver": receiver,
        "status": status,
        "alerts": list(alerts),
        "groupLabels": group_labels,
        "commonLabels": common_labels,
        "commonAnnotations": common_annotations,
        "externalURL": "http://alertmanager.example:9093",
        "version": "4",
        "groupKey": group_key or "{}:" + json.dumps(group_labels, sort_keys=True),
        "truncatedAlerts": truncated,
    }


def group_body(
    *alerts: dict[str, Any], key: str = "g1", status: str | None = None
) -> dict[str, Any]:
    """A webhook for group ``key`` with Alertmanager's common labels and annotations."""
    group_key = f'{{}}:{{group="{key}"}}'
    return webhook(*alerts, receiver="triton", group_key=group_key, status=status, common=True)


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    return {k: v for k, v in maps[0].items() if all(m.get(k) == v for m in maps[1:])}


VALID = json.dumps(webhook(alert("DiskFull", instance="host-1")))
