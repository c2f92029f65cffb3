"""W3C Trace Context: continue the sender's trace, or start one, and carry it to the deliveries.

A ``traceparent`` header (``00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>``) on the
incoming webhook is continued: the request gets a span of its own in the same trace. Without a
valid header a trace is started. The deliveries a webhook causes store its ``traceparent`` and
the worker logs their attempts under that trace, so one trace id follows an alert from
Alertmanager to the page. The current context lives in a contextvar; logging reads it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


@dataclass(frozen=True)
class TraceContext:
    trace_id: str
    span_id: str
    flags: str = "01"

    @classmethod
    def start(cls) -> TraceContext:
        """A new trace with a new span."""
        return cls(secrets.token_hex(16), secrets.token_hex(8))

    @classmethod
    def continue_from(cls, header: str | None) -> TraceContext:
        """A new span in the header's trace; a new trace when the header is absent or invalid."""
        parent = parse(header)
        if parent is None:
            return cls.start()
        return cls(parent.trace_id, secrets.token_hex(8), parent.flags)

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def parse(header: str | None) -> TraceContext | None:
    """The context a ``traceparent`` names, or None (invalid, or an all-zero id)."""
    match = _TRACEPARENT.match((header or "").strip().lower())
    if match is None:
        return None
    version, trace_id, span_id, flags = match.groups()
    if version == "ff" or set(trace_id) == {"0"} or set(span_id) == {"0"}:
        return None
    return TraceContext(trace_id, span_id, flags)


current: ContextVar[TraceContext | None] = ContextVar("trace", default=None)
fields: ContextVar[dict[str, object] | None] = ContextVar("log_fields", default=None)


@contextmanager
def scope(trace: TraceContext | None, **log_fields: object) -> Iterator[TraceContext | None]:
    """Run a block under ``trace`` with extra fields on every log line it writes."""
    trace_token = current.set(trace)
    fields_token = fields.set({**(fields.get() or {}), **log_fields})
    try:
        yield trace
    finally:
        current.reset(trace_token)
        fields.reset(fields_token)


def current_traceparent() -> str | None:
    trace = current.get()
    return trace.traceparent if trace else None
