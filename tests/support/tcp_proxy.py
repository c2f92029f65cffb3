"""A TCP proxy on 127.0.0.1 in front of a server, which can freeze as a hung server does.

Frozen, it forwards nothing in either direction but keeps every socket open: bytes sent to it
are received (the kernel acknowledges them, as a stopped server's kernel does) and held, and new
connections wait in the listen backlog, unaccepted. Thawed, it forwards what it held and goes on.
Nothing ever reaches the other side early, so a client sees exactly a server that stopped
answering without closing anything.
"""

from __future__ import annotations

import socket
import threading
from contextlib import suppress
from types import TracebackType

POLL_SECONDS = 0.05  # how often idle threads look at the stop flag


class TcpProxy:
    """``with TcpProxy(port) as proxy:`` forwards ``127.0.0.1:proxy.port`` to ``127.0.0.1:port``."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1"):
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self._listener.settimeout(POLL_SECONDS)
        self.port: int = self._listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self.accepted = 0

    def __enter__(self) -> TcpProxy:
        self._start(self._accept)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def freeze(self) -> None:
        """Stop forwarding, both ways, and stop accepting; keep every socket open."""
        self._flowing.clear()

    def thaw(self) -> None:
        """Forward what was held, and everything after it."""
        self._flowing.set()

    def close(self) -> None:
        """Close every socket and wait for every thread."""
        self._stopping.set()
        self._flowing.set()
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _start(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            if not self._flowing.wait(POLL_SECONDS):
                continue  # frozen: new connections wait in the backlog
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:  # closed
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            client.settimeout(None)
            with self._lock:
                self._sockets.update((client, server))
                self.accepted += 1
            self._start(self._pump, client, server)
            self._start(self._pump, server, client)

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        """Copy ``source`` to ``target``, holding what arrives while frozen until thawed."""
        try:
            while True:
                data = source.recv(65536)
                self._flowing.wait()
                if self._stopping.is_set():
                    return
                if not data:
                    target.shutdown(socket.SHUT_WR)
                    return
                target.sendall(data)
        except OSError:  # either side closed (or the proxy is closing)
            with suppress(OSError):
                target.shutdown(socket.SHUT_RDWR)
