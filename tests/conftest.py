"""Shared fixtures: real SQLite files and real Postgres databases, an app with an injected clock."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from receiver.app import create_app
from receiver.bootstrap import Container, bootstrap
from receiver.settings import Settings, load_settings
from receiver.store import migrate

FIXTURES = Path(__file__).parent / "fixtures" / "alertmanager-0.25"
PG_SERVER = os.environ.get("RECEIVER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TOKEN = "test-token-0123456789abcdef"


def need(component: str, reason: str) -> None:
    """Skip outside CI; in CI a missing component is a failure."""
    message = f"{component} unavailable: {reason}"
    if IN_CI:
        pytest.fail(message + " (required in CI)", pytrace=False)
    pytest.skip(message)


@dataclass
class FakeClock:
    """A clock the tests move by hand."""

    now: datetime = datetime(2026, 11, 28, 0, 20, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def _admin_url(database: str) -> str:
    return make_url(PG_SERVER).set(database=database).render_as_string(hide_password=False)


def _admin(sql: str) -> None:
    with psycopg.connect(_admin_url("postgres"), autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A database for this test session, migrated once; per-test databases copy it."""
    name = f"receiver_test_{uuid.uuid4().hex[:10]}"
    try:
        _admin(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        need("Postgres", f"{PG_SERVER}: {str(exc).strip()[:200]}")
    url = _admin_url(name)
    container = bootstrap(_settings(url))
    migrate.upgrade(container.engine)
    container.engine.dispose()
    yield name
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    """A fresh, migrated Postgres database for one test, dropped afterwards."""
    name = f"{pg_template}_{uuid.uuid4().hex[:8]}"
    _admin(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    yield _admin_url(name)
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'receiver.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs on a migrated SQLite file and on a migrated Postgres database."""
    if request.param == "postgres":
        return request.getfixturevalue("pg_url")
    return migrated_sqlite(tmp_path / "receiver.db")


@contextmanager
def module_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, label: str
) -> Iterator[str]:
    """For a module-scoped fixture parametrised by database kind: the URL of a migrated
    database of ``request.param`` (sqlite, postgres) of its own, dropped afterwards."""
    if request.param != "postgres":
        yield migrated_sqlite(tmp_path_factory.mktemp(label) / "receiver.db")
        return
    template = request.getfixturevalue("pg_template")
    name = f"{template}_{label}_{uuid.uuid4().hex[:8]}"
    _admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield _admin_url(name)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrated_sqlite(path: Path) -> str:
    """The URL of a SQLite file at ``path``, migrated to head."""
    url = f"sqlite:///{path}"
    container = bootstrap(_settings(url))
    migrate.upgrade(container.engine)
    container.engine.dispose()
    return url


def _settings(url: str, **overrides: Any) -> Settings:
    values = {"database_url": url, "auth.bearer_tokens": [TOKEN], **overrides}
    return load_settings(environ={}, overrides=values)


@pytest.fixture
def make_settings(db_url: str):  # type: ignore[no-untyped-def]
    """Settings on this test's database; keyword overrides use dotted keys via a dict."""

    def build(overrides: dict[str, Any] | None = None) -> Settings:
        return _settings(db_url, **(overrides or {}))

    return build


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def container(make_settings, clock: FakeClock) -> Iterator[Container]:  # type: ignore[no-untyped-def]
    built = bootstrap(make_settings(), clock=clock)
    yield built
    built.engine.dispose()


@pytest.fixture
def app(container: Container):  # type: ignore[no-untyped-def]
    return create_app(container=container)


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    """A test client that sends the bearer token unless a test sets its own headers."""
    return app.test_client()


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def post_webhook(client: Any, body: bytes | str, receiver: str | None = None, **kwargs: Any) -> Any:
    """POST a webhook body with the test token."""
    path = "/api/v1/alertmanager" + (f"/{receiver}" if receiver else "")
    headers = {**AUTH, **kwargs.pop("headers", {})}
    kwargs.setdefault("content_type", "application/json")
    return client.post(path, data=body, headers=headers, **kwargs)
