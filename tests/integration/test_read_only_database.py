"""A SQLite database whose directory (and, in a second case, files) became read-only, served by
real gunicorn: webhooks get 503 and ``/readyz`` is not ready, until it is writable again.

The tests run as root, and root ignores permission bits (CAP_DAC_OVERRIDE); the server runs
as root without any capability (``setpriv --bounding-set=-all``), so the bits apply to it as
they do to the unprivileged user of a real deployment. Another process keeps the database
open meanwhile, as a running receiver would: its write-ahead log and shared-memory file stay,
so reads keep working and only writes fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.support.api import AUTH
from tests.support.databases import migrated_sqlite
from tests.support.payloads import VALID
from tests.support.servers import gunicorn, wait_ready
from tests.support.skips import need

pytestmark = pytest.mark.slow
WITHOUT_CAPABILITIES = ["setpriv", "--bounding-set=-all", "--inh-caps=-all"]
DEADLINE = 30.0
HOLD_OPEN = (
    "import sqlite3, sys\n"
    "conn = sqlite3.connect(sys.argv[1])\n"
    "conn.execute('SELECT count(*) FROM alembic_version').fetchall()\n"
    "print('open', flush=True)\n"
    "sys.stdin.read()\n"
)


def require_root_and_setpriv() -> None:
    if os.geteuid() != 0:
        need("root", "the test drops root's capabilities to make permission bits apply")
    if shutil.which("setpriv") is None:
        need("setpriv", "util-linux's setpriv is not installed")


@contextmanager
def held_open(database: Path) -> Iterator[None]:
    """Another process with the database open (so its -wal and -shm files stay)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_OPEN, str(database)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"open\n"
        yield
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
        holder.stdout.close()


def post(url: str) -> requests.Response:
    headers = {**AUTH, "Content-Type": "application/json"}
    return requests.post(
        url + "/api/v1/alertmanager/team-a", data=VALID, headers=headers, timeout=25
    )


@pytest.mark.parametrize("files_too", [False, True], ids=["directory", "directory and files"])
def test_a_read_only_database_gives_503_and_not_ready_then_recovers_when_writable(
    tmp_path: Path, files_too: bool
) -> None:
    require_root_and_setpriv()
    directory = tmp_path / "data"
    directory.mkdir()
    database = directory / "receiver.db"
    url = migrated_sqlite(database)
    with held_open(database):
        files = sorted(directory.iterdir())
        assert {f.name for f in files} == {"receiver.db", "receiver.db-wal", "receiver.db-shm"}
        try:
            for file in files if files_too else []:
                file.chmod(0o444)
            directory.chmod(0o555)
            with gunicorn(url, prefix=WITHOUT_CAPABILITIES, ready_statuses=(200, 503)) as server:
                readiness = requests.get(server.url + "/readyz", timeout=25)
                assert readiness.status_code == 503, readiness.text
                assert readiness.json()["reason"].startswith("database unavailable: ")

                refused = post(server.url)
                assert refused.status_code == 503, refused.text
                assert refused.json()["error"] == "storage_unavailable"

                directory.chmod(0o755)
                for file in files:
                    file.chmod(0o644)
                wait_ready(server.process, server.url, timeout=DEADLINE)
                stored = post(server.url)
                assert stored.status_code == 200, stored.text + server.process.stderr()[-4000:]
                assert stored.json()["new"] == 1
        finally:
            directory.chmod(0o755)
            for file in files:
                file.chmod(0o644)
