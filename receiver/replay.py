"""Replay recorded or hand-written webhooks against a receiver (HTTP or in-process).

In process, the receiver runs on a simulated clock set to each request's recorded time, and a
worker pass (context, then deliveries, always dry run) runs before each request, as the worker
would have between them in production: what coalesces, what is held back and what is cancelled
comes out as it did then, without waiting.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import quote

import requests

from receiver import fixture

if TYPE_CHECKING:
    from receiver.bootstrap import Container

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
        """The intake path; a name with a slash came from the body, so it needs no suffix."""
        if not self.receiver or "/" in self.receiver:
            return INTAKE_PATH
        return f"{INTAKE_PATH}/{quote(self.receiver, safe='')}"


@dataclass(frozen=True)
class ReplayResult:
    item: ReplayItem
    status: int
    answer: dict[str, Any]


class Target(Protocol):
    def post(self, path: str, body: bytes) -> tuple[int, dict[str, Any]]: ...


@runtime_checkable
class ClockedTarget(Protocol):
    """A target whose clock follows the recorded time of each request."""

    def move_to(self, recorded_at: float | None) -> None: ...


class ReadError(Exception):
    """The incidents of a replay could not be read back."""


def load_items(
    paths: Iterable[str | Path], warn: Callable[[str], None] = print
) -> list[ReplayItem]:
    """Expand files and folders (``*.json`` in name order) into items; skip non-webhooks."""
    items: list[ReplayItem] = []
    for path in map(Path, paths):
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        for file in files:
            loaded = parse_file(file)
            if loaded is None:
                warn(f"skipped {file}: neither a webhook body nor a recorded request")
            else:
                items.extend(loaded)
    return items


def parse_file(file: Path) -> list[ReplayItem] | None:
    """The items of one file: a single-file fixture, a recorded request or a webhook body."""
    try:
        doc = json.loads(file.read_bytes())
    except ValueError:
        return None
    if fixture.is_fixture(doc):
        try:
            requests_ = fixture.read(doc)
        except fixture.FixtureError as exc:
            raise fixture.FixtureError(f"{file}: {exc}") from None
        return [_fixture_item(file, r) for r in requests_]
    item = parse_item(file)
    return None if item is None else [item]


def _fixture_item(file: Path, request: fixture.FixtureRequest) -> ReplayItem:
    return ReplayItem(
        source=f"{file}#{request.index + 1}",
        body=request.body,
        receiver=request.receiver,
        recorded_at=request.received_at.timestamp(),
        recorded_status=200,
    )


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

    def incident(self, incident_id: int) -> dict[str, Any]:
        """One incident from the read API; ReadError says why it cannot be read."""
        url = f"{self.base_url}/api/v1/incidents/{incident_id}"
        try:
            response = self.session.get(url, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ReadError(f"cannot read {url}: {type(exc).__name__}") from None
        if response.status_code == 401:
            raise ReadError(
                f"{self.base_url} needs a UI login to read incidents (its UI is configured): "
                "compare in process instead, with its config (receiver replay -c CONFIG ...)"
            )
        if response.status_code != 200:
            raise ReadError(f"{url} answered {response.status_code}")
        return _json(response.content)

    def close(self) -> None:
        self.session.close()


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


class SimulatedClock:
    """The receiver's clock in an in-process replay: at the recorded times, never backwards."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now

    def __call__(self) -> datetime:
        """The simulated time; before any recorded time, the real time when first asked."""
        if self.now is None:
            self.now = datetime.now(UTC)
        return self.now

    def move_to(self, when: datetime) -> None:
        if self.now is None or when > self.now:
            self.now = when

    def advance(self, seconds: float) -> None:
        self.now = self() + timedelta(seconds=seconds)


class InProcessTarget:
    """This process's receiver on a simulated clock, with a dry-run worker pass before each post."""

    def __init__(
        self, container: Container, clock: SimulatedClock, headers: dict[str, str] | None = None
    ):
        from receiver.app import create_app
        from receiver.bootstrap import build_delivery_worker, build_enricher

        self.container, self.clock = container, clock
        self.app = AppTarget(create_app(container=container), headers)
        self.enricher = build_enricher(container)
        self.deliverer = build_delivery_worker(container)
        if self.deliverer is not None:
            self.deliverer.dry_run = True  # a replay renders and records, never sends

    def move_to(self, recorded_at: float | None) -> None:
        if recorded_at is not None:
            self.clock.move_to(datetime.fromtimestamp(recorded_at, UTC))

    def post(self, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """The worker's pass at this request's time, then the request (settle() passes last)."""
        # a pass right after the request would decide nothing the next one could see differently
        self.work()
        return self.app.post(path, body)

    def work(self) -> None:
        """One worker pass at the simulated time."""
        if self.enricher is not None:
            self.enricher.drain()
        if self.deliverer is not None:
            self.deliverer.drain()

    def settle(self) -> float:
        """After the last request, let pass the time held-back deliveries wait; return it."""
        settings = self.container.settings
        seconds = (
            max(settings.flapping.hold_down_minutes * 60, settings.delivery.coalesce_seconds) + 60
        )
        self.clock.advance(seconds)
        self.work()
        return seconds

    def incident(self, incident_id: int) -> dict[str, Any]:
        """One incident as the read API shows it."""
        detail = self.container.queries.get_incident(incident_id)
        if detail is None:
            raise ReadError(f"incident {incident_id} is gone")
        return detail

    def close(self) -> None:
        if self.enricher is not None:
            self.enricher.evaluator.close()
        if self.deliverer is not None:
            self.deliverer.close()


def replay(
    items: list[ReplayItem],
    target: Target,
    timed: bool = False,
    sleep: Callable[[float], None] | None = None,
    speed: float = 1.0,
) -> list[ReplayResult]:
    """Send every item in order, ``timed``: at the recorded spacing divided by ``speed``."""
    sleep = sleep or time.sleep
    results = []
    previous: float | None = None
    for item in items:
        if timed and item.recorded_at is not None:
            if previous is not None and item.recorded_at > previous:
                sleep((item.recorded_at - previous) / speed)
            previous = item.recorded_at
        if isinstance(target, ClockedTarget):  # in process: the clock follows the recording
            target.move_to(item.recorded_at)
        status, answer = target.post(item.path, item.body)
        results.append(ReplayResult(item, status, answer))
    return results


def touched_incidents(results: list[ReplayResult]) -> list[int]:
    """The incidents the stored requests touched, in the order they were first touched."""
    seen: dict[int, None] = {}
    for r in results:
        if r.status == 200:
            seen.update(dict.fromkeys(r.answer.get("incidents", [])))
    return list(seen)


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
    rows: list[tuple[str, ...]] = [header]
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
