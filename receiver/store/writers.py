"""SQLite writers of every process take turns on a lock file, woken by the kernel."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import OperationalError

TURN = "wait for the writers' turn"  # the "statement" named in the errors below


class WriterTurns:
    """SQLite writers of every process queue on a lock file and are woken by the kernel.

    SQLite lets one writer in at a time; the others get SQLITE_BUSY and its busy handler
    sleeps 1, 2, 5, 10 ... ms between tries, so with two busy processes the one that just
    committed usually takes the lock again while the other sleeps. Measured on the intake, the
    web workers slept 43 % of the time (docs/benchmarks.md). A write transaction first takes
    this POSIX lock (``lockf``) and keeps it until the transaction is over, so the next writer
    wakes the moment it may go. SQLite's own lock still decides; this only orders the queue.
    POSIX locks are per process (a nested transaction does not wait for itself) and die with it
    (a killed writer never leaves the lock held); threads of one process queue on a lock of
    their own first.

    Nobody waits longer than ``wait_seconds`` (the lock timeout): a writer stuck in another
    process makes the others fail, not hang. A lock file that cannot be opened (a read-only
    directory) fails the transaction too. Both raise OperationalError, as the database would.
    """

    def __init__(self, path: str, wait_seconds: float = 5.0):
        self.path, self.wait_seconds = path, wait_seconds
        self._fd: int | None = None
        self._pid: int | None = None
        self._threads = threading.RLock()  # re-entrant: a nested transaction never waits on itself
        self._depth = 0  # turns the thread holding ``_threads`` is in: only the outermost locks
        self._waiter = _BlockingWait()

    def _descriptor(self) -> int:
        if self._pid != os.getpid():  # opened again after a fork (no waiting thread came along)
            self._fd, self._waiter = None, _BlockingWait()
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                reason = f"cannot open the writers' lock file: {exc.strerror}"
                raise OperationalError(TURN, None, sqlite3.OperationalError(reason)) from exc
            self._fd, self._pid = fd, os.getpid()
        assert self._fd is not None
        return self._fd

    def close(self) -> None:
        """Close the lock file (opened again on the next turn)."""
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = self._pid = None

    @contextmanager
    def turn(self) -> Iterator[None]:
        # threads of this process queue here (POSIX locks do not see them)
        if not self._threads.acquire(timeout=self.wait_seconds):
            raise _busy(self.wait_seconds)
        try:
            if self._depth:  # nested in this thread's turn: the file lock is ours already, and
                self._depth += 1  # must stay ours until the outermost turn ends
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            fd = self._descriptor()
            if not self._waiter.lock(fd, self.wait_seconds):
                raise _busy(self.wait_seconds)
            self._depth = 1
            try:
                yield
            finally:
                self._depth = 0
                fcntl.lockf(fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()


def _busy(seconds: float) -> OperationalError:
    reason = f"another writer held the database for over {seconds:g} s"
    return OperationalError(TURN, None, sqlite3.OperationalError(reason))


class _BlockingWait:
    """Takes the lock at once if free, else waits for it in a thread of its own, so the caller
    can stop waiting at its deadline while the kernel still wakes the thread at once. At most one
    such thread waits per process; a caller that comes while one does waits for that one.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._granted: threading.Event | None = None  # set: the waiting thread has the lock
        self._wanted = False  # someone still waits for the waiting thread's lock

    def lock(self, fd: int, timeout: float) -> bool:
        """Take the lock on ``fd`` within ``timeout`` seconds; False if it stayed taken."""
        with self._mutex:
            if self._granted is None:
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except OSError:  # EAGAIN or EACCES: another process writes
                    self._granted = threading.Event()
                    threading.Thread(
                        target=self._wait, args=(fd, self._granted), daemon=True
                    ).start()
            self._wanted, granted = True, self._granted
        granted.wait(timeout)
        with self._mutex:
            if granted.is_set():
                self._granted = None
                return True
            self._wanted = False
            return False

    def _wait(self, fd: int, granted: threading.Event) -> None:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX)
        except OSError:  # the file was closed meanwhile (the engine disposed)
            with self._mutex:
                self._granted = None
            return
        with self._mutex:
            if self._wanted:
                granted.set()  # the waiting caller owns it now
            else:  # everyone gave up meanwhile
                fcntl.lockf(fd, fcntl.LOCK_UN)
                self._granted = None
