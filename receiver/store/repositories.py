"""All writes (and the reads that writes depend on), one repository per aggregate."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    Connection,
    CursorResult,
    Executable,
    Table,
    and_,
    delete,
    exists,
    insert,
    or_,
    select,
)
from sqlalchemy.orm import Session

from receiver.store.tables import (
    AlertEpisode,
    AlertGroup,
    Incident,
    IncidentEvent,
    IncidentReceipt,
    PayloadBody,
    RejectedRequest,
    WebhookReceipt,
)


def _dialect_insert(dialect: str) -> Any:
    """The ``insert`` of this dialect: one that can say ON CONFLICT."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def changed_rows(session: Session, statement: Executable) -> int:
    """Run an UPDATE or DELETE in the session: the rows it changed, as the driver counts them.
    (Session.execute is typed as a Result; for DML it is a CursorResult.)"""
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def _insert(session: Session, table: Any) -> Any:
    """A dialect-specific INSERT that can say ON CONFLICT DO NOTHING."""
    return _dialect_insert(session.get_bind().dialect.name)(table)


@cache
def insert_or_ignore(
    dialect: str,
    table: Table,
    conflict: tuple[str, ...] | None = None,
    returning: str | None = None,
) -> Any:
    """``INSERT .. ON CONFLICT DO NOTHING [RETURNING column]`` for this dialect, built once per
    process: a statement object caches its compiled form, so each execution only binds."""
    stmt = _dialect_insert(dialect)(table).on_conflict_do_nothing(
        index_elements=list(conflict) if conflict else None
    )
    return stmt.returning(table.c[returning]) if returning else stmt


def store_body(conn: Connection, body: bytes, body_sha256: str, received_at: datetime) -> None:
    """Keep a raw request body, once per distinct content."""
    row = {"sha256": body_sha256, "body": body, "size": len(body), "first_received_at": received_at}
    conn.execute(insert_or_ignore(conn.dialect.name, PayloadBody.__table__, ("sha256",)), row)


BODY_CHUNK = 500  # bodies looked up per statement


def delete_unused_bodies(conn: Connection, shas: list[str]) -> int:
    """Of these bodies, delete those no receipt uses any more; how many went. Only the
    candidates are looked at (each through the receipts' index on body_sha256): a NOT IN over
    every receipt was a nested scan on Postgres that did not end in minutes at 250,000."""
    bodies, receipts = PayloadBody.__table__, WebhookReceipt.__table__
    used = exists().where(receipts.c.body_sha256 == bodies.c.sha256)
    deleted = 0
    for start in range(0, len(shas), BODY_CHUNK):
        chunk = shas[start : start + BODY_CHUNK]
        deleted += conn.execute(delete(bodies).where(bodies.c.sha256.in_(chunk), ~used)).rowcount
    return deleted


_ADD_RECEIPT = insert(WebhookReceipt.__table__).returning(WebhookReceipt.__table__.c.id)


def add_receipt_row(
    conn: Connection, body: bytes | None, body_sha256: str, values: dict[str, Any]
) -> int:
    """Core: store the body (unless None: known stored), then the receipt; the receipt's id."""
    if body is not None:
        store_body(conn, body, body_sha256, values["received_at"])
    return conn.execute(_ADD_RECEIPT, {"body_sha256": body_sha256, **values}).scalar_one()


class CoreRepository:
    """Writes with Core statements on the session's connection (no ORM objects loaded or
    flushed), inside the unit of work's transaction."""

    def __init__(self, session: Session, share: CoreRepository | None = None):
        self.session, self._share = session, share
        self._connection: Connection | None = None

    @property
    def _conn(self) -> Connection:
        """The transaction's connection, looked up once (``share``: once for both
        repositories; the lookup costs about 50 us, a repeat's statement not much more)."""
        if self._share is not None:
            return self._share._conn
        if self._connection is None:
            self._connection = self.session.connection()
        return self._connection


class GroupRepository:
    def __init__(self, session: Session):
        self.session = session

    def lock(self, group_id: int) -> AlertGroup:
        """The group row, locked for this transaction as the intake locks it."""
        return self.session.scalars(
            select(AlertGroup).where(AlertGroup.id == group_id).with_for_update()
        ).one()

    def find(self, receiver: str, group_key_sha256: str) -> AlertGroup | None:
        return self.session.scalars(
            select(AlertGroup).where(
                AlertGroup.receiver == receiver, AlertGroup.group_key_sha256 == group_key_sha256
            )
        ).one_or_none()


class IncidentRepository:
    def __init__(self, session: Session):
        self.session = session

    def get(self, incident_id: int) -> Incident:
        return self.session.get_one(Incident, incident_id)

    def add_event(
        self,
        incident: Incident,
        at: datetime,
        kind: str,
        detail: dict[str, Any] | None = None,
        fingerprint: str | None = None,
        receipt_id: int | None = None,
    ) -> None:
        self.session.add(
            IncidentEvent(
                incident_id=incident.id,
                at=at,
                kind=kind,
                fingerprint=fingerprint,
                detail=detail or {},
                receipt_id=receipt_id,
            )
        )
        # written now, so that what the intake writes next in the same transaction (its Core
        # statements run at once) comes after it on the timeline, as the caller ordered them
        self.session.flush()

    def acknowledge(
        self, incident_id: int, user: str, detail: dict[str, Any], now: datetime
    ) -> bool:
        """Mark acknowledged (once), ``detail`` on the timeline; False when there is no such
        incident."""
        incident = self.session.get(Incident, incident_id, with_for_update=True)
        if incident is None:
            return False
        if incident.acknowledged_at is None:
            incident.acknowledged_at, incident.acknowledged_by = now, user[:255]
            self.add_event(incident, now, "acknowledged", detail)
        return True

    def add_note(self, incident_id: int, detail: dict[str, Any], now: datetime) -> bool:
        """A note on the timeline (``detail``: its text, who wrote it, how and from where)."""
        incident = self.session.get(Incident, incident_id)
        if incident is None:
            return False
        self.add_event(incident, now, "note", detail)
        return True


class EpisodeRepository:
    def __init__(self, session: Session):
        self.session = session

    def claim_for_context(
        self, limit: int, now: datetime, stale_before: datetime
    ) -> list[AlertEpisode]:
        """Claim episodes whose context is due (or whose claimer died) for this worker.

        ``FOR UPDATE SKIP LOCKED`` on Postgres lets several workers claim side by side; on
        SQLite the write transaction already serialises claimers.
        """
        due = or_(
            AlertEpisode.context_state == "pending",
            and_(
                AlertEpisode.context_state == "running",
                AlertEpisode.context_claimed_at < stale_before,
            ),
        )
        episodes = list(
            self.session.scalars(
                select(AlertEpisode)
                .where(due)
                .order_by(AlertEpisode.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        for episode in episodes:
            episode.context_state, episode.context_claimed_at = "running", now
        return episodes

    def save_context(self, episode_id: int, items: list[dict[str, Any]]) -> None:
        episode = self.session.get_one(AlertEpisode, episode_id)
        episode.context, episode.context_state = items, "done"


class ReceiptRepository:
    def __init__(self, session: Session):
        self.session = session

    def prune(self, older_than: datetime) -> int:
        """Delete receipts received before ``older_than`` and the bodies they leave unused."""
        receipts = WebhookReceipt.__table__
        old = select(receipts.c.id).where(receipts.c.received_at < older_than)
        self.session.execute(delete(IncidentReceipt).where(IncidentReceipt.receipt_id.in_(old)))
        gone = delete(receipts).where(receipts.c.received_at < older_than)
        shas = list(self.session.scalars(gone.returning(receipts.c.body_sha256)))
        delete_unused_bodies(self.session.connection(), sorted(set(shas)))
        return len(shas)


class RejectedRepository:
    def __init__(self, session: Session):
        self.session = session

    def add(self, rejected: RejectedRequest, keep: int) -> None:
        """Record a rejected request, keeping only the newest ``keep`` rows."""
        self.session.add(rejected)
        self.session.flush()
        self.session.execute(
            delete(RejectedRequest).where(RejectedRequest.id <= rejected.id - keep)
        )
