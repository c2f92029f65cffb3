"""Fixtures of the packaging tests: an environment without the developer's RECEIVER_* variables
(a migrated SQLite database for the real processes is ``sqlite_migrated``, in tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.packaging.helpers import MULTIPROC_ENV
from tests.support.cli import without_receiver_variables


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    without_receiver_variables(monkeypatch)
    for name in ("FORWARDED_ALLOW_IPS", MULTIPROC_ENV):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch
