"""The writers' turn of SQLite: a nested turn keeps the process's lock until the outer one ends;
a wait for another process ends at its deadline, and a wait given up never keeps the lock."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from receiver.store.writers import WriterTurns

PROBE = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("free")
except OSError:
    print("held")
"""


def another_process_sees(path: Path) -> str:
    """Whether another process finds the writers' lock free or held."""
    probe = [sys.executable, "-c", PROBE, str(path)]
    return subprocess.run(probe, capture_output=True, text=True, check=True).stdout.strip()


def test_a_nested_turn_keeps_the_lock_until_the_outer_turn_ends(tmp_path: Path) -> None:
    path = tmp_path / "receiver.db-writers"
    turns = WriterTurns(str(path), wait_seconds=1)
    try:
        with turns.turn():
            with turns.turn():
                assert another_process_sees(path) == "held"
            assert another_process_sees(path) == "held"  # once the inner one ended: still ours
        assert another_process_sees(path) == "free"
    finally:
        turns.close()


HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.lockf(fd, fcntl.LOCK_EX)
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
open(sys.argv[1] + ".released", "w").close()
fcntl.lockf(fd, fcntl.LOCK_UN)
"""


@contextmanager
def held_by_another_process(path: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """Another process that holds the writers' lock for ``seconds``, from when it says so."""
    Path(f"{path}.released").unlink(missing_ok=True)
    command = [sys.executable, "-c", HOLDER, str(path), str(seconds)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
            yield holder
        finally:
            holder.kill()


def released(path: Path) -> bool:
    """Whether the holder has let the lock go (it says so just before)."""
    return Path(f"{path}.released").exists()


def test_a_caller_gives_up_at_its_deadline_and_the_next_one_takes_the_wait_over(
    tmp_path: Path,
) -> None:
    path = tmp_path / "receiver.db-writers"
    turns = WriterTurns(str(path), wait_seconds=0.2)
    try:
        with held_by_another_process(path, 1.0):
            over = r"held the database for over 0\.2 s"
            with pytest.raises(OperationalError, match=over), turns.turn():
                pass
            turns.wait_seconds = 5
            with turns.turn():  # the thread still waiting hands the lock to this caller
                assert released(path)
                assert another_process_sees(path) == "held"
        assert another_process_sees(path) == "free"
    finally:
        turns.close()


def test_a_wait_nobody_wants_any_more_leaves_the_lock_free(tmp_path: Path) -> None:
    path = tmp_path / "receiver.db-writers"
    turns = WriterTurns(str(path), wait_seconds=0.1)
    try:
        with held_by_another_process(path, 0.3) as holder:
            with pytest.raises(OperationalError), turns.turn():
                pass
            holder.wait()
        deadline = time.monotonic() + 5
        while another_process_sees(path) != "free":  # the thread took it and let it go
            assert time.monotonic() < deadline, "the abandoned wait kept the lock"
            time.sleep(0.01)
    finally:
        turns.close()
