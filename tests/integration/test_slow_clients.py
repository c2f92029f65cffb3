"""Slow and stalled clients never hold the intake: gunicorn's asyncio worker reads requests and
receiver/asgi.py waits for whole bodies before a thread runs the application.

With sync workers, 50 connections that trickle their headers or bodies held both workers and
every webhook timed out (the hardening issue saw four connections stop the intake for 60 s).
How fast webhooks are answered meanwhile is measured in bench/hostile_clients.py.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import pytest
import requests

from tests.support.api import TOKEN
from tests.support.payloads import FIXTURES
from tests.support.servers import Server, gunicorn

pytestmark = pytest.mark.slow
BODY = (FIXTURES / "single-repeat-resolve" / "001.json").read_text()
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
TRICKLERS = 50


def recorded_body() -> bytes:
    return json.loads(BODY)["body_raw"].encode()


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


@contextmanager
def tricklers(url: str, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections, half sending one header line at a time, half a body byte at a
    time, every 0.5 s, until the block ends."""
    stop = threading.Event()
    sockets = [_connect(url) for _ in range(count)]
    start = f"POST /api/v1/alertmanager HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
    for i, sock in enumerate(sockets):
        head = start if i % 2 else start + "Content-Type: application/json\r\n"
        if not i % 2:
            head += "Content-Length: 100000\r\n\r\n{"
        sock.sendall(head.encode())

    def trickle() -> None:
        while not stop.wait(0.5):
            for i, sock in enumerate(sockets):
                with suppress(OSError):  # answered 408 and closed: that is the point
                    sock.sendall(b"X-Slow: 1\r\n" if i % 2 else b" ")

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        yield sockets
    finally:
        stop.set()
        thread.join(timeout=5)
        for sock in sockets:
            sock.close()


@pytest.fixture
def server(sqlite_migrated: str) -> Iterator[Server]:
    extra = {"RECEIVER_LISTEN__REQUEST_TIMEOUT_SECONDS": "30"}
    with gunicorn(sqlite_migrated, extra_env=extra) as running:
        yield running


def test_webhooks_are_stored_while_fifty_clients_trickle_headers_and_bodies(
    server: Server,
) -> None:
    with tricklers(server.url, TRICKLERS), requests.Session() as session:
        for _ in range(20):
            answer = session.post(
                server.url + "/api/v1/alertmanager",
                data=recorded_body(),
                headers=AUTH,
                timeout=5,  # sync workers: every one of these timed out
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["status"] == "stored"


def test_a_body_that_stalls_is_answered_408_and_the_connection_closed(
    sqlite_migrated: str,
) -> None:
    extra = {"RECEIVER_LISTEN__REQUEST_TIMEOUT_SECONDS": "1"}
    with gunicorn(sqlite_migrated, extra_env=extra) as server:
        head = (
            f"POST /api/v1/alertmanager HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{"
        )
        with _connect(server.url) as sock:
            sock.sendall(head.encode())
            answer = _read_all(sock)
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b'"error": "request_timeout"' in answer


def test_a_malformed_chunked_body_is_refused_with_400(server: Server) -> None:
    with _connect(server.url) as sock:
        sock.sendall(
            b"POST /api/v1/alertmanager HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + TOKEN.encode()
            + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"zz\r\n{}\r\n0\r\n\r\n"
        )
        assert _read_all(sock).startswith(b"HTTP/1.1 400 ")


def test_a_chunked_body_over_the_limit_is_refused_413_without_reading_it_all(
    sqlite_migrated: str,
) -> None:
    extra = {"RECEIVER_INTAKE__MAX_BODY_BYTES": "2048"}
    with gunicorn(sqlite_migrated, extra_env=extra) as server:

        def chunks() -> Iterator[bytes]:
            yield b"{" + b" " * 4096
            yield b"}"

        answer = requests.post(
            server.url + "/api/v1/alertmanager", data=chunks(), headers=AUTH, timeout=10
        )
        assert answer.status_code == 413
        assert answer.json()["error"] == "payload_too_large"


def _read_all(sock: socket.socket) -> bytes:
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out
