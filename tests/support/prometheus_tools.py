"""Prometheus' command-line tools (promtool, amtool), its rule files and its durations.

The tools come from one version's stack (tests/support/versions.py): Debian 12's (promtool 2.42,
amtool 0.25, on $PATH or in /usr/bin) unless ``on`` names another; without one the test skips,
or fails when CI=true.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.support.versions import DEBIAN_12, Versions

TOOL_TIMEOUT = 300.0
DURATION = re.compile(
    r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?"
)
UNITS = [365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001]


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run a tool, capturing its output; the caller checks the result."""
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False
    )


def promtool(*args: str | Path, on: Versions = DEBIAN_12) -> subprocess.CompletedProcess[str]:
    return run(on.require("promtool"), *args)


def amtool(*args: str | Path, on: Versions = DEBIAN_12) -> subprocess.CompletedProcess[str]:
    return run(on.require("amtool"), *args)


def alert_rules(path: Path) -> list[dict[str, Any]]:
    """The alerting rules of a rules file, all groups in order."""
    groups = yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def seconds(duration: str) -> float:
    """A Prometheus duration string (30d, 1h30m, 500ms) in seconds; ValueError if it is none."""
    match = DURATION.fullmatch(duration) if isinstance(duration, str) else None
    if not duration or match is None or not any(match.groups()):
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return sum(int(n) * unit for n, unit in zip(match.groups(), UNITS, strict=True) if n)
