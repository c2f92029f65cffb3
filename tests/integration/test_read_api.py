"""The read API over incidents built from every request of a recorded Alertmanager set.

Each recorded set (0.25 and 0.33.1) is replayed once per module and database (SQLite and
Postgres); the tests only read. Expectations come from the recordings (see
tests/fixtures/alertmanager-*/timeline.txt) and, for filters, from an independent evaluation of
each filter over the unfiltered list. Where the sets differ, the expected value is per set: 0.33.1
makes one incident fewer, a triton-gpu-max2 GPU incident without a model label (its flapping
series rejoined the group's incident: tests/integration/test_replay_scenarios.py), and its
times are those of its own recording (2026-12-08, alerts from 01:02:47; 0.25: 2026-11-28 from
00:20:11, 42 min 36 s earlier in the day).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import text

from receiver.app import create_app
from receiver.bootstrap import bootstrap
from receiver.replay import ReplayItem, load_items
from receiver.store import migrate
from tests.support.api import detail, incidents, post_webhook
from tests.support.clock import FakeClock
from tests.support.databases import module_database, receiver_settings
from tests.support.payloads import FIXTURE_SETS, RECORDED_OUTCOMES


@dataclass
class Seeded:
    version: str  # the recorded set
    client: Any
    items: list[ReplayItem]
    answers: list[dict[str, Any]]
    all: list[dict[str, Any]] = field(default_factory=list)
    labels: dict[int, list[dict[str, str]]] = field(default_factory=dict)  # per incident


@pytest.fixture(scope="module", params=FIXTURE_SETS)
def fixture_set(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def seeded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, fixture_set: str
) -> Iterator[Seeded]:
    """Every request of a recorded set replayed in order, each at its recorded time, into one
    database."""
    with module_database(request, tmp_path_factory, "read") as url:
        clock = FakeClock()
        container = bootstrap(receiver_settings(url), clock=clock)
        try:
            client = create_app(container=container).test_client()
            items = load_items([FIXTURE_SETS[fixture_set] / "all"])
            answers = []
            for item in items:
                assert item.recorded_at is not None
                clock.now = datetime.fromtimestamp(item.recorded_at, UTC)
                response = post_webhook(client, item.body, item.receiver)
                assert response.status_code == 200, (item.source, response.get_data(as_text=True))
                answers.append(response.get_json())
            seeded = Seeded(fixture_set, client, items, answers, all=incidents(client))
            for incident in seeded.all:
                series = detail(client, incident["id"])["alerts"]
                seeded.labels[incident["id"]] = [s["labels"] for s in series]
            yield seeded
        finally:
            container.engine.dispose()


def ids(found: list[dict[str, Any]]) -> list[int]:
    return [i["id"] for i in found]


def listed(seeded: Seeded, query: str) -> list[dict[str, Any]]:
    return incidents(seeded.client, query)


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def of_set(expected: int | dict[str, int], seeded: Seeded) -> int:
    """An expected number: the same for every set, or given per set."""
    return expected[seeded.version] if isinstance(expected, dict) else expected


# the GPU incidents without a model label: 0.25 has 8, 0.33.1 one fewer (the module docstring)
NOT_MODELS = {"0.25": 8, "0.33.1": 7}


# -- listing and filters ----------------------------------------------------------------------


def test_the_list_holds_every_incident_newest_first(seeded: Seeded) -> None:
    found = seeded.all
    touched = {i for answer in seeded.answers for i in answer["incidents"]}

    assert len(found) == RECORDED_OUTCOMES[seeded.version].incidents
    assert set(ids(found)) == touched
    keys = [(when(i["opened_at"]), i["id"]) for i in found]
    assert keys == sorted(keys, reverse=True)
    assert found[0]["alertname"] == "TritonNoHealthyPods"
    assert {i["alertname"] for i in found[-3:]} == {"TritonHighErrorRate", "TritonGPUMemoryHigh"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=firing", {"status": {"firing"}, "alertname": {"TritonGPUMemoryHigh"}}),
        ("severity=critical", {"alertname": {"TritonHighErrorRate", "TritonNoHealthyPods"}}),
        (
            "alertname=TritonHighLatency",
            {"alertname": {"TritonHighLatency"}, "severity": {"warning"}},
        ),
        ("receiver=triton-gpu-max2", {"receiver": {"triton-gpu-max2"}}),
        ("receiver=triton-gpu&receiver=triton-gpu-max2", {"alertname": {"TritonGPUMemoryHigh"}}),
    ],
)
def test_field_filters_keep_exactly_the_matching_incidents(
    seeded: Seeded, query: str, expected: dict[str, set[str]]
) -> None:
    wanted: dict[str, list[str]] = {}
    for part in query.split("&"):
        key, value = part.split("=")
        wanted.setdefault(key, []).append(value)

    found = listed(seeded, query)

    assert found, query
    assert ids(found) == [i["id"] for i in seeded.all if all(i[k] in v for k, v in wanted.items())]
    for key, values in expected.items():
        assert {i[key] for i in found} == values


def matches(matcher: tuple[str, str, str], labels: dict[str, str]) -> bool:
    name, op, value = matcher
    actual = labels.get(name, "")
    hit = actual == value if op in ("=", "!=") else re.fullmatch(value, actual) is not None
    return hit if op in ("=", "=~") else not hit


def expected_for(seeded: Seeded, *matchers: tuple[str, str, str]) -> list[int]:
    """Positive matchers: some alert of the incident matches; negative: every alert does."""
    out = []
    for incident in seeded.all:
        series = seeded.labels[incident["id"]]
        ok = all(
            any(matches(m, s) for s in series)
            if m[1] in ("=", "=~")
            else all(matches(m, s) for s in series)
            for m in matchers
        )
        if ok:
            out.append(incident["id"])
    return out


def label_query(*matchers: tuple[str, str, str]) -> str:
    return "&".join("label=" + quote(f'{n}{op}"{v}"') for n, op, v in matchers)


@pytest.mark.parametrize(
    ("matchers", "alertnames", "count"),
    [
        ((("model", "=", "mistral_7b"),), {"TritonHighErrorRate", "TritonHighLatency"}, 2),
        ((("model", "=~", "llama.*"),), {"TritonHighErrorRate", "TritonHighLatency"}, 2),
        ((("model", "!=", "x"),), None, {"0.25": 12, "0.33.1": 11}),
        ((("model", "!=", "mistral_7b"),), None, {"0.25": 10, "0.33.1": 9}),
        (
            (("model", "!~", "llama.*|mistral.*"),),
            {"TritonGPUMemoryHigh", "TritonNoHealthyPods"},
            NOT_MODELS,
        ),
        ((("gpu_uuid", "=~", "GPU-19101001-.*"),), {"TritonGPUMemoryHigh"}, 4),
        ((("model", "=~", ".*7b"), ("severity", "=", "critical")), {"TritonHighErrorRate"}, 2),
    ],
)
def test_label_matchers_select_incidents_by_the_labels_of_any_of_their_alerts(
    seeded: Seeded,
    matchers: tuple[tuple[str, str, str], ...],
    alertnames: set[str] | None,
    count: int | dict[str, int],
) -> None:
    found = listed(seeded, label_query(*matchers))

    assert ids(found) == expected_for(seeded, *matchers)
    assert len(found) == of_set(count, seeded)
    if alertnames is not None:
        assert {i["alertname"] for i in found} == alertnames


@pytest.mark.parametrize("op", ["!=", "="])
def test_a_matcher_on_the_empty_value_treats_a_missing_label_as_empty(
    seeded: Seeded, op: str
) -> None:
    matcher = ("model", op, "")

    found = listed(seeded, label_query(matcher))

    with_model = {i for i, series in seeded.labels.items() if any("model" in s for s in series)}
    assert len(with_model) == 4
    expected = with_model if op == "!=" else set(seeded.labels) - with_model
    assert set(ids(found)) == expected


# the same moments of the scenarios on each set's clock: 19 s after the first alert started
# (before the flapping and the outage), 1 min 49 s after (after them), 1 min 19 s, and a range
# written with an offset from 54 s to 61 s after
TIME_RANGES = {
    "0.25": [
        (None, "2026-11-28T00:20:30Z"),
        ("2026-11-28T00:22:00Z", None),
        ("2026-11-28T00:21:30Z", "2026-11-28T00:21:30Z"),
        ("2026-11-28T01:21:05+01:00", "2026-11-28T00:21:12Z"),
    ],
    "0.33.1": [
        (None, "2026-12-08T01:03:06Z"),
        ("2026-12-08T01:04:36Z", None),
        ("2026-12-08T01:04:06Z", "2026-12-08T01:04:06Z"),
        ("2026-12-08T02:03:41+01:00", "2026-12-08T01:03:48Z"),
    ],
}


@pytest.mark.parametrize("moment", range(4), ids=["until", "since", "instant", "offset"])
def test_a_time_range_keeps_incidents_that_overlap_it(seeded: Seeded, moment: int) -> None:
    since, until = TIME_RANGES[seeded.version][moment]
    query = "&".join(f"{k}={quote(v)}" for k, v in (("since", since), ("until", until)) if v)

    found = listed(seeded, query)

    expected = [
        i["id"]
        for i in seeded.all
        if (until is None or when(i["opened_at"]) <= when(until.replace("Z", "+00:00")))
        and (
            since is None
            or i["resolved_at"] is None
            or when(i["resolved_at"]) >= when(since.replace("Z", "+00:00"))
        )
    ]
    assert 0 < len(expected) < len(seeded.all)
    assert ids(found) == expected


@pytest.mark.parametrize(
    ("q", "count"),
    [
        ("mistral", 2),
        ("MISTRAL_7B", 2),
        ("gpu-19101001", 4),
        ("0%", {"0.25": 7, "0.33.1": 6}),  # the GPU incidents' titles say "> 90%"
        ("pods", 1),
        ("nothing-like-this", 0),
    ],
)
def test_free_text_search_is_case_insensitive_and_literal(
    seeded: Seeded, q: str, count: int | dict[str, int]
) -> None:
    found = listed(seeded, f"q={quote(q)}")

    assert len(found) == of_set(count, seeded)
    for incident in found:
        values = [v for series in seeded.labels[incident["id"]] for v in series.values()]
        haystack = " ".join([incident["title"], incident["receiver"], *values]).lower()
        assert q.lower() in haystack


def test_counts_per_status_ignore_the_status_filter_but_not_the_others(seeded: Seeded) -> None:
    everything = seeded.client.get("/api/v1/incidents?status=firing").get_json()
    gpu = seeded.client.get("/api/v1/incidents?receiver=triton-gpu").get_json()

    resolved = RECORDED_OUTCOMES[seeded.version].resolved
    assert everything["counts"] == {"firing": 2, "resolved": resolved, "acknowledged": 0}
    assert len(everything["incidents"]) == 2
    assert gpu["counts"] == {"firing": 1, "resolved": 2, "acknowledged": 0}


@pytest.mark.parametrize("query", ["", "receiver=triton-gpu-max2&"])
def test_cursor_pagination_visits_every_incident_exactly_once(seeded: Seeded, query: str) -> None:
    expected = ids(listed(seeded, query))
    seen: list[int] = []
    cursor = ""
    for _ in range(len(expected) + 1):
        page = seeded.client.get(f"/api/v1/incidents?{query}limit=2{cursor}").get_json()
        assert len(page["incidents"]) <= 2
        seen += ids(page["incidents"])
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"

    assert seen == expected
    assert len(set(seen)) == len(seen)


ALL_FIVE = {"status", "label", "since", "limit", "cursor"}
BAD_QUERIES = {
    "status=bogus": {"status"},
    "label=model~x": {"label"},
    "label=" + quote('model=~"("'): {"label"},
    "since=yesterday": {"since"},
    "until=2026-11-28": {"until"},
    "limit=0": {"limit"},
    "limit=ten": {"limit"},
    "cursor=!!garbage!!": {"cursor"},
    # 1x=y is a matcher since Alertmanager 0.27 (a UTF-8 name), 1x~y is none
    "status=open&label=1x~y&since=now&limit=-1&cursor=bm9wZQ": ALL_FIVE,
}


@pytest.mark.parametrize(("query", "fields"), BAD_QUERIES.items(), ids=BAD_QUERIES.keys())
def test_invalid_query_parameters_are_refused_naming_each_field(
    seeded: Seeded, query: str, fields: set[str]
) -> None:
    response = seeded.client.get(f"/api/v1/incidents?{query}")

    assert response.status_code == 400
    answer = response.get_json()
    assert answer["error"] == "invalid_query"
    assert {e["field"] for e in answer["errors"]} == fields


def test_a_well_formed_cursor_with_a_naive_time_is_refused(seeded: Seeded) -> None:
    cursor = base64.urlsafe_b64encode(b"2026-11-28T00:21:00|5").decode()

    response = seeded.client.get(f"/api/v1/incidents?cursor={cursor}")

    assert response.status_code == 400
    assert {e["field"] for e in response.get_json()["errors"]} == {"cursor"}


# -- one incident -----------------------------------------------------------------------------

# the flapping GPU series' three starts, the first of them its second (the group growth's)
FLAP_STARTS = {
    "0.25": ["00:21:00", "00:21:10", "00:21:20"],
    "0.33.1": ["01:03:38", "01:03:48", "01:03:58"],
}


def test_the_detail_shows_alerts_with_their_episodes_and_an_ordered_timeline(
    seeded: Seeded,
) -> None:
    flapping = [i for i in listed(seeded, "receiver=triton-gpu") if i["flapping"]]
    assert len(flapping) == 1

    shown = detail(seeded.client, flapping[0]["id"])

    [series] = shown["alerts"]
    assert series["fingerprint"] == "c5e0806ab26b21ed"
    starts = [e["starts_at"][11:19] for e in series["episodes"]]
    assert starts == FLAP_STARTS[seeded.version]
    assert all(e["status"] == "resolved" and e["seen_firing"] for e in series["episodes"])
    kinds = [e["kind"] for e in shown["timeline"]]
    assert kinds[0] == "opened"
    assert kinds.count("reopened") == 2
    assert kinds.count("flapping") == 1
    assert kinds[-1] == "resolved"
    times = [when(e["at"]) for e in shown["timeline"]]
    assert times == sorted(times)


def test_every_incident_timeline_starts_with_opened(seeded: Seeded) -> None:
    for incident in seeded.all:
        timeline = detail(seeded.client, incident["id"])["timeline"]
        assert timeline[0]["kind"] == "opened", incident["id"]


def test_payload_references_return_the_exact_recorded_bytes(seeded: Seeded) -> None:
    body_of = {a["receipt"]: i.body for i, a in zip(seeded.items, seeded.answers, strict=True)}

    for incident in seeded.all:
        payloads = detail(seeded.client, incident["id"])["payloads"]

        expected = [a["receipt"] for a in seeded.answers if incident["id"] in a["incidents"]]
        assert [p["receipt"] for p in payloads] == expected
        for payload in payloads:
            response = seeded.client.get(payload["href"])
            assert payload["href"] == f"/api/v1/payloads/{payload['receipt']}"
            assert (response.status_code, response.mimetype) == (200, "application/json")
            assert response.get_data() == body_of[payload["receipt"]]
            assert payload["size"] == len(response.get_data())


@pytest.mark.parametrize(
    "path", ["/api/v1/incidents/999999", "/api/v1/payloads/999999", "/api/v1/incidents/latest"]
)
def test_unknown_incidents_and_payloads_are_404_in_json(seeded: Seeded, path: str) -> None:
    response = seeded.client.get(path)

    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"


# -- health -----------------------------------------------------------------------------------


def test_health_and_readiness_report_ok_on_a_migrated_database(seeded: Seeded) -> None:
    health = seeded.client.get("/healthz")
    ready = seeded.client.get("/readyz")

    assert (health.status_code, health.get_json()["status"]) == (200, "ok")
    assert ready.status_code == 200
    assert ready.get_json() == {"status": "ready", "schema": migrate.head_revision()}


def test_readiness_fails_on_a_database_that_was_never_migrated(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    container = bootstrap(receiver_settings(f"sqlite:///{empty}"))
    try:
        response = create_app(container=container).test_client().get("/readyz")
    finally:
        container.engine.dispose()

    assert response.status_code == 503
    answer = response.get_json()
    assert answer["status"] == "unavailable"
    assert "receiver db upgrade" in answer["reason"]


@pytest.mark.parametrize(
    ("revision", "status"),
    [("0001", 503), ("9999_from_a_newer_release", 200)],
    ids=["behind: not ready", "ahead (rolling upgrade): ready"],
)
def test_readiness_waits_for_a_schema_behind_but_serves_on_one_a_newer_release_migrated(
    tmp_path: Path, revision: str, status: int
) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    container = bootstrap(receiver_settings(url))
    try:
        migrate.upgrade(container.engine)
        with container.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": revision})
        response = create_app(container=container).test_client().get("/readyz")
    finally:
        container.engine.dispose()
    assert response.status_code == status
    assert response.get_json()["schema" if status == 200 else "reason"].count(revision) == 1
