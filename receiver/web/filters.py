"""Incident list query parameters, parsed the same way for the JSON API and the UI."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from werkzeug.datastructures import MultiDict

from receiver.intake import parse_time
from receiver.model.matchers import Matcher
from receiver.store.queries import IncidentFilter, decode_cursor

STATUSES = ("firing", "resolved", "acknowledged")


@dataclass
class ListQuery:
    filter: IncidentFilter
    limit: int
    cursor: str | None
    errors: list[dict[str, str]] = field(default_factory=list)


def parse_list_query(args: MultiDict[str, str], default_limit: int) -> ListQuery:
    """Filters, page size and cursor; problems are collected, field by field."""
    errors: list[dict[str, str]] = []
    labels = args.getlist("label") + [f'model="{m}"' for m in args.getlist("model") if m]
    flt = IncidentFilter(
        status=_present(args.getlist("status")),
        severity=_present(args.getlist("severity")),
        alertname=_present(args.getlist("alertname")),
        receiver=_present(args.getlist("receiver")),
        matchers=_matchers(labels, errors),
        since=_time(args, "since", errors),
        until=_time(args, "until", errors),
        text=args.get("q") or None,
    )
    if set(flt.status) - set(STATUSES):
        errors.append({"field": "status", "message": "must be firing, resolved or acknowledged"})
    limit = _limit(args.get("limit"), default_limit, errors)
    cursor = args.get("cursor") or None
    if cursor:
        try:
            decode_cursor(cursor)
        except ValueError:
            errors.append({"field": "cursor", "message": "invalid cursor"})
    return ListQuery(flt, limit, cursor, errors)


def _present(values: list[str]) -> list[str]:
    return [v for v in values if v]


def _matchers(texts: list[str], errors: list[dict[str, str]]) -> list[Matcher]:
    out = []
    for text in texts:
        try:
            out.append(Matcher.parse(text))
        except ValueError as exc:
            errors.append({"field": "label", "message": str(exc)})
    return out


def _time(args: MultiDict[str, str], name: str, errors: list[dict[str, str]]) -> datetime | None:
    value = args.get(name)
    if not value:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        errors.append({"field": name, "message": str(exc)})
        return None


def _limit(value: str | None, default: int, errors: list[dict[str, str]]) -> int:
    if value is None:
        return default
    if not value.isdigit() or int(value) < 1:
        errors.append({"field": "limit", "message": "must be a positive integer"})
        return default
    return int(value)
