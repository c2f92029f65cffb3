"""Read queries for the API and UI: plain dicts (an incident's: its snapshot rendered), no
writes."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Engine, String, and_, case, func, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from receiver.model.matchers import Matcher
from receiver.model.snapshot import IncidentSnapshot
from receiver.model.snapshot_json import delivery_json, incident_json, summary_json
from receiver.store.am_events import groupings_of, mutes_of, unnotified
from receiver.store.budgets import slo_budgets
from receiver.store.label_filters import FilterValues, label_condition
from receiver.store.snapshots import delivery_records, load_snapshots, summary_of
from receiver.store.tables import (
    AlertEpisode,
    Delivery,
    Incident,
    IncidentLabel,
    PayloadBody,
    WebhookReceipt,
)

MAX_LIMIT = 500
MAX_ROW_ID = 2**63 - 1  # a BIGINT


class utc_day(FunctionElement[Any]):
    """The UTC calendar day of a stored time (str() of it: YYYY-MM-DD), by the database."""

    type = String()
    name = "utc_day"
    inherit_cache = True


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element: utc_day, compiler: Any, **kw: Any) -> str:
    # SQLite holds UtcDateTime as 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC
    return f"substr({compiler.process(element.clauses, **kw)}, 1, 10)"


@compiles(utc_day, "postgresql")
def _utc_day_postgresql(element: utc_day, compiler: Any, **kw: Any) -> str:
    return f"CAST(({compiler.process(element.clauses, **kw)}) AT TIME ZONE 'UTC' AS DATE)"


class rare(FunctionElement[Any]):
    """A condition, with a hint that few rows pass it: SQLite's unlikely(), which makes its
    planner prefer an index that can test the condition without reading the rows (text search:
    ix_incidents_text_scan; without the hint it may pick any index in the right order, as ties
    go by the indexes' creation order). Elsewhere just the condition. Untyped: as a Boolean,
    SQLite would get ``unlikely(...) = 1``, which its planner does not take as a hint."""

    name = "rare"
    inherit_cache = True


@compiles(rare)
def _rare(element: rare, compiler: Any, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)})"


@compiles(rare, "sqlite")
def _rare_sqlite(element: rare, compiler: Any, **kw: Any) -> str:
    return f"unlikely({compiler.process(element.clauses, **kw)})"


class epoch_us(FunctionElement[int]):
    """A stored time as whole microseconds since the epoch (exact, for sums of durations)."""

    type = BigInteger()
    name = "epoch_us"
    inherit_cache = True


@compiles(epoch_us, "sqlite")
def _epoch_us_sqlite(element: epoch_us, compiler: Any, **kw: Any) -> str:
    value = compiler.process(element.clauses, **kw)
    return (
        f"(CAST(strftime('%s', substr({value}, 1, 19)) AS INTEGER) * 1000000"
        f" + CAST(substr({value}, 21, 6) AS INTEGER))"
    )


@compiles(epoch_us, "postgresql")
def _epoch_us_postgresql(element: epoch_us, compiler: Any, **kw: Any) -> str:
    value = compiler.process(element.clauses, **kw)
    return f"CAST(extract(epoch FROM {value}) * 1000000 AS BIGINT)"


@dataclass
class IncidentFilter:
    """Filters of the incident list; every field narrows the result."""

    status: list[str] = field(default_factory=list)
    severity: list[str] = field(default_factory=list)
    alertname: list[str] = field(default_factory=list)
    receiver: list[str] = field(default_factory=list)
    matchers: list[Matcher] = field(default_factory=list)
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None


def encode_cursor(opened_at: datetime, incident_id: int) -> str:
    raw = f"{opened_at.isoformat()}|{incident_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """Inverse of encode_cursor; raise ValueError for anything else (a time or an id the
    database could not hold included)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, ident = raw.split("|")
        at = datetime.fromisoformat(when)
        if at.tzinfo is None:
            raise ValueError("cursor time without a time zone")
        row = int(ident) if ident.isascii() and ident.isdigit() and len(ident) <= 19 else 0
        if not 1 <= row <= MAX_ROW_ID:
            raise ValueError("cursor id out of range")
        return at.astimezone(UTC), row
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
        raise ValueError("invalid cursor") from None


class IncidentQueries:
    def __init__(self, engine: Engine):
        # Every read of a page or document sees one snapshot: a webhook committing meanwhile
        # can never show in half of it (SQLite: one deferred transaction reads one snapshot).
        if engine.dialect.name == "postgresql":
            engine = engine.execution_options(isolation_level="REPEATABLE READ")
        self.engine = engine

    def session(self) -> Session:
        """A read-only session that sees one snapshot per transaction."""
        return Session(self.engine)

    def list_incidents(
        self, flt: IncidentFilter, limit: int = 50, cursor: str | None = None
    ) -> dict[str, Any]:
        """Newest first (by opened_at, id), ``limit`` rows and a cursor for the next page.

        FilterTooCostly if a regex matcher's label has too many values to test."""
        limit = max(1, min(limit, MAX_LIMIT))
        with Session(self.engine) as session:
            values = FilterValues.read(session, flt.matchers)  # the page's snapshot
            rows = list(session.scalars(_page(flt, values, limit, cursor)))
            # Unfiltered, an index on (status, ...) gives the groups in order. Filtered, group
            # by an expression instead: given the bare column, SQLite walks that index to save
            # a sort and so reads every matching row out of table order, several times slower
            # than the index that serves the filter (or a plain scan, for text).
            counted = _conditions(flt, values, with_status=False, counting=True)
            status = func.coalesce(Incident.status, "") if counted else Incident.status
            by_status = session.execute(
                select(status, func.count(), func.count(Incident.acknowledged_at))
                .where(*counted)
                .group_by(status)
            ).all()
            counts: dict[str, int] = {name: n for name, n, _ in by_status}
            counts["acknowledged"] = next((a for name, _, a in by_status if name == "firing"), 0)
            more = len(rows) > limit
            rows = rows[:limit]
            notified = _notified(session, [i.id for i in rows])
        next_cursor = encode_cursor(rows[-1].opened_at, rows[-1].id) if more and rows else None
        return {
            "incidents": [
                {**summary_json(summary_of(i)), "notified": notified.get(i.id, [])} for i in rows
            ],
            "next_cursor": next_cursor,
            "counts": counts,
        }

    def snapshot(self, incident_id: int) -> IncidentSnapshot | None:
        """One incident with its alerts and episodes, timeline, payloads and deliveries."""
        with Session(self.engine) as session:
            return load_snapshots(session, [incident_id]).get(incident_id)

    def mutes(self, snapshot: IncidentSnapshot) -> list[dict[str, Any]]:
        """Why its alerts were not paged: the silences and inhibitions Alertmanager reported."""
        return mutes_of(self.engine, (a.fingerprint for a in snapshot.alerts))

    def groupings(self, snapshot: IncidentSnapshot) -> list[dict[str, Any]]:
        """Which of Alertmanager's groups took its alerts (the event recorder's alertGrouped)."""
        return groupings_of(self.engine, (a.fingerprint for a in snapshot.alerts))

    def unnotified(self, now: datetime) -> dict[str, Any]:
        """The alerts of the last day that Alertmanager notified no one of, and why."""
        return unnotified(self.engine, now)

    def get_incident(self, incident_id: int) -> dict[str, Any] | None:
        """One incident as the API shows it (its snapshot's rendering), for the UI and replay."""
        snapshot = self.snapshot(incident_id)
        return None if snapshot is None else incident_json(snapshot)

    def slo_budgets(self, now: datetime, days: int = 30) -> list[dict[str, Any]]:
        """Per model, the error budget stored with its latest incident and its incidents."""
        return slo_budgets(self.engine, now, days)

    def overview(self, now: datetime, days: int = 30) -> dict[str, Any]:
        """Open incidents by severity and model, the last ``days`` per day, time to resolve,
        the noisiest alerts and the alerts without runbooks."""
        since = now - timedelta(days=days)
        # one model per open incident (the greatest, when its alerts name several)
        open_models = (
            select(func.max(IncidentLabel.value).label("model"))
            .select_from(Incident)
            .outerjoin(
                IncidentLabel,
                and_(IncidentLabel.incident_id == Incident.id, IncidentLabel.name == "model"),
            )
            .where(Incident.status == "firing")
            .group_by(Incident.id)
            .subquery()
        )
        day = utc_day(Incident.opened_at)
        resolved = and_(Incident.status == "resolved", Incident.resolved_at.is_not(None))
        took = epoch_us(Incident.resolved_at) - epoch_us(Incident.opened_at)
        with Session(self.engine) as session:
            open_by_severity = session.execute(
                select(Incident.severity, func.count())
                .where(Incident.status == "firing")
                .group_by(Incident.severity)
            ).all()
            open_by_model = session.execute(
                select(open_models.c.model, func.count()).group_by(open_models.c.model)
            ).all()
            # per day, time to resolve and flapping alerts: one pass over the last ``days``
            recent = session.execute(
                select(
                    day,
                    Incident.alertname,
                    Incident.flapping,
                    func.count(),
                    func.count(case((resolved, 1))),
                    func.sum(case((resolved, took))),
                )
                .where(Incident.opened_at >= since)
                .group_by(day, Incident.alertname, Incident.flapping)
            ).all()
            noisy = session.execute(
                select(
                    AlertEpisode.alertname,
                    func.count(),
                    func.count(func.distinct(AlertEpisode.incident_id)),
                )
                .where(AlertEpisode.starts_at >= since)
                .group_by(AlertEpisode.alertname)
                .order_by(func.count().desc())
                .limit(10)
            ).all()
        per_day = {(now - timedelta(days=d)).date().isoformat(): 0 for d in range(days)}
        resolved_count, resolved_us = 0, 0
        flapping: dict[str, int] = {}
        for opened_day, alertname, flapped, opened, resolved_n, us in recent:
            if str(opened_day) in per_day:
                per_day[str(opened_day)] += opened
            resolved_count += resolved_n
            resolved_us += int(us or 0)
            if flapped:
                flapping[alertname] = flapping.get(alertname, 0) + opened
        mean = resolved_us / 1e6 / resolved_count if resolved_count else None
        return {
            "open_by_severity": _tally((s or "none", n) for s, n in open_by_severity),
            "open_by_model": _tally(("(none)" if m is None else m, n) for m, n in open_by_model),
            "per_day": sorted(per_day.items()),
            "mean_time_to_resolve_seconds": mean,
            "resolved_count": resolved_count,
            "noisiest": [{"alertname": n, "episodes": e, "incidents": i} for n, e, i in noisy],
            "most_flapping": [
                {"alertname": n, "incidents": c} for n, c in _tally(flapping.items())[:10]
            ],
            "without_runbook": self.runbooks_missing(since),
        }

    def runbooks_missing(self, since: datetime) -> list[dict[str, Any]]:
        """Alertnames with episodes first received since ``since`` that had no runbook."""
        stmt = (
            select(
                AlertEpisode.alertname,
                func.count(),
                func.max(AlertEpisode.first_received_at),
                func.count(func.distinct(AlertEpisode.incident_id)),
            )
            .where(AlertEpisode.runbook_url.is_(None), AlertEpisode.first_received_at >= since)
            .group_by(AlertEpisode.alertname)
            .order_by(func.count().desc(), AlertEpisode.alertname)
        )
        with Session(self.engine) as session:
            rows = session.execute(stmt).all()
        return [
            {"alertname": name, "episodes": episodes, "incidents": incidents, "last_seen": last}
            for name, episodes, last, incidents in rows
        ]

    def deliveries(self, states: list[str], limit: int = 50) -> list[dict[str, Any]]:
        """Deliveries in the given states, newest first."""
        stmt = (
            select(Delivery)
            .where(Delivery.state.in_(states))
            .order_by(Delivery.id.desc())
            .limit(limit)
        )
        with Session(self.engine) as session:
            rows = session.scalars(stmt).all()
        return [
            {**delivery_json(record), "incident_id": d.incident_id, "attempts": d.attempts}
            for d, record in zip(rows, delivery_records(rows, []), strict=True)
        ]

    def payload_body(self, receipt_id: int) -> bytes | None:
        """The exact bytes of an accepted request, while retained."""
        with Session(self.engine) as session:
            return session.scalar(
                select(PayloadBody.body)
                .join(WebhookReceipt, WebhookReceipt.body_sha256 == PayloadBody.sha256)
                .where(WebhookReceipt.id == receipt_id)
            )


def _page(flt: IncidentFilter, values: FilterValues, limit: int, cursor: str | None) -> Any:
    """The statement of one page: ``limit`` + 1 incidents from the cursor on, newest first."""
    page = _conditions(flt, values)
    if cursor:
        at, ident = decode_cursor(cursor)
        same_time = and_(Incident.opened_at == at, Incident.id < ident)
        # opened_at <= at is implied, and stated: an index range on every database, so a
        # deep page does not scan the newer rows
        page += [Incident.opened_at <= at, or_(Incident.opened_at < at, same_time)]
    return (
        select(Incident)
        .where(*page)
        .order_by(Incident.opened_at.desc(), Incident.id.desc())
        .limit(limit + 1)
    )


def _conditions(
    flt: IncidentFilter,
    values: FilterValues,
    with_status: bool = True,
    counting: bool = False,
) -> list[Any]:
    """The filter's conditions; ``values`` holds what its regex matchers match (RE2)."""
    out: list[Any] = []
    if flt.status and with_status:
        wanted: list[ColumnElement[bool]] = []
        if plain := [s for s in flt.status if s != "acknowledged"]:
            wanted.append(Incident.status.in_(plain))
        if "acknowledged" in flt.status:
            wanted.append(and_(Incident.status == "firing", Incident.acknowledged_at.is_not(None)))
        out.append(or_(*wanted))
    if flt.severity:
        out.append(Incident.severity.in_(flt.severity))
    if flt.alertname:
        out.append(Incident.alertname.in_(flt.alertname))
    if flt.receiver:
        out.append(Incident.receiver.in_(flt.receiver))
    if flt.until:
        out.append(Incident.opened_at <= flt.until)
    if flt.since:
        out.append(or_(Incident.resolved_at.is_(None), Incident.resolved_at >= flt.since))
    if flt.text:
        escaped = flt.text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        out.append(rare(Incident.search_text.like(f"%{escaped}%", escape="\\")))
    out.extend(label_condition(m, counting, values) for m in flt.matchers)
    return out


def _notified(session: Session, incident_ids: list[int]) -> dict[int, list[str]]:
    """Per incident, how its notifications stand: paged, posted, failed or pending."""
    if not incident_ids:
        return {}
    rows = session.execute(
        select(Delivery.incident_id, Delivery.kind, Delivery.action, Delivery.state).where(
            Delivery.incident_id.in_(incident_ids)
        )
    ).all()
    out: dict[int, set[str]] = {}
    for incident_id, kind, action, state in rows:
        marks = out.setdefault(incident_id, set())
        if state == "dead":
            marks.add("failed")
        elif state in ("pending", "sending"):
            marks.add("pending")
        elif state == "sent" and action == "trigger":
            marks.add("paged" if kind == "pagerduty" else "posted")
    order = ["paged", "posted", "pending", "failed"]
    return {i: [m for m in order if m in marks] for i, marks in out.items()}


def _tally(pairs: Any) -> list[tuple[str, int]]:
    """(key, count) pairs summed per key, most first."""
    counts: dict[str, int] = {}
    for key, n in pairs:
        counts[key] = counts.get(key, 0) + n
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
