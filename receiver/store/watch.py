"""Writes for the worker's watch duties: alerts Alertmanager stopped reporting, heartbeats."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from receiver.store.repositories import _insert, changed_rows
from receiver.store.tables import AlertEpisode, AlertGroup, Heartbeat, IncidentEvent


class HeartbeatRepository:
    def __init__(self, session: Session):
        self.session = session

    def beat(self, name: str, receiver: str, now: datetime) -> None:
        """Record one arrival of the always-firing alert ``name``."""
        stmt = _insert(self.session, Heartbeat).values(
            name=name, first_seen_at=now, last_seen_at=now, receiver=receiver, count=1
        )
        self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=["name"],
                set_={
                    "last_seen_at": stmt.excluded.last_seen_at,
                    "receiver": stmt.excluded.receiver,
                    "count": Heartbeat.count + 1,
                },
            )
        )

    def get(self, name: str) -> Heartbeat | None:
        return self.session.get(Heartbeat, name)


class StaleRepository:
    """Firing episodes checked against what Alertmanager still reports active."""

    def __init__(self, session: Session):
        self.session = session

    def firing_receivers(self, received_before: datetime) -> set[str]:
        """The Alertmanager receivers of the groups with firing episodes received before then."""
        rows = self.session.scalars(
            select(AlertGroup.receiver)
            .distinct()
            .join(AlertEpisode, AlertEpisode.group_id == AlertGroup.id)
            .where(
                AlertEpisode.status == "firing",
                AlertEpisode.first_received_at <= received_before,
            )
        )
        return set(rows)

    def firing(self, received_before: datetime) -> list[tuple[AlertEpisode, AlertGroup]]:
        """Firing episodes first received before the given time, with their groups."""
        rows = self.session.execute(
            select(AlertEpisode, AlertGroup)
            .join(AlertGroup, AlertGroup.id == AlertEpisode.group_id)
            .where(
                AlertEpisode.status == "firing",
                AlertEpisode.first_received_at <= received_before,
            )
            .order_by(AlertEpisode.id)
        )
        return [(e, g) for e, g in rows]

    def mark(
        self, episode: AlertEpisode, absent: bool, now: datetime, detail: dict[str, Any]
    ) -> bool:
        """Mark a firing episode absent since ``now``, or present again; False if already so."""
        since = AlertEpisode.absent_since
        unchanged = since.is_(None) if absent else since.is_not(None)
        changed = changed_rows(
            self.session,
            update(AlertEpisode)
            .where(AlertEpisode.id == episode.id, AlertEpisode.status == "firing", unchanged)
            .values(absent_since=now if absent else None)
            .execution_options(synchronize_session=False),
        )
        if changed:
            self.session.add(
                IncidentEvent(
                    incident_id=episode.incident_id,
                    at=now,
                    kind="stale" if absent else "stale_cleared",
                    fingerprint=episode.fingerprint,
                    detail=detail,
                )
            )
        return bool(changed)

    def due(self, group_id: int, absent_before: datetime) -> list[AlertEpisode]:
        """The group's firing episodes absent since before ``absent_before`` (lock it first)."""
        return list(
            self.session.scalars(
                select(AlertEpisode)
                .where(
                    AlertEpisode.group_id == group_id,
                    AlertEpisode.status == "firing",
                    AlertEpisode.absent_since <= absent_before,
                )
                .order_by(AlertEpisode.id)
            )
        )

    def firing_of_group(self, group_id: int) -> list[AlertEpisode]:
        return list(
            self.session.scalars(
                select(AlertEpisode).where(
                    AlertEpisode.group_id == group_id, AlertEpisode.status == "firing"
                )
            )
        )
