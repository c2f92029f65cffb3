"""The rule for tests whose component (Postgres, Prometheus, a browser...) is missing, and
finding the binaries they run."""

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


def first_executable(*candidates: str | None) -> str | None:
    """The first candidate path that is an executable file, or None."""
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def require_binary(component: str, binary: str | None, package: str) -> str:
    """``binary``, the path of ``component``'s binary; skip (fail in CI) when it is None."""
    if binary is None:
        need(component, f"no {component.lower()} binary (apt-get install {package})")
    assert binary is not None
    return binary
