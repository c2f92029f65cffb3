"""Stand-ins for the services the receiver notifies: PagerDuty Events API v2 and Slack Web API.

Each stand-in is a real HTTP(S) server on a free 127.0.0.1 port (bound to port 0, so no other
process can take it between choice and bind), served by a thread of its own; request handlers
run in threads the server joins on close, so nothing outlives the ``with`` block. This module
holds what both share: that server, its injectable monotonic clock's type (tests step one by
hand with ``tests.support.clock.ManualClock``), and the fault plan (answer an error for the
next N requests or for S seconds; hang without answering until released).
"""

from __future__ import annotations

import json
import ssl
import sys
import threading
import time
import traceback
from collections.abc import Callable, Collection
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

Clock = Callable[[], float]
Answer = tuple[int, Any, dict[str, str]]  # HTTP status, JSON body (or text), extra headers
HANDLER_SOCKET_TIMEOUT = 10.0  # a client that connects and sends nothing cannot block close()


@dataclass
class Fault:
    """One planned misbehaviour: answer ``status`` (or hang ``hang`` seconds) instead of serving.

    It applies to the next ``times`` matching requests (None: no count limit) and while the
    stand-in's clock is before ``until`` (None: no time limit); ``names`` limits it to some
    paths or API methods.
    """

    status: int | None = None
    times: int | None = None
    until: float | None = None
    retry_after: int | None = None
    body: Any = None
    error: str | None = None
    names: frozenset[str] | None = None
    hang: float | None = None

    def live(self, now: float) -> bool:
        return (self.times is None or self.times > 0) and (self.until is None or now < self.until)


class FaultPlan:
    """Thread-safe list of faults; the first live one that matches a request is used up."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._gate = threading.Condition()
        self._generation = 0
        self._closed = False

    def add(self, fault: Fault, seconds: float | None) -> None:
        with self._lock:
            if seconds is not None:
                fault.until = self._clock() + seconds
            self._faults.append(fault)

    def take(self, name: str) -> Fault | None:
        with self._lock:
            now = self._clock()
            self._faults = [f for f in self._faults if f.live(now)]
            for fault in self._faults:
                if fault.names is None or name in fault.names:
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    def reset(self, hangs_only: bool = False) -> None:
        with self._lock:
            self._faults = [f for f in self._faults if hangs_only and f.hang is None]

    def wait(self, seconds: float) -> bool:
        """Answer nothing for ``seconds`` of real time; False if closed (not released) meanwhile."""
        deadline = time.monotonic() + seconds
        with self._gate:
            generation = self._generation
            while not self._closed and generation == self._generation:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._gate.wait(remaining)
            return generation != self._generation or not self._closed  # released wins

    def release(self) -> None:
        """Wake every hung request and drop the hang faults."""
        self.reset(hangs_only=True)
        with self._gate:
            self._generation += 1
            self._gate.notify_all()

    def close(self) -> None:
        with self._gate:
            self._closed = True
            self._gate.notify_all()


def names(values: Collection[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(values)


class _Server(ThreadingHTTPServer):
    """Handler threads are joined by ``server_close``; TLS handshakes happen in those threads."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, standin: StandIn, tls: ssl.SSLContext | None) -> None:
        super().__init__(("127.0.0.1", 0), RequestHandler)
        self.standin = standin
        self.tls = tls

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(HANDLER_SOCKET_TIMEOUT)
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        try:
            wrapped = self.tls.wrap_socket(request, server_side=True)
        except (OSError, ValueError):  # e.g. a client that does not trust the test CA
            return
        try:
            super().finish_request(wrapped, client_address)
        finally:
            wrapped.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Keep a stand-in's own bugs for the fixture to fail on; clients that gave up are fine."""
        if not isinstance(sys.exc_info()[1], OSError):
            self.standin.errors.append(traceback.format_exc())


class RequestHandler(BaseHTTPRequestHandler):
    """One request per connection (HTTP/1.0), so handler threads end with their answer."""

    protocol_version = "HTTP/1.0"
    server: _Server

    def do_GET(self) -> None:
        self.server.standin.dispatch(self, self._body())

    def do_POST(self) -> None:
        self.server.standin.dispatch(self, self._body())

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        """Send ``body`` as JSON (or as text when it is a str) with a Content-Length."""
        is_text = isinstance(body, str)
        data = (body if is_text else json.dumps(body)).encode()
        self.send_response(status)
        kind = "text/plain; charset=utf-8" if is_text else "application/json; charset=utf-8"
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: every request is recorded by the stand-in instead."""


class StandIn:
    """Lifecycle shared by the stand-ins: start, serve in a thread, close everything."""

    def __init__(self, clock: Clock = time.monotonic, tls: ssl.SSLContext | None = None) -> None:
        self.clock = clock
        self.faults = FaultPlan(clock)
        self._lock = threading.RLock()
        self._records: list[dict[str, Any]] = []
        self._closed = False
        self.errors: list[str] = []  # tracebacks of exceptions raised while handling requests
        self._server = _Server(self, tls)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def dispatch(self, handler: RequestHandler, body: bytes) -> None:
        """Record the request, then hang, answer a planned failure, or serve it for real."""
        name, record = self.describe(handler, body)
        record.update(status=None, fault=None, response=None)
        with self._lock:
            self._records.append(record)
        fault = self.faults.take(name)
        if fault is not None and fault.hang is not None:
            record["fault"] = "hang"
            if not self.faults.wait(fault.hang):
                return  # closing: drop the connection unanswered
            fault = None
        if fault is not None:
            record["fault"] = "fail"
            status, answer, headers = self.injected(fault)
        else:
            status, answer, headers = self.serve(handler, body, record)
        with self._lock:
            record.update(status=status, response=answer)
        handler.answer(status, answer, headers)

    def records(self) -> list[dict[str, Any]]:
        """Copies of the request records, in arrival order."""
        with self._lock:
            return [dict(r) for r in self._records]

    def describe(self, handler: RequestHandler, body: bytes) -> tuple[str, dict[str, Any]]:
        """The name faults match (a path or an API method) and the record of this request."""
        raise NotImplementedError

    def serve(self, handler: RequestHandler, body: bytes, record: dict[str, Any]) -> Answer:
        raise NotImplementedError

    def injected(self, fault: Fault) -> Answer:
        raise NotImplementedError

    def hang(
        self, seconds: float, times: int | None = None, methods: Collection[str] | None = None
    ) -> None:
        """Accept every request (or the next ``times``; of ``methods``: paths or API methods,
        if given) and answer nothing for ``seconds`` of real time, or until ``release()``; a
        hung request still counts as recorded."""
        self.faults.add(Fault(hang=seconds, times=times, names=names(methods)), None)

    def release(self) -> None:
        """End every hang now: hung requests are then served normally (maybe too late)."""
        self.faults.release()

    def reset_faults(self) -> None:
        """Forget every planned fault (requests already hung stay hung until released)."""
        self.faults.reset()

    def close(self) -> None:
        """Unblock hung handlers (they drop the connection), stop serving, join every thread."""
        if self._closed:
            return
        self._closed = True
        self.faults.close()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
