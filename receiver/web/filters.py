"""Incident list query parameters, parsed the same way for the JSON API and the UI."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from werkzeug.datastructures import MultiDict
from werkzeug.routing import IntegerConverter

from receiver.intake import parse_time
from receiver.model.matchers import Matcher, MatchOp, parse_matchers
from receiver.store.queries import MAX_LIMIT, MAX_ROW_ID, IncidentFilter, decode_cursor

STATUSES = ("firing", "resolved", "acknowledged")
MAX_LIMIT_DIGITS = 6  # larger page sizes are cut to the maximum anyway


class RowId(IntegerConverter):
    """``<row_id:name>``: a database row id, 1 to 2**63 - 1; beyond, the route does not match
    (404), where an int the database cannot hold would fail the query."""

    def __init__(self, url_map: object) -> None:
        super().__init__(url_map, min=1, max=MAX_ROW_ID)  # type: ignore[arg-type]


@dataclass
class ListQuery:
    filter: IncidentFilter
    limit: int
    cursor: str | None
    errors: list[dict[str, str]] = field(default_factory=list)


def parse_list_query(args: MultiDict[str, str], default_limit: int) -> ListQuery:
    """Filters, page size and cursor; problems are collected, field by field."""
    errors: list[dict[str, str]] = [
        {"field": name, "message": "must not contain NUL characters"}
        for name in sorted({k for k, v in args.items(multi=True) if "\x00" in v})
    ]
    if errors:  # no stored text holds NUL (the intake refuses it), and Postgres cannot take it
        return ListQuery(IncidentFilter(), default_limit, None, errors)
    models = [str(Matcher("model", MatchOp.EQ, m)) for m in args.getlist("model") if m]
    labels = args.getlist("label") + models
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
    """Each ``label`` is one matcher, as Alertmanager's API reads a filter, or a ``{...}`` list."""
    out: list[Matcher] = []
    for text in texts:
        try:
            if text.lstrip().startswith("{"):
                out += parse_matchers(text)
            else:
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
    digits = value.lstrip("0")
    if not (digits.isascii() and digits.isdigit()):  # "" (zero), "-1", "²", "1e3"
        errors.append({"field": "limit", "message": "must be a positive integer"})
        return default
    return MAX_LIMIT if len(digits) > MAX_LIMIT_DIGITS else int(digits)
