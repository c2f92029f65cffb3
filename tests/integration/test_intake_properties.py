"""Properties of the intake (hypothesis), checked on generated webhooks.

At the parse level: valid version 4 webhooks (random label sets, statuses, times with any offset
and up to nanoseconds, optional group keys and fingerprints) parse to what they say, with the
identity rules of docs/semantics.md; anything else (random JSON values, mutated webhooks, random
bytes) is refused with InvalidPayload and never another exception. At the app level (SQLite, in
process): generated sequences of webhooks for one group are always stored, re-posting a body
changes nothing, a group has at most one open incident and an episode is one (fingerprint,
startsAt).

Every test is derandomized (the same examples on every run) and keeps no example database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from receiver.app import create_app
from receiver.bootstrap import bootstrap
from receiver.intake import parse_webhook
from receiver.model.alerts import AlertStatus, Notification, label_fingerprint
from receiver.model.errors import InvalidPayload
from receiver.store.tables import AlertEpisode, Base, Delivery, Incident
from tests.support.api import AUTH
from tests.support.clock import FakeClock
from tests.support.databases import migrated_sqlite, receiver_settings
from tests.support.payloads import ZERO_TIME, alert_doc

PROPERTY = settings(max_examples=60, derandomize=True, database=None, deadline=None)

# -- strategies -------------------------------------------------------------------------------

# any Unicode scalar value but NUL (refused on purpose) and surrogates (not UTF-8)
CHARS = st.characters(codec="utf-8", exclude_characters="\x00")
label_names = st.text(CHARS, min_size=1, max_size=10)
label_values = st.text(CHARS, max_size=12)


@st.composite
def label_sets(draw: st.DrawFn) -> dict[str, str]:
    labels = draw(st.dictionaries(label_names, label_values, max_size=6))
    labels["alertname"] = draw(st.text(CHARS, min_size=1, max_size=10))
    return labels


@st.composite
def times(
    draw: st.DrawFn,
    earliest: datetime = datetime(1970, 1, 1),
    latest: datetime = datetime(2200, 1, 1),
) -> tuple[str, datetime]:
    """An RFC 3339 text (any offset, 0-9 fraction digits, t/T/space, z/Z) and the UTC instant
    the receiver must read from it (microseconds, the digits beyond cut)."""
    instant = draw(st.datetimes(min_value=earliest, max_value=latest)).replace(tzinfo=UTC)
    digits = draw(st.integers(0, 9))
    fraction = f"{draw(st.integers(0, 10**9 - 1)):09d}"[:digits]
    instant = instant.replace(microsecond=int((fraction + "000000")[:6]))
    minutes = draw(st.integers(-(23 * 60 + 59), 23 * 60 + 59))
    local = instant + timedelta(minutes=minutes)
    sign = "-" if minutes < 0 else "+"
    zone = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    if minutes == 0:
        zone = draw(st.sampled_from(["Z", "z", "+00:00", "-00:00"]))
    separator = draw(st.sampled_from(["T", "T", "t", " "]))
    text = f"{local.year:04d}-{local.month:02d}-{local.day:02d}{separator}"
    text += f"{local.hour:02d}:{local.minute:02d}:{local.second:02d}"
    return text + (f".{fraction}" if fraction else "") + zone, instant


@st.composite
def alerts(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """One alert entry and what it must parse to."""
    status = draw(st.sampled_from(["firing", "resolved"]))
    starts_text, starts = draw(times())
    doc: dict[str, Any] = {"status": status, "labels": draw(label_sets()), "startsAt": starts_text}
    ends = None
    if status == "firing" and draw(st.booleans()):
        doc["endsAt"] = ZERO_TIME
    elif status == "resolved" and draw(st.booleans()):
        doc["endsAt"], ends = draw(times())
    if draw(st.booleans()):
        doc["annotations"] = draw(st.dictionaries(label_names, label_values, max_size=3))
    if draw(st.booleans()):
        doc["fingerprint"] = draw(st.text("0123456789abcdef", min_size=16, max_size=16))
    if draw(st.booleans()):
        doc["generatorURL"] = "http://prometheus.example/graph?g0.expr=up"
    return doc, {"starts_at": starts, "ends_at": ends}


@st.composite
def webhooks(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A valid version 4 body (optional fields present or not) and each alert's expected times."""
    entries = draw(st.lists(alerts(), min_size=1, max_size=6))
    doc: dict[str, Any] = {"alerts": [a for a, _ in entries]}
    optional = {
        "version": st.just("4"),
        "receiver": st.text(CHARS, min_size=1, max_size=20),
        "groupKey": st.text(CHARS, max_size=40),
        "status": st.sampled_from(["firing", "resolved"]),
        "truncatedAlerts": st.integers(0, 2**70),
        "groupLabels": st.dictionaries(label_names, label_values, max_size=3),
        "commonLabels": st.dictionaries(label_names, label_values, max_size=3),
        "externalURL": st.just("http://alertmanager.example:9093"),
        "notification_reason": st.just("repeat_interval"),
    }
    for key, values in optional.items():
        if draw(st.booleans()):
            doc[key] = draw(values)
    return doc, [expected for _, expected in entries]


FIELD_NAMES = [
    "alerts",
    "status",
    "labels",
    "annotations",
    "startsAt",
    "endsAt",
    "fingerprint",
    "receiver",
    "groupKey",
    "truncatedAlerts",
    "groupLabels",
    "commonLabels",
    "commonAnnotations",
    "version",
    "externalURL",
    "generatorURL",
    "alertname",
]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**80), 2**80)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["firing", "resolved", ZERO_TIME, "2026-11-28T00:00:00Z"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=6), children, max_size=5)
    ),
    max_leaves=16,
)


def parse(doc: Any, hint: str | None = None) -> Notification:
    return parse_webhook(json.dumps(doc).encode(), hint)


def parses_or_is_refused(body: bytes) -> None:
    """The one promise about any input: a Notification or InvalidPayload naming fields."""
    try:
        parse_webhook(body)
    except InvalidPayload as exc:
        assert exc.errors
        for error in exc.errors:
            assert isinstance(error["field"], str) and error["field"]
            assert isinstance(error["message"], str) and error["message"]


# -- valid webhooks ---------------------------------------------------------------------------


@PROPERTY
@given(webhooks())
def test_a_valid_webhook_keeps_its_alerts_in_order_with_what_each_says(
    case: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    doc, expected = case
    n = parse(doc)

    assert len(n.alerts) == len(doc["alerts"])
    for parsed, sent, times_ in zip(n.alerts, doc["alerts"], expected, strict=True):
        assert parsed.labels == sent["labels"]
        assert parsed.status == AlertStatus(sent["status"])
        assert parsed.starts_at == times_["starts_at"] and parsed.starts_at.tzinfo == UTC
        assert parsed.ends_at == times_["ends_at"]
        assert parsed.annotations == sent.get("annotations", {})
        assert parsed.generator_url == sent.get("generatorURL")
    assert n.truncated_alerts == doc.get("truncatedAlerts", 0)


@PROPERTY
@given(webhooks())
def test_a_fingerprint_is_kept_when_sent_and_otherwise_derived_from_the_label_set(
    case: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    doc, _ = case
    n = parse(doc)

    for parsed, sent in zip(n.alerts, doc["alerts"], strict=True):
        if "fingerprint" in sent:
            assert (parsed.fingerprint, parsed.fingerprint_derived) == (sent["fingerprint"], False)
        else:
            assert parsed.fingerprint == label_fingerprint(sent["labels"])
            assert parsed.fingerprint_derived is True


@PROPERTY
@given(label_sets(), st.randoms(use_true_random=False), webhooks())
def test_a_derived_fingerprint_depends_only_on_the_label_set(
    labels: dict[str, str], random: Any, other: tuple[dict[str, Any], list[dict[str, Any]]]
) -> None:
    """Whatever the label order, status, times, annotations or the rest of the body."""
    names = list(labels)
    random.shuffle(names)
    shuffled = {name: labels[name] for name in names}
    doc, _ = other
    doc = {**doc, "alerts": [{**a, "labels": labels} for a in doc["alerts"]]}
    doc["alerts"][-1] = {**doc["alerts"][-1], "labels": shuffled}
    for entry in doc["alerts"]:
        entry.pop("fingerprint", None)

    n = parse(doc)

    assert {a.fingerprint for a in n.alerts} == {label_fingerprint(labels)}
    assert label_fingerprint(shuffled) == label_fingerprint(labels)


@PROPERTY
@given(webhooks())
def test_without_a_root_status_the_notification_fires_iff_any_alert_fires(
    case: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    doc, _ = case
    any_firing = any(a["status"] == "firing" for a in doc["alerts"])

    n = parse(doc)

    if "status" in doc:
        assert n.status == AlertStatus(doc["status"])  # as sent, even when it disagrees
    else:
        assert (n.status is AlertStatus.FIRING) == any_firing


@PROPERTY
@given(webhooks(), st.randoms(use_true_random=False), st.text(CHARS, min_size=1, max_size=20))
def test_the_group_is_the_body_receiver_and_group_key_else_derived_the_same_for_any_order(
    case: tuple[dict[str, Any], list[dict[str, Any]]], random: Any, hint: str
) -> None:
    doc, _ = case
    reordered = {**doc, "alerts": random.sample(doc["alerts"], len(doc["alerts"]))}

    n, again = parse(doc, hint), parse(reordered, hint)

    assert n.receiver == doc.get("receiver", hint)
    assert parse({k: v for k, v in doc.items() if k != "receiver"}).receiver == "default"
    if doc.get("groupKey"):
        assert (n.group_key, n.group_key_derived) == (doc["groupKey"], False)
    else:
        assert n.group_key.startswith("derived:{") and n.group_key_derived is True
    assert (again.group_key, again.group_key_derived) == (n.group_key, n.group_key_derived)


@PROPERTY
@given(times(earliest=datetime(1, 1, 2), latest=datetime(9999, 12, 30)))
def test_a_time_of_any_year_within_range_reads_as_its_utc_instant(
    case: tuple[str, datetime],
) -> None:
    text, instant = case
    doc = {"alerts": [{"status": "firing", "labels": {"alertname": "A"}, "startsAt": text}]}

    [parsed] = parse(doc).alerts

    assert parsed.starts_at == instant


# -- anything else is refused with InvalidPayload ---------------------------------------------


@PROPERTY
@given(json_values)
def test_any_json_value_is_parsed_or_refused_with_invalid_payload(value: Any) -> None:
    parses_or_is_refused(json.dumps(value).encode())


@st.composite
def mutated_webhooks(draw: st.DrawFn) -> dict[str, Any]:
    """A valid webhook with one value somewhere replaced by any JSON value, or a key removed."""
    doc, _ = draw(webhooks())
    places: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        children = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in list(children):
            places.append((node, key))
            if isinstance(child, dict | list):
                walk(child)

    walk(doc)
    container, key = draw(st.sampled_from(places))
    if isinstance(container, dict) and draw(st.booleans()):
        del container[key]
    else:
        container[key] = draw(json_values)
    return doc


@PROPERTY
@given(mutated_webhooks())
def test_a_mutated_webhook_is_parsed_or_refused_with_invalid_payload(doc: dict[str, Any]) -> None:
    parses_or_is_refused(json.dumps(doc).encode())


@PROPERTY
@given(webhooks(), st.data())
def test_damaged_bytes_are_parsed_or_refused_with_invalid_payload(
    case: tuple[dict[str, Any], list[dict[str, Any]]], data: st.DataObject
) -> None:
    """Cut short, or a run of random bytes spliced in anywhere (also raw NUL and bad UTF-8)."""
    body = json.dumps(case[0], ensure_ascii=data.draw(st.booleans())).encode()
    start = data.draw(st.integers(0, len(body)))
    end = data.draw(st.integers(start, min(len(body), start + 8)))
    splice = data.draw(st.binary(max_size=6))

    parses_or_is_refused(body[:start])
    parses_or_is_refused(body[:start] + splice + body[end:])


@PROPERTY
@given(st.binary(max_size=64))
def test_random_bytes_are_refused_with_invalid_payload(body: bytes) -> None:
    parses_or_is_refused(body)


@settings(max_examples=50, derandomize=True, database=None, deadline=None)
@given(
    st.sampled_from(["0001-01-01T00:", "9999-12-31T23:"]),
    st.integers(0, 59),
    st.integers(1, 23 * 60 + 59),
)
@example("9999-12-31T23:", 30, -60)
def test_a_time_whose_utc_instant_is_out_of_range_is_refused_with_invalid_payload(
    day_and_hour: str, minute: int, offset: int
) -> None:
    if day_and_hour.startswith("9999"):
        offset = -abs(offset)
    zone = f"{'-' if offset < 0 else '+'}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    text = f"{day_and_hour}{minute:02d}:00{zone}"
    doc = {"alerts": [{"status": "firing", "labels": {"alertname": "A"}, "startsAt": text}]}

    parses_or_is_refused(json.dumps(doc).encode())


# -- the app: sequences of webhooks for one group ---------------------------------------------

SERIES = [{"alertname": "PropertyAlert", "instance": f"host-{n}"} for n in range(3)]
DELIVERIES = {
    "receivers": {"pd": {"type": "pagerduty", "routing_key": "R" * 32}},
    "routes": [{"matchers": [], "receivers": ["pd"]}],
}


alert_entries = st.tuples(
    st.integers(0, len(SERIES) - 1),  # which series
    st.sampled_from(["firing", "resolved"]),
    st.sampled_from([0, 5, 10]),  # startsAt, minutes after T0
)
steps = st.tuples(
    st.lists(alert_entries, min_size=1, max_size=4),
    st.sampled_from([None, "firing", "resolved"]),  # the root status, or none
    st.sampled_from([0, 0, 2]),  # truncatedAlerts
    st.integers(0, 1200),  # seconds on the clock before the post
    st.one_of(st.none(), st.integers(0, 3600)),  # re-post the same bytes after that many seconds
)


def body_of(entries: list[tuple[int, str, int]], status: str | None, truncated: int) -> bytes:
    summary = {"summary": "a property alert"}
    alerts = [
        alert_doc(SERIES[i], state, minute, annotations=summary) for i, state, minute in entries
    ]
    doc: dict[str, Any] = {
        "version": "4",
        "receiver": "property",
        "groupKey": '{}:{alertname="PropertyAlert"}',
        "groupLabels": {"alertname": "PropertyAlert"},
        "truncatedAlerts": truncated,
        "alerts": alerts,
    }
    if status:
        doc["status"] = status
    return json.dumps(doc).encode()


@pytest.fixture(scope="module")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield migrated_sqlite(Path(tmp_path_factory.mktemp("properties")) / "receiver.db")


def counts(engine: Any) -> dict[str, Any]:
    with engine.connect() as conn:
        open_per_group = conn.execute(
            select(func.count())
            .select_from(Incident)
            .where(Incident.status == "firing")
            .group_by(Incident.group_id)
        ).scalars()
        per_episode = conn.execute(
            select(func.count())
            .select_from(AlertEpisode)
            .group_by(AlertEpisode.group_id, AlertEpisode.fingerprint, AlertEpisode.starts_at)
        ).scalars()
        return {
            "incidents": conn.execute(select(func.count()).select_from(Incident)).scalar_one(),
            "deliveries": conn.execute(select(func.count()).select_from(Delivery)).scalar_one(),
            "most_open_in_a_group": max(open_per_group, default=0),
            "most_episodes_per_key": max(per_episode, default=0),
        }


@settings(
    max_examples=25,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(steps, min_size=2, max_size=8))
def test_webhooks_of_one_group_are_stored_and_repeats_change_nothing(
    sqlite_db: str, sequence: list[Any]
) -> None:
    clock = FakeClock()
    container = bootstrap(receiver_settings(sqlite_db, **DELIVERIES), clock=clock)
    try:
        with container.engine.begin() as conn:  # every example starts empty
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())
        client = create_app(container=container).test_client()

        def post(body: bytes) -> dict[str, Any]:
            response = client.post(
                "/api/v1/alertmanager", data=body, content_type="application/json", headers=AUTH
            )
            assert response.status_code == 200, response.get_data(as_text=True)
            return response.get_json()

        for entries, status, truncated, wait, repost_after in sequence:
            clock.advance(seconds=wait)
            body = body_of(entries, status, truncated)
            post(body)
            after = counts(container.engine)
            assert after["most_open_in_a_group"] <= 1
            assert after["most_episodes_per_key"] == 1
            if repost_after is not None:
                clock.advance(seconds=repost_after)
                again = post(body)
                assert (again["new"], again["resolved"]) == (0, 0)
                assert counts(container.engine) == after
    finally:
        container.engine.dispose()
