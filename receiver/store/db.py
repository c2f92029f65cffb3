"""Engines: SQLite (WAL, busy timeout, foreign keys, BEGIN IMMEDIATE for writes) or Postgres."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)
SQLITE_BUSY_TIMEOUT_MS = 5000
CHECKPOINT_SECONDS = 1.0
WAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes a WAL file keeps after a checkpoint emptied it
WRITE_OPTIONS = {"sqlite_begin": "IMMEDIATE"}


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for ``url``; nothing connects until first use."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database, **kwargs)
    if parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("connect_args", {"connect_timeout": 5})
    return create_engine(url, **kwargs)


def _sqlite_engine(url: str, database: str | None, **kwargs: Any) -> Engine:
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    kwargs.setdefault("connect_args", {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    busy_timeout_ms = int(kwargs["connect_args"].get("timeout", 5.0) * 1000)
    engine = create_engine(url, **kwargs)
    on_disk = database and database != ":memory:" and not database.startswith("file:")
    checkpointer = WalCheckpointer(database) if on_disk else None
    if checkpointer is not None:
        event.listen(engine, "engine_disposed", lambda _engine: checkpointer.stop())
        weakref.finalize(engine, checkpointer.stop)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
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
        conn.connection.dbapi_connection.execute(f"BEGIN {mode}")

    return engine


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


class WalCheckpointer:
    """Copies the SQLite write-ahead log into the database file from a thread, every second.

    SQLite's default (a commit that finds the WAL over 1,000 pages checkpoints it) makes the
    request that happens to commit pay for it, and with two processes writing without pause
    the checkpoint rarely completes, so the next commits try again: measured, it halved the
    intake's throughput (docs/benchmarks.md). The engine's connections turn that off and each
    process runs one of these instead: PASSIVE checkpoints never wait for a lock, so they never
    hold up a request. One thread per process, started (again after a fork) by the engine's
    first connection, stopped when the engine is disposed or collected.
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
        conn = sqlite3.connect(self.database, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
        try:
            while not stop.wait(self.interval):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:  # try again at the next tick
                    log.debug("WAL checkpoint of %s failed: %s", self.database, exc)
        finally:
            conn.close()
