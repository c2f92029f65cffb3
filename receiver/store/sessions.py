"""UI sessions and failed-login counts, shared by every replica through the database."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, case, delete, select
from sqlalchemy.orm import Session

from receiver.store.repositories import _insert, changed_rows
from receiver.store.tables import LoginThrottle, UiSession

_sessions = UiSession.__table__
_throttle = LoginThrottle.__table__


class SessionRepository:
    def __init__(self, session: Session):
        self.session = session

    def add(
        self,
        token_sha256: str,
        username: str,
        role: str,
        via: str,
        now: datetime,
        expires_at: datetime,
        remote_addr: str | None,
        user_agent: str | None,
    ) -> None:
        """Store a new session; expired ones of anybody go at the same time."""
        self.session.execute(delete(_sessions).where(_sessions.c.expires_at <= now))
        self.session.execute(
            _sessions.insert().values(
                token_sha256=token_sha256,
                username=username[:255],
                role=role,
                via=via,
                created_at=now,
                expires_at=expires_at,
                remote_addr=(remote_addr or "")[:64] or None,
                user_agent=(user_agent or "")[:255] or None,
            )
        )

    def end_all_of(self, username: str) -> int:
        """End every session of ``username``, on every replica; how many there were."""
        return changed_rows(
            self.session, delete(_sessions).where(_sessions.c.username == username[:255])
        )

    def fail(self, keys: list[str], now: datetime, window: timedelta) -> None:
        """Count a failed login against each key; a key whose window ended starts a new one."""
        expired = _throttle.c.window_started_at <= now - window
        for key in keys:
            stmt = _insert(self.session, _throttle).values(
                key=key[:320], failures=1, window_started_at=now
            )
            self.session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["key"],
                    set_={
                        "failures": case((expired, 1), else_=_throttle.c.failures + 1),
                        "window_started_at": case(
                            (expired, now), else_=_throttle.c.window_started_at
                        ),
                    },
                )
            )

    def forgive(self, key: str) -> None:
        """A successful login clears the failures of its user."""
        self.session.execute(delete(_throttle).where(_throttle.c.key == key[:320]))


def find_session(engine: Engine, token_sha256: str, now: datetime) -> UiSession | None:
    """The unexpired session with this token hash, if any."""
    with Session(engine) as session:
        return session.scalar(
            select(UiSession).where(
                UiSession.token_sha256 == token_sha256, UiSession.expires_at > now
            )
        )


def read_failures(engine: Engine, keys: list[str]) -> dict[str, tuple[int, datetime]]:
    """(failures, window start) of each of ``keys`` that has failed before."""
    stmt = select(_throttle.c.key, _throttle.c.failures, _throttle.c.window_started_at).where(
        _throttle.c.key.in_(keys)
    )
    with Session(engine) as session:
        return {key: (n, started) for key, n, started in session.execute(stmt)}
