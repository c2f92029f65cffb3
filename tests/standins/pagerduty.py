"""A PagerDuty Events API v2 stand-in: HTTPS on 127.0.0.1, event validation, alert state, faults.

The contract follows PagerDuty's developer docs ("Send an Alert Event", "Events API v2 Overview",
"Events API Rate Limits") as summarised in /work/shared/API-FACTS.md:

- ``POST /v2/enqueue`` takes a JSON event. Valid: **202**
  ``{"status":"success","message":"Event processed","dedup_key":...}``, the key generated (a
  UUID's hex) for a trigger without one. Invalid: **400** ``{"status":"invalid event",
  "message":"Event object is invalid","errors":[...]}``. Throttled: **429**.
- Alerts are kept per (routing_key, dedup_key): a trigger opens an alert (a page) unless one is
  open, in which case it is merged; acknowledge/resolve apply to the open alert and are dropped
  (still 202: the API is asynchronous) when none is open; after resolve, a trigger opens anew.
- ``pagerduty`` 7.x only talks https, so this serves TLS with a certificate for 127.0.0.1 from a
  ``trustme`` CA; clients trust it through ``ca_file`` or ``client_ssl_context()``.
"""

from __future__ import annotations

import json
import shutil
import ssl
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import trustme

from tests.standins import Answer, Clock, Fault, RequestHandler, StandIn

ENQUEUE = "/v2/enqueue"
ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
ROUTING_KEY_LENGTH = 32
INVALID = {"status": "invalid event", "message": "Event object is invalid"}
THROTTLED = {
    "status": "throttle event",
    "message": "Requests for this service are arriving too quickly.  Please retry later.",
}


def event_errors(event: Any) -> list[str]:
    """Why ``event`` breaks the "Send an Alert Event" schema; empty when it is valid."""
    if not isinstance(event, dict):
        return ["Event object must be a JSON object"]
    errors = []
    key = event.get("routing_key")
    if not (isinstance(key, str) and len(key) == ROUTING_KEY_LENGTH):
        errors.append(f"'routing_key' must be a {ROUTING_KEY_LENGTH} character string")
    action = event.get("event_action")
    if action not in ACTIONS:
        errors.append("'event_action' must be one of trigger, acknowledge, resolve")
    dedup = event.get("dedup_key")
    if dedup is None and action in ("acknowledge", "resolve"):
        errors.append(f"'dedup_key' is required for {action} events")
    elif dedup is not None and not (isinstance(dedup, str) and 0 < len(dedup) <= 255):
        errors.append("'dedup_key' must be a non-empty string of at most 255 characters")
    if action == "trigger":
        errors += _payload_errors(event.get("payload"))
    errors += [f"'{f}' must be a string" for f in ("client", "client_url") if _not_str(event, f)]
    return errors + _context_errors(event)


def _not_str(mapping: dict[str, Any], field: str) -> bool:
    return field in mapping and not isinstance(mapping[field], str)


def _payload_errors(payload: Any) -> list[str]:
    """payload.summary (1..1024), source, severity; optional timestamp, component, group, class."""
    if not isinstance(payload, dict):
        return ["'payload' is required for trigger events"]
    errors = []
    summary = payload.get("summary")
    if not (isinstance(summary, str) and summary.strip()):
        errors.append("'payload.summary' is missing or blank")
    elif len(summary) > 1024:
        errors.append("'payload.summary' must be at most 1024 characters")
    source = payload.get("source")
    if not (isinstance(source, str) and source.strip()):
        errors.append("'payload.source' is missing or blank")
    if payload.get("severity") not in SEVERITIES:
        errors.append("'payload.severity' must be one of " + ", ".join(SEVERITIES))
    if "timestamp" in payload and not _is_timestamp(payload["timestamp"]):
        errors.append("'payload.timestamp' must be an ISO 8601 timestamp")
    for field in ("component", "group", "class"):
        if _not_str(payload, field):
            errors.append(f"'payload.{field}' must be a string")
    return errors


def _is_timestamp(value: Any) -> bool:
    try:
        datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    return True


def _context_errors(event: dict[str, Any]) -> list[str]:
    """links[] need an href; images[] need an https src (the docs: "must be served via HTTPS")."""
    errors = []
    for field, required in (("links", "href"), ("images", "src")):
        items = event.get(field, [])
        if not isinstance(items, list):
            errors.append(f"'{field}' must be an array")
            continue
        for i, item in enumerate(items):
            value = item.get(required) if isinstance(item, dict) else None
            if not (isinstance(value, str) and value):
                errors.append(f"'{field}[{i}].{required}' is missing")
            elif field == "images" and not value.startswith("https://"):
                errors.append(f"'images[{i}].src' must be an https URL")
    return errors


@dataclass
class Alert:
    """A PagerDuty alert as far as the Events API shows it."""

    routing_key: str
    dedup_key: str
    summary: str
    severity: str
    status: str = "triggered"  # then "acknowledged" or "resolved"
    events: int = 1  # events applied to it (the trigger that opened it included)
    opened_at: float = 0.0


class PagerDutyStandIn(StandIn):
    """PagerDuty's Events API v2 on ``https://127.0.0.1:PORT``; use as a context manager."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        ca = trustme.CA()
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(server_tls)
        self._tmp = Path(tempfile.mkdtemp(prefix="pagerduty-standin-"))
        self.ca_file = str(self._tmp / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_file)
        self._events: list[dict[str, Any]] = []
        self._alerts: list[Alert] = []
        self._open: dict[tuple[str, str], Alert] = {}
        try:
            super().__init__(clock, tls=server_tls)
        except BaseException:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise
        self.base_url = f"https://127.0.0.1:{self.port}"

    def client_ssl_context(self) -> ssl.SSLContext:
        """An SSL context trusting this stand-in's CA (httpx2 deprecates ``verify=<path>``)."""
        return ssl.create_default_context(cafile=self.ca_file)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every request in arrival order: at (clock), method, path, headers, json (None if the body
        is not JSON), status (None while hung or if dropped), fault ("fail", "hang"), response."""
        return self.records()

    @property
    def events(self) -> list[dict[str, Any]]:
        """Accepted events in order, each with the dedup_key it was applied under."""
        with self._lock:
            return [dict(e) for e in self._events]

    @property
    def pages(self) -> int:
        """How many alerts were opened (each would page someone)."""
        with self._lock:
            return len(self._alerts)

    def alerts(self, status: str | None = None) -> list[dict[str, Any]]:
        """Alerts in the order they were opened, optionally only those in ``status``."""
        with self._lock:
            return [asdict(a) for a in self._alerts if status in (None, a.status)]

    def fail(
        self,
        status: int = 500,
        times: int | None = None,
        seconds: float | None = None,
        retry_after: int | None = None,
        body: Any = None,
    ) -> None:
        """Answer ``status`` (throttle body for 429) to the next ``times`` requests/``seconds``."""
        self.faults.add(Fault(status, times, None, retry_after, body), seconds)

    def describe(self, handler: RequestHandler, body: bytes) -> tuple[str, dict[str, Any]]:
        """Faults match the path; the record keeps the headers and the decoded JSON body."""
        record = {
            "at": self.clock(),
            "method": handler.command,
            "path": handler.path,
            "headers": dict(handler.headers.items()),
            "json": _json_or_none(body),
        }
        return urlsplit(handler.path).path, record

    def injected(self, fault: Fault) -> Answer:
        """A ``fail()`` answer: the given body, else what PagerDuty sends for that status."""
        status = fault.status or 500
        if fault.body is not None:
            body = fault.body
        elif status == 429:
            body = THROTTLED
        elif status == 400:
            body = {**INVALID, "errors": ["injected failure"]}
        else:
            body = {"status": "error", "message": HTTPStatus(status).phrase}
        headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
        return status, body, headers

    def serve(self, handler: RequestHandler, body: bytes, record: dict[str, Any]) -> Answer:
        """The Events API proper: route, decode, validate, apply."""
        if urlsplit(handler.path).path != ENQUEUE:
            return 404, {"status": "not found", "message": "Not Found"}, {}
        if handler.command != "POST":
            return 405, {"status": "method not allowed", "message": "Use POST"}, {}
        try:
            event = json.loads(body)
        except ValueError:
            return 400, {**INVALID, "errors": ["Request body is not valid JSON"]}, {}
        if errors := event_errors(event):
            return 400, {**INVALID, "errors": errors}, {}
        key = self._apply(event)
        return 202, {"status": "success", "message": "Event processed", "dedup_key": key}, {}

    def _apply(self, event: dict[str, Any]) -> str:
        """Alert de-duplication as documented; returns the dedup_key used."""
        key = event.get("dedup_key") or uuid.uuid4().hex
        action, where = event["event_action"], (event["routing_key"], key)
        with self._lock:
            self._events.append({**event, "dedup_key": key})
            alert = self._open.get(where)
            if action == "trigger" and alert is None:
                summary, severity = event["payload"]["summary"], event["payload"]["severity"]
                alert = Alert(*where, summary, severity, opened_at=self.clock())
                self._open[where] = alert
                self._alerts.append(alert)
                return key
            if alert is None:
                return key  # acknowledge/resolve without an open alert: dropped
            alert.events += 1
            if action == "acknowledge":
                alert.status = "acknowledged"
            elif action == "resolve":
                alert.status = "resolved"
                del self._open[where]
        return key

    def close(self) -> None:
        """Stop the server and its threads, then remove the CA file."""
        try:
            super().close()
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None
