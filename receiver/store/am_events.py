"""The event recorder's events: stored once per digest, read back as an alert's mutes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, case, delete, select
from sqlalchemy.orm import Session

from receiver.model.am_events import MUTES, AmEvent
from receiver.store.repositories import _insert
from receiver.store.tables import AlertmanagerEvent

MAX_MUTES = 100  # rows shown for one incident


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


def _labels_of(session: Session, fingerprints: set[str]) -> dict[str, dict[str, str]]:
    """The labels the events recorded for these alerts (their alertCreated events)."""
    if not fingerprints:
        return {}
    rows = session.execute(
        select(AlertmanagerEvent.fingerprint, AlertmanagerEvent.labels).where(
            AlertmanagerEvent.fingerprint.in_(sorted(fingerprints)),
            AlertmanagerEvent.kind == "alertCreated",
        )
    )
    return {f: labels for f, labels in rows if f}
