"""gunicorn settings for ``receiver serve`` and the container image (``-c python:...``).

Logs go out as the receiver's JSON lines (the app writes its own access line per request, with
the request id and trace, so gunicorn's access log stays off), and a worker that exits has its
metric files marked dead, so /metrics keeps adding up the live processes only. With
``metrics.port`` set, the master serves the metrics on that address (``receiver.metrics_server``).
"""

from __future__ import annotations

import os
from typing import Any

from gunicorn.glogging import Logger
from prometheus_client import multiprocess

from receiver import metrics_server
from receiver.metrics import MULTIPROC_ENV
from receiver.settings import load_settings

_format = os.environ.get("RECEIVER_LOG_FORMAT", "json").lower()
logconfig_dict: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "receiver.logs.ContextFilter"}},
    "formatters": {
        "json": {"()": "receiver.logs.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"},
    },
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "text" if _format == "text" else "json",
            "filters": ["context"],
            "stream": "ext://sys.stderr",
        }
    },
    "root": {"level": "INFO", "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
        # the app writes its own access line (receiver.access, with request and trace ids)
        "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
    },
}
accesslog = None


class AppLogsAccess(Logger):
    """gunicorn's logger without its access line: the app logs each request itself. (With a
    logging config, gunicorn formats an access line even for a silenced logger: 3 % of a
    repeated webhook's time, docs/benchmarks.md.)"""

    def access(self, *args: Any, **kwargs: Any) -> None:
        return None


logger_class = AppLogsAccess
graceful_timeout = 10
control_socket_disable = True


def child_exit(_server: Any, worker: Any) -> None:
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(worker.pid)


def when_ready(_server: Any) -> None:
    """In the master: the metrics on their own address, when ``metrics.port`` is set."""
    metrics_server.start(load_settings(require_auth=False))


def post_fork(_server: Any, _worker: Any) -> None:
    metrics_server.close_in_child()
