"""The ``receiver`` command run in this process with click's CliRunner."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner, Result

from receiver.cli import main

Run = Callable[..., Result]  # invoke(*args, **env), as the ``cli`` fixture gives it


def without_receiver_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset every RECEIVER_* variable of this process for the test."""
    for name in [n for n in os.environ if n.startswith("RECEIVER_")]:
        monkeypatch.delenv(name)


def invoke(*args: Any, **env: str) -> Result:
    """``receiver <args>`` with the given environment variables; exceptions propagate."""
    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)
