"""The rule for tests whose component (Postgres, Prometheus, a browser...) is missing."""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(component: str, reason: str) -> None:
    """Skip outside CI; in CI a missing component is a failure."""
    message = f"{component} unavailable: {reason}"
    if IN_CI:
        pytest.fail(message + " (required in CI)", pytrace=False)
    pytest.skip(message)
