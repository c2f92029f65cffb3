"""Regex label filters of the list API give RE2's answers, the same on SQLite and Postgres.

One incident per probe value (tests/support/regex_dialects.py: values on which Python's re,
Postgres' ``~`` and RE2 disagree, and values on which backtracking engines take exponential
time), and one without the label; each filter is checked against RE2 itself, through ``GET
/api/v1/incidents?label=...``, on both databases.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
import re2
from sqlalchemy import text
from sqlalchemy.orm import Session

from receiver.app import create_app
from receiver.bootstrap import Container, bootstrap
from receiver.model.matchers import MAX_REGEX_LENGTH, Matcher
from receiver.store import label_filters
from receiver.store.label_filters import ValueSet
from tests.support.api import send
from tests.support.databases import module_database, receiver_settings
from tests.support.payloads import alert, webhook
from tests.support.regex_dialects import CASES, CATASTROPHIC, INVALID

VALUES = sorted(
    {c.value for c in CASES} | {v for _, slow, fine in CATASTROPHIC for v in (slow, fine)}
)


@dataclass
class Probed:
    client: Any
    container: Container
    by_value: dict[str, int]  # incident id per probe value
    unlabelled: int  # the incident whose alert has no probe label


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def probed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Probed]:
    """One incident per probe value, and one without the label, in one database."""
    with module_database(request, tmp_path_factory, "regex") as url:
        container = bootstrap(receiver_settings(url))
        try:
            client = create_app(container=container).test_client()
            by_value = {}
            for n, value in enumerate([*VALUES, None]):
                labels = {"instance": f"host-{n}"} | ({} if value is None else {"probe": value})
                answer = send(client, webhook(alert("Probe", **labels), group_key=f"probe-{n}"))
                [incident] = answer["incidents"]
                by_value[value] = incident
            unlabelled = by_value.pop(None)
            yield Probed(client, container, by_value, unlabelled)
        finally:
            container.engine.dispose()


def label(pattern: str, op: str = "=~") -> str:
    """``label=probe=~"pattern"``, quoted as Alertmanager quotes a matcher's value."""
    escaped = pattern.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return "label=" + quote(f'probe{op}"{escaped}"')


def listed(probed: Probed, query: str, limit: int = 500) -> tuple[set[int], dict[str, int]]:
    """The ids a list query finds, and its counts, after checking there is one page."""
    response = probed.client.get(f"/api/v1/incidents?limit={limit}&{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    page = response.get_json()
    assert page["next_cursor"] is None
    return {i["id"] for i in page["incidents"]}, page["counts"]


def re2_finds(probed: Probed, pattern: str) -> set[int]:
    """The incidents Alertmanager's matcher would select, by RE2 itself."""
    anchored = re2.compile(f"^(?:{pattern})$")
    found = {i for v, i in probed.by_value.items() if anchored.search(v) is not None}
    if anchored.search("") is not None:
        found.add(probed.unlabelled)
    return found


@pytest.mark.parametrize("case", CASES, ids=[f"{c.pattern}~{c.value!r}" for c in CASES])
def test_a_regex_filter_finds_what_re2_matches(probed: Probed, case: Any) -> None:
    found, counts = listed(probed, label(case.pattern))

    assert found == re2_finds(probed, case.pattern)
    assert (probed.by_value[case.value] in found) is case.matches
    assert counts.get("firing", 0) + counts.get("resolved", 0) == len(found)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.pattern}~{c.value!r}" for c in CASES])
def test_a_negative_regex_filter_finds_every_other_incident(probed: Probed, case: Any) -> None:
    found, counts = listed(probed, label(case.pattern, "!~"))

    everything = {*probed.by_value.values(), probed.unlabelled}
    assert found == everything - re2_finds(probed, case.pattern)
    assert (probed.by_value[case.value] in found) is not case.matches
    assert counts.get("firing", 0) + counts.get("resolved", 0) == len(found)


def test_a_regex_the_empty_value_matches_finds_incidents_without_the_label(
    probed: Probed,
) -> None:
    found, _ = listed(probed, label("|a{,3}"))  # Python's re: a{,3} matches "" as well

    assert found == {probed.unlabelled, probed.by_value["a{,3}"]}
    assert listed(probed, label("a{,3}"))[0] == {probed.by_value["a{,3}"]}


@pytest.mark.parametrize(
    ("pattern", "slow", "fine"), CATASTROPHIC, ids=[p for p, _, _ in CATASTROPHIC]
)
def test_a_pattern_that_backtracks_elsewhere_is_answered(
    probed: Probed, pattern: str, slow: str, fine: str
) -> None:
    found, _ = listed(probed, label(pattern))

    assert probed.by_value[fine] in found
    assert probed.by_value[slow] not in found
    assert found == re2_finds(probed, pattern)


def test_pages_of_a_regex_filter_visit_each_match_once(probed: Probed) -> None:
    pattern = ".*a.*|.*x.*"
    expected = re2_finds(probed, pattern)
    seen: list[int] = []
    cursor = ""
    for _ in range(len(expected) + 1):
        page = probed.client.get(f"/api/v1/incidents?limit=2&{label(pattern)}{cursor}")
        answer = page.get_json()
        seen += [i["id"] for i in answer["incidents"]]
        if answer["next_cursor"] is None:
            break
        cursor = f"&cursor={answer['next_cursor']}"

    assert len(expected) > 4
    assert sorted(seen) == sorted(expected)


@pytest.mark.parametrize("pattern", INVALID, ids=repr)
def test_a_regex_re2_does_not_take_is_refused_naming_the_label_parameter(
    probed: Probed, pattern: str
) -> None:
    response = probed.client.get(f"/api/v1/incidents?{label(pattern)}")

    assert response.status_code == 400
    answer = response.get_json()
    assert answer["error"] == "invalid_query"
    [error] = answer["errors"]
    assert error["field"] == "label"
    assert "invalid regex" in error["message"]


def test_a_regex_longer_than_the_bound_is_refused_naming_the_label_parameter(
    probed: Probed,
) -> None:
    longest = "x" * MAX_REGEX_LENGTH
    assert listed(probed, label(longest))[0] == set()

    response = probed.client.get(f"/api/v1/incidents?{label(longest + 'x')}")

    assert response.status_code == 400
    [error] = response.get_json()["errors"]
    assert error["field"] == "label"
    assert f"at most {MAX_REGEX_LENGTH}" in error["message"]


def test_a_regex_on_a_label_with_too_many_values_is_refused(
    probed: Probed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(label_filters, "MAX_REGEX_VALUES", len(VALUES) - 1)

    response = probed.client.get(f"/api/v1/incidents?{label('.*')}")
    fewer = probed.client.get(f"/api/v1/incidents?{label('.*', op='!~')}&label=instance=~h.*")

    assert response.status_code == 400
    [error] = response.get_json()["errors"]
    assert error["field"] == "label"
    assert f"more than {len(VALUES) - 1} distinct values" in error["message"]
    assert "'probe'" in error["message"]
    assert fewer.status_code == 400  # the bound is per label, whichever matcher
    monkeypatch.setattr(label_filters, "MAX_REGEX_VALUES", len(VALUES))
    assert listed(probed, label(".*"))[0] == re2_finds(probed, ".*")


@pytest.mark.parametrize("loose", [1, 2, 7, 1000])
def test_the_values_of_a_label_are_read_whole_past_the_loose_scan(
    probed: Probed, monkeypatch: pytest.MonkeyPatch, loose: int
) -> None:
    monkeypatch.setattr(label_filters, "LOOSE_SCAN_VALUES", loose)

    with Session(probed.container.engine) as session:
        values = label_filters.label_values(session, "probe", at_most=len(VALUES))
        with pytest.raises(label_filters.FilterTooCostly):
            label_filters.label_values(session, "probe", at_most=len(VALUES) - 1)
        assert label_filters.label_values(session, "absent", at_most=5) == []

    assert len(values) == len(VALUES)
    assert set(values) == set(VALUES)
    assert listed(probed, label("a.*|λ.*"))[0] == re2_finds(probed, "a.*|λ.*")


@pytest.mark.parametrize("pattern", ["a.*|λ.*", "(?s)[^A].*", "(?s).*", ".*[bx].*", "A|a.b"])
def test_a_regex_is_sent_to_the_database_as_what_it_matches_or_not(
    probed: Probed, pattern: str
) -> None:
    matcher = Matcher.parse(f'probe=~"{pattern}"')
    with Session(probed.container.engine) as session:
        in_order = label_filters.label_values(session, "probe", at_most=len(VALUES))
        tested = label_filters.FilterValues.read(session, [matcher]).matched[matcher]

    described = set(tested.singles)
    for low, high in tested.ranges:
        described |= set(in_order[in_order.index(low) : in_order.index(high) + 1])
    hits = {v for v in VALUES if re2.search(f"^(?:{pattern})$", v)}
    assert described == (hits if tested.matching else set(VALUES) - hits)
    assert len(tested.singles) + len(tested.ranges) <= len(VALUES) / 2
    assert listed(probed, label(pattern))[0] == re2_finds(probed, pattern)
    assert listed(probed, label(pattern, "!~"))[0] == {
        *probed.by_value.values(),
        probed.unlabelled,
    } - re2_finds(probed, pattern)


def test_neighbouring_values_are_sent_as_ranges_the_longest_first() -> None:
    values = list("abcdefghijklmnop")
    hits = [c in "bcd" + "f" + "hi" + "klmno" for c in values]

    tested = ValueSet.of(values, hits)

    assert tested == ValueSet([("b", "d"), ("h", "i"), ("k", "o")], ["f"], True)
    assert ValueSet.of(values, [not h for h in hits]) == ValueSet(
        [("b", "d"), ("h", "i"), ("k", "o")], ["f"], False
    )  # as many either way: the matching ones
    assert ValueSet.of(values, [True] * 16) == ValueSet([], [], False)  # every value: the label
    assert ValueSet.of(values, [False] * 16) == ValueSet([], [], True)  # no value: nothing


def test_past_the_most_ranges_the_shorter_runs_are_listed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(label_filters, "MAX_RANGES", 2)
    values = [f"v{i:02d}" for i in range(20)]
    hits = [i in (0, 1, 4, 5, 6, 9, 10, 11, 12, 15) for i in range(20)]

    tested = ValueSet.of(values, hits)

    assert tested.ranges == [("v04", "v06"), ("v09", "v12")]
    assert tested.singles == ["v00", "v01", "v15"]


def test_a_prefix_regex_on_a_label_of_many_values_is_one_range(probed: Probed) -> None:
    matcher = Matcher.parse('instance=~"host-1.*"')
    with Session(probed.container.engine) as session:
        tested = label_filters.FilterValues.read(session, [matcher]).matched[matcher]

    assert tested == ValueSet([("host-1", "host-19")], [], True)
    found, _ = listed(probed, "label=" + quote('instance=~"host-1.*"'))
    assert len(found) == 11


def test_sqlite_connections_have_no_python_regexp(probed: Probed) -> None:
    engine = probed.container.engine
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLAlchemy registers REGEXP on SQLite only")
    with engine.connect() as conn, pytest.raises(Exception, match="user-defined function"):
        conn.execute(text("SELECT 'a' REGEXP 'a'"))
