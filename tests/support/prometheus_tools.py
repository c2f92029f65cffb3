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
# webhook_configs keys of the shipped Alertmanager config and the release that added each
# (older ones refuse the config): timeout came with 0.28.0 (prometheus/alertmanager#4137)
NEWER_WEBHOOK_KEYS = {"timeout": (0, 28)}


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run a tool, capturing its output; the caller checks the result."""
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False
    )


def promtool(*args: str | Path, on: Versions = DEBIAN_12) -> subprocess.CompletedProcess[str]:
    return run(on.require("promtool"), *args)


def amtool(*args: str | Path, on: Versions = DEBIAN_12) -> subprocess.CompletedProcess[str]:
    return run(on.require("amtool"), *args)


def for_alertmanager(text: str, version: str) -> str:
    """Alertmanager config ``text`` without the lines of the webhook keys ``version`` predates
    (what the shipped config tells users of older releases to delete)."""
    release = tuple(int(part) for part in version.split(".")[:2])
    for key, since in NEWER_WEBHOOK_KEYS.items():
        if release < since:
            text = re.sub(rf"^[ \t]+{key}: [^\n]*\n", "", text, flags=re.MULTILINE)
    return text


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
