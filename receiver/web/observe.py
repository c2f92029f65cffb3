"""Per request: a request id, the W3C trace context, and one JSON log line when it ends."""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, request

from receiver import tracing

log = logging.getLogger("receiver.access")
QUIET = ("/healthz", "/readyz", "/metrics")  # probes and scrapes: logged at DEBUG only
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def init_app(app: Flask) -> None:
    """Give every request an id and a span; answer with both; log the request when it ends."""

    @app.before_request
    def _begin() -> None:
        sent = request.headers.get("X-Request-ID", "")
        g.request_id = sent if _REQUEST_ID.match(sent) else uuid.uuid4().hex
        g.started = time.perf_counter()
        trace = tracing.TraceContext.continue_from(request.headers.get("traceparent"))
        g.trace_tokens = (
            tracing.current.set(trace),
            tracing.fields.set({"request_id": g.request_id}),
        )

    @app.after_request
    def _answer(response: Response) -> Response:
        if "request_id" not in g:
            return response
        response.headers["X-Request-ID"] = g.request_id
        if (traceparent := tracing.current_traceparent()) is not None:
            response.headers["traceparent"] = traceparent
        level = logging.WARNING if response.status_code >= 500 else logging.INFO
        quiet = request.path.startswith("/ui-static/") or request.path in QUIET
        if quiet and response.status_code < 500:
            level = logging.DEBUG  # the noise of probes, scrapes and static files
        log.log(
            level,
            "%s %s %s",
            request.method,
            request.path,
            response.status_code,
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "latency_ms": round((time.perf_counter() - g.started) * 1000, 2),
                "remote_addr": request.remote_addr,
                "user_agent": (request.user_agent.string or "")[:200] or None,
            },
        )
        return response

    @app.teardown_request
    def _end(_exc: BaseException | None) -> None:
        tokens = g.pop("trace_tokens", None)
        if tokens is not None:
            tracing.current.reset(tokens[0])
            tracing.fields.reset(tokens[1])
