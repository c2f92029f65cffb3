"""One database transaction for one story (an intake, a prune), with its repositories."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from types import TracebackType

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from receiver.store.am_events import AmEventRepository
from receiver.store.db import WRITE_OPTIONS, writer_turn
from receiver.store.deadlines import extended
from receiver.store.intake import IntakeReads
from receiver.store.intake_writes import IntakeWrites
from receiver.store.outbox import DeliveryRepository
from receiver.store.pacing import PacingRepository
from receiver.store.repositories import (
    EpisodeRepository,
    GroupRepository,
    IncidentRepository,
    ReceiptRepository,
    RejectedRepository,
)
from receiver.store.retention import IncidentRetention
from receiver.store.sessions import SessionRepository
from receiver.store.watch import HeartbeatRepository, StaleRepository


class UnitOfWork:
    """``with uow:`` opens a write transaction; leaving without ``commit()`` rolls back."""

    def __init__(self, engine: Engine):
        self._engine = engine.execution_options(**WRITE_OPTIONS)
        self._plain_engine = engine
        self.session: Session | None = None

    def __enter__(self) -> UnitOfWork:
        # SQLite: wait for this process's turn to write first (see WriterTurns)
        self._turn = writer_turn(self._plain_engine)
        self._turn.__enter__()
        self.session = Session(self._engine, expire_on_commit=False, autoflush=True)
        self.groups = GroupRepository(self.session)
        self.incidents = IncidentRepository(self.session)
        self.episodes = EpisodeRepository(self.session)
        self.receipts = ReceiptRepository(self.session)
        self.rejected = RejectedRepository(self.session)
        self.deliveries = DeliveryRepository(self.session)
        self.heartbeats = HeartbeatRepository(self.session)
        self.stale = StaleRepository(self.session)
        self.intake = IntakeReads(self.session)
        self.intake_writes = IntakeWrites(self.session, share=self.intake)
        self.pacing = PacingRepository(self.session)
        self.logins = SessionRepository(self.session)
        self.retention = IncidentRetention(self.session)
        self.am_events = AmEventRepository(self.session)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self.session is not None
        try:
            self.session.rollback()
        finally:
            self.session.close()
            self.session = None
            self._turn.__exit__(None, None, None)

    def commit(self) -> None:
        assert self.session is not None
        self.session.commit()

    def allow(self, statement_seconds: float) -> AbstractContextManager[None]:
        """Let each statement of this transaction run this long (retention), not the usual."""
        assert self.session is not None
        return extended(self.session.connection(), statement_seconds)


UnitOfWorkFactory = Callable[[], UnitOfWork]
