"""Test databases: migrated SQLite files, Postgres databases on the test server, and the
receiver's settings on one of them.

Postgres is ``$RECEIVER_TEST_POSTGRES`` (default postgresql://postgres@127.0.0.1:5432/test);
``admin`` runs statements such as CREATE DATABASE on its ``postgres`` database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from receiver.bootstrap import bootstrap
from receiver.settings import Settings, load_settings
from receiver.store import migrate
from tests.support.api import TOKEN

PG_SERVER = os.environ.get("RECEIVER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def admin_url(database: str) -> str:
    """The URL of ``database`` on the test Postgres server."""
    return make_url(PG_SERVER).set(database=database).render_as_string(hide_password=False)


def admin(sql: str) -> None:
    """Run one statement on the server's ``postgres`` database, outside a transaction."""
    with psycopg.connect(admin_url("postgres"), autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


def receiver_settings(url: str, **overrides: Any) -> Settings:
    """Settings on the database at ``url`` with the test token; overrides use dotted keys."""
    values = {"database_url": url, "auth.bearer_tokens": [TOKEN], **overrides}
    return load_settings(environ={}, overrides=values)


def migrated_sqlite(path: Path) -> str:
    """The URL of a SQLite file at ``path``, migrated to head."""
    url = f"sqlite:///{path}"
    container = bootstrap(receiver_settings(url))
    migrate.upgrade(container.engine)
    container.engine.dispose()
    return url


@contextmanager
def template_copy(template: str, label: str = "") -> Iterator[str]:
    """The URL of a new Postgres database copied from ``template``, dropped afterwards."""
    name = "_".join(filter(None, [template, label, uuid.uuid4().hex[:8]]))
    admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield admin_url(name)
    finally:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def module_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, label: str
) -> Iterator[str]:
    """For a module-scoped fixture parametrised by database kind: the URL of a migrated
    database of ``request.param`` (sqlite, postgres) of its own, dropped afterwards."""
    if request.param != "postgres":
        yield migrated_sqlite(tmp_path_factory.mktemp(label) / "receiver.db")
        return
    with template_copy(request.getfixturevalue("pg_template"), label) as url:
        yield url
