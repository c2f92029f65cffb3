"""Parsing Alertmanager webhook bodies: recorded payloads, derived identity and error paths."""

import copy
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from receiver.intake import parse_time, parse_webhook
from receiver.model.alerts import AlertStatus, label_fingerprint
from receiver.model.errors import InvalidPayload
from tests.support.payloads import FIXTURE_SETS, FIXTURES

RECORDED = [p for root in FIXTURE_SETS.values() for p in sorted((root / "all").glob("*.json"))]
STARTS = "2026-11-28T00:20:11.795Z"


def recorded(name="001.json"):
    return json.loads((FIXTURES / "all" / name).read_text())


def minimal_alert(**fields):
    base = {"status": "firing", "labels": {"alertname": "TritonHighErrorRate"}, "startsAt": STARTS}
    return {**base, **fields}


def minimal(*alerts, **fields):
    return {"alerts": list(alerts) or [minimal_alert()], **fields}


def parse(doc, receiver_hint=None):
    return parse_webhook(json.dumps(doc).encode(), receiver_hint)


def fields_of(doc_or_bytes):
    body = doc_or_bytes if isinstance(doc_or_bytes, bytes) else json.dumps(doc_or_bytes).encode()
    with pytest.raises(InvalidPayload) as caught:
        parse_webhook(body)
    return [e["field"] for e in caught.value.errors]


def set_and_name(path: Path) -> str:
    return f"{path.parents[1].name.removeprefix('alertmanager-')}/{path.name}"


@pytest.mark.parametrize("version", FIXTURE_SETS)
def test_each_recording_is_not_empty(version):
    assert len(list((FIXTURE_SETS[version] / "all").glob("*.json"))) >= 50


@pytest.mark.parametrize("file", RECORDED, ids=set_and_name)
def test_every_recorded_body_parses_to_what_alertmanager_sent(file):
    doc = json.loads(file.read_text())
    body = doc["body"]
    notification = parse_webhook(doc["body_raw"].encode("utf-8"))
    assert notification.receiver == body["receiver"]
    assert notification.status == body["status"]
    assert notification.group_key == body["groupKey"]
    assert notification.group_key_derived is False
    assert notification.truncated_alerts == body["truncatedAlerts"]
    assert notification.version == "4"
    assert notification.external_url == body["externalURL"]
    assert notification.group_labels == body["groupLabels"]
    assert [a.fingerprint for a in notification.alerts] == [
        a["fingerprint"] for a in body["alerts"]
    ]
    assert not any(a.fingerprint_derived for a in notification.alerts)
    assert [a.status.value for a in notification.alerts] == [a["status"] for a in body["alerts"]]


@pytest.mark.parametrize("file", RECORDED, ids=set_and_name)
def test_the_derived_fingerprint_equals_alertmanagers_for_every_recorded_alert(file):
    for sent in json.loads(file.read_text())["body"]["alerts"]:
        assert label_fingerprint(sent["labels"]) == sent["fingerprint"]


def test_the_fingerprint_of_an_empty_label_set_is_the_fnv_offset_basis():
    assert label_fingerprint({}) == "cbf29ce484222325"


def test_the_fingerprint_does_not_depend_on_label_order():
    assert label_fingerprint({"a": "1", "b": "2"}) == label_fingerprint({"b": "2", "a": "1"})
    assert label_fingerprint({"a": "1", "b": "2"}) != label_fingerprint({"a": "2", "b": "1"})


def test_a_recorded_alert_without_fingerprint_gets_the_same_one_marked_derived():
    body = recorded("008.json")["body"]
    expected = [a.pop("fingerprint") for a in body["alerts"]]
    notification = parse(body)
    assert [a.fingerprint for a in notification.alerts] == expected
    assert all(a.fingerprint_derived for a in notification.alerts)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-28T00:20:11Z", datetime(2026, 11, 28, 0, 20, 11, tzinfo=UTC)),
        ("2026-11-28T00:20:11.795Z", datetime(2026, 11, 28, 0, 20, 11, 795000, tzinfo=UTC)),
        ("2026-11-28T00:20:11.123456789Z", datetime(2026, 11, 28, 0, 20, 11, 123456, tzinfo=UTC)),
        ("2026-11-28T02:20:11.5+02:00", datetime(2026, 11, 28, 0, 20, 11, 500000, tzinfo=UTC)),
        ("2026-11-27T19:20:11-05:00", datetime(2026, 11, 28, 0, 20, 11, tzinfo=UTC)),
        ("2026-11-28t00:20:11z", datetime(2026, 11, 28, 0, 20, 11, tzinfo=UTC)),
    ],
)
def test_times_with_nanoseconds_and_offsets_become_utc_microseconds(text, expected):
    parsed = parse_time(text)
    assert parsed == expected
    assert parsed.utcoffset().total_seconds() == 0
    assert parse(minimal(minimal_alert(startsAt=text))).alerts[0].starts_at == expected


def test_the_zero_end_time_means_no_end():
    assert parse_time("0001-01-01T00:00:00Z") is None
    notification = parse(minimal(minimal_alert(endsAt="0001-01-01T00:00:00Z")))
    assert notification.alerts[0].ends_at is None


def test_a_real_end_time_is_kept():
    notification = parse(
        minimal(minimal_alert(status="resolved", endsAt="2026-11-28T00:21:03.795Z"))
    )
    assert notification.alerts[0].ends_at == datetime(2026, 11, 28, 0, 21, 3, 795000, tzinfo=UTC)


def test_the_zero_time_is_not_accepted_as_a_start():
    assert fields_of(minimal(minimal_alert(startsAt="0001-01-01T00:00:00Z"))) == [
        "alerts[0].startsAt"
    ]


def test_unknown_fields_at_every_level_are_ignored():
    doc = recorded("008.json")
    body = copy.deepcopy(doc["body"])
    body["groupInfo"] = {"nested": [1, 2]}
    for sent in body["alerts"]:
        sent["silenceURL"] = "http://example.com/silence"
        sent["extra"] = {"nested": [1, 2]}
    assert parse(body) == parse_webhook(doc["body_raw"].encode())


def test_a_payload_with_only_the_required_fields_is_accepted_with_derived_identity():
    notification = parse(minimal(), receiver_hint="triton-critical")
    assert notification.receiver == "triton-critical"
    assert notification.group_key == 'derived:{alertname="TritonHighErrorRate"}'
    assert notification.group_key_derived is True
    assert notification.status is AlertStatus.FIRING
    assert notification.truncated_alerts == 0
    assert notification.external_url is None
    assert notification.version is None
    only = notification.alerts[0]
    assert only.fingerprint == label_fingerprint({"alertname": "TritonHighErrorRate"})
    assert only.fingerprint_derived is True
    assert only.ends_at is None
    assert only.generator_url is None
    assert only.annotations == {}


def test_without_receiver_or_hint_the_receiver_is_default():
    assert parse(minimal()).receiver == "default"
    assert parse(minimal(receiver="named"), receiver_hint="hint").receiver == "named"


def test_a_payload_without_status_is_resolved_only_when_every_alert_is():
    resolved = minimal_alert(status="resolved", endsAt="2026-11-28T00:21:03Z")
    assert parse(minimal(resolved, resolved)).status is AlertStatus.RESOLVED
    assert parse(minimal(resolved, minimal_alert())).status is AlertStatus.FIRING


def test_a_version_3_payload_is_accepted():
    body = recorded()["body"]
    body["version"] = "3"
    assert parse(body).version == "3"


def test_the_derived_group_key_uses_sorted_group_labels_whatever_their_order():
    first = parse(minimal(groupLabels={"model": "llama2_7b", "alertname": "A"}))
    second = parse(minimal(groupLabels={"alertname": "A", "model": "llama2_7b"}))
    assert first.group_key == second.group_key == 'derived:{alertname="A", model="llama2_7b"}'
    assert first.group_key_derived is True


def test_the_derived_group_key_is_empty_when_alertnames_differ():
    two = [minimal_alert(labels={"alertname": "A"}), minimal_alert(labels={"alertname": "B"})]
    assert parse(minimal(*two)).group_key == "derived:{}"
    assert parse(minimal(*reversed(two))).group_key == "derived:{}"


def test_the_derived_group_key_is_the_same_for_every_parse_of_the_same_group():
    shared = [minimal_alert(labels={"alertname": "A", "gpu": str(i)}) for i in range(3)]
    keys = {parse(minimal(*shared)).group_key, parse(minimal(*reversed(shared))).group_key}
    assert keys == {'derived:{alertname="A"}'}


def test_an_empty_group_key_is_marked_derived_when_a_key_is_derived_for_it():
    notification = parse(minimal(groupKey=""))
    assert notification.group_key == 'derived:{alertname="TritonHighErrorRate"}'
    assert notification.group_key_derived is True


def four_alerts_with(index, **fields):
    alerts = [minimal_alert(labels={"alertname": "A", "gpu": str(i)}) for i in range(4)]
    alerts[index] = {**alerts[index], **fields}
    return minimal(*alerts)


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        (four_alerts_with(3, startsAt="yesterday"), "alerts[3].startsAt"),
        (four_alerts_with(1, startsAt="2026-13-40T00:00:00Z"), "alerts[1].startsAt"),
        (four_alerts_with(2, startsAt=1795825212), "alerts[2].startsAt"),
        (four_alerts_with(0, endsAt="soon"), "alerts[0].endsAt"),
        (four_alerts_with(0, labels=["alertname", "A"]), "alerts[0].labels"),
        (four_alerts_with(0, labels={"alertname": "A", "version": 1}), "alerts[0].labels.version"),
        (four_alerts_with(0, labels={"instance": "x"}), "alerts[0].labels"),
        (four_alerts_with(0, labels={"alertname": ""}), "alerts[0].labels"),
        (four_alerts_with(2, annotations={"summary": None}), "alerts[2].annotations.summary"),
        (four_alerts_with(1, status="pending"), "alerts[1].status"),
        (four_alerts_with(0, fingerprint=""), "alerts[0].fingerprint"),
        (four_alerts_with(0, generatorURL=5), "alerts[0].generatorURL"),
        (minimal(status="active"), "status"),
        (minimal(truncatedAlerts="2"), "truncatedAlerts"),
        (minimal(truncatedAlerts=-1), "truncatedAlerts"),
        (minimal(groupLabels=["alertname"]), "groupLabels"),
        (minimal(commonLabels={"severity": 2}), "commonLabels.severity"),
        (minimal(groupKey=7), "groupKey"),
        (minimal(receiver=["a"]), "receiver"),
        (minimal(externalURL=False), "externalURL"),
        ({"alerts": {"0": minimal_alert()}}, "alerts"),
        ({"alerts": []}, "alerts"),
        ({"receiver": "x"}, "alerts"),
        ({"alerts": ["firing"]}, "alerts[0]"),
    ],
)
def test_an_invalid_payload_names_the_offending_field_path(doc, field):
    assert fields_of(doc) == [field]


def test_missing_required_alert_fields_are_each_named():
    assert fields_of({"alerts": [{}]}) == [
        "alerts[0].status",
        "alerts[0].labels",
        "alerts[0].startsAt",
    ]


def test_several_errors_in_one_payload_are_all_reported_at_once():
    doc = {
        "status": "bad",
        "truncatedAlerts": "2",
        "alerts": [
            minimal_alert(),
            minimal_alert(status="nope", labels=["a"]),
            minimal_alert(labels={"alertname": "A", "v": 1}, startsAt="yesterday"),
        ],
    }
    with pytest.raises(InvalidPayload) as caught:
        parse(doc)
    fields = [e["field"] for e in caught.value.errors]
    assert sorted(fields) == sorted(
        [
            "status",
            "truncatedAlerts",
            "alerts[1].status",
            "alerts[1].labels",
            "alerts[2].labels.v",
            "alerts[2].startsAt",
        ]
    )
    assert all(e["message"] for e in caught.value.errors)
    for field in fields:
        assert field in str(caught.value)


@pytest.mark.parametrize(
    "body", [b"", b"{", b'{"alerts": [', b"not json", b"{'alerts': []}"], ids=repr
)
def test_malformed_json_is_reported_against_the_body(body):
    with pytest.raises(InvalidPayload) as caught:
        parse_webhook(body)
    assert [e["field"] for e in caught.value.errors] == ["(body)"]
    assert caught.value.errors[0]["message"].startswith("malformed JSON")


@pytest.mark.parametrize("body", [b"[]", b"null", b'"alerts"', b"42", b"[{}]"], ids=repr)
def test_a_top_level_that_is_not_an_object_is_reported_against_the_body(body):
    with pytest.raises(InvalidPayload) as caught:
        parse_webhook(body)
    assert caught.value.errors == [{"field": "(body)", "message": "must be a JSON object"}]


def test_error_messages_say_what_was_expected():
    with pytest.raises(InvalidPayload) as caught:
        parse(four_alerts_with(3, startsAt="yesterday", status="on"))
    messages = {e["field"]: e["message"] for e in caught.value.errors}
    assert "yesterday" in messages["alerts[3].startsAt"]
    assert "firing" in messages["alerts[3].status"]
    assert "resolved" in messages["alerts[3].status"]


# -- Alertmanager 0.32+ and 0.34+ fields ---------------------------------------------------------


def test_the_notification_reason_and_route_labels_are_read_when_sent():
    n = parse(minimal(notification_reason="new alerts added", routeLabels={"team": "ml"}))
    assert n.notification_reason == "new alerts added"
    assert n.route_labels == {"team": "ml"}


def test_an_older_alertmanager_sends_neither_and_an_empty_reason_is_none():
    assert parse(minimal()).notification_reason is None
    assert parse(minimal()).route_labels == {}
    assert parse(minimal(notification_reason="")).notification_reason is None


def test_an_overlong_reason_is_cut_not_refused():
    n = parse(minimal(notification_reason="x" * 500))
    assert n.notification_reason == "x" * 64


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"notification_reason": 3}, "notification_reason"),
        ({"routeLabels": ["team"]}, "routeLabels"),
        ({"routeLabels": {"team": 1}}, "routeLabels.team"),
        ({"notification_reason": "a\u0000b"}, "notification_reason"),
        ({"routeLabels": {"team": "a\u0000b"}}, "routeLabels"),
        ({"routeLabels": {"team": "x" * 5000}}, "routeLabels.team"),
    ],
)
def test_bad_new_fields_are_refused_naming_them(fields, field):
    assert fields_of(minimal(**fields)) == [field]
