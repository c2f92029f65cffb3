"""The single-file replay fixture: an incident's raw requests, their timing and receiver names.

One JSON document (``receiver export`` writes it, ``receiver replay`` reads it)::

    {"format": "receiver-fixture/1", "describe": "...", "incident": {...},
     "started_at": "2026-11-28T00:20:16.660000+00:00",
     "items": [{"offset_seconds": 0.0, "receiver": "triton-gpu", "receipt": 12,
                "touches_incident": true, "body": {...the webhook as JSON...}}, ...]}

Each item holds its body in one of three forms, chosen at export so that the bytes replayed are
exactly the bytes received:

- ``body``: the webhook as a JSON value, readable and diffable. Used only when encoding it the
  way Alertmanager (Go's ``encoding/json``) does gives back the received bytes exactly: compact,
  ``<``, ``>``, ``&`` escaped as ``\\u003c`` ..., and a final newline.
- ``body_raw``: the received text as one string, for anything else (hand-written bodies).
- ``body_base64``: the received bytes, when they are not UTF-8.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from receiver.model.dedup import FlapPolicy
from receiver.store.export import IncidentRequests, incident_requests

FORMAT = "receiver-fixture/1"
FORMAT_PREFIX = "receiver-fixture/"
BODY_FORMS = ("body", "body_raw", "body_base64")
_GO_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_GO_SPECIAL = re.compile('["\\\\\x00-\x1f<>&\u2028\u2029]')


class FixtureError(ValueError):
    """A document that says it is a fixture but cannot be replayed."""


@dataclass(frozen=True)
class FixtureRequest:
    """One request of a fixture: its exact body, the receiver name and when it was received."""

    index: int
    body: bytes
    receiver: str | None
    received_at: datetime


def is_fixture(doc: object) -> bool:
    """Whether a parsed JSON document claims to be a single-file fixture (any version)."""
    return isinstance(doc, dict) and str(doc.get("format", "")).startswith(FORMAT_PREFIX)


# -- writing ------------------------------------------------------------------------------------


def document(exported: IncidentRequests) -> dict[str, Any]:
    """The fixture of an exported incident: requests in receive order, offsets from the first."""
    first = exported.requests[0].received_at
    return {
        "format": FORMAT,
        "describe": _describe(exported),
        "incident": exported.incident,
        "started_at": first.isoformat(),
        "items": [
            {
                "offset_seconds": round((r.received_at - first).total_seconds(), 6),
                "receiver": r.receiver,
                "receipt": r.receipt_id,
                "touches_incident": r.touches_incident,
                **encode_body(r.body),
            }
            for r in exported.requests
        ],
    }


def _describe(exported: IncidentRequests) -> str:
    incident = exported.incident
    own = sum(1 for r in exported.requests if r.touches_incident)
    text = (
        f"Incident {incident['id']} ({incident['receiver']}: {incident['title']}): "
        f"the {own} request(s) that touched it"
    )
    lead_in = len(exported.requests) - own
    if lead_in:
        text += (
            f", and the {lead_in} other request(s) of its group received before or among them "
            "since the earlier incidents that the flapping rules look back to"
        )
    return text + ". Replay with `receiver replay FILE`."


def dumps(doc: dict[str, Any]) -> str:
    """The document as indented UTF-8 JSON text, one final newline (the same from CLI and API)."""
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def encode_body(raw: bytes) -> dict[str, Any]:
    """The most readable form of a body that gives back exactly ``raw`` (see the module doc)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"body_base64": base64.b64encode(raw).decode("ascii")}
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except ValueError:
        return {"body_raw": text}
    if go_json(value) + "\n" == text:
        return {"body": value}
    return {"body_raw": text}


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def go_json(value: Any) -> str:
    """JSON text as Go's ``encoding/json`` writes it (Alertmanager's webhook body, no newline)."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{_go_string(k)}:{go_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(go_json(v) for v in value) + "]"
    if isinstance(value, str):
        return _go_string(value)
    return json.dumps(value)  # numbers, true, false, null (export checks the result)


def _go_string(text: str) -> str:
    return '"' + _GO_SPECIAL.sub(_go_escape, text) + '"'


def _go_escape(match: re.Match[str]) -> str:
    char = match.group()
    return _GO_ESCAPES.get(char) or f"\\u{ord(char):04x}"


# -- reading ------------------------------------------------------------------------------------


def read(doc: dict[str, Any], now: datetime | None = None) -> list[FixtureRequest]:
    """The requests of a fixture (offsets from ``now`` without started_at); FixtureError."""
    if doc.get("format") != FORMAT:
        raise FixtureError(f"unsupported fixture format {doc.get('format')!r} (reads {FORMAT})")
    items = doc.get("items")
    if not isinstance(items, list):
        raise FixtureError("items: expected a list of requests")
    start = _started_at(doc.get("started_at"), now)
    return [_request(i, item, start) for i, item in enumerate(items)]


def _started_at(value: object, now: datetime | None) -> datetime:
    if value is None:
        return now or datetime.now(UTC)
    try:
        start = datetime.fromisoformat(str(value))
    except ValueError:
        raise FixtureError(f"started_at: not an ISO 8601 time: {value!r}") from None
    if start.tzinfo is None:
        raise FixtureError(f"started_at: needs a time zone: {value!r}")
    return start


def _request(index: int, item: object, start: datetime) -> FixtureRequest:
    where = f"items[{index}]"
    if not isinstance(item, dict):
        raise FixtureError(f"{where}: expected an object")
    offset = item.get("offset_seconds", 0)
    if isinstance(offset, bool) or not isinstance(offset, int | float):
        raise FixtureError(f"{where}.offset_seconds: expected a number")
    receiver = item.get("receiver")
    if receiver is not None and not isinstance(receiver, str):
        raise FixtureError(f"{where}.receiver: expected a receiver name")
    return FixtureRequest(
        index=index,
        body=decode_body(item, where),
        receiver=receiver or None,
        received_at=start + timedelta(seconds=offset),
    )


def decode_body(item: dict[str, Any], where: str = "item") -> bytes:
    """The exact bytes of an item's body, from whichever one form it has."""
    forms = [f for f in BODY_FORMS if f in item]
    if len(forms) != 1:
        raise FixtureError(f"{where}: needs exactly one of {', '.join(BODY_FORMS)}")
    if forms[0] == "body":
        return (go_json(item["body"]) + "\n").encode("utf-8")
    value = item[forms[0]]
    if not isinstance(value, str):
        raise FixtureError(f"{where}.{forms[0]}: expected a string")
    if forms[0] == "body_raw":
        return value.encode("utf-8")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise FixtureError(f"{where}.body_base64: not base64") from None


def export(engine: Engine, incident_id: int, flapping: FlapPolicy) -> str:
    """The fixture text of an incident (IncidentNotFound, PayloadsPruned from store.export)."""
    lookback = flapping.window + flapping.hold_down
    return dumps(document(incident_requests(engine, incident_id, lookback)))
