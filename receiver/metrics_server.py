"""``metrics.port``: the receiver's metrics on an address of their own, served by gunicorn's
master (``receiver serve`` and the image), so ``/metrics`` on ``listen.port`` can answer 404.

The master holds no counters of its own: it adds up every worker's from
``PROMETHEUS_MULTIPROC_DIR`` (both set it) and reads the store gauges per scrape, on a
connection it opens and closes each time (a worker forked later never inherits a pooled one),
bounded by ``database.*`` as every other.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.exc import SQLAlchemyError

from receiver.metrics import MULTIPROC_ENV, exposition
from receiver.settings import Settings
from receiver.store.db import make_scrape_engine
from receiver.store.gauges import read_gauges

log = logging.getLogger(__name__)
_running: list[WSGIServer] = []


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged (the web's own probes and scrapes are not either)."""


def metrics_app(settings: Settings) -> Callable[..., Iterable[bytes]]:
    """A WSGI application answering ``GET /metrics`` and nothing else."""
    engine = make_scrape_engine(settings.database_url, settings.database)

    def gauges() -> Any:
        return read_gauges(engine, datetime.now(UTC))

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/metrics" or environ["REQUEST_METHOD"] not in (
            "GET",
            "HEAD",
        ):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"only GET /metrics here\n"]
        try:
            text = exposition(None, gauges)
        except SQLAlchemyError as exc:  # the counters still tell what happened
            log.warning(
                "metrics without store gauges, database unavailable: %s", type(exc).__name__
            )
            text = exposition(None, None)
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
        return [text]

    return app


def start(settings: Settings) -> WSGIServer | None:
    """Serve on ``metrics.address:metrics.port`` from a thread, when a port is set."""
    port = settings.metrics.port
    if port is None:
        return None
    if not os.environ.get(MULTIPROC_ENV):
        log.warning("metrics.port without %s: only the store gauges are served", MULTIPROC_ENV)
    server = make_server(
        settings.metrics.address, port, metrics_app(settings), handler_class=_Quiet
    )
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    _running.append(server)
    log.info("metrics on http://%s:%d/metrics", settings.metrics.address, port)
    return server


def close_in_child() -> None:
    """In a forked worker: let go of the master's metrics socket (it never serves it)."""
    for server in _running:
        server.socket.close()
    _running.clear()
