"""Loading recorded webhooks for replay, timed sending with an injected sleep, the table."""

import itertools
import json

import pytest

from receiver.replay import INTAKE_PATH, ReplayItem, ReplayResult, format_table, load_items, replay
from tests.support.payloads import FIXTURE_SETS, FIXTURES

FOLDER = FIXTURES / "ha-duplicates"
RECORDED = sorted(FOLDER.glob("[0-9]*.json"))
FOLDERS = [root / "ha-duplicates" for root in FIXTURE_SETS.values()]
EVERY_SET = [p for folder in FOLDERS for p in sorted(folder.glob("[0-9]*.json"))]


class FakeTarget:
    """Records every post and answers from a list (or 200 with a small summary)."""

    def __init__(self, answers=None):
        self.posts = []
        self.answers = list(answers or [])

    def post(self, path, body):
        self.posts.append((path, body))
        if self.answers:
            return self.answers.pop(0)
        return 200, {"alerts": 1, "new": 1, "duplicate": 0, "resolved": 0, "stale": 0}


def load(*paths):
    warnings = []
    items = load_items(list(paths), warn=warnings.append)
    return items, warnings


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.parent.name)
def test_a_recorded_folder_loads_every_request_in_name_order_and_skips_its_index(folder):
    items, warnings = load(folder)
    assert [item.source for item in items] == [str(p) for p in sorted(folder.glob("[0-9]*"))]
    assert len(warnings) == 1
    assert "index.json" in warnings[0]
    assert warnings[0].startswith("skipped")


@pytest.mark.parametrize("file", EVERY_SET, ids=lambda p: f"{p.parents[1].name}/{p.name}")
def test_a_recorded_request_keeps_its_exact_body_receiver_time_and_status(file):
    doc = json.loads(file.read_text())
    (item,), warnings = load(file)
    assert warnings == []
    assert item.body == doc["body_raw"].encode("utf-8")
    assert item.receiver == doc["path"].rsplit("/", 1)[-1]
    assert item.path == f"{INTAKE_PATH}/{item.receiver}"
    assert item.recorded_at == doc["received_unix"]
    assert item.recorded_status == doc["response_status"]


def test_the_receiver_is_the_last_segment_of_the_recorded_path(tmp_path):
    for name, path in [("a.json", "/hook/triton-gpu/"), ("b.json", "/x/y/z"), ("c.json", "")]:
        (tmp_path / name).write_text(json.dumps({"body_raw": "{}", "path": path}))
    items, _ = load(tmp_path)
    assert [i.receiver for i in items] == ["triton-gpu", "z", None]
    assert items[2].path == INTAKE_PATH


def test_several_paths_are_loaded_in_the_order_given():
    items, _ = load(RECORDED[2], FOLDER / "index.json", RECORDED[0])
    assert [i.source for i in items] == [str(RECORDED[2]), str(RECORDED[0])]


def test_a_plain_webhook_file_is_sent_byte_for_byte_without_receiver(tmp_path):
    raw = b'{ "receiver": "triton-gpu", "alerts": [ {"status": "firing"} ] }\n'
    file = tmp_path / "hand-written.json"
    file.write_bytes(raw)
    (item,), warnings = load(file)
    assert warnings == []
    assert item == ReplayItem(source=str(file), body=raw)
    assert item.path == INTAKE_PATH
    assert item.recorded_at is None


@pytest.mark.parametrize(
    "content",
    ['{"describe": "an index", "files": []}', "[1, 2]", '"text"', "not json {", '{"alerts": {}}'],
    ids=["object", "array", "string", "malformed", "alerts-not-a-list"],
)
def test_a_file_that_is_not_a_webhook_is_skipped_with_a_warning(tmp_path, content):
    file = tmp_path / "other.json"
    file.write_text(content)
    items, warnings = load(file)
    assert items == []
    assert warnings == [f"skipped {file}: neither a webhook body nor a recorded request"]


def test_replay_posts_every_item_in_order_to_its_path():
    items, _ = load(FOLDER)
    target = FakeTarget()
    results = replay(items, target, sleep=pytest.fail)
    assert target.posts == [(item.path, item.body) for item in items]
    assert [r.item for r in results] == items
    assert all(r.status == 200 for r in results)


def test_a_timed_replay_sleeps_for_the_recorded_gaps():
    items, _ = load(FOLDER)
    slept = []
    replay(items, FakeTarget(), timed=True, sleep=slept.append)
    times = [json.loads(p.read_text())["received_unix"] for p in RECORDED]
    expected = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert slept == pytest.approx(expected)
    assert slept == pytest.approx([3.000422, 2.000812, 3.00058, 1.524794, 0.05204], abs=1e-5)


def test_a_timed_replay_skips_items_without_time_and_never_sleeps_backwards():
    items = [
        ReplayItem("a", b"{}", recorded_at=100.0),
        ReplayItem("plain", b"{}"),
        ReplayItem("b", b"{}", recorded_at=102.5),
        ReplayItem("c", b"{}", recorded_at=101.0),
        ReplayItem("d", b"{}", recorded_at=104.0),
    ]
    slept = []
    target = FakeTarget()
    replay(items, target, timed=True, sleep=slept.append)
    assert slept == [2.5, 3.0]
    assert len(target.posts) == 5


def test_an_untimed_replay_never_sleeps():
    items, _ = load(FOLDER)
    slept = []
    replay(items, FakeTarget(), timed=False, sleep=slept.append)
    assert slept == []


def test_format_table_lists_each_file_with_its_receiver_and_status():
    items, _ = load(FOLDER)
    answers = [
        (200, {"alerts": 2, "new": 1, "duplicate": 1, "resolved": 0, "stale": 0, "incidents": [7]})
    ] * 4 + [(503, {"error": "unavailable", "message": "database is down"}), (400, {})]
    results = replay(items, FakeTarget(answers))
    lines = format_table(results).splitlines()
    assert lines[0].split() == [
        "file",
        "receiver",
        "status",
        "alerts",
        "new",
        "dup",
        "resolved",
        "stale",
        "incidents",
    ]
    assert len(lines) == 1 + len(items)
    for line, file, result in zip(lines[1:], RECORDED, results, strict=True):
        assert line.split()[:3] == [file.name, result.item.receiver, str(result.status)]
    assert lines[1].split()[3:] == ["2", "1", "1", "0", "0", "7"]
    assert lines[5].split()[3:] == ["-"] * 5 + ["database", "is", "down"]
    assert lines[6].split()[3:] == ["-"] * 5


def test_format_table_shows_a_dash_for_items_without_receiver():
    result = ReplayResult(ReplayItem("/tmp/plain.json", b"{}"), 200, {"alerts": 1})
    row = format_table([result]).splitlines()[1].split()
    assert row[:4] == ["plain.json", "-", "200", "1"]
