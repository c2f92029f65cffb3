"""What-if variants of the receiver for the intake benchmark: the same app with one change patched
in at import time, to size an optimisation before anyone makes it in ``receiver/``.

    BENCH_VARIANT=flock gunicorn -c python:receiver.gunicorn_conf --workers 2 bench.variants:app
    .venv/bin/python -m bench.intake --app bench.variants:app --variant no-pre-ping ...

Variants (comma-separated in ``BENCH_VARIANT``):

- ``no-pre-ping``: Postgres engines without ``pool_pre_ping`` (no extra round trip per
  transaction; a connection the server closed fails one request with 503, which Alertmanager
  retries).
- ``flock``: SQLite writers queue on an exclusive ``flock`` of ``<database>-writer.lock`` before
  ``BEGIN IMMEDIATE`` and let go when the connection goes back to the pool, so a waiting worker
  is woken by the kernel the moment the other finishes, instead of polling with SQLite's busy
  handler (sleeps of 1, 2, 5, 10, 15, 20, 25 ... 100 ms).
- ``no-autocheckpoint``: SQLite connections of the web workers never checkpoint the WAL
  (``PRAGMA wal_autocheckpoint=0``): a diagnosis of the latency spikes, not a setting to run
  with (something else must checkpoint, e.g. the worker process between passes).

Nothing here is used by the receiver itself.
"""

from __future__ import annotations

import fcntl
import os
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url

import receiver.bootstrap
import receiver.store.db as db

VARIANTS = {v.strip() for v in os.environ.get("BENCH_VARIANT", "").split(",") if v.strip()}
KNOWN = {"no-pre-ping", "flock", "no-autocheckpoint"}
if unknown := VARIANTS - KNOWN:
    raise SystemExit(f"unknown BENCH_VARIANT {sorted(unknown)}; known: {sorted(KNOWN)}")

_make_engine = db.make_engine


def _flock_writers(engine: Engine, database: str) -> None:
    lock_path = f"{database}-writer.lock"

    @event.listens_for(engine, "begin", insert=True)  # before the BEGIN IMMEDIATE listener
    def _take(conn: Any) -> None:
        if conn.get_execution_options().get("sqlite_begin") != "IMMEDIATE":
            return
        info = conn.connection.info  # the pooled DBAPI connection's own dict
        fd = info.get("bench_lock_fd")
        if fd is None:
            fd = info["bench_lock_fd"] = os.open(lock_path, os.O_RDWR | os.O_CREAT)
        if not info.get("bench_locked"):
            fcntl.flock(fd, fcntl.LOCK_EX)
            info["bench_locked"] = True

    @event.listens_for(engine, "checkin")
    def _release(_dbapi_connection: Any, record: Any) -> None:
        if record.info.pop("bench_locked", False):
            fcntl.flock(record.info["bench_lock_fd"], fcntl.LOCK_UN)


def _no_autocheckpoint(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")


def make_engine(url: str, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if "no-pre-ping" in VARIANTS and parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", False)
    engine = _make_engine(url, **kwargs)
    if "flock" in VARIANTS and engine.dialect.name == "sqlite" and parsed.database:
        _flock_writers(engine, parsed.database)
    if "no-autocheckpoint" in VARIANTS and engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _no_autocheckpoint)
    return engine


db.make_engine = make_engine
receiver.bootstrap.make_engine = make_engine  # bootstrap imported the name itself

from receiver.wsgi import app  # noqa: E402  (after the patch: the app builds its engine now)

__all__ = ["app"]
