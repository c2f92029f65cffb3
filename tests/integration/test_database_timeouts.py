"""Every database call is bounded (``database.*``): statement and lock timeouts on both databases,
the writers' turn on SQLite, and a 503 with a JSON body from every route the database fails."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from werkzeug.security import generate_password_hash

from receiver.app import create_app
from receiver.bootstrap import bootstrap
from receiver.settings import DatabaseSettings
from receiver.store.db import make_engine
from receiver.store.deadlines import extended, timed_out
from receiver.store.unit_of_work import UnitOfWork
from tests.support.api import WEBHOOKS, metric, post_webhook
from tests.support.databases import receiver_settings
from tests.support.payloads import VALID, alert, webhook
from tests.support.servers import free_port
from tests.support.ui_session import PASSWORD, login

SHORT = DatabaseSettings(statement_timeout_seconds=0.3, lock_timeout_seconds=0.3)
WITHIN = 3.0  # seconds: generous for a 0.3 s timeout on a loaded machine, far below a hang
# 100 million rows: tens of seconds unless interrupted
COUNTING = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000) "
    "SELECT {} FROM n"
)


@pytest.fixture
def short_sqlite(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'short.db'}", SHORT)
    yield engine
    engine.dispose()


def took(action: Any) -> tuple[BaseException | None, float]:
    """Run ``action``; the error it raised (or None) and the seconds it took."""
    started = time.monotonic()
    try:
        action()
    except Exception as exc:  # the caller asserts what it was
        return exc, time.monotonic() - started
    return None, time.monotonic() - started


# -- SQLite: statements interrupted, lock waits bounded ---------------------------------------


@pytest.mark.parametrize("select", ["count(*)", "i"], ids=["in execute", "while fetching"])
def test_a_sqlite_statement_running_past_the_statement_timeout_is_interrupted(
    short_sqlite: Engine, select: str
) -> None:
    with short_sqlite.connect() as conn:
        error, seconds = took(lambda: conn.exec_driver_sql(COUNTING.format(select)).all())
        assert isinstance(error, OperationalError) and timed_out(error), error
        assert seconds < WITHIN
        assert conn.exec_driver_sql("SELECT 1").scalar() == 1  # the connection goes on


def test_a_sqlite_transaction_longer_than_the_timeout_is_not_interrupted_statement_by_statement(
    short_sqlite: Engine,
) -> None:
    """The limit is per statement: a transaction of short statements with pauses between them
    (Python working) may take longer than it."""
    with short_sqlite.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        started = time.monotonic()
        while time.monotonic() - started < 0.6:
            conn.exec_driver_sql("INSERT INTO t (x) VALUES (1)")
            time.sleep(0.05)  # the work between two statements, not a synchronisation
    with short_sqlite.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() >= 6


def test_extended_limits_let_one_transaction_run_longer_then_apply_again(
    short_sqlite: Engine,
) -> None:
    """Migrations (no limit) and retention (a longer one) lift the timeout for their own
    transaction only."""
    slow = COUNTING.replace("100000000", "3000000").format("count(*)")
    with short_sqlite.connect() as conn:
        error, _ = took(lambda: conn.exec_driver_sql(slow).scalar())
        assert error is not None and timed_out(error), "slow enough to be interrupted"
        with extended(conn, None):
            assert conn.exec_driver_sql(slow).scalar() == 3000000
        conn.rollback()
        error, _ = took(lambda: conn.exec_driver_sql(slow).scalar())
        assert error is not None and timed_out(error)


HOLD_TURN = (
    "import fcntl, os, sys\n"
    "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
    "fcntl.lockf(fd, fcntl.LOCK_EX)\n"
    "print('held', flush=True)\n"
    "sys.stdin.read()\n"
)


@pytest.fixture
def turn_held_elsewhere(short_sqlite: Engine) -> Iterator[subprocess.Popen[bytes]]:
    """Another process holding the writers' turn (a writer stuck mid-transaction)."""
    path = f"{make_url(str(short_sqlite.url)).database}-writers"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_TURN, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
    yield holder
    assert holder.stdin is not None and holder.stdout is not None
    holder.stdin.close()
    holder.wait(timeout=10)
    holder.stdout.close()


def test_a_writer_stuck_in_another_process_fails_the_next_write_within_the_lock_timeout(
    short_sqlite: Engine, turn_held_elsewhere: subprocess.Popen[bytes]
) -> None:
    outcome: list[tuple[BaseException | None, float]] = []

    def write() -> None:
        with UnitOfWork(short_sqlite):
            pass

    waiting = threading.Thread(target=lambda: outcome.append(took(write)), daemon=True)
    waiting.start()
    waiting.join(timeout=10)  # a wait without bound would still be waiting
    assert outcome, "the write is still waiting for the other process"
    error, seconds = outcome[0]
    assert isinstance(error, OperationalError), error
    assert "another writer held the database" in str(error) and seconds < WITHIN

    assert turn_held_elsewhere.stdin is not None
    turn_held_elsewhere.stdin.close()  # the stuck writer ends: the next write goes
    turn_held_elsewhere.wait(timeout=10)
    error, seconds = took(write)
    assert error is None and seconds < WITHIN


# -- Postgres: the server's timeouts, and lock waits ------------------------------------------


@pytest.mark.postgres
def test_postgres_connections_start_with_the_configured_timeouts(pg_url: str) -> None:
    engine = make_engine(pg_url, SHORT)
    try:
        with engine.connect() as conn:
            shown = {
                name: conn.exec_driver_sql(f"SHOW {name}").scalar()
                for name in ("statement_timeout", "lock_timeout")
            }
            assert shown == {"statement_timeout": "300ms", "lock_timeout": "300ms"}
            idle = conn.exec_driver_sql("SHOW idle_in_transaction_session_timeout").scalar()
            assert idle == "10s"
            error, seconds = took(lambda: conn.exec_driver_sql("SELECT pg_sleep(5)").all())
            assert isinstance(error, OperationalError) and timed_out(error), error
            assert isinstance(error.orig, psycopg.errors.QueryCanceled) and seconds < WITHIN
            conn.rollback()  # cancelled by the server: the connection goes on
            assert conn.exec_driver_sql("SELECT 1").scalar() == 1
            with extended(conn, None):
                assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "0"
            conn.rollback()
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "300ms"
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_webhook_waiting_for_a_row_lock_gets_503_within_the_lock_timeout(
    pg_url: str, clock: Any
) -> None:
    settings = receiver_settings(pg_url, **{"database.lock_timeout_seconds": 0.5})
    container = bootstrap(settings, clock=clock)
    client = create_app(container=container).test_client()
    body = json.dumps(webhook(alert("DiskFull", instance="host-1")))
    holder = psycopg.connect(pg_url)
    # a holder that never lets go would hang the test without the lock timeout: release it
    release = threading.Timer(20, holder.rollback)
    try:
        assert post_webhook(client, body, "team-a").status_code == 200
        holder.execute("SELECT id FROM alert_groups FOR UPDATE")  # a long transaction
        release.start()
        started = time.monotonic()
        waited = post_webhook(client, body, "team-a")
        seconds = time.monotonic() - started
        holder.rollback()
        after = post_webhook(client, body, "team-a")
    finally:
        release.cancel()
        holder.close()
        container.close()
    assert waited.status_code == 503, waited.get_json()
    assert waited.get_json()["error"] == "storage_unavailable" and seconds < WITHIN
    assert after.status_code == 200 and after.get_json()["duplicate"] == 1


@pytest.mark.postgres
def test_readiness_fails_on_a_read_only_postgres_and_recovers(pg_url: str) -> None:
    """A standby, or default_transaction_read_only: reads work, writes would fail."""
    name = make_url(pg_url).database
    admin = make_url(pg_url).set(database="postgres").render_as_string(hide_password=False)
    container = bootstrap(receiver_settings(pg_url))
    client = create_app(container=container).test_client()
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        container.engine.dispose()  # new sessions take the database's setting
        refused = client.get("/readyz")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        container.engine.dispose()
        ready = client.get("/readyz")
    finally:
        container.close()
    assert refused.status_code == 503
    assert "read-only" in refused.get_json()["reason"]
    assert ready.status_code == 200, ready.get_json()


# -- every route: 503 with a JSON body, never 500 ---------------------------------------------


def test_reads_the_ui_and_metrics_answer_when_the_database_is_unreachable(clock: Any) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/receiver"
    # a proxy names the user: no session row to read, so the pages themselves meet the outage
    settings = receiver_settings(
        url, **{"ui.trusted_user_header": "X-Remote-User", "ui.secret_key": "s" * 32}
    )
    container = bootstrap(settings, clock=clock)
    try:
        client = create_app(container=container).test_client()
        assert post_webhook(client, VALID, "team-a").status_code == 503
        answers = {
            path: client.get(path, headers={"Accept": "text/html", "X-Remote-User": "alice"})
            for path in ("/api/v1/incidents", "/api/v1/incidents/1", "/incidents", "/overview")
        }
        counters = metric(client, WEBHOOKS, result="unavailable", receiver="team-a")
        scraped = client.get("/metrics")
    finally:
        container.close()
    for path, answer in answers.items():
        assert answer.status_code == 503, (path, answer.get_data(as_text=True)[:300])
        assert answer.get_json()["error"] == "storage_unavailable", path
    assert scraped.status_code == 200 and counters == 1


def test_a_login_is_refused_with_503_when_the_database_is_unreachable(clock: Any) -> None:
    # Sessions and login limits live in the database, so a login cannot be granted without it.
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/receiver"
    settings = receiver_settings(
        url,
        **{
            "ui.users": {"alice": generate_password_hash(PASSWORD)},
            "ui.secret_key": "s" * 32,
            "ui.cookie_secure": False,
        },
    )
    container = bootstrap(settings, clock=clock)
    try:
        client = create_app(container=container).test_client()
        refused = login(client)
        page = client.get("/incidents", headers={"Accept": "text/html"})
    finally:
        container.close()
    assert refused.status_code == 503
    assert refused.get_json()["error"] == "storage_unavailable"
    assert page.status_code in (302, 303) and "/login" in page.headers["Location"]
