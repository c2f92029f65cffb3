"""Replay recorded or hand-written webhooks against a receiver (HTTP or in-process)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import requests

INTAKE_PATH = "/api/v1/alertmanager"


@dataclass(frozen=True)
class ReplayItem:
    """One request to send: the exact body and the receiver name of the recorded path."""

    source: str
    body: bytes
    receiver: str | None = None
    recorded_at: float | None = None
    recorded_status: int | None = None

    @property
    def path(self) -> str:
        return f"{INTAKE_PATH}/{self.receiver}" if self.receiver else INTAKE_PATH


@dataclass(frozen=True)
class ReplayResult:
    item: ReplayItem
    status: int
    answer: dict[str, Any]


class Target(Protocol):
    def post(self, path: str, body: bytes) -> tuple[int, dict[str, Any]]: ...


def load_items(
    paths: Iterable[str | Path], warn: Callable[[str], None] = print
) -> list[ReplayItem]:
    """Expand files and folders (``*.json`` in name order) into items; skip non-webhooks."""
    items: list[ReplayItem] = []
    for path in map(Path, paths):
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        for file in files:
            item = parse_item(file)
            if item is None:
                warn(f"skipped {file}: neither a webhook body nor a recorded request")
            else:
                items.append(item)
    return items


def parse_item(file: Path) -> ReplayItem | None:
    """A recorded request (``body_raw`` + ``path``) or a plain webhook body."""
    raw = file.read_bytes()
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    if isinstance(doc.get("body_raw"), str):
        receiver = str(doc.get("path", "")).rstrip("/").rsplit("/", 1)[-1] or None
        return ReplayItem(
            source=str(file),
            body=doc["body_raw"].encode("utf-8"),
            receiver=receiver,
            recorded_at=doc.get("received_unix"),
            recorded_status=doc.get("response_status"),
        )
    if isinstance(doc.get("alerts"), list):
        return ReplayItem(source=str(file), body=raw)
    return None


class HttpTarget:
    """A running receiver at ``base_url``."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None, timeout: float = 10):
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers.update(headers or {})
        self.timeout = timeout

    def post(self, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """Status 0 when the receiver cannot be reached."""
        try:
            response = self.session.post(
                self.base_url + path,
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            return 0, {"error": "unreachable", "message": f"{type(exc).__name__} {self.base_url}"}
        return response.status_code, _json(response.content)


class AppTarget:
    """A Flask app in this process (through its test client: no socket)."""

    def __init__(self, app: Any, headers: dict[str, str] | None = None):
        self.client = app.test_client()
        self.headers = headers or {}

    def post(self, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        response = self.client.post(
            path, data=body, content_type="application/json", headers=self.headers
        )
        return response.status_code, _json(response.get_data())


def _json(content: bytes) -> dict[str, Any]:
    try:
        value = json.loads(content)
    except ValueError:
        return {"error": "non-JSON answer", "message": content[:200].decode("utf-8", "replace")}
    return value if isinstance(value, dict) else {"answer": value}


def replay(
    items: list[ReplayItem],
    target: Target,
    timed: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> list[ReplayResult]:
    """Send every item in order; with ``timed``, keep the recorded spacing between them."""
    results = []
    previous: float | None = None
    for item in items:
        if timed and item.recorded_at is not None:
            if previous is not None and item.recorded_at > previous:
                sleep(item.recorded_at - previous)
            previous = item.recorded_at
        status, answer = target.post(item.path, item.body)
        results.append(ReplayResult(item, status, answer))
    return results


def format_table(results: list[ReplayResult]) -> str:
    """A plain-text table of what each request got."""
    header = (
        "file",
        "receiver",
        "status",
        "alerts",
        "new",
        "dup",
        "resolved",
        "stale",
        "incidents",
    )
    rows = [header]
    for r in results:
        a = r.answer
        if r.status == 200:
            incidents = ",".join(str(i) for i in a.get("incidents", []))
            counts = [
                str(a.get(k, "")) for k in ("alerts", "new", "duplicate", "resolved", "stale")
            ]
        else:
            incidents = str(a.get("message", a.get("error", "")))[:60]
            counts = ["-"] * 5
        rows.append(
            (Path(r.item.source).name, r.item.receiver or "-", str(r.status), *counts, incidents)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )
