"""Parse and validate an Alertmanager webhook (version 4) into a ``Notification``.

Unknown fields are ignored. Optional fields that older Alertmanagers or hand-written fixtures
omit are accepted; missing identity is derived (see ``receiver.model.alerts``) and marked so.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictStr,
    ValidationError,
    field_validator,
)
from pydantic_core import ErrorDetails

from receiver.model.alerts import (
    AlertEvent,
    AlertStatus,
    Notification,
    derived_group_key,
    label_fingerprint,
)
from receiver.model.errors import InvalidPayload

ZERO_TIME_PREFIX = "0001-01-01T00:00:00"
_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)


def parse_time(value: Any) -> datetime | None:
    """RFC 3339 with up to nanoseconds -> aware UTC datetime (microseconds); zero time -> None."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 time string")
    match = _RFC3339.match(value)
    if not match:
        raise ValueError(f"not an RFC 3339 time: {value[:64]!r}")
    if value.startswith(ZERO_TIME_PREFIX):
        return None
    date, clock, fraction, zone = match.groups()
    fraction = (fraction or ".0")[:7]
    zone = "+00:00" if zone in ("Z", "z") else zone
    try:
        parsed = datetime.fromisoformat(f"{date}T{clock}{fraction}{zone}")
    except ValueError as exc:
        raise ValueError(f"not a valid time: {value[:64]!r} ({exc})") from None
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"outside the years 1-9999 in UTC: {value[:64]!r}") from None


def _required_time(value: Any) -> datetime:
    parsed = parse_time(value)
    if parsed is None:
        raise ValueError("must be a real time, not the zero time")
    return parsed


Time = Annotated[datetime, BeforeValidator(_required_time)]
OptionalTime = Annotated[datetime | None, BeforeValidator(parse_time)]
LabelSet = dict[StrictStr, StrictStr]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, populate_by_name=True)


class AlertIn(_Lenient):
    status: Literal["firing", "resolved"]
    labels: LabelSet
    annotations: LabelSet = Field(default_factory=dict)
    starts_at: Time = Field(alias="startsAt")
    ends_at: OptionalTime = Field(default=None, alias="endsAt")
    generator_url: StrictStr | None = Field(default=None, alias="generatorURL")
    fingerprint: StrictStr | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("labels")
    @classmethod
    def _has_alertname(cls, labels: dict[str, str]) -> dict[str, str]:
        if not labels.get("alertname"):
            raise ValueError("must include a non-empty 'alertname' label")
        return labels


class WebhookIn(_Lenient):
    version: StrictStr | None = None
    group_key: StrictStr | None = Field(default=None, alias="groupKey")
    truncated_alerts: int = Field(default=0, ge=0, alias="truncatedAlerts")
    status: Literal["firing", "resolved"] | None = None
    receiver: StrictStr | None = Field(default=None, max_length=255)
    group_labels: LabelSet = Field(default_factory=dict, alias="groupLabels")
    common_labels: LabelSet = Field(default_factory=dict, alias="commonLabels")
    common_annotations: LabelSet = Field(default_factory=dict, alias="commonAnnotations")
    external_url: StrictStr | None = Field(default=None, alias="externalURL")
    # Alertmanager 0.32+: why this notification was sent ("first notification", ...)
    notification_reason: StrictStr | None = None
    # Alertmanager 0.34+: the labels of the route that sent it
    route_labels: LabelSet = Field(default_factory=dict, alias="routeLabels")
    alerts: list[AlertIn] = Field(min_length=1)


_FIELD_NAMES = {
    "starts_at": "startsAt",
    "ends_at": "endsAt",
    "generator_url": "generatorURL",
    "group_key": "groupKey",
    "truncated_alerts": "truncatedAlerts",
    "group_labels": "groupLabels",
    "common_labels": "commonLabels",
    "common_annotations": "commonAnnotations",
    "external_url": "externalURL",
    "route_labels": "routeLabels",
}


MAX_ERRORS = 20  # field errors listed in one answer
MAX_REASON = 64  # characters of notification_reason kept (Alertmanager's are ~25)


@dataclass(frozen=True)
class IntakeLimits:
    """What one webhook may carry; beyond it the request is refused (400), never cut."""

    max_alerts: int = 5000
    max_labels: int = 128  # per alert, for labels and for annotations each
    max_label_value: int = 4096  # characters of a label name or value
    max_annotation_value: int = 65536  # characters of an annotation value


def parse_webhook(
    body: bytes, receiver_hint: str | None = None, limits: IntakeLimits = IntakeLimits()
) -> Notification:
    """Validate a request body; raise InvalidPayload listing every offending field by path."""
    try:
        payload = WebhookIn.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidPayload(_describe(exc)) from None
    if b"\\u0000" in body and (errors := _nul_errors(payload)):
        raise InvalidPayload(errors)
    if errors := _limit_errors(payload, limits):
        raise InvalidPayload(errors)
    return _to_notification(payload, receiver_hint)


def _limit_errors(payload: WebhookIn, limits: IntakeLimits) -> list[dict[str, str]]:
    if len(payload.alerts) > limits.max_alerts:
        message = f"{len(payload.alerts)} alerts; at most {limits.max_alerts} per request"
        return [{"field": "alerts", "message": message}]
    errors = []
    for where, pairs, longest in _label_sets(payload, limits):
        if len(pairs) > limits.max_labels:
            message = f"{len(pairs)} entries; at most {limits.max_labels}"
            errors.append({"field": where, "message": message})
        for key, value in pairs.items():
            if len(key) > limits.max_label_value or len(value) > longest:
                message = f"longer than the limit ({limits.max_label_value} characters for "
                message += f"a name, {longest} for a value)"
                errors.append({"field": f"{where}.{key[:64]}", "message": message})
        if len(errors) >= MAX_ERRORS:
            break
    return errors[:MAX_ERRORS]


def _label_sets(
    payload: WebhookIn, limits: IntakeLimits
) -> Iterator[tuple[str, dict[str, str], int]]:
    """Each label or annotation set with its path and its longest value."""
    yield "routeLabels", payload.route_labels, limits.max_label_value
    for i, alert in enumerate(payload.alerts):
        yield f"alerts[{i}].labels", alert.labels, limits.max_label_value
        yield f"alerts[{i}].annotations", alert.annotations, limits.max_annotation_value


def _to_notification(payload: WebhookIn, receiver_hint: str | None) -> Notification:
    alerts = [
        AlertEvent(
            fingerprint=a.fingerprint or label_fingerprint(a.labels),
            fingerprint_derived=a.fingerprint is None,
            status=AlertStatus(a.status),
            labels=a.labels,
            annotations=a.annotations,
            starts_at=a.starts_at,
            ends_at=a.ends_at,
            generator_url=a.generator_url,
        )
        for a in payload.alerts
    ]
    any_firing = any(a.status is AlertStatus.FIRING for a in alerts)
    status = AlertStatus(payload.status) if payload.status else None
    group_key = payload.group_key or derived_group_key(
        payload.group_labels, [a.labels for a in payload.alerts]
    )
    return Notification(
        receiver=payload.receiver or receiver_hint or "default",
        group_key=group_key,
        group_key_derived=not payload.group_key,
        status=status or (AlertStatus.FIRING if any_firing else AlertStatus.RESOLVED),
        alerts=alerts,
        group_labels=payload.group_labels,
        common_labels=payload.common_labels,
        common_annotations=payload.common_annotations,
        external_url=payload.external_url,
        truncated_alerts=payload.truncated_alerts,
        version=payload.version,
        notification_reason=(payload.notification_reason or "")[:MAX_REASON] or None,
        route_labels=payload.route_labels,
    )


def _nul_errors(payload: WebhookIn) -> list[dict[str, str]]:
    """NUL characters cannot be stored (Postgres text) and are never in real labels: refuse."""
    message = "must not contain NUL (\\u0000) characters"
    places: list[tuple[str, object]] = [
        ("groupKey", payload.group_key),
        ("receiver", payload.receiver),
        ("externalURL", payload.external_url),
        ("groupLabels", payload.group_labels),
        ("commonLabels", payload.common_labels),
        ("commonAnnotations", payload.common_annotations),
        ("notification_reason", payload.notification_reason),
        ("routeLabels", payload.route_labels),
    ]
    for i, alert in enumerate(payload.alerts):
        places += [
            (f"alerts[{i}].labels", alert.labels),
            (f"alerts[{i}].annotations", alert.annotations),
            (f"alerts[{i}].generatorURL", alert.generator_url),
            (f"alerts[{i}].fingerprint", alert.fingerprint),
        ]
    return [{"field": where, "message": message} for where, value in places if _has_nul(value)]


def _has_nul(value: object) -> bool:
    if isinstance(value, dict):
        return any("\x00" in k or "\x00" in v for k, v in value.items())
    return isinstance(value, str) and "\x00" in value


def _describe(exc: ValidationError) -> list[dict[str, str]]:
    """Turn pydantic errors into ``{"field": "alerts[3].startsAt", "message": ...}`` items
    (at most ``MAX_ERRORS``: the last says how many more there were)."""
    errors = exc.errors(include_url=False)
    shown = errors if len(errors) <= MAX_ERRORS else errors[: MAX_ERRORS - 1]
    out = []
    for error in shown:
        if error["type"] == "json_invalid":
            return [{"field": "(body)", "message": f"malformed JSON: {error['msg']}"}]
        out.append({"field": _path(error["loc"]), "message": _message(error)})
    if len(errors) > len(shown):
        out.append({"field": "(body)", "message": f"{len(errors) - len(shown)} more errors"})
    return out


def _path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("[key]",):
            path += "(key)"
        else:
            name = _FIELD_NAMES.get(str(part), str(part))
            path += f".{name}" if path else name
    return path or "(body)"


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "missing":
        return "field required"
    if kind == "model_type" or kind == "model_attributes_type":
        return "must be a JSON object"
    if kind == "literal_error":
        return f"must be one of {error['ctx']['expected']}"
    if kind == "dict_type":
        return "must be a JSON object of string values"
    if kind == "list_type":
        return "must be a JSON array"
    if kind == "string_type":
        return "must be a string"
    if kind == "int_type":
        return "must be an integer"
    if kind == "too_short":
        return "must not be empty"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    return error["msg"]
