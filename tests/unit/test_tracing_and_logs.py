"""W3C trace context parsing and continuation; JSON log lines with the trace and extra fields."""

import io
import json
import logging

import pytest

from receiver import tracing
from receiver.logs import ContextFilter, JsonFormatter
from receiver.tracing import TraceContext, parse

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def test_a_valid_traceparent_is_continued_in_a_new_span_of_the_same_trace():
    ours = TraceContext.continue_from(f"00-{TRACE}-{PARENT}-01")
    assert ours.trace_id == TRACE and ours.span_id != PARENT and len(ours.span_id) == 16
    assert ours.traceparent == f"00-{TRACE}-{ours.span_id}-01"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        f"00-{TRACE}-{PARENT}",  # no flags
        f"ff-{TRACE}-{PARENT}-01",  # version ff is invalid
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE[:-1]}-{PARENT}-01",  # short trace id
    ],
)
def test_an_absent_or_invalid_traceparent_starts_a_new_trace(header):
    assert parse(header) is None
    started = TraceContext.continue_from(header)
    assert len(started.trace_id) == 32 and started.trace_id != TRACE
    assert parse(started.traceparent) == started


def test_flags_are_kept_and_upper_case_is_read_leniently():
    assert parse(f"00-{TRACE.upper()}-{PARENT}-00") == TraceContext(TRACE, PARENT, "00")


def record_line(**extra: object) -> dict:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("stored %d alerts", 3, extra=extra)
    finally:
        logger.removeHandler(handler)
    (line,) = stream.getvalue().splitlines()
    return json.loads(line)


def test_a_log_line_is_one_json_object_with_the_trace_and_scope_fields():
    trace = TraceContext(TRACE, PARENT)
    with tracing.scope(trace, request_id="req-1"):
        doc = record_line(model="llama", status=200, latency_ms=1.5, secret_thing="x")
    assert doc["message"] == "stored 3 alerts" and doc["level"] == "WARNING"
    assert doc["timestamp"].endswith("+00:00")
    assert (doc["trace_id"], doc["span_id"], doc["request_id"]) == (TRACE, PARENT, "req-1")
    assert (doc["model"], doc["status"], doc["latency_ms"]) == ("llama", 200, 1.5)
    assert "secret_thing" not in doc  # only the known fields are written


def test_outside_any_scope_a_line_has_no_trace_fields():
    doc = record_line()
    assert "trace_id" not in doc and "request_id" not in doc
