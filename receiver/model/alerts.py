"""What one Alertmanager notification says, after validation: plain values, no I/O."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

FNV64_OFFSET = 14695981039346656037
FNV64_PRIME = 1099511628211
_SEPARATOR = b"\xff"
SEVERITY_ORDER = ("critical", "error", "warning", "info")
_SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITY_ORDER)}


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class AlertEvent:
    """One entry of a notification's ``alerts`` list."""

    fingerprint: str
    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None = None
    generator_url: str | None = None
    fingerprint_derived: bool = False

    @property
    def alertname(self) -> str:
        return self.labels["alertname"]


@dataclass(frozen=True)
class Notification:
    """One webhook body: a group of alerts as Alertmanager sent it."""

    receiver: str
    group_key: str
    status: AlertStatus
    alerts: list[AlertEvent]
    group_labels: dict[str, str] = field(default_factory=dict)
    common_labels: dict[str, str] = field(default_factory=dict)
    common_annotations: dict[str, str] = field(default_factory=dict)
    external_url: str | None = None
    truncated_alerts: int = 0
    version: str | None = None
    group_key_derived: bool = False
    notification_reason: str | None = None  # Alertmanager 0.32+
    route_labels: dict[str, str] = field(default_factory=dict)  # Alertmanager 0.34+

    @property
    def group_key_sha256(self) -> str:
        return sha256_hex(self.group_key)


@dataclass(frozen=True)
class Runbook:
    """What to read and do for one alert; ``source`` says where the URL came from."""

    url: str | None = None
    guidance: str | None = None
    source: str | None = None  # "annotation" | "catalogue" | None (missing)
    entry: str | None = None  # the catalogue entry that matched, if any

    @property
    def missing(self) -> bool:
        return self.url is None


def sha256_hex(text: str) -> str:
    """Lower-case hex sha256 of UTF-8 text (Alertmanager's PagerDuty dedup key)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def label_fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager's fingerprint of a label set: FNV-1a 64 over sorted names and values.

    Same algorithm as Prometheus' ``model.LabelSet.Fingerprint``: for each label name in sorted
    order, hash name, 0xFF, value, 0xFF; print as 16 lower-case hex digits. A derived fingerprint
    is therefore identical to the one Alertmanager would have sent.
    """
    h = FNV64_OFFSET
    for name in sorted(labels):
        for part in (name.encode(), _SEPARATOR, labels[name].encode(), _SEPARATOR):
            for byte in part:
                h = ((h ^ byte) * FNV64_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def derived_group_key(group_labels: dict[str, str], alerts: list[dict[str, str]]) -> str:
    """A stable group key for payloads without ``groupKey``.

    Uses ``groupLabels`` when present; otherwise the alertname when every alert shares one;
    otherwise ``{}`` (one group, like a route with ``group_by: []``). Written in Alertmanager's
    own label-set notation so it reads like a real key.
    """
    if not group_labels:
        names = {labels.get("alertname", "") for labels in alerts}
        group_labels = {"alertname": names.pop()} if len(names) == 1 else {}
    inner = ", ".join(f'{k}="{group_labels[k]}"' for k in sorted(group_labels))
    return "derived:{" + inner + "}"


def most_severe(severities: list[str | None]) -> str | None:
    """The most severe of known severity names; unknown names rank below ``info``."""
    known = [s for s in severities if s]
    if not known:
        return None
    return min(known, key=lambda s: _SEVERITY_RANK.get(s.lower(), len(SEVERITY_ORDER)))
