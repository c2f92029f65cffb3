"""Parsing the event recorder's events (Alertmanager 0.33): the recorded shapes, validation and
the bounds on what is kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from receiver.model.am_events import MAX_TEXT, hex_fingerprint, parse_events
from receiver.model.errors import InvalidPayload

FIXTURES = Path(__file__).parents[1] / "fixtures" / "alertmanager-0.33.1-events"
RECORDED = json.loads((FIXTURES / "requests.json").read_text())
EVENTS = [r["body_raw"].encode() for r in RECORDED if r["path"] == "/events"]


def first(kind: str) -> bytes:
    return next(b for b in EVENTS if f'"{kind}"' in b.decode())


def test_every_recorded_event_parses() -> None:
    kinds = {parse_events(body)[0].kind for body in EVENTS}
    assert {"silenceMutedAlert", "inhibitionMutedAlert", "notification", "alertCreated"} <= kinds
    assert {"silenceCreated", "silenceUpdated"} <= kinds


def test_a_decimal_fingerprint_becomes_the_webhooks_hex_one() -> None:
    assert hex_fingerprint("17271523118378125274") == "efb0c6c488e007da"
    assert hex_fingerprint("efb0c6c488e007da") == "efb0c6c488e007da"
    assert hex_fingerprint(None) is None


def test_a_silenced_alert_names_its_silence_creator_comment_and_end() -> None:
    [event] = parse_events(first("silenceMutedAlert"))
    assert event.fingerprint == "ee6ada5566052b4b"
    assert event.labels["alertname"] == "FanNoise"
    silence = event.detail["silence"]
    assert silence["created_by"] == "alice@example.com"
    assert silence["comment"] == "disk swap, ticket OPS-42"
    assert silence["matchers"] == ['alertname="FanNoise"']
    assert silence["ends_at"].startswith("2026-12-08T05:07")


def test_an_updated_silence_keeps_its_id_with_the_new_comment_and_end() -> None:
    [created] = parse_events(first("silenceCreated"))
    [updated] = parse_events(first("silenceUpdated"))
    assert updated.kind == "silenceUpdated" and updated.fingerprint is None
    before, after = created.detail["silence"], updated.detail["silence"]
    assert after["id"] == before["id"]  # changed in place: same id, same creator and matchers
    assert after["created_by"] == "alice@example.com"
    assert after["matchers"] == ['alertname="FanNoise"']
    assert after["comment"] == "disk swap moved to Friday, ticket OPS-42"
    assert after["ends_at"].startswith("2026-12-08T06:07") and before["ends_at"] < after["ends_at"]


def test_an_inhibited_alert_names_the_rule_and_the_inhibiting_alert() -> None:
    [event] = parse_events(first("inhibitionMutedAlert"))
    assert event.labels["alertname"] == "DiskSlow"
    assert event.detail["inhibited_by"] == ["efb0c6c488e007da"]
    assert event.detail["rules"] == [
        {"source": ['severity="critical"'], "target": ['severity="warning"'], "equal": ["instance"]}
    ]


def test_a_repeated_mute_shares_its_digest_and_other_events_do_not() -> None:
    mutes = [parse_events(b)[0] for b in EVENTS if b"silenceMutedAlert" in b]
    # twice by the silence as made, then once as updated (its new comment: another cause)
    assert len(mutes) == 3 and mutes[0].digest == mutes[1].digest != mutes[2].digest
    others = [parse_events(b)[0].digest for b in EVENTS if b"silenceMutedAlert" not in b]
    assert len(set(others)) == len(others)


def test_a_list_of_events_is_accepted() -> None:
    body = b"[" + b",".join(EVENTS[:3]) + b"]"
    assert len(parse_events(body)) == 3


def test_long_texts_are_cut_not_refused() -> None:
    doc = json.loads(first("silenceMutedAlert"))
    doc["data"]["silenceMutedAlert"]["silence"]["comment"] = "x" * 100_000
    [event] = parse_events(json.dumps(doc).encode())
    assert len(event.detail["silence"]["comment"]) == MAX_TEXT


def _event(**changes: Any) -> bytes:
    doc = {"@timestamp": "2026-12-08T01:52:34.389880601Z", "instance": "am", "data": {"x": {}}}
    return json.dumps({**doc, **changes}).encode()


BAD = {
    "not JSON": (b"{", "(body)"),
    "a number": (b"3", "(body)"),
    "an empty list": (b"[]", "(body)"),
    "no data": (_event(data=None), "data"),
    "two kinds": (_event(data={"a": {}, "b": {}}), "data"),
    "no timestamp": (_event(**{"@timestamp": None}), "@timestamp"),
    "a bad timestamp": (_event(**{"@timestamp": "yesterday"}), "@timestamp"),
    "no zone": (_event(**{"@timestamp": "2026-12-08T01:52:34"}), "@timestamp"),
    "a bad item": (b"[" + _event() + b", 1]", "[1]."),
}


@pytest.mark.parametrize(("body", "field"), BAD.values(), ids=BAD.keys())
def test_an_invalid_body_names_the_offending_field(body: bytes, field: str) -> None:
    with pytest.raises(InvalidPayload) as caught:
        parse_events(body)
    assert caught.value.errors[0]["field"] == field


STAMP = "2026-12-08T00:00:00Z"
WRONG_SHAPES = [
    {"silenceMutedAlert": {"mutedAlert": "x", "silence": {"matchers": ["a", 1, None]}}},
    {
        "inhibitionMutedAlert": {
            "mutedAlert": [1],
            "inhibitRules": ["r"],
            "inhibitingFingerprints": 7,
        }
    },
    {"notification": {"alerts": ["a", 1], "integration": "pagerduty", "groupInfo": 3}},
    {"alertCreated": {"alert": {"details": "x", "labels": {"labels": ["k", {"key": 1}]}}}},
    {"silenceCreated": {"silence": {"id": 5, "createdBy": ["x"], "comment": {"a": 1}}}},
    {"somethingNew": 12},
]


@pytest.mark.parametrize("data", WRONG_SHAPES, ids=[next(iter(d)) for d in WRONG_SHAPES])
def test_an_event_of_an_unexpected_shape_is_kept_as_far_as_it_goes(data: dict[str, Any]) -> None:
    (event,) = parse_events(json.dumps({"@timestamp": STAMP, "data": data}).encode())
    assert event.kind == next(iter(data))


def test_nul_and_lone_surrogates_become_replacement_characters() -> None:
    silence = {"id": "s1", "createdBy": "a\u0000b", "comment": "x\ud800y"}
    body = {"@timestamp": STAMP, "data": {"silenceCreated": {"silence": silence}}}
    (event,) = parse_events(json.dumps(body).encode())
    assert event.detail["silence"]["created_by"] == "a\ufffdb"
    assert event.detail["silence"]["comment"] == "x\ufffdy"


def test_json_nested_too_deeply_is_a_400_not_a_crash() -> None:
    with pytest.raises(InvalidPayload) as caught:
        parse_events(b"[" * 100_000 + b"]" * 100_000)
    assert caught.value.errors[0]["field"] == "(body)"
