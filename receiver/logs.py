"""Logging: one JSON object per line (or plain text for a terminal), with the trace context.

Every record carries ``timestamp``, ``level``, ``logger``, ``message`` and ``process``, the
current ``trace_id``/``span_id`` and scope fields (``request_id``, ``receiver``, ...), and any
of the known fields passed as ``extra=`` (``model``, ``status``, ``latency_ms``, ...).
Secrets are never passed to the logger in the first place.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from receiver import tracing

# fields a call may pass with extra=..., in the order they are written
EXTRA_FIELDS = (
    "request_id",
    "method",
    "path",
    "receiver",
    "model",
    "status",
    "latency_ms",
    "alerts",
    "incident_id",
    "incidents",
    "delivery_id",
    "action",
    "outcome",
    "attempt",
    "remote_addr",
    "user_agent",
)


class ContextFilter(logging.Filter):
    """Put the trace context and scope fields on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        trace = tracing.current.get()
        record.trace_id = trace.trace_id if trace else None
        record.span_id = trace.span_id if trace else None
        for name, value in (tracing.fields.get() or {}).items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for name in ("trace_id", "span_id", *EXTRA_FIELDS):
            value = getattr(record, name, None)
            if value is not None:
                doc[name] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Log to stderr in ``fmt`` (json | text); safe to call more than once."""
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)
