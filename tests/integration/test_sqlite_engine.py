"""SQLite engines: the write-ahead log is checkpointed by a thread of each process, never by a
request; write transactions of all processes queue on a lock file."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import text

from receiver.store.db import WalCheckpointer, make_engine
from receiver.store.unit_of_work import UnitOfWork

DEADLINE_S = 10.0


def checkpoint_threads(path: Path) -> int:
    """Running checkpoint threads for this database file."""
    return sum(1 for t in threading.enumerate() if t.name == f"sqlite-checkpoint {path}")


def rows_in_the_database_file(path: Path) -> int:
    """What the main database file holds, the WAL ignored (immutable: SQLite reads no WAL and
    takes no lock, so a read while the checkpoint writes pages may find the file half moved:
    that counts as not there yet, and the caller polls again)."""
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM t").fetchone()[0]
    except sqlite3.OperationalError:  # not even the table yet
        return 0
    except sqlite3.DatabaseError:  # "database disk image is malformed": a page moved meanwhile
        return -1
    finally:
        conn.close()


def wait_for(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"not within {DEADLINE_S} s: {what}"
        time.sleep(0.05)


def test_commits_leave_the_wal_to_the_checkpoint_thread_which_moves_it_into_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "wal.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            assert conn.execute(text("PRAGMA wal_autocheckpoint")).scalar() == 0
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
        assert checkpoint_threads(path) == 1
        # far more than the 1,000 pages at which a commit would checkpoint by default
        for _ in range(30):
            with engine.begin() as conn:
                conn.execute(
                    text("INSERT INTO t (x) VALUES (:x)"),
                    [{"x": "x" * 1000} for _ in range(200)],
                )
        wait_for(lambda: rows_in_the_database_file(path) == 6000, "rows in the database file")
    finally:
        engine.dispose()
    wait_for(lambda: checkpoint_threads(path) == 0, "the thread stops with the engine")


def test_a_checkpointer_restarts_after_a_stop(tmp_path: Path) -> None:
    path = tmp_path / "restart.db"
    sqlite3.connect(path).close()
    checkpointer = WalCheckpointer(str(path), interval=0.05)
    checkpointer.ensure_running()
    checkpointer.ensure_running()  # once per process
    assert checkpoint_threads(path) == 1
    checkpointer.stop()
    wait_for(lambda: checkpoint_threads(path) == 0, "stopped")
    checkpointer.ensure_running()
    assert checkpoint_threads(path) == 1
    checkpointer.stop()
    wait_for(lambda: checkpoint_threads(path) == 0, "stopped again")


def another_process_can_take(lock_file: Path) -> bool:
    """Whether a second process gets the writers' lock right now (without waiting)."""
    probe = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "try:\n"
        "    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except OSError:\n"
        "    sys.exit(1)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, str(lock_file)], timeout=30)
    return done.returncode == 0


def test_a_write_transaction_holds_the_writers_turn_until_it_ends(tmp_path: Path) -> None:
    """The next writer (another process) blocks on the lock file, so the kernel wakes it the
    moment the transaction ends, instead of SQLite's busy handler sleeping 1, 2, 5 ... ms."""
    path = tmp_path / "turns.db"
    engine = make_engine(f"sqlite:///{path}")
    lock_file = Path(f"{path}-writers")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
        with UnitOfWork(engine) as uow:
            assert uow.session is not None
            uow.session.execute(text("INSERT INTO t (x) VALUES (1)"))
            assert lock_file.exists()
            assert not another_process_can_take(lock_file)
            uow.commit()
            assert not another_process_can_take(lock_file)  # until the session is closed
        assert another_process_can_take(lock_file)
        with UnitOfWork(engine):  # left without commit: rolled back, the turn ends as well
            assert not another_process_can_take(lock_file)
        assert another_process_can_take(lock_file)
        with engine.connect() as conn:  # readers never wait for writers
            assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1
            assert another_process_can_take(lock_file)
    finally:
        engine.dispose()
