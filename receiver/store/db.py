"""Engines: SQLite (WAL, busy timeout, foreign keys, BEGIN IMMEDIATE for writes) or Postgres."""

from __future__ import annotations

import gc
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.pool import NullPool

from receiver.settings import DatabaseSettings
from receiver.store.deadlines import DeadlineSqlite, NoAnswer, bound_postgres, bound_sqlite
from receiver.store.writers import WriterTurns

log = logging.getLogger(__name__)
SQLITE_BUSY_TIMEOUT_MS = 5000  # the WAL checkpointer's (PASSIVE checkpoints never wait)
CHECKPOINT_SECONDS = 1.0
PING_AFTER_IDLE_S = 1.0  # Postgres: a pooled connection idle longer is checked before use
WAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes a WAL file keeps after a checkpoint emptied it
WRITE_OPTIONS = {"sqlite_begin": "IMMEDIATE"}


def make_engine(url: str, settings: DatabaseSettings | None = None, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` whose every call is bounded by ``settings`` (the defaults
    without); nothing connects until first use."""
    settings = settings or DatabaseSettings()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database, settings, **kwargs)
    if parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("pool_timeout", settings.pool_timeout_seconds)
    engine = create_engine(url, **kwargs)
    bound_postgres(engine, settings)
    if not kwargs.get("pool_pre_ping"):
        _ping_when_idle(engine)
    return engine


def make_scrape_engine(url: str, settings: DatabaseSettings) -> Engine:
    """An engine for a process that reads now and then and forks (gunicorn's master, serving
    metrics): a connection per use, closed after it (no pooled one for a forked worker to
    inherit), every statement bounded as elsewhere."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, poolclass=NullPool, connect_args={"factory": DeadlineSqlite})
        bound_sqlite(engine, settings.statement_timeout_seconds)
        return engine
    url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    engine = create_engine(url, poolclass=NullPool)
    bound_postgres(engine, settings)
    return engine


def _ping_when_idle(engine: Engine, idle_seconds: float = PING_AFTER_IDLE_S) -> None:
    """Check a pooled connection before use only if it sat idle for a while.

    ``pool_pre_ping`` would ask the server on every checkout: a round trip that was 15 % of a
    repeated webhook's time on Postgres (docs/benchmarks.md). A connection handed back moments
    ago is almost always alive; one the server dropped in between (a restart) fails its first
    statement, which invalidates the pool, and the intake retries on a fresh connection.
    """

    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def _fresh(_dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("returned_at", 0.0) < idle_seconds:
            return
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            dbapi_connection.rollback()  # the driver opened a transaction for it
        except NoAnswer:  # a server that does not answer: connecting anew would wait as well
            raise
        except Exception as exc:  # any other failure: the pool connects anew and tries again
            raise DisconnectionError(f"pooled connection unusable: {type(exc).__name__}") from exc


def _sqlite_engine(
    url: str, database: str | None, settings: DatabaseSettings, **kwargs: Any
) -> Engine:
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    connect_args = kwargs["connect_args"] = dict(kwargs.get("connect_args", {}))
    connect_args.setdefault("timeout", settings.lock_timeout_seconds)
    connect_args.setdefault("factory", DeadlineSqlite)
    lock_seconds = connect_args["timeout"]
    busy_timeout_ms = int(lock_seconds * 1000)
    engine = create_engine(url, **kwargs)
    bound_sqlite(engine, settings.statement_timeout_seconds)
    on_disk = database and database != ":memory:" and not database.startswith("file:")
    checkpointer = WalCheckpointer(database) if on_disk and database else None
    let_go = _let_go_when_read_only(engine)
    if checkpointer is not None:
        writers = _WRITERS[engine] = WriterTurns(f"{database}-writers", lock_seconds)

        def _release(*_: object) -> None:  # on dispose, or when the engine is collected
            checkpointer.stop()
            writers.close()

        event.listen(engine, "engine_disposed", _release)
        weakref.finalize(engine, _release)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        # SQLAlchemy's REGEXP runs Python's re, which backtracks; no query may use it (label
        # regexes are RE2: store/label_filters.py)
        dbapi_connection.create_function("regexp", 2, _no_regexp)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        if checkpointer is not None:
            # no commit checkpoints the WAL (a request would pay for it); the thread does
            cursor.execute("PRAGMA wal_autocheckpoint=0")
            cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            checkpointer.ensure_running()
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the write lock up front so concurrent intakes serialise instead of
        # failing with "database is locked" on lock upgrade; readers stay deferred.
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        # straight to the driver: through exec_driver_sql this was 7 % of a repeat's time
        statement = f"BEGIN {mode}"
        dbapi_connection = conn.connection.dbapi_connection
        try:
            dbapi_connection.start_statement()
            dbapi_connection.execute(statement)
        except sqlite3.Error as exc:  # as SQLAlchemy would raise it ("database is locked")
            read_only = let_go(exc)
            if read_only:  # this one too, when next checked out
                conn.connection.invalidate(exc, soft=True)
            raise DBAPIError.instance(
                statement, None, exc, sqlite3.Error, connection_invalidated=read_only
            ) from exc

    return engine


def _no_regexp(_pattern: object, _value: object) -> None:
    raise sqlite3.NotSupportedError("REGEXP is disabled: label regexes are RE2")


def _read_only(exc: BaseException) -> bool:
    """Whether SQLite refused to write because a file or directory is read-only."""
    return str(getattr(exc, "sqlite_errorname", "")).startswith("SQLITE_READONLY")


def _let_go_when_read_only(engine: Engine) -> Callable[[BaseException], bool]:
    """Reopen every connection of this process once SQLite refuses a write as read-only.

    A connection opened while the files were read-only stays read-only, and so does every
    connection the process opens while any such one is open (they share its view of the
    shared-memory file), even once the files are writable again. So at a refusal the failing
    connection is let go, the idle ones are closed, and garbage is collected before the next
    connection opens, afresh (the WAL checkpointer opens one for each checkpoint). Returns
    the function that does this for an error (True when it was such a refusal).
    """

    refused = threading.Event()

    def let_go(exc: BaseException) -> bool:
        if not _read_only(exc):
            return False
        engine.pool.dispose()  # closes the idle connections; the pool opens new ones
        refused.set()
        return True

    @event.listens_for(engine, "do_connect")
    def _collect_first(*_: Any) -> None:
        if refused.is_set():
            refused.clear()
            # a closed connection still referenced by garbage (the cycle of an exception's
            # frames holding its cursor) keeps its files open, read-only, until collected
            gc.collect()

    @event.listens_for(engine, "handle_error")
    def _refused(context: Any) -> None:
        if let_go(context.original_exception):
            context.is_disconnect = True
            if context.cursor is not None:  # its statement would keep the files open
                context.cursor.close()

    return let_go


_WRITERS: weakref.WeakKeyDictionary[Engine, WriterTurns] = weakref.WeakKeyDictionary()


def writer_turn(engine: Engine) -> AbstractContextManager[object]:
    """Wait for this write transaction's turn (SQLite files); nothing to wait for elsewhere."""
    turns = _WRITERS.get(engine)
    return turns.turn() if turns is not None else nullcontext()


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


class WalCheckpointer:
    """Copies the SQLite write-ahead log into the database file from a thread, every second.

    SQLite's default (a commit that finds the WAL over 1,000 pages checkpoints it) makes the
    request that happens to commit pay for it. The engine's connections turn that off and each
    process runs one of these instead: PASSIVE checkpoints never wait for a lock, so they never
    hold up a request. Measured against the default: 4 to 10 % more webhooks per second, at a
    higher p99 on the new-alert path (docs/benchmarks.md). One thread per process, started
    (again after a fork) by the engine's first connection, stopped when the engine is disposed
    or collected.
    """

    def __init__(self, database: str, interval: float = CHECKPOINT_SECONDS):
        self.database, self.interval = database, interval
        self._pid: int | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def ensure_running(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid, self._stop = os.getpid(), threading.Event()
            thread = threading.Thread(
                target=self._run,
                args=(self._stop,),
                name=f"sqlite-checkpoint {self.database}",
                daemon=True,
            )
            thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stop.set()
            self._pid = None

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            try:
                # a connection of its own each time: one kept open would keep this process's
                # connections read-only after its files were (see _let_go_when_read_only)
                conn = sqlite3.connect(self.database, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                finally:
                    conn.close()
            except sqlite3.Error as exc:  # try again at the next tick
                log.debug("WAL checkpoint of %s failed: %s", self.database, exc)
