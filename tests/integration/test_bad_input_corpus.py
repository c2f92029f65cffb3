"""A corpus of bad (and borderline) webhook bodies, each posted to the real app on SQLite and on
Postgres: the answer is a 4xx JSON error naming the problem, kept among the rejected requests,
with nothing stored; or a 200 with the data stored faithfully (read back through the JSON API).
Never a 5xx, and the receiver keeps serving afterwards.

The cases and what each must get are in ``tests/corpus/index.json``; the bodies are the files
beside it, or generated here when too big to keep. Cases of intake-level rejections already in
test_intake_api.py and test_intake_limits.py are not repeated.

Both databases are created once for the module and emptied after each case (a fresh Postgres
database per case would cost most of the run).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import create_engine

from receiver.app import create_app
from receiver.bootstrap import Container, bootstrap
from receiver.model.alerts import label_fingerprint
from receiver.store.tables import Base
from tests.support.api import AUTH, detail, incidents, send
from tests.support.clock import FakeClock
from tests.support.databases import module_database, receiver_settings
from tests.support.payloads import VALID
from tests.support.storage import assert_nothing_stored, assert_still_serving, rejected_rows

CORPUS = Path(__file__).parent.parent / "corpus"
INDEX = json.loads((CORPUS / "index.json").read_text())
DEFAULT_PATH = "/api/v1/alertmanager/corpus"
REJECTED_BODY_BYTES = 64 * 1024  # intake.rejected_body_bytes by default


@dataclass(frozen=True)
class Case:
    name: str
    about: str
    expect: dict[str, Any]
    file: str | None = None
    generate: dict[str, int] | None = None
    path: str = DEFAULT_PATH
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    xfail: dict[str, str] = field(default_factory=dict)

    def body(self) -> bytes:
        if self.file is not None:
            return (CORPUS / self.file).read_bytes()
        assert self.generate is not None, f"{self.name}: neither a file nor a generator"
        return generated_body(**self.generate)

    @property
    def statuses(self) -> list[int]:
        status = self.expect["status"]
        return status if isinstance(status, list) else [status]


CASES = [Case(name=name, **spec) for name, spec in INDEX["cases"].items()]


def minimal_alert(n: int) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {"alertname": "CorpusCase", "n": str(n)},
        "startsAt": "2026-11-28T00:00:00Z",
    }


@functools.cache
def generated_body(
    alerts: int = 0, label_value_bytes: int = 0, labels: int = 0, annotations: int = 0
) -> bytes:
    """The big cases: many alerts, one huge label value, or thousands of labels/annotations."""
    if alerts:
        doc = {"receiver": "corpus", "alerts": [minimal_alert(n) for n in range(alerts)]}
        return json.dumps(doc, separators=(",", ":")).encode()
    alert = minimal_alert(0)
    if label_value_bytes:
        alert["labels"]["blob"] = "".join(f"{n:09d}," for n in range(label_value_bytes // 10))
    for n in range(labels):
        alert["labels"][f"label_{n:04d}"] = f"value {n}"
    if annotations:
        alert["annotations"] = {f"note_{n:04d}": f"text {n}" for n in range(annotations)}
    return json.dumps({"receiver": "corpus", "alerts": [alert]}).encode()


# -- one database per backend for the module, emptied after every case ----------------------


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def corpus_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with module_database(request, tmp_path_factory, "corpus") as url:
        yield url


def empty_database(url: str) -> None:
    """Delete every row, children first (cheaper than TRUNCATE for a few rows)."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())
    finally:
        engine.dispose()


Build = Callable[[dict[str, Any]], tuple[Container, FlaskClient]]


@pytest.fixture
def receiver_app(corpus_db: str) -> Iterator[Build]:
    """Builds the app on the module's database with a case's settings; empties it afterwards."""
    built: list[Container] = []

    def build(overrides: dict[str, Any]) -> tuple[Container, FlaskClient]:
        container = bootstrap(receiver_settings(corpus_db, **overrides), clock=FakeClock())
        built.append(container)
        return container, create_app(container=container).test_client()

    yield build
    for container in built:
        container.engine.dispose()
    empty_database(corpus_db)


def database_kind(url: str) -> str:
    return "postgres" if url.startswith("postgresql") else "sqlite"


# -- the corpus -------------------------------------------------------------------------------


def test_every_corpus_file_belongs_to_exactly_one_case() -> None:
    files = {p.name for p in CORPUS.iterdir()} - {"index.json"}
    named = [case.file for case in CASES if case.file]
    assert sorted(named) == sorted(files)
    for case in CASES:
        assert (case.file is None) != (case.generate is None), case.name
        assert case.about and case.expect["status"], case.name


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_bad_input_gets_a_json_4xx_naming_it_or_is_stored_faithfully_never_a_5xx(
    case: Case, corpus_db: str, receiver_app: Build, request: pytest.FixtureRequest
) -> None:
    if reason := case.xfail.get(database_kind(corpus_db)):
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))
    container, client = receiver_app(case.settings)
    body = case.body()

    response = client.post(
        case.path, data=body, content_type=case.content_type, headers={**AUTH, **case.headers}
    )

    status = response.status_code
    assert status < 500, f"{case.name}: {status} {response.get_data(as_text=True)[:300]}"
    assert status in case.statuses, response.get_data(as_text=True)[:300]
    assert response.is_json
    if 400 <= status < 500:
        assert_refused(case, container, body, response.get_json(), status)
        assert_nothing_stored(client, container.engine)
        assert_still_serving(client)
    else:
        assert_stored_faithfully(case, client, body, response.get_json())
        assert_still_serving_beside(client)


def assert_refused(
    case: Case,
    container: Container,
    body: bytes,
    answer: dict[str, Any],
    status: int,
) -> None:
    expect = case.expect
    assert answer["error"] == expect["error"]
    assert answer["message"]
    if expect.get("fields") is not None:
        assert [e["field"] for e in answer["errors"]] == expect["fields"]
        assert all(e["message"] for e in answer["errors"])
    if "message" in expect:
        messages = [answer["message"]] + [e["message"] for e in answer.get("errors", [])]
        assert any(expect["message"] in m for m in messages), messages
    [row] = rejected_rows(container.engine)
    assert (row.status_code, row.reason) == (status, expect["error"])
    assert row.body == (None if status == 413 else body[:REJECTED_BODY_BYTES])
    assert row.body_size == (len(body) if body else None)  # no Content-Length for no body


def assert_stored_faithfully(
    case: Case, client: FlaskClient, body: bytes, answer: dict[str, Any]
) -> None:
    expect = case.expect
    assert answer["status"] == "stored"
    payload = client.get(f"/api/v1/payloads/{answer['receipt']}")
    assert payload.status_code == 200
    assert payload.get_data() == body, "the payload API must give back the exact bytes"
    assert len(incidents(client)) == expect.get("incidents", 1)
    shown = [detail(client, incident_id) for incident_id in answer["incidents"]]
    series = [s for d in shown for s in d["alerts"]]
    wanted = expect["alerts"]
    if wanted == "as-posted":
        wanted = [
            {"labels": a["labels"], "status": a["status"], "starts_at": "2026-11-28T00:00:00+00:00"}
            for a in json.loads(body)["alerts"]
        ]
    assert answer["alerts"] == len(wanted)
    assert len(series) == len(wanted)
    for alert in wanted:
        matching = [s for s in series if s["labels"] == alert["labels"]]
        assert matching, f"no series with the labels {alert['labels']!r:.200}"
        [stored] = matching
        assert stored["fingerprint_derived"] is True
        if len(body) < 65536:  # the check is pure Python: skip it for the huge bodies
            assert stored["fingerprint"] == label_fingerprint(alert["labels"])
        [episode] = stored["episodes"]
        assert episode["status"] == alert["status"]
        assert episode["starts_at"] == alert["starts_at"]
        if "ends_at" in alert:
            assert episode["ends_at"] == alert["ends_at"]
    if "receiver" in expect:
        assert [d["group"]["receiver"] for d in shown] == [expect["receiver"]]
    if expect.get("truncated"):
        posted = json.loads(body)["truncatedAlerts"]
        [incident] = shown
        assert incident["truncated"] is True
        [event] = [e for e in incident["timeline"] if e["kind"] == "truncated"]
        assert event["detail"]["truncated_alerts"] == posted


def assert_still_serving_beside(client: FlaskClient) -> None:
    """After a stored case: a valid webhook of another group still opens its own incident."""
    answer = send(client, VALID)
    assert answer["new"] == 1
    assert "DiskFull" in [i["alertname"] for i in incidents(client)]


# -- bounded answers --------------------------------------------------------------------------


def test_a_list_of_20000_non_objects_gets_a_bounded_error_list(
    corpus_db: str, receiver_app: Build
) -> None:
    container, client = receiver_app({})
    body = json.dumps({"receiver": "corpus", "alerts": list(range(20_000))}).encode()

    response = client.post(DEFAULT_PATH, data=body, content_type="application/json", headers=AUTH)

    assert response.status_code == 400
    answer = response.get_json()
    assert answer["error"] == "invalid_payload"
    assert [e["field"] for e in answer["errors"][:2]] == ["alerts[0]", "alerts[1]"]
    [row] = rejected_rows(container.engine)
    assert len(answer["errors"]) <= 20 and len(row.errors) <= 20
    assert len(response.get_data()) < 64 * 1024
