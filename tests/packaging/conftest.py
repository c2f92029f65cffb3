"""Fixtures of the packaging tests: an environment without the developer's RECEIVER_* variables,
and a migrated SQLite database for the real processes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from receiver.bootstrap import bootstrap
from receiver.settings import load_settings
from receiver.store import migrate
from tests.packaging.helpers import MULTIPROC_ENV


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in [n for n in os.environ if n.startswith("RECEIVER_")]:
        monkeypatch.delenv(name)
    for name in ("FORWARDED_ALLOW_IPS", MULTIPROC_ENV):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def migrated_sqlite(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'receiver.db'}"
    settings = load_settings(environ={}, overrides={"database_url": url}, require_auth=False)
    container = bootstrap(settings)
    migrate.upgrade(container.engine)
    container.engine.dispose()
    return url
