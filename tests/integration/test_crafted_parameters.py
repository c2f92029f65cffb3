"""Crafted URLs get a clear 4xx naming the problem, never a 500, on both databases: ids beyond
what a BIGINT holds, cursors whose id or time the database cannot take, NUL characters (Postgres
refuses them in text), page sizes of thousands of digits."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.support.api import AUTH

BIG = str(2**63)


def cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


NOT_FOUND = [
    f"/api/v1/incidents/{BIG}",
    f"/api/v1/incidents/{BIG}/fixture",
    f"/api/v1/payloads/{BIG}",
    "/api/v1/incidents/" + "9" * 5000,
    "/api/v1/incidents/0",
]
REFUSED = {  # query -> the field the error names
    "cursor=" + cursor(f"2026-01-01T00:00:00+00:00|{BIG}"): "cursor",
    "cursor=" + cursor("2026-01-01T00:00:00+00:00|" + "1" * 40): "cursor",
    "cursor=" + cursor("9999-12-31T23:59:59-14:00|1"): "cursor",
    "cursor=" + cursor("0001-01-01T00:00:00+14:00|1"): "cursor",
    "q=a%00b": "q",
    "label=model%3D%22a%00%22": "label",
    "alertname=a%00b": "alertname",
    "severity=%00": "severity",
    "receiver=%00": "receiver",
    "limit=" + "9" * 5000 + "x": "limit",
    "limit=%C2%B2": "limit",  # a superscript two: a digit to str.isdigit, not to int()
    "limit=0": "limit",
}


@pytest.mark.parametrize("path", NOT_FOUND)
def test_ids_no_row_can_have_are_not_found(client: Any, path: str) -> None:
    answer = client.get(path, headers=AUTH)
    assert answer.status_code == 404
    assert answer.get_json()["error"] == "not_found"


@pytest.mark.parametrize(("query", "field"), REFUSED.items())
def test_crafted_list_parameters_are_refused_naming_the_field(
    client: Any, query: str, field: str
) -> None:
    answer = client.get(f"/api/v1/incidents?{query}", headers=AUTH)
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert [e["field"] for e in answer.get_json()["errors"]] == [field]


@pytest.mark.parametrize("limit", ["9" * 5000, "00000000000000000001", "99999999999999999999"])
def test_a_huge_page_size_is_cut_to_the_largest_page(client: Any, limit: str) -> None:
    answer = client.get(f"/api/v1/incidents?limit={limit}", headers=AUTH)
    assert answer.status_code == 200
