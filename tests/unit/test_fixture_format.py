"""The single-file fixture: exact bodies in readable form, reading it back, timing and paths."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from receiver import fixture
from receiver.replay import (
    INTAKE_PATH,
    HttpTarget,
    ReadError,
    ReplayItem,
    SimulatedClock,
    load_items,
    replay,
)
from receiver.store.export import ExportedRequest, IncidentRequests
from tests.support.payloads import FIXTURE_SETS, FIXTURES

RECORDED = sorted((FIXTURES / "all").glob("[0-9]*.json"))
EVERY_SET = [
    p for root in FIXTURE_SETS.values() for p in sorted((root / "all").glob("[0-9]*.json"))
]
START = datetime(2026, 11, 28, 0, 20, 12, 803642, tzinfo=UTC)


def raw_body(file: Path) -> bytes:
    return json.loads(file.read_text())["body_raw"].encode("utf-8")


def exported(*bodies: bytes, gaps: tuple[float, ...] = ()) -> IncidentRequests:
    """An export of requests received at START + gaps (0 for the first)."""
    offsets = [0.0, *gaps]
    requests = [
        ExportedRequest(10 + i, START + timedelta(seconds=offsets[i]), "triton-gpu", b, i > 0)
        for i, b in enumerate(bodies)
    ]
    facts = {"id": 7, "receiver": "triton-gpu", "title": "GPU memory", "status": "resolved"}
    return IncidentRequests(facts, requests)


def write(tmp_path: Path, doc: dict[str, Any], name: str = "incident-7.json") -> Path:
    path = tmp_path / name
    path.write_text(fixture.dumps(doc), encoding="utf-8")
    return path


@pytest.mark.parametrize("file", EVERY_SET, ids=lambda p: f"{p.parents[1].name}/{p.name}")
def test_every_recorded_alertmanager_body_is_kept_as_json_and_comes_back_byte_exact(file):
    raw = raw_body(file)
    encoded = fixture.encode_body(raw)
    assert list(encoded) == ["body"]
    assert encoded["body"] == json.loads(raw)
    assert fixture.decode_body(json.loads(json.dumps(encoded))) == raw


def test_go_escapes_html_characters_separators_and_control_characters_as_alertmanager_does():
    value = {"url": "a?x=1&y=<2>", "text": 'say "hi"\\\n\t\u2028\x01', "n": [1, True, None]}
    assert fixture.go_json(value) == (
        '{"url":"a?x=1\\u0026y=\\u003c2\\u003e","text":"say \\"hi\\"\\\\\\n\\t\\u2028\\u0001",'
        '"n":[1,true,null]}'
    )
    assert json.loads(fixture.go_json(value)) == value


@pytest.mark.parametrize(
    ("raw", "form"),
    [
        (b'{\n  "receiver": "x",\n  "alerts": []\n}\n', "body_raw"),  # hand-written, indented
        (b'{"receiver":"x","alerts":[]}', "body_raw"),  # compact but without Go's newline
        (b'{"a":1,"a":2}\n', "body_raw"),  # a duplicate key does not survive parsing
        (b'{"x":NaN}\n', "body_raw"),  # not JSON
        (b'{"receiver":"caf\xe9"}\n', "body_base64"),  # not UTF-8
    ],
    ids=["indented", "no-newline", "duplicate-key", "nan", "latin-1"],
)
def test_a_body_go_would_not_write_that_way_is_kept_verbatim(raw, form):
    encoded = fixture.encode_body(raw)
    assert list(encoded) == [form]
    assert fixture.decode_body(encoded) == raw


def test_the_document_keeps_receive_order_offsets_receiver_and_which_requests_touched_it():
    first, second = raw_body(RECORDED[2]), raw_body(RECORDED[7])
    doc = fixture.document(exported(first, second, gaps=(12.000358,)))
    assert doc["format"] == fixture.FORMAT
    assert doc["started_at"] == "2026-11-28T00:20:12.803642+00:00"
    items = doc["items"]
    assert [i["offset_seconds"] for i in items] == [0.0, 12.000358]
    assert [i["receipt"] for i in items] == [10, 11]
    assert [i["touches_incident"] for i in items] == [False, True]
    assert "1 request(s) that touched it" in doc["describe"]
    assert "1 other request(s) of its group" in doc["describe"]


def test_a_fixture_file_loads_as_one_item_per_request_at_its_recorded_time(tmp_path):
    bodies = [raw_body(RECORDED[0]), raw_body(RECORDED[3])]
    path = write(tmp_path, fixture.document(exported(*bodies, gaps=(11.002,))))
    warnings: list[str] = []
    items = load_items([path], warn=warnings.append)
    assert warnings == []
    assert [i.body for i in items] == bodies
    assert [i.source for i in items] == [f"{path}#1", f"{path}#2"]
    assert [i.path for i in items] == [f"{INTAKE_PATH}/triton-gpu"] * 2
    assert items[0].recorded_at == pytest.approx(START.timestamp())
    assert items[1].recorded_at - items[0].recorded_at == pytest.approx(11.002, abs=1e-6)
    restored = datetime.fromtimestamp(items[1].recorded_at, UTC)
    assert restored == START + timedelta(seconds=11.002)


def test_a_folder_of_fixtures_and_recorded_requests_loads_them_all_in_name_order(tmp_path):
    write(tmp_path, fixture.document(exported(raw_body(RECORDED[0]))), "a.json")
    (tmp_path / "b.json").write_text(RECORDED[1].read_text())
    items = load_items([tmp_path], warn=pytest.fail)
    assert [Path(i.source).name for i in items] == ["a.json#1", "b.json"]


def test_a_hand_written_fixture_without_start_counts_its_offsets_from_now():
    now = datetime(2030, 1, 1, tzinfo=UTC)
    doc = {
        "format": fixture.FORMAT,
        "items": [{"body_raw": "{}"}, {"offset_seconds": 5, "body_raw": "{}"}],
    }
    requests = fixture.read(doc, now=now)
    assert [r.received_at for r in requests] == [now, now + timedelta(seconds=5)]
    assert [r.receiver for r in requests] == [None, None]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"format": "receiver-fixture/9", "items": []}, "unsupported fixture format"),
        ({"format": fixture.FORMAT, "items": {}}, "items: expected a list"),
        ({"format": fixture.FORMAT, "items": [{"offset_seconds": 1}]}, "items[0]: needs exactly"),
        (
            {"format": fixture.FORMAT, "items": [{"body_raw": "{}", "body": {}}]},
            "items[0]: needs exactly one of body, body_raw, body_base64",
        ),
        ({"format": fixture.FORMAT, "items": [{"body_base64": "!!"}]}, "items[0].body_base64"),
        ({"format": fixture.FORMAT, "items": [{"body_raw": 3}]}, "items[0].body_raw"),
        (
            {"format": fixture.FORMAT, "items": [{"body_raw": "{}", "offset_seconds": "1"}]},
            "items[0].offset_seconds",
        ),
        ({"format": fixture.FORMAT, "started_at": "yesterday", "items": []}, "started_at"),
        ({"format": fixture.FORMAT, "started_at": "2026-11-28T00:00:00", "items": []}, "zone"),
    ],
    ids=["version", "items", "no-body", "two-bodies", "base64", "raw", "offset", "start", "naive"],
)
def test_a_broken_fixture_is_an_error_naming_the_file_and_the_field(tmp_path, doc, message):
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(fixture.FixtureError) as caught:
        load_items([path], warn=pytest.fail)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


class Recorder:
    def __init__(self) -> None:
        self.posts: list[tuple[str, bytes]] = []
        self.moves: list[float | None] = []

    def post(self, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        self.posts.append((path, body))
        return 200, {"incidents": [len(self.posts) % 2 + 1]}

    def move_to(self, recorded_at: float | None) -> None:
        self.moves.append(recorded_at)


def test_a_timed_replay_waits_the_recorded_gaps_divided_by_the_speed():
    items = [ReplayItem(str(i), b"{}", recorded_at=t) for i, t in enumerate([100, 103, 103.5])]
    slept: list[float] = []
    replay(items, Recorder(), timed=True, sleep=slept.append, speed=4)
    assert slept == [0.75, 0.125]


def test_a_clocked_target_moves_to_each_recorded_time_before_its_request_timed_or_not():
    items = [ReplayItem("a", b"1", recorded_at=100.0), ReplayItem("b", b"2")]
    target = Recorder()
    replay(items, target, sleep=pytest.fail)
    assert target.moves == [100.0, None]
    assert target.posts == [(INTAKE_PATH, b"1"), (INTAKE_PATH, b"2")]


def test_the_simulated_clock_starts_at_the_first_recorded_time_and_never_goes_back():
    clock = SimulatedClock()
    at = datetime(2026, 11, 28, tzinfo=UTC)
    clock.move_to(at)
    clock.move_to(at - timedelta(seconds=5))
    assert clock() == at
    clock.advance(90)
    assert clock() == at + timedelta(seconds=90)
    assert SimulatedClock()() > at - timedelta(days=1)  # no recorded time yet: the real time


@pytest.mark.parametrize(
    ("receiver", "path"),
    [
        ("triton-gpu", f"{INTAKE_PATH}/triton-gpu"),
        ("team a", f"{INTAKE_PATH}/team%20a"),
        ("a/b", INTAKE_PATH),  # only a body names a receiver with a slash: no suffix needed
        (None, INTAKE_PATH),
    ],
)
def test_the_receiver_name_goes_into_the_path_quoted(receiver, path):
    assert ReplayItem("x", b"{}", receiver=receiver).path == path


class FakeResponse:
    def __init__(self, status: int, body: bytes = b"{}") -> None:
        self.status_code, self.content = status, body


def test_reading_back_from_a_receiver_whose_read_api_needs_a_ui_login_says_what_to_do(
    monkeypatch,
):
    target = HttpTarget("http://receiver.example:9099")
    monkeypatch.setattr(target.session, "get", lambda url, timeout: FakeResponse(401))
    with pytest.raises(ReadError, match="needs a UI login to read incidents") as caught:
        target.incident(3)
    assert "receiver replay -c CONFIG" in str(caught.value)
    monkeypatch.setattr(target.session, "get", lambda url, timeout: FakeResponse(200, b'{"id":3}'))
    assert target.incident(3) == {"id": 3}
    target.session.close()
