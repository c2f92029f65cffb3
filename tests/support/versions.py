"""The two Prometheus + Alertmanager stacks the tests run against, and their binaries.

``am0.25``: Debian 12's packages (Alertmanager 0.25, Prometheus 2.42), from /usr/bin or $PATH, or
the binaries $RECEIVER_TEST_ALERTMANAGER and $RECEIVER_TEST_PROMETHEUS name. ``am0.33``: Debian
unstable's (Alertmanager 0.33.1, Prometheus 3.5.3, pinned in .ci/newest-packages), in the
directory $RECEIVER_TEST_NEWEST_BIN: what ``.ci/fetch-newest`` prints (``make test`` and .ci/run
set it). A missing binary skips the test, or fails it when CI=true (``need``).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.alertmanager import alertmanager_binary
from tests.support.prometheus import prometheus_binary
from tests.support.skips import first_executable, need

NEWEST_ENV = "RECEIVER_TEST_NEWEST_BIN"
COMPONENTS = ("alertmanager", "prometheus", "promtool", "amtool")
DEBIAN_PACKAGE = {
    "alertmanager": "prometheus-alertmanager",
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "amtool": "prometheus-alertmanager",
}
NEWEST_FILE = {"alertmanager": "prometheus-alertmanager"}  # Debian's name; the rest as is
VERSION = re.compile(r"version (\d+(?:\.\d+)*)")


@dataclass(frozen=True)
class Versions:
    """One stack: where its four binaries are (None: missing, and why)."""

    id: str  # the pytest id: am0.25, am0.33
    title: str  # what it is, for skip reasons and the report header
    locate: Callable[[str], str | None]
    missing: Callable[[str], str]

    def path(self, component: str) -> str | None:
        """The binary of ``component`` (alertmanager, prometheus, promtool, amtool), or None."""
        return self.locate(component)

    def require(self, component: str) -> str:
        """The binary of ``component``; skip (fail in CI) without it."""
        path = self.path(component)
        if path is None:
            need(f"{component} of {self.id} ({self.title})", self.missing(component))
        assert path is not None
        return path

    def version(self, component: str) -> str | None:
        """What the binary's ``--version`` says (``0.25.0``, ``3.5.3``), or None if missing."""
        path = self.path(component)
        return binary_version(path) if path else None

    def __str__(self) -> str:
        return self.id


@functools.cache
def binary_version(path: str) -> str:
    """The version number on the first line of ``path --version``."""
    result = subprocess.run(
        [path, "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    first = (result.stdout or result.stderr).splitlines()[:1]
    match = VERSION.search(first[0]) if first else None
    if match is None:
        raise RuntimeError(f"{path} --version: no version in {first}")
    return match.group(1)


def _debian_12(component: str) -> str | None:
    if component == "alertmanager":
        return alertmanager_binary()
    if component == "prometheus":
        return prometheus_binary()
    return first_executable(shutil.which(component), f"/usr/bin/{component}")


def _newest(component: str) -> str | None:
    directory = os.environ.get(NEWEST_ENV)
    if not directory:
        return None
    return first_executable(str(Path(directory) / NEWEST_FILE.get(component, component)))


def _newest_missing(component: str) -> str:
    directory = os.environ.get(NEWEST_ENV)
    if not directory:
        return (
            f"${NEWEST_ENV} is unset: run .ci/fetch-newest and set it to the directory it prints"
            " (make test does both)"
        )
    return f"no executable {NEWEST_FILE.get(component, component)} in ${NEWEST_ENV}={directory}"


DEBIAN_12 = Versions(
    "am0.25",
    "Debian 12's Alertmanager 0.25 and Prometheus 2.42",
    _debian_12,
    lambda component: f"not installed (apt-get install {DEBIAN_PACKAGE[component]})",
)
NEWEST = Versions(
    "am0.33",
    "Debian unstable's Alertmanager 0.33 and Prometheus 3.5",
    _newest,
    _newest_missing,
)
VERSIONS = (DEBIAN_12, NEWEST)

# a test run with each stack's binaries: @on_each_version, then take ``versions: Versions``
on_each_version = pytest.mark.parametrize("versions", VERSIONS, ids=str)


def report() -> list[str]:
    """One line per stack: each binary's version, or why it is missing (the pytest header)."""
    lines = []
    for versions in VERSIONS:
        found = []
        for component in COMPONENTS:
            try:
                found.append(f"{component} {versions.version(component) or 'missing'}")
            except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                found.append(f"{component} unreadable ({exc})")
        lines.append(f"{versions.id} ({versions.title}): {', '.join(found)}")
        if versions.path("alertmanager") is None:
            lines.append(f"  {versions.missing('alertmanager')}")
    return lines
