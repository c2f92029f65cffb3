"""Expectation files: a stable summary of the incidents a replay produced, and how it differs.

The summary holds what the receiver decided, nothing a database or a wall clock chose: per
incident its group, status, flags, counts and runbook, its alerts by labels with their episodes
(alert times only), the kinds of its timeline and its deliveries (receiver and action, in order;
cancelled ones marked). No ids, no receive times, no delivery states beyond "cancelled" (whether
a vendor took it is the sender's business, not the routing decision).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

HUMAN_EVENTS = frozenset({"note", "acknowledged"})  # people add these, replays never do
HEADER = (
    "# What `receiver replay` made of these requests; `receiver replay --expect THIS_FILE`\n"
    "# compares a replay with it. Rewrite it with --write-expect after reviewing a change.\n"
)


class ExpectationError(ValueError):
    """An expectation file that cannot be read."""


class _Flow(dict[str, Any]):
    """A mapping written on one line."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    _Flow, lambda d, data: d.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True)
)


def summarize(details: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The summary of incidents as the read API shows them, in a stable order."""
    return {"incidents": [_incident(d) for d in sorted(details, key=_order)]}


def _order(d: dict[str, Any]) -> tuple[str, str, str, str]:
    starts = [e["starts_at"] for a in d["alerts"] for e in a["episodes"]]
    labels = json.dumps(d["group"]["group_labels"], sort_keys=True)
    return d["receiver"], min(starts, default=""), labels, d["title"]


def _incident(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "receiver": d["receiver"],
        "group": _sorted(d["group"]["group_labels"]),
        "title": d["title"],
        "severity": d["severity"],
        "status": d["status"],
        "flapping": d["flapping"],
        "flap_count": d["flap_count"],
        "truncated": d["truncated"],
        "opened_by_resolve": d["opened_by_resolve"],
        "runbook": d["runbook_url"],
        "runbook_missing": d["runbook_missing"],
        "counts": d["counts"],
        "alerts": [_alert(a) for a in sorted(d["alerts"], key=lambda a: a["fingerprint"])],
        "timeline": [e["kind"] for e in d["timeline"] if e["kind"] not in HUMAN_EVENTS],
        "deliveries": [_delivery(x) for x in d["deliveries"]],
    }


def _alert(a: dict[str, Any]) -> dict[str, Any]:
    episodes = sorted(a["episodes"], key=lambda e: e["starts_at"])
    return {
        "fingerprint": a["fingerprint"],
        "labels": _sorted(a["labels"]),
        "episodes": [_episode(e) for e in episodes],
    }


def _episode(e: dict[str, Any]) -> dict[str, Any]:
    """An episode by its alert times; a group resolve ends it at a receive time: left out."""
    out = {"starts_at": e["starts_at"]}
    if e["resolution"] != "group_resolved":
        out["ends_at"] = e["ends_at"]
    out |= {
        "status": e["status"],
        "resolution": e["resolution"],
        "seen_firing": e["seen_firing"],
        "seen": e["seen_count"],
        "stale": e["stale_firing_count"],
    }
    return out


def _sorted(labels: dict[str, str]) -> dict[str, str]:
    """Labels by name (JSONB on Postgres keeps its own order): the same text on every database."""
    return dict(sorted(labels.items()))


def _delivery(d: dict[str, Any]) -> str:
    text = f"{d['receiver']} {d['action']}"
    return text + " (cancelled)" if d["state"] == "cancelled" else text


def dumps(summary: dict[str, Any], path: str | Path = "expect.yaml") -> str:
    """The file's text: JSON for a ``.json`` path, else commented YAML."""
    if Path(path).suffix.lower() == ".json":
        return json.dumps(summary, indent=1, ensure_ascii=False) + "\n"
    return HEADER + _yaml(summary)


def _yaml(summary: dict[str, Any]) -> str:
    return yaml.dump(
        _styled(summary), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=4096
    )


def _styled(summary: dict[str, Any]) -> dict[str, Any]:
    """Groups, counts and episodes on one line each; tolerant of hand-edited shapes."""
    incidents = []
    for incident in summary.get("incidents") or []:
        if isinstance(incident, dict):
            incident = {k: _flow(v) if k in ("group", "counts") else v for k, v in incident.items()}
            incident["alerts"] = [_styled_alert(a) for a in incident.get("alerts") or []]
        incidents.append(incident)
    return {**summary, "incidents": incidents}


def _styled_alert(alert: Any) -> Any:
    if not isinstance(alert, dict):
        return alert
    return {**alert, "episodes": [_flow(e) for e in alert.get("episodes") or []]}


def _flow(value: Any) -> Any:
    return _Flow(value) if isinstance(value, dict) else value


def load(path: str | Path) -> dict[str, Any]:
    """An expectation file (YAML or JSON); ExpectationError when it is not one."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        doc = json.loads(text) if Path(path).suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ExpectationError(f"{path}: not JSON or YAML: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("incidents"), list):
        raise ExpectationError(f"{path}: not an expectation file (no list of incidents)")
    return doc


def differences(expected: dict[str, Any], actual: dict[str, Any], name: str) -> list[str]:
    """A unified diff from the expectation to what the replay produced; empty when equal."""
    if expected == actual:
        return []
    before, after = _yaml(expected).splitlines(), _yaml(actual).splitlines()
    return list(
        difflib.unified_diff(before, after, f"{name} (expected)", "this replay", lineterm="")
    )
