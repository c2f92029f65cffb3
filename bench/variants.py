"""The receiver's WSGI app with one or more of its intake optimisations undone, to measure each.

    BENCH_VARIANT=busy-handler gunicorn ... bench.variants:app
    .venv/bin/python -m bench.intake --app bench.variants:app --variant no-shortcuts ...

Variants (comma-separated in ``BENCH_VARIANT``), each the way the receiver worked before:

- ``no-shortcuts``: every webhook takes the full ORM intake (``IntakeRules.shortcuts`` off),
  repeats and new groups included.
- ``busy-handler``: SQLite writers do not queue on the lock file; a writer that finds the
  database locked polls with SQLite's busy handler (sleeps of 1, 2, 5, 10, 15, 20, 25 ...
  100 ms) instead of being woken when the lock is free.
- ``autocheckpoint``: SQLite's default checkpointing (a commit that finds the write-ahead log
  over 1,000 pages copies it into the database) instead of the checkpoint thread.
- ``pre-ping``: Postgres connections are checked with a round trip on every checkout
  (``pool_pre_ping``) instead of only after a second idle.

Nothing here is used by the receiver itself.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url

import receiver.bootstrap
import receiver.store.db as db

VARIANTS = {v.strip() for v in os.environ.get("BENCH_VARIANT", "").split(",") if v.strip()}
KNOWN = {"no-shortcuts", "busy-handler", "autocheckpoint", "pre-ping"}
if unknown := VARIANTS - KNOWN:
    raise SystemExit(f"unknown BENCH_VARIANT {sorted(unknown)}; known: {sorted(KNOWN)}")

_make_engine = db.make_engine


def _default_checkpoints(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA wal_autocheckpoint=1000")


def make_engine(url: str, **kwargs: Any) -> Engine:
    if "pre-ping" in VARIANTS and make_url(url).get_backend_name() != "sqlite":
        kwargs["pool_pre_ping"] = True
    engine = _make_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        if "busy-handler" in VARIANTS:
            db._WRITERS.pop(engine, None)
        if "autocheckpoint" in VARIANTS:
            db.WalCheckpointer.ensure_running = lambda self: None  # type: ignore[method-assign]
            event.listen(engine, "connect", _default_checkpoints)  # after the engine's own
    return engine


db.make_engine = make_engine
receiver.bootstrap.make_engine = make_engine  # bootstrap imported the name itself

from receiver.wsgi import app  # noqa: E402  (after the patch: the app builds its engine now)

if "no-shortcuts" in VARIANTS:
    _container = app.extensions["receiver"]
    _container.__dict__["intake_rules"] = dataclasses.replace(
        _container.intake_rules, shortcuts=False
    )

__all__ = ["app"]
