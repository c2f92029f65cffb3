"""Current state for the metrics endpoint, read from the database at scrape time.

The database is the truth every replica shares, so these gauges are the same whichever web
replica is scraped (aggregate them with ``max``, not ``sum``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from receiver.store.tables import AlertEpisode, Delivery, Heartbeat, Incident


@dataclass
class StoreGauges:
    outbox: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, state) -> count
    oldest_due_seconds: float = 0.0  # how late the most overdue pending delivery is
    open_incidents: dict[str, int] = field(default_factory=dict)  # severity -> count
    flapping_open: int = 0
    stale_alerts: int = 0  # firing alerts Alertmanager no longer reports
    heartbeats: dict[str, float] = field(default_factory=dict)  # name -> last seen, unix time


def read_gauges(engine: Engine, now: datetime) -> StoreGauges:
    """One short read transaction; counts only rows that are live (not sent or cancelled)."""
    gauges = StoreGauges()
    with Session(engine) as session:
        live = Delivery.state.in_(("pending", "sending", "dead"))
        for kind, state, count in session.execute(
            select(Delivery.kind, Delivery.state, func.count())
            .where(live)
            .group_by(Delivery.kind, Delivery.state)
        ):
            gauges.outbox[(kind, state)] = count
        oldest = session.scalar(
            select(func.min(Delivery.due_at)).where(
                Delivery.state == "pending", Delivery.due_at <= now
            )
        )
        if oldest is not None:
            gauges.oldest_due_seconds = max(0.0, (now - _aware(oldest)).total_seconds())
        for severity, flapping, count in session.execute(
            select(Incident.severity, Incident.flapping, func.count())
            .where(Incident.status == "firing")
            .group_by(Incident.severity, Incident.flapping)
        ):
            key = severity or "none"
            gauges.open_incidents[key] = gauges.open_incidents.get(key, 0) + count
            gauges.flapping_open += count if flapping else 0
        gauges.stale_alerts = (
            session.scalar(
                select(func.count()).where(
                    AlertEpisode.status == "firing", AlertEpisode.absent_since.is_not(None)
                )
            )
            or 0
        )
        for name, last in session.execute(select(Heartbeat.name, Heartbeat.last_seen_at)):
            gauges.heartbeats[name] = _aware(last).timestamp()
    return gauges


def _aware(value: datetime) -> datetime:
    # func.min() bypasses the column type on SQLite: naive UTC comes back
    return value if value.tzinfo else value.replace(tzinfo=UTC)
