"""Golden files (tests/golden/*.json, per newer recorded set in a folder): reviewed, checked in."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).parent.parent / "golden"
UPDATE_GOLDEN = os.environ.get("RECEIVER_TEST_UPDATE_GOLDEN", "") not in ("", "0")


def golden_name(name: str, version: str = "0.25") -> str:
    """The golden of ``name`` for a recorded set: 0.25's at the top, others in a folder each."""
    return name if version == "0.25" else f"alertmanager-{version}/{name}"


def check_golden(name: str, observed: dict[str, Any]) -> None:
    """Compare with tests/golden/<name>.json; RECEIVER_TEST_UPDATE_GOLDEN=1 rewrites it."""
    path = GOLDEN / f"{name}.json"
    if UPDATE_GOLDEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump(observed), encoding="utf-8")
    assert path.exists(), f"no golden {path.name}: run with RECEIVER_TEST_UPDATE_GOLDEN=1, review"
    expected = json.loads(path.read_text(encoding="utf-8"))
    assert observed == expected


def dump(value: Any) -> str:
    """Indented JSON with each row (a list of scalars) on one line, for reviewable diffs."""
    text = json.dumps(value, indent=1)
    text = re.sub(r"\[\s+([^\[\]{}\n]+(?:\n\s*[^\[\]{}\s][^\[\]{}\n]*)*)\s+\]", _row, text)
    assert json.loads(text) == value
    return text + "\n"


def _row(match: re.Match[str]) -> str:
    return "[" + " ".join(line.strip() for line in match.group(1).splitlines()) + "]"
