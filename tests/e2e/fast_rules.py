"""A fast variant of the shipped Triton alert rules, for end-to-end tests that cannot wait."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

DURATION = re.compile(r"(?:\d+(?:ms|[smhdwy]))+")
RANGE = re.compile(r"\[\s*(?:\d+(?:ms|[smhdwy]))+\s*\]")  # [5m], not subqueries [30m:1m]
UNCHANGED = {"Watchdog"}


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings (the PromQL expressions) as `|` blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _faster(rule: dict[str, Any], window: str, for_: str) -> dict[str, Any]:
    """The rule with every range window set to `window` and its `for` to `for_`."""
    if rule.get("alert") in UNCHANGED:
        return rule
    fast = {**rule, "expr": RANGE.sub(f"[{window}]", str(rule["expr"]))}
    if "for" in fast:
        fast["for"] = for_
    return fast


# window: ~10 one-second scrapes on 2.42's closed ranges and 3.x's left-open ones alike (a sample
# exactly on the left edge is all 3.x drops): enough for rate() and increase() on both
def fast_rules(source: Path, dest: Path, *, window: str = "10s", for_: str = "2s") -> Path:
    """Write `source` to `dest` with every `[5m]`-style window and every `for:` shortened."""
    for value in (window, for_):
        if not DURATION.fullmatch(value):
            raise ValueError(f"not a Prometheus duration: {value!r}")
    data = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
    for group in data["groups"]:
        group["rules"] = [_faster(rule, window, for_) for rule in group["rules"]]
    text = f"# Generated from {Path(source).name} by tests/e2e/fast_rules.py: do not edit.\n"
    text += yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000)
    Path(dest).write_text(text, encoding="utf-8")
    return Path(dest)
