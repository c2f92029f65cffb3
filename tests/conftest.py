"""Shared fixtures: real SQLite files and real Postgres databases, an app with an injected clock.

The helpers they build on live in tests/support (databases, clock, api).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from xdist.scheduler import LoadScopeScheduling

from receiver.app import create_app
from receiver.bootstrap import Container, bootstrap
from receiver.settings import Settings
from receiver.store import migrate
from tests.support.clock import FakeClock
from tests.support.databases import (
    PG_SERVER,
    admin,
    admin_url,
    migrated_sqlite,
    receiver_settings,
    template_copy,
)
from tests.support.skips import need
from tests.support.versions import VERSIONS, report


def pytest_report_header() -> list[str]:
    """Which Alertmanager and Prometheus each version's tests run (tests/support/versions.py)."""
    return report()


class OneWorkerPerVersion(LoadScopeScheduling):
    """``--dist loadscope``, but each version's e2e scenarios are one scope: its stack starts
    once, in one worker (xdist 3.8's loadgroup ignores ``xdist_group`` on pytest 9)."""

    def _split_scope(self, nodeid: str) -> str:
        if nodeid.startswith("tests/e2e/"):
            for versions in VERSIONS:
                if nodeid.endswith(f"[{versions.id}]"):
                    return f"e2e-{versions.id}"
        return super()._split_scope(nodeid)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LoadScopeScheduling | None:
    """``make test`` runs tests/e2e with ``-n 2 --dist loadscope``: the two versions' stacks
    concurrently, as their scenarios mostly wait on Prometheus's and Alertmanager's timers."""
    if config.getvalue("dist") == "loadscope":
        return OneWorkerPerVersion(config, log)
    return None


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A database for this test session, migrated once; per-test databases copy it."""
    name = f"receiver_test_{uuid.uuid4().hex[:10]}"
    try:
        admin(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        need("Postgres", f"{PG_SERVER}: {str(exc).strip()[:200]}")
    url = admin_url(name)
    container = bootstrap(receiver_settings(url))
    migrate.upgrade(container.engine)
    container.engine.dispose()
    yield name
    admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    """A fresh, migrated Postgres database for one test, dropped afterwards."""
    with template_copy(pg_template) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'receiver.db'}"


@pytest.fixture
def sqlite_migrated(tmp_path: Path) -> str:
    """The URL of a SQLite file of this test, migrated to head."""
    return migrated_sqlite(tmp_path / "receiver.db")


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs on a migrated SQLite file and on a migrated Postgres database."""
    if request.param == "postgres":
        return request.getfixturevalue("pg_url")
    return migrated_sqlite(tmp_path / "receiver.db")


@pytest.fixture
def make_settings(db_url: str):  # type: ignore[no-untyped-def]
    """Settings on this test's database; keyword overrides use dotted keys via a dict."""

    def build(overrides: dict[str, Any] | None = None) -> Settings:
        return receiver_settings(db_url, **(overrides or {}))

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
