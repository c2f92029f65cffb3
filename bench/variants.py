"""The receiver's WSGI app with one or more of its intake optimisations undone, to measure each.

    BENCH_VARIANT=busy-handler gunicorn ... bench.variants:app
    .venv/bin/python -m bench.intake --app bench.variants:app --variant busy-handler ...

Variants (comma-separated in ``BENCH_VARIANT``), each the way the receiver worked before:

- ``busy-handler``: SQLite writers do not queue on the lock file; a writer that finds the
  database locked polls with SQLite's busy handler (sleeps of 1, 2, 5, 10, 15, 20, 25 ...
  100 ms) instead of being woken when the lock is free.
- ``autocheckpoint``: SQLite's default checkpointing (a commit that finds the write-ahead log
  over 1,000 pages copies it into the database) instead of the checkpoint thread.
- ``pre-ping``: Postgres connections are checked with a round trip on every checkout
  (``pool_pre_ping``) instead of only after a second idle.

Two more are not the receiver at all but bounds of what any intake could reach on the same
request path (parsing, validation, authentication, logging, metrics, the answer):

- ``bound-no-database``: every webhook is parsed and validated and answered as a repeat, with
  no database work at all.
- ``bound-empty-transaction``: every webhook is answered as a repeat after a transaction of one
  trivial statement (``BEGIN``, ``SELECT 1``, ``COMMIT``: three round trips on Postgres, nothing
  written); the floor of any intake that stores a webhook before answering.

Nothing here is used by the receiver itself.
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import Engine, event, text
from sqlalchemy.engine import make_url

import receiver.bootstrap
import receiver.service as service
import receiver.store.db as db
import receiver.web.api as api
from receiver.model.dedup import AlertOutcome

VARIANTS = {v.strip() for v in os.environ.get("BENCH_VARIANT", "").split(",") if v.strip()}
KNOWN = {
    "busy-handler",
    "autocheckpoint",
    "pre-ping",
    "bound-no-database",
    "bound-empty-transaction",
}
if unknown := VARIANTS - KNOWN:
    raise SystemExit(f"unknown BENCH_VARIANT {sorted(unknown)}; known: {sorted(KNOWN)}")

_make_engine = db.make_engine


def _default_checkpoints(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA wal_autocheckpoint=1000")


def make_engine(url: str, settings: Any = None, **kwargs: Any) -> Engine:
    if "pre-ping" in VARIANTS and make_url(url).get_backend_name() != "sqlite":
        kwargs["pool_pre_ping"] = True
    engine = _make_engine(url, settings, **kwargs)
    if engine.dialect.name == "sqlite":
        if "busy-handler" in VARIANTS:
            db._WRITERS.pop(engine, None)
        if "autocheckpoint" in VARIANTS:
            db.WalCheckpointer.ensure_running = lambda self: None  # type: ignore[method-assign]
            event.listen(engine, "connect", _default_checkpoints)  # after the engine's own
    return engine


def _answered_as_repeat(n: Any) -> service.IntakeResult:
    result = service.IntakeResult(receiver=n.receiver, accepted=len(n.alerts))
    result.counts[AlertOutcome.REPEAT] = len(n.alerts)
    return result


def _no_database(_uow_factory: Any, n: Any, _raw: Any, _clock: Any, _rules: Any) -> Any:
    return _answered_as_repeat(n)


def _empty_transaction(uow: Any, n: Any, _raw: Any, _now: Any, _rules: Any) -> Any:
    uow.session.execute(text("SELECT 1"))
    return _answered_as_repeat(n)


db.make_engine = make_engine
if "bound-no-database" in VARIANTS:
    api.handle_webhook = _no_database  # the view imported the name itself
if "bound-empty-transaction" in VARIANTS:
    service.apply_notification = _empty_transaction  # handle_webhook commits what it did
receiver.bootstrap.make_engine = make_engine  # bootstrap imported the name itself

from receiver.wsgi import app  # noqa: E402  (after the patch: the app builds its engine now)

__all__ = ["app"]
