"""Alertmanager 0.33's event recorder (``--enable-feature=event-recorder``): parse what its
webhook output posts into ``AmEvent`` records (shapes: tests/fixtures/alertmanager-0.33.1-events).

One POST carries one event ``{"@timestamp", "instance", "data": {<kind>: {...}}}``; a JSON list
of them is accepted too. Unknown kinds are kept with their time only. Long texts and lists are
cut (``cut``), never refused. Fingerprints arrive as decimal uint64 strings and are kept as the
16 hex digits the webhook uses.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from receiver.model.errors import InvalidPayload

MAX_EVENTS = 1000  # per request
MAX_TEXT = 1024  # characters of a comment, label value, matcher
MAX_ITEMS = 64  # labels, matchers, fingerprints, rules kept per event
MUTES = ("silenceMutedAlert", "inhibitionMutedAlert")


@dataclass(frozen=True)
class AmEvent:
    """One recorded event; ``detail`` holds what explains it (silence, inhibition, group)."""

    digest: str  # a re-sent event, and a repeated mute of one alert by one cause, share it
    kind: str
    at: datetime
    instance: str | None
    fingerprint: str | None  # the alert it concerns (the muted one for mutes)
    fingerprints: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)


def cut(text: Any, limit: int = MAX_TEXT) -> str:
    """The text (anything else as JSON) at most ``limit`` characters long, storable: a NUL or
    a lone surrogate (valid JSON escapes, no text column takes them) becomes U+FFFD."""
    value = text if isinstance(text, str) else json.dumps(text)
    value = value if len(value) <= limit else value[: limit - 1] + "…"
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in value)
    return value


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def hex_fingerprint(value: Any) -> str | None:
    """``"17271523118378125274"`` → ``"efb0c6c488e007da"``; a hex one is kept as it is."""
    if not isinstance(value, str) or not value:
        return None
    if value.isdigit() and int(value) < 2**64:
        return format(int(value), "016x")
    return cut(value.lower(), 64)


def _labels(value: Any) -> dict[str, str]:
    """``{"labels": [{"key", "value"}, ...]}`` (protobuf JSON) or a plain object."""
    if isinstance(value, dict) and isinstance(value.get("labels"), list):
        pairs = [(p.get("key"), p.get("value")) for p in value["labels"] if isinstance(p, dict)]
    elif isinstance(value, dict):
        pairs = list(value.items())
    else:
        return {}
    return {cut(k, 255): cut(v or "") for k, v in pairs[:MAX_ITEMS] if isinstance(k, str)}


def _matchers(value: Any) -> list[str]:
    items = value if isinstance(value, list) else []
    kept = [m for m in items[:MAX_ITEMS] if isinstance(m, dict)]
    return [cut(m.get("rendered") or m.get("name") or "") for m in kept]


def _silence(value: Any) -> dict[str, Any]:
    s = value if isinstance(value, dict) else {}
    return {
        "id": cut(s.get("id") or "", 64),
        "created_by": cut(s.get("createdBy") or ""),
        "comment": cut(s.get("comment") or ""),
        "matchers": _matchers(s.get("matchers")),
        "starts_at": cut(s.get("startsAt") or "", 40),
        "ends_at": cut(s.get("endsAt") or "", 40),
    }


def _rule(value: Any) -> dict[str, Any]:
    r = value if isinstance(value, dict) else {}
    return {
        "source": _matchers(r.get("sourceMatchers")),
        "target": _matchers(r.get("targetMatchers")),
        "equal": [cut(e, 255) for e in _list(r.get("equalLabels"))],
    }


def _group(value: Any) -> dict[str, Any]:
    g = value if isinstance(value, dict) else {}
    return {"group_key": cut(g.get("groupKey") or ""), "receiver": cut(g.get("receiverName") or "")}


def _alert(value: Any) -> dict[str, Any]:
    """``alert`` of alertCreated, or ``{"hash", "details": alert}`` of the grouped kinds."""
    a = value if isinstance(value, dict) else {}
    return a["details"] if isinstance(a.get("details"), dict) else a


def _list(value: Any) -> list[Any]:
    return value[:MAX_ITEMS] if isinstance(value, list) else []


Fields = tuple[dict[str, Any] | None, list[Any], dict[str, Any]]


def _fields(kind: str, body: dict[str, Any]) -> Fields:
    """The alert the event concerns, every fingerprint it names, and its detail."""
    if kind in MUTES:
        muted = _object(body.get("mutedAlert"))
        if kind == "silenceMutedAlert":
            return muted, [], {"silence": _silence(body.get("silence"))}
        by = [hex_fingerprint(f) for f in _list(body.get("inhibitingFingerprints"))]
        detail = {"rules": [_rule(r) for r in _list(body.get("inhibitRules"))], "inhibited_by": by}
        return muted, [], detail
    if kind in ("silenceCreated", "silenceUpdated"):
        return None, [], {"silence": _silence(body.get("silence"))}
    if kind == "notification":
        alerts = _list(body.get("alerts"))
        integration = _object(body.get("integration"))
        detail = {
            **_group(body.get("groupInfo")),
            "reason": cut(body.get("reason") or "", 64),
            "integration": cut(integration.get("name") or "", 64),
        }
        return None, [_alert(a).get("fingerprint") for a in alerts], detail
    if kind in ("alertCreated", "alertGrouped", "alertResolved"):
        return _alert(body.get("alert")), [], _group(body.get("groupInfo"))
    return None, [], {}


def _event(raw: Any, where: str) -> AmEvent:
    if not isinstance(raw, dict):
        raise InvalidPayload([{"field": where, "message": "an event must be a JSON object"}])
    data, stamp = raw.get("data"), raw.get("@timestamp")
    if not isinstance(data, dict) or len(data) != 1:
        message = "data must be an object with exactly one event kind"
        raise InvalidPayload([{"field": f"{where}data", "message": message}])
    try:
        at = datetime.fromisoformat(stamp) if isinstance(stamp, str) else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        message = "@timestamp must be an RFC 3339 time with a zone"
        raise InvalidPayload([{"field": f"{where}@timestamp", "message": message}])
    [(kind, body)] = data.items()
    alert, named, detail = _fields(kind, body if isinstance(body, dict) else {})
    fingerprint = hex_fingerprint((alert or {}).get("fingerprint"))
    prints = [f for f in (hex_fingerprint(x) for x in named) if f]
    # a mute repeats at each evaluation: one row per alert and cause; else one per event
    same = [kind, fingerprint, detail] if kind in MUTES else raw
    canonical = json.dumps(same, sort_keys=True, separators=(",", ":")).encode()
    return AmEvent(
        digest=hashlib.sha256(canonical).hexdigest(),
        kind=cut(kind, 64),
        at=at,
        instance=cut(raw["instance"], 255) if isinstance(raw.get("instance"), str) else None,
        fingerprint=fingerprint,
        fingerprints=([fingerprint] if fingerprint else prints)[:MAX_ITEMS],
        labels=_labels((alert or {}).get("labels")),
        detail=detail,
    )


def parse_events(body: bytes) -> list[AmEvent]:
    """One event object or a list of them; raise InvalidPayload naming the offending field."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidPayload([{"field": "(body)", "message": f"not JSON: {exc}"}]) from None
    except RecursionError:
        message = "not JSON the receiver reads: nested too deeply"
        raise InvalidPayload([{"field": "(body)", "message": message}]) from None
    if isinstance(payload, dict):
        return [_event(payload, "")]
    if not isinstance(payload, list) or not payload:
        message = "expected an event object or a non-empty list of them"
        raise InvalidPayload([{"field": "(body)", "message": message}])
    if len(payload) > MAX_EVENTS:
        message = f"at most {MAX_EVENTS} events per request"
        raise InvalidPayload([{"field": "(body)", "message": message}])
    return [_event(item, f"[{n}].") for n, item in enumerate(payload)]
