"""Gunicorn target ``receiver.asgi:app`` (worker class ``asgi``): slow clients cost no thread.

With sync workers, a client that trickles its headers or body holds a whole worker process for as
long as it likes: four such connections stopped every webhook for a minute. Here gunicorn's
asyncio worker reads every request, and this front waits for the whole body in the event loop
(for at most ``listen.request_timeout_seconds``, and at most ``intake.max_body_bytes`` plus one
byte) before the Flask application runs in one of a few threads with the body in memory. A
stalled client then costs a socket and a few kilobytes, never a thread.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from typing import Any, cast

from a2wsgi.wsgi import build_environ

log = logging.getLogger(__name__)
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
WsgiApp = Callable[..., Any]


class BufferedWsgi:
    """An ASGI application that runs a WSGI one on fully received requests."""

    def __init__(self, app: WsgiApp, threads: int, body_timeout: float, max_body: int):
        self.app, self.body_timeout, self.max_body = app, body_timeout, max_body
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="wsgi")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":  # websockets: not spoken here
            return
        try:
            body = await asyncio.wait_for(self._body(receive), self.body_timeout)
        except TimeoutError:
            await _error(send, 408, "request_timeout", "the request body did not arrive in time")
            return
        except _Disconnected:
            return
        # a2wsgi types the scope and body as its own (a BytesIO reads the same), and the environ
        # as a TypedDict of fixed keys where WSGI lets a server add its own
        environ = cast(dict[str, Any], build_environ(scope, io.BytesIO(body)))  # type: ignore[arg-type]
        environ["wsgi.input_terminated"] = True  # the whole body is there, however it came
        loop = asyncio.get_running_loop()
        status, headers, chunks = await loop.run_in_executor(
            self.pool, copy_context().run, self._run, environ
        )
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"".join(chunks)})

    async def _body(self, receive: Receive) -> bytes:
        """The whole body, or its first ``max_body`` bytes: the application refuses a body that
        long itself (413, recorded like every refusal), and the rest is never read."""
        parts, size = [], 0
        while size < self.max_body:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            parts.append(chunk)
            size += len(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(parts)[: self.max_body]

    def _run(self, environ: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], list[bytes]]:
        """Call the WSGI application in this thread and collect its whole answer."""
        started: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            started[:] = [status, headers]
            return lambda _chunk: None  # write() is not used by Flask

        result = self.app(environ, start_response)
        try:
            chunks = [bytes(chunk) for chunk in result]
        finally:
            getattr(result, "close", lambda: None)()
        status, headers = started
        encoded = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        return int(status.split(" ", 1)[0]), encoded, chunks


class _Disconnected(Exception):
    """The client went away before its body was complete."""


async def _error(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": code, "message": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _build() -> BufferedWsgi:
    from receiver.wsgi import app as flask_app
    from receiver.wsgi import settings

    return BufferedWsgi(
        flask_app,
        threads=settings.listen.threads,
        body_timeout=settings.listen.request_timeout_seconds,
        max_body=settings.intake.max_body_bytes + 1,
    )


app = _build()
