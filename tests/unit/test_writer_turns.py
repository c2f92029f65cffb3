"""The writers' turn of SQLite: a nested turn keeps the process's lock until the outer one ends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
