"""Schema migrations from an empty database, on SQLite and Postgres, through the real commands."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from alembic import command
from click.testing import Result
from sqlalchemy import Engine, inspect, text

from receiver.store import migrate
from receiver.store.db import make_engine
from receiver.store.tables import Base
from tests.support.cli import invoke, without_receiver_variables
from tests.support.databases import PG_SERVER, admin, admin_url
from tests.support.servers import BIN, REPO_ROOT, disposing_engines, receiver_env
from tests.support.skips import need

HEAD = migrate.head_revision()
MODEL_TABLES = set(Base.metadata.tables)
RunDb = Callable[..., Result]


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all: a new SQLite file, or a new Postgres database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"receiver_migrations_{uuid.uuid4().hex}"
    try:
        admin(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        need("Postgres", f"{PG_SERVER}: {str(exc).strip()[:200]}")
    try:
        yield admin_url(name)
    finally:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def engines() -> Iterator[list[Engine]]:
    """Every engine that connects during the test (the CLI's own too), disposed afterwards."""
    with disposing_engines() as seen:
        yield seen


@pytest.fixture
def receiver_db(monkeypatch: pytest.MonkeyPatch, empty_url: str, engines: list[Engine]) -> RunDb:
    """Run ``receiver db <args>`` in process against the empty database."""
    without_receiver_variables(monkeypatch)
    monkeypatch.setenv("RECEIVER_DATABASE_URL", empty_url)

    def run(*args: str) -> Result:
        return invoke("db", *args)

    return run


@pytest.fixture
def engine(empty_url: str, engines: list[Engine]) -> Engine:
    built = make_engine(empty_url)
    engines.append(built)
    return built


def alembic_cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The real ``alembic`` command of this venv, configured by alembic.ini in the repo root."""
    return subprocess.run(
        [str(BIN / "alembic"), "-c", "alembic.ini", *args],
        cwd=REPO_ROOT,
        env=receiver_env(url, tokens=()),
        capture_output=True,
        text=True,
        timeout=60,
    )


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_db_upgrade_takes_an_empty_database_to_head_where_db_check_and_alembic_check_pass(
    receiver_db: RunDb, engine: Engine, empty_url: str
) -> None:
    result = receiver_db("upgrade")
    assert result.exit_code == 0, result.output
    assert f"at {HEAD}" in result.output
    assert migrate.current_revision(engine) == HEAD
    assert tables(engine) == MODEL_TABLES | {"alembic_version"}
    assert migrate.drift(engine) == []
    check = alembic_cli(empty_url, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "No new upgrade operations detected" in check.stdout + check.stderr
    result = receiver_db("check")
    assert result.exit_code == 0, result.output
    assert f"at head ({HEAD}) and in sync" in result.stdout


def test_schema_drift_at_head_fails_db_check(receiver_db: RunDb, engine: Engine) -> None:
    assert receiver_db("upgrade").exit_code == 0
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_incidents_receiver_opened_at"))
    assert any("ix_incidents_receiver_opened_at" in d for d in migrate.drift(engine))
    result = receiver_db("check")
    assert result.exit_code == 1
    assert "drift:" in result.stderr and "ix_incidents_receiver_opened_at" in result.stderr


def test_downgrade_to_base_removes_the_schema_and_upgrade_rebuilds_it(
    receiver_db: RunDb, engine: Engine
) -> None:
    assert receiver_db("upgrade").exit_code == 0
    command.downgrade(migrate.alembic_config(engine), "base")
    assert migrate.current_revision(engine) is None
    assert tables(engine) <= {"alembic_version"}
    again = receiver_db("upgrade")
    assert again.exit_code == 0, again.output
    assert migrate.current_revision(engine) == HEAD
    assert tables(engine) == MODEL_TABLES | {"alembic_version"}
    assert migrate.drift(engine) == []


def test_db_check_fails_with_a_message_on_an_unmigrated_database(
    receiver_db: RunDb, engine: Engine
) -> None:
    result = receiver_db("check")
    assert result.exit_code == 1
    assert f"schema at None, head is {HEAD}" in result.stderr
    assert "in sync" not in result.stdout
    assert tables(engine) <= {"alembic_version"}  # checking never migrates


def test_db_upgrade_twice_changes_nothing_and_keeps_the_data(
    receiver_db: RunDb, engine: Engine
) -> None:
    first = receiver_db("upgrade")
    assert first.exit_code == 0, first.output
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO alert_groups (receiver, group_key, group_key_sha256,"
                " group_key_derived, group_labels, first_seen_at, last_seen_at)"
                " VALUES ('r', '{}:{}', :sha, false, '{}', :now, :now)"
            ),
            {"sha": "0" * 64, "now": "2026-11-28 00:00:00"},
        )
    second = receiver_db("upgrade")
    assert second.exit_code == 0, second.output
    assert second.output == first.output
    assert migrate.current_revision(engine) == HEAD
    assert migrate.drift(engine) == []
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM alert_groups")) == 1


def test_db_upgrade_takes_its_migrations_from_receiver_migrations_dir(
    receiver_db: RunDb, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECEIVER_MIGRATIONS_DIR", str(REPO_ROOT / "migrations"))
    result = receiver_db("upgrade")
    assert result.exit_code == 0, result.output
    assert migrate.current_revision(engine) == HEAD
