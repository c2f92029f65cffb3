"""The event recorder's events: stored once per digest, read back as an alert's mutes and as
the alerts of the last day that notified no one."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, case, delete, func, select
from sqlalchemy.orm import Session

from receiver.model.am_events import MUTES, AmEvent
from receiver.store.repositories import _insert
from receiver.store.tables import AlertmanagerEvent

MAX_MUTES = 100  # rows shown for one incident
MAX_GROUPED_EVENTS = 500  # alertGrouped events read for one incident, the newest first
UNNOTIFIED_WINDOW = timedelta(days=1)
# An alert first seen less than this ago and not muted may still be waiting for its first
# notification: group_wait (30s), or group_interval (5m) in a group already notified
# (config/alertmanager/alertmanager.yml). It is left out until then.
PENDING_GRACE = timedelta(minutes=10)
MAX_UNNOTIFIED = 100  # rows shown on the overview; the rest are counted
# Bounds of the reads: the day's latest created/muted events, and notifications (up to
# MAX_ITEMS fingerprints each), are read by the last_at index; the JSON lists are read in
# Python, never searched by the database.
MAX_SEEN_EVENTS = 5000
MAX_NOTIFICATIONS = 5000
SEEN = ("alertCreated", *MUTES)


class AmEventRepository:
    def __init__(self, session: Session):
        self.session = session

    def add(self, events: Iterable[AmEvent], received_at: datetime) -> None:
        """Insert each event; one already stored (same digest) only moves its last time on."""
        for e in events:
            stmt = _insert(self.session, AlertmanagerEvent).values(
                digest=e.digest,
                kind=e.kind,
                at=e.at,
                last_at=e.at,
                count=1,
                received_at=received_at,
                instance=e.instance,
                fingerprint=e.fingerprint,
                fingerprints=e.fingerprints,
                labels=e.labels,
                detail=e.detail,
            )
            later = stmt.excluded.at > AlertmanagerEvent.last_at
            self.session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["digest"],
                    set_={
                        "last_at": case((later, stmt.excluded.at), else_=AlertmanagerEvent.last_at),
                        "count": AlertmanagerEvent.count + case((later, 1), else_=0),
                    },
                )
            )

    def prune(self, last_before: datetime) -> int:
        """Delete the events last seen before ``last_before`` (retention.event_days)."""
        gone = delete(AlertmanagerEvent).where(AlertmanagerEvent.last_at < last_before)
        return len(self.session.scalars(gone.returning(AlertmanagerEvent.id)).all())


def mute_json(row: AlertmanagerEvent, known: dict[str, dict[str, str]]) -> dict[str, Any]:
    """One mute; an inhibition with the labels of its inhibiting alerts, where they are known."""
    sources = row.detail.get("inhibited_by") or []
    inhibiting = [{"fingerprint": f, "labels": known.get(f, {})} for f in sources]
    return {
        "kind": "silenced" if row.kind == "silenceMutedAlert" else "inhibited",
        "fingerprint": row.fingerprint,
        "labels": row.labels,
        "first_at": row.at.isoformat(),
        "last_at": row.last_at.isoformat(),
        "count": row.count,
        "instance": row.instance,
        **row.detail,
        **({"inhibiting_alerts": inhibiting} if row.kind == "inhibitionMutedAlert" else {}),
    }


def mutes_of(engine: Engine, fingerprints: Iterable[str]) -> list[dict[str, Any]]:
    """The mutes seen for these alerts, the most recent first."""
    wanted = sorted(set(fingerprints))
    if not wanted:
        return []
    with Session(engine) as session:
        rows = session.scalars(
            select(AlertmanagerEvent)
            .where(AlertmanagerEvent.fingerprint.in_(wanted), AlertmanagerEvent.kind.in_(MUTES))
            .order_by(AlertmanagerEvent.last_at.desc(), AlertmanagerEvent.id.desc())
            .limit(MAX_MUTES)
        ).all()
        sources = {f for r in rows for f in r.detail.get("inhibited_by") or [] if f}
        known = _labels_of(session, sources)
        return [mute_json(r, known) for r in rows]


def groupings_of(engine: Engine, fingerprints: Iterable[str]) -> list[dict[str, Any]]:
    """Which of Alertmanager's groups (receiver and group key) took these alerts, from its
    alertGrouped events: per alert and group, first and last seen; the most recent first."""
    wanted = sorted(set(fingerprints))
    if not wanted:
        return []
    e = AlertmanagerEvent
    with Session(engine) as session:
        rows = session.execute(
            select(e.fingerprint, e.at, e.last_at, e.detail, e.labels)
            .where(e.fingerprint.in_(wanted), e.kind == "alertGrouped")
            .order_by(e.last_at.desc(), e.id.desc())
            .limit(MAX_GROUPED_EVENTS)
        ).all()
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for fingerprint, at, last_at, detail, labels in rows:
        key = (fingerprint, detail.get("receiver", ""), detail.get("group_key", ""))
        g = found.setdefault(
            key,
            {
                "fingerprint": fingerprint,
                "alertname": labels.get("alertname", ""),
                "receiver": key[1],
                "group_key": key[2],
                "first_at": at,
                "last_at": last_at,
                "count": 0,
            },
        )
        g["first_at"], g["count"] = min(g["first_at"], at), g["count"] + 1
    return [
        {**g, "first_at": g["first_at"].isoformat(), "last_at": g["last_at"].isoformat()}
        for g in found.values()
    ]


def _labels_of(session: Session, fingerprints: set[str]) -> dict[str, dict[str, str]]:
    """The labels the events recorded for these alerts (their latest alertCreated event)."""
    if not fingerprints:
        return {}
    latest = (
        select(func.max(AlertmanagerEvent.id))
        .where(
            AlertmanagerEvent.fingerprint.in_(sorted(fingerprints)),
            AlertmanagerEvent.kind == "alertCreated",
        )
        .group_by(AlertmanagerEvent.fingerprint)
    )
    rows = session.execute(
        select(AlertmanagerEvent.fingerprint, AlertmanagerEvent.labels).where(
            AlertmanagerEvent.id.in_(latest)
        )
    )
    return {f: dict(sorted(labels.items())) for f, labels in rows if f}  # Postgres reorders


def unnotified(engine: Engine, now: datetime) -> dict[str, Any]:
    """The alerts created or muted in the day before ``now`` that no notification of that day
    named (unmuted ones once PENDING_GRACE old), the most recently seen first."""
    since = now - UNNOTIFIED_WINDOW
    with Session(engine) as session:
        latest = session.scalar(select(func.max(AlertmanagerEvent.last_at)))
        seen, partial = _seen(session, since)
        notified, cut = _notified(session, since)
        wanted = [
            s
            for s in seen
            if s["fingerprint"] not in notified
            and (s["muted"] or s["first_at"] <= now - PENDING_GRACE)
        ]
        shown = wanted[:MAX_UNNOTIFIED]
        alerts = _explained(session, since, shown)
    return {
        "reporting": latest is not None,
        "latest_event_at": latest.isoformat() if latest else None,
        "alerts": alerts,
        "more": len(wanted) - len(shown),
        "partial": partial or cut,
        "window_hours": int(UNNOTIFIED_WINDOW.total_seconds() // 3600),
        "grace_minutes": int(PENDING_GRACE.total_seconds() // 60),
    }


def _seen(session: Session, since: datetime) -> tuple[list[dict[str, Any]], bool]:
    """Per alert created or muted since ``since``: first and last seen, events, whether muted;
    the most recent first. True when MAX_SEEN_EVENTS cut the read."""
    e = AlertmanagerEvent
    recent = (
        select(e.fingerprint, e.kind, e.at, e.last_at, e.count)
        .where(e.last_at >= since, e.kind.in_(SEEN), e.fingerprint.is_not(None))
        .order_by(e.last_at.desc(), e.id.desc())
        .limit(MAX_SEEN_EVENTS)
        .subquery()
    )
    r = recent.c
    rows = session.execute(
        select(
            r.fingerprint,
            func.min(r.at),
            func.max(r.last_at),
            func.sum(r.count),
            func.count(case((r.kind.in_(MUTES), 1))),
            func.count(),
        ).group_by(r.fingerprint)
    ).all()
    seen = [
        {"fingerprint": f, "first_at": first, "last_at": last, "count": int(n), "muted": m > 0}
        for f, first, last, n, m, _ in rows
    ]
    seen.sort(key=lambda s: (s["last_at"], s["fingerprint"]), reverse=True)
    return seen, sum(read for *_, read in rows) >= MAX_SEEN_EVENTS


def _notified(session: Session, since: datetime) -> tuple[set[str], bool]:
    """Every alert the notifications since ``since`` named; True when MAX_NOTIFICATIONS cut
    the read (the oldest of the day's notifications are then not counted)."""
    e = AlertmanagerEvent
    lists = session.scalars(
        select(e.fingerprints)
        .where(e.last_at >= since, e.kind == "notification")
        .order_by(e.last_at.desc())
        .limit(MAX_NOTIFICATIONS)
    ).all()
    return {f for prints in lists for f in prints or []}, len(lists) >= MAX_NOTIFICATIONS


def _explained(
    session: Session, since: datetime, shown: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The shown alerts with their labels and the mutes of the day that explain them."""
    prints = [s["fingerprint"] for s in shown]
    if not prints:
        return []
    e = AlertmanagerEvent
    rows = session.scalars(
        select(e)
        .where(e.fingerprint.in_(prints), e.kind.in_(MUTES), e.last_at >= since)
        .order_by(e.last_at.desc(), e.id.desc())
        .limit(MAX_UNNOTIFIED * 5)  # a few causes per alert
    ).all()
    sources = {f for r in rows for f in r.detail.get("inhibited_by") or [] if f}
    known = _labels_of(session, sources | set(prints))
    mutes: dict[str, list[dict[str, Any]]] = {}
    labels: dict[str, dict[str, str]] = {}
    for row in rows:
        assert row.fingerprint is not None  # selected by it
        mutes.setdefault(row.fingerprint, []).append(mute_json(row, known))
        labels.setdefault(row.fingerprint, row.labels)
    out = []
    for s in shown:
        f = s["fingerprint"]
        alert = known.get(f) or labels.get(f) or {}
        kinds = sorted({m["kind"] for m in mutes.get(f, [])}, reverse=True)  # silenced first
        out.append(
            {
                "fingerprint": f,
                "alertname": alert.get("alertname", ""),
                "labels": {k: v for k, v in sorted(alert.items()) if k != "alertname"},
                "why": ", ".join(kinds) or "no notification recorded",
                "mutes": mutes.get(f, []),
                "first_at": s["first_at"].isoformat(),
                "last_at": s["last_at"].isoformat(),
                "count": s["count"],
            }
        )
    return out
