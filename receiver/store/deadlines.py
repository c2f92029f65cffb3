"""Time limits on every database call (``database.*`` settings).

Postgres enforces ``statement_timeout``, ``lock_timeout`` and
``idle_in_transaction_session_timeout`` itself, set at connection start. A server that stops
answering (a frozen process, a proxy that lost its upstream while its kernel still ACKs) enforces
nothing, and TCP keepalives do not notice either; so the client waits no longer than the
statement timeout plus ``CLIENT_GRACE_SECONDS`` for any answer (psycopg's wait timeout), then
closes the connection: the pool lets it go and the caller gets an OperationalError.

SQLite has no statement timeout of its own: a progress handler interrupts a statement that has
run longer than the timeout (SQLite rolls the transaction back). Its lock waits are bounded by its
busy timeout.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.errors import _WaitTimeout  # what Connection.wait raises when its timeout expires
from sqlalchemy import Connection, Engine, event

from receiver.settings import DatabaseSettings

CLIENT_GRACE_SECONDS = 1.0  # beyond the statement timeout: the server's own cancel comes first
WAIT_INTERVAL = 0.1  # psycopg's: how often a wait looks up from the socket (for Ctrl-C)
SQLITE_PROGRESS_OPS = 10_000  # virtual machine instructions between two looks at the clock


class NoAnswer(psycopg.OperationalError):
    """The server did not answer within the client's deadline; the connection is closed."""


def timed_out(exc: BaseException) -> bool:
    """Whether a (SQLAlchemy-wrapped) error is a deadline that passed, on either database."""
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, NoAnswer | psycopg.errors.QueryCanceled | psycopg.errors.LockNotAvailable):
        return True
    return isinstance(orig, sqlite3.OperationalError) and str(orig) == "interrupted"


class DeadlineConnection(psycopg.Connection[Any]):
    """A psycopg connection that waits at most ``deadline`` seconds for each answer."""

    deadline: float | None = None

    def wait(self, gen: Any, interval: float = WAIT_INTERVAL, timeout: float | None = None) -> Any:
        """psycopg's wait for the server, bounded by ``deadline`` when the caller set none."""
        if timeout is not None or self.deadline is None:
            return super().wait(gen, interval, timeout)
        try:
            return super().wait(gen, interval, self.deadline)
        except _WaitTimeout:
            # mid-statement: the protocol state is unknown, so the connection cannot be reused
            self.pgconn.finish()
            raise NoAnswer(f"no answer from the database within {self.deadline:g} s") from None


def server_options(settings: DatabaseSettings) -> str:
    """The ``options`` a Postgres connection starts with: the server-side timeouts, in ms."""
    values = {
        "statement_timeout": settings.statement_timeout_seconds,
        "lock_timeout": settings.lock_timeout_seconds,
        "idle_in_transaction_session_timeout": settings.idle_in_transaction_timeout_seconds,
    }
    # at least 1 ms: Postgres reads 0 as no limit at all
    return " ".join(f"-c {name}={max(1, round(s * 1000))}" for name, s in values.items())


def bound_postgres(engine: Engine, settings: DatabaseSettings) -> None:
    """Every connection of ``engine`` starts with the server-side timeouts and a deadline."""
    deadline = settings.statement_timeout_seconds + CLIENT_GRACE_SECONDS

    @event.listens_for(engine, "do_connect")
    def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        # the URL's own options come last, so an operator's explicit setting wins
        options = (server_options(settings), cparams.get("options"))
        cparams["options"] = " ".join(o for o in options if o)
        cparams.setdefault("connect_timeout", settings.connect_timeout_seconds)
        connection = DeadlineConnection.connect(*cargs, **cparams)
        connection.deadline = deadline
        return connection


class DeadlineSqlite(sqlite3.Connection):
    """A SQLite connection whose statements are interrupted past their deadline."""

    statement_seconds: float = 0.0
    deadline: float = float("inf")

    def start_statement(self) -> None:
        """A statement (or BEGIN, COMMIT, ROLLBACK) starts now: its time begins."""
        self.deadline = time.monotonic() + self.statement_seconds

    def overran(self) -> int:
        """The progress handler: non-zero interrupts the running statement."""
        return 1 if time.monotonic() > self.deadline else 0


def bound_sqlite(engine: Engine, statement_seconds: float) -> None:
    """Each statement of ``engine`` (from its execute until its last row is fetched) runs at
    most ``statement_seconds``; the connections must be ``DeadlineSqlite`` (``factory``)."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: DeadlineSqlite, _record: Any) -> None:
        dbapi_connection.statement_seconds = statement_seconds
        dbapi_connection.set_progress_handler(dbapi_connection.overran, SQLITE_PROGRESS_OPS)

    @event.listens_for(engine, "before_cursor_execute")
    def _statement(_conn: Any, cursor: Any, *_: Any) -> None:
        cursor.connection.start_statement()

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _ending(conn: Any) -> None:
        if not conn.invalidated:  # a connection let go has nothing left to time
            conn.connection.dbapi_connection.start_statement()


@contextmanager
def extended(connection: Connection, seconds: float | None) -> Iterator[None]:
    """Let each statement of ``connection``'s current transaction run ``seconds`` (None: as
    long as it takes, lock waits and pauses too) while the block runs: migrations (an index on
    a large table) and retention. The server's limits end with the transaction (``SET LOCAL``)."""
    dbapi = connection.connection.dbapi_connection
    if isinstance(dbapi, DeadlineConnection):
        saved = dbapi.deadline
        dbapi.deadline = None if seconds is None else seconds + CLIENT_GRACE_SECONDS
        names = ["statement_timeout"]
        if seconds is None:
            names += ["lock_timeout", "idle_in_transaction_session_timeout"]
        limit = 0 if seconds is None else round(seconds * 1000)
        for name in names:
            connection.exec_driver_sql(f"SET LOCAL {name} = {limit}")
        try:
            yield
        finally:
            dbapi.deadline = saved
    elif isinstance(dbapi, DeadlineSqlite):
        saved_seconds = dbapi.statement_seconds
        dbapi.statement_seconds = math.inf if seconds is None else seconds
        try:
            yield
        finally:
            dbapi.statement_seconds = saved_seconds
    else:
        yield
