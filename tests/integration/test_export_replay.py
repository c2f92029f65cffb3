"""Replay as a user feature: export an incident as a fixture, replay it into an empty database,
get the same incident and deliveries; expectations; pruned payloads; the download in the UI.

Every source incident is made the way production makes it: the recorded requests replayed in
process at their recorded times with a dry-run worker pass around each (``receiver replay``).
The round trip of every scenario and the flapping lead-in run on both recorded sets; the tests of
the machinery (timing, expectation files, pruning, the download, HTTP) take 0.25's folders as
sample input.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result
from sqlalchemy import select
from sqlalchemy.orm import Session

from receiver import expect
from receiver.app import create_app
from receiver.settings import load_settings
from receiver.store.db import make_engine
from receiver.store.queries import IncidentFilter, IncidentQueries
from receiver.store.tables import WebhookReceipt
from receiver.store.unit_of_work import UnitOfWork
from tests.support.api import TOKEN
from tests.support.cli import Run
from tests.support.databases import template_copy
from tests.support.golden import GOLDEN, golden_name
from tests.support.payloads import FIXTURE_SETS, FIXTURES
from tests.support.servers import gunicorn

SCENARIOS = [
    "single-repeat-resolve",
    "group-growth",
    "truncated-max-alerts",
    "flapping",
    "ha-duplicates",
    "retry-after-5xx",
]
CLOSED = "https://127.0.0.1:9/"  # nothing listens there: a delivery really sent would fail
ROUTED = {  # the receivers and routes of the delivery goldens (tests/golden)
    "receivers": {
        "pd": {"type": "pagerduty", "routing_key": "R" * 32, "base_url": CLOSED},
        "slack": {
            "type": "slack",
            "token": "xoxb-replay",
            "channel": "C0TRITON1",
            "base_url": CLOSED,
        },
    },
    "routes": [
        {"matchers": ['severity="critical"'], "receivers": ["pd"], "continue": True},
        {"matchers": ['severity=~"critical|warning"'], "receivers": ["slack"]},
    ],
    "default_receivers": ["slack"],
    "delivery": {"coalesce_seconds": 0},
}
DRY_RUN = "dry run: rendered, not sent"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "receiver.yaml"
    path.write_text(yaml.safe_dump(ROUTED), encoding="utf-8")
    return path


@pytest.fixture
def fresh_db(db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Databases without incidents of this test's kind: SQLite files the replay creates and
    migrates, Postgres copies of the migrated template (a migration there takes seconds)."""
    numbers = itertools.count(1)

    def make() -> str:
        if db_url.startswith("sqlite"):
            return f"sqlite:///{tmp_path / f'replayed-{next(numbers)}.db'}"
        return copies.enter_context(template_copy(request.getfixturevalue("pg_template"), "r"))

    with ExitStack() as copies:
        yield make


def replay_into(cli: Run, config: Path, url: str, *args: Any) -> Result:
    """``receiver replay -c CONFIG ARGS`` in process on the database at ``url``."""
    return cli("replay", "-c", config, *args, RECEIVER_DATABASE_URL=url)


def export(cli: Run, config: Path, url: str, incident_id: int, path: Path) -> dict[str, Any]:
    result = cli("export", incident_id, "-c", config, "-o", path, RECEIVER_DATABASE_URL=url)
    assert result.exit_code == 0, result.output
    return json.loads(path.read_text(encoding="utf-8"))


def details(url: str) -> list[dict[str, Any]]:
    """Every incident of a database as the read API shows it, by id."""
    queries = IncidentQueries(make_engine(url))  # disposed by the cli fixture
    found = queries.list_incidents(IncidentFilter(), limit=500)["incidents"]
    return [queries.get_incident(i["id"]) for i in sorted(found, key=lambda i: i["id"])]


def summary(incident: dict[str, Any]) -> dict[str, Any]:
    return expect.summarize([incident])["incidents"][0]


def episode_times(incident: dict[str, Any]) -> list[tuple[str, str, str | None, str]]:
    """Every episode with its start and end, group-resolved ends included."""
    return sorted(
        (a["fingerprint"], e["starts_at"], e["ends_at"], e["status"])
        for a in incident["alerts"]
        for e in a["episodes"]
    )


def key_shapes(incident: dict[str, Any]) -> list[str]:
    """Idempotency keys without their incident id (incident:receiver:action:seq)."""
    keys = [d["idempotency_key"] for d in incident["deliveries"]]
    assert all(k.startswith(f"{incident['id']}:") for k in keys)
    return [k.split(":", 1)[1] for k in keys]


def body_hashes(url: str, receipts: list[int] | None = None) -> list[str]:
    """sha256 of the stored bodies, in receive order (of the given receipts only)."""
    stmt = select(WebhookReceipt.id, WebhookReceipt.body_sha256).order_by(WebhookReceipt.id)
    with Session(make_engine(url)) as session:
        rows = session.execute(stmt).all()
    return [sha for rid, sha in rows if receipts is None or rid in receipts]


def golden_deliveries(name: str) -> dict[int, list[str]]:
    """Per incident id, the outbox of the delivery golden as the summary writes deliveries."""
    rows = json.loads((GOLDEN / f"{name}.json").read_text())["outbox"]
    out: dict[int, list[str]] = {}
    for incident_id, receiver, action, state in rows:
        suffix = " (cancelled)" if state == "cancelled" else ""
        out.setdefault(incident_id, []).append(f"{receiver} {action}{suffix}")
    return out


@pytest.mark.parametrize("version", FIXTURE_SETS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_incident_of_a_scenario_exported_and_replayed_elsewhere_comes_back_the_same(
    cli, config, db_url, fresh_db, tmp_path, scenario, version
):
    result = replay_into(cli, config, db_url, FIXTURE_SETS[version] / scenario)
    assert result.exit_code == 0, result.output
    assert "deliveries rendered, not sent" in result.stdout
    source = details(db_url)
    # in process, the worker ran between the recorded requests as it did in production: the
    # outbox is that of the delivery golden (replayed there against vendor stand-ins)
    deliveries = golden_deliveries(golden_name(scenario, version))
    assert {d["id"]: summary(d)["deliveries"] for d in source} == deliveries
    attempts = [a for d in source for x in d["deliveries"] for a in x["attempts"]]
    assert attempts and {a["reason"] for a in attempts} == {DRY_RUN}
    for incident in source:
        path = tmp_path / f"incident-{incident['id']}.json"
        doc = export(cli, config, db_url, incident["id"], path)
        assert all("body" in item for item in doc["items"])  # Alertmanager's bytes, readable
        url = fresh_db()
        result = replay_into(cli, config, url, path)
        assert result.exit_code == 0, result.output
        (twin,) = [d for d in details(url) if summary(d) == summary(incident)]
        assert episode_times(twin) == episode_times(incident)
        assert key_shapes(twin) == key_shapes(incident)
        assert {a["reason"] for x in twin["deliveries"] for a in x["attempts"]} <= {DRY_RUN}
        receipts = [item["receipt"] for item in doc["items"]]
        assert body_hashes(url) == body_hashes(db_url, receipts)  # the very bytes, in order


@pytest.mark.parametrize("version", FIXTURE_SETS)
def test_a_flapping_incident_brings_the_earlier_incident_its_series_first_fired_in(
    cli, config, db_url, fresh_db, tmp_path, version
):
    assert replay_into(cli, config, db_url, FIXTURE_SETS[version] / "all").exit_code == 0
    source = details(db_url)
    gpu = [d for d in source if d["receiver"] == "triton-gpu"]
    (flapping,) = [d for d in gpu if d["flapping"]]
    (growth,) = [d for d in gpu if d["counts"]["alerts"] == 4]
    # 0.25: 21:00, 21:10, 21:20, as the 20:22 start counts (0.33.1: 03:38, 03:48, 03:58; 03:00)
    assert flapping["counts"]["episodes"] == 3
    doc = export(cli, config, db_url, flapping["id"], tmp_path / "flapping.json")
    own = [i["receipt"] for i in doc["items"] if i["touches_incident"]]
    lead_in = [i["receipt"] for i in doc["items"] if not i["touches_incident"]]
    assert own == [p["receipt"] for p in flapping["payloads"]]
    before = {p["receipt"] for p in growth["payloads"] if p["receipt"] < max(own)}
    assert before and before <= set(lead_in)

    assert replay_into(cli, config, fresh_db(), tmp_path / "flapping.json").exit_code == 0
    # without the group's earlier requests, 21:00 (03:38) would be the series' first start, not its
    # second, and the incident would come back different: that is why the export has them
    doc["items"] = [i for i in doc["items"] if i["touches_incident"]]
    (tmp_path / "alone.json").write_text(json.dumps(doc))
    url = fresh_db()
    assert replay_into(cli, config, url, tmp_path / "alone.json").exit_code == 0
    assert summary(flapping) not in [summary(d) for d in details(url)]


def test_the_fixture_keeps_the_recorded_spacing_and_a_timed_replay_waits_it_faster(
    cli, config, db_url, fresh_db, tmp_path, monkeypatch
):
    folder = FIXTURES / "ha-duplicates"
    recorded = [
        json.loads(p.read_text())["received_unix"] for p in sorted(folder.glob("[0-9]*.json"))
    ]
    assert replay_into(cli, config, db_url, folder).exit_code == 0
    for incident in details(db_url):
        doc = export(cli, config, db_url, incident["id"], tmp_path / "f.json")
        times = [recorded[item["receipt"] - 1] for item in doc["items"]]  # receipt n = file n
        offsets = [item["offset_seconds"] for item in doc["items"]]
        assert offsets == pytest.approx([t - times[0] for t in times], abs=1e-6)

    slept: list[float] = []
    monkeypatch.setattr("receiver.replay.time.sleep", slept.append)
    result = replay_into(cli, config, fresh_db(), tmp_path / "f.json", "--timed", "--speed", 8)
    assert result.exit_code == 0, result.output
    gaps = [b - a for a, b in itertools.pairwise(offsets) if b > a]
    assert gaps and slept == pytest.approx([g / 8 for g in gaps], abs=1e-6)


def test_expect_passes_on_the_written_summary_and_fails_with_a_diff_once_it_is_edited(
    cli, config, db_url, fresh_db, tmp_path
):
    assert replay_into(cli, config, db_url, FIXTURES / "single-repeat-resolve").exit_code == 0
    fixture = tmp_path / "incident.json"
    export(cli, config, db_url, 1, fixture)
    written = tmp_path / "incident.expect.yaml"
    result = replay_into(cli, config, fresh_db(), fixture, "--write-expect", written)
    assert result.exit_code == 0, result.output
    assert f"wrote the summary of 1 incident(s) to {written}" in result.stdout
    assert expect.load(written)["incidents"] == [summary(details(db_url)[0])]

    result = replay_into(cli, config, fresh_db(), fixture, "--expect", written)
    assert result.exit_code == 0, result.output
    assert f"as expected: 1 incident(s) match {written}" in result.stdout

    edited = tmp_path / "edited.yaml"
    text = written.read_text()
    assert "\n  status: resolved\n" in text and "\n  - pd resolve\n" in text
    edited.write_text(
        text.replace("\n  status: resolved\n", "\n  status: firing\n").replace(
            "\n  - pd resolve\n", "\n"
        )
    )
    result = replay_into(cli, config, fresh_db(), fixture, "--expect", edited)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    diff = lines[lines.index(f"--- {edited} (expected)") :]
    assert diff[1] == "+++ this replay"
    changed = [line for line in diff[2:] if line.startswith(("-", "+"))]
    assert changed == ["-  status: firing", "+  status: resolved", "+  - pd resolve"]
    assert f"this replay differs from {edited}" in result.stderr


def test_expectations_can_be_json_and_exclude_writing_them_in_the_same_run(
    cli, config, db_url, fresh_db, tmp_path
):
    as_json = tmp_path / "expect.json"
    folder = FIXTURES / "ha-duplicates"
    result = replay_into(cli, config, db_url, folder, "--write-expect", as_json)
    assert result.exit_code == 0, result.output
    assert len(json.loads(as_json.read_text())["incidents"]) == 2
    assert replay_into(cli, config, fresh_db(), folder, "--expect", as_json).exit_code == 0
    both = replay_into(cli, config, fresh_db(), folder, "--expect", as_json, "--write-expect", "x")
    assert both.exit_code == 2
    assert "--expect and --write-expect exclude each other" in both.stderr


def prune_before(url: str, receipt_id: int) -> int:
    """Prune raw payloads received before ``receipt_id`` (as retention would); return count."""
    engine = make_engine(url)
    with Session(engine) as session:
        cutoff = session.get_one(WebhookReceipt, receipt_id).received_at
    with UnitOfWork(engine) as uow:
        deleted = uow.receipts.prune(cutoff)
        uow.commit()
    return deleted


def test_an_incident_with_pruned_payloads_is_not_exported_and_the_error_says_what_is_gone(
    cli, config, db_url, tmp_path
):
    assert replay_into(cli, config, db_url, FIXTURES / "single-repeat-resolve").exit_code == 0
    assert prune_before(db_url, 4) == 3
    out = tmp_path / "incident.json"
    result = cli("export", 1, "-c", config, "-o", out, RECEIVER_DATABASE_URL=db_url)
    assert result.exit_code == 1
    message = (
        "incident 1 cannot be exported: raw payloads were pruned (older than "
        "intake.raw_retention_days): 3 of the 6 requests that touched it are gone (among them "
        "receipt 1, named by its timeline). A partial fixture would not replay to the same "
        "incident."
    )
    assert result.stderr == f"Error: {message}\n"
    assert not out.exists()
    settings = load_settings(
        environ={}, overrides={"database_url": db_url, "auth.bearer_tokens": [TOKEN]}
    )
    answer = create_app(settings).test_client().get("/api/v1/incidents/1/fixture")
    assert answer.status_code == 410
    assert answer.get_json() == {"error": "payloads_pruned", "message": message}


def test_an_incident_is_not_exported_when_the_earlier_incident_it_depends_on_was_pruned(
    cli, config, db_url, tmp_path
):
    assert replay_into(cli, config, db_url, FIXTURES / "all").exit_code == 0
    gpu = [d for d in details(db_url) if d["receiver"] == "triton-gpu"]
    (flapping,) = [d for d in gpu if d["flapping"]]
    (growth,) = [d for d in gpu if d["counts"]["alerts"] == 4]
    first = min(p["receipt"] for p in growth["payloads"])
    prune_before(db_url, first + 1)
    result = cli("export", flapping["id"], "-c", config, RECEIVER_DATABASE_URL=db_url)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert (
        f"1 of the 8 requests that touched incident {growth['id']} (of its group, which the "
        f"flapping rules look back to) are gone (among them receipt {first}, named by its timeline)"
    ) in result.stderr


def test_the_download_needs_the_ui_login_and_is_what_the_cli_writes(ui_app, browser, cli, db_url):
    anonymous = ui_app.test_client().get("/api/v1/incidents/5/fixture")
    assert anonymous.status_code == 401
    answer = browser.get("/api/v1/incidents/5/fixture")
    assert answer.status_code == 200
    assert answer.mimetype == "application/json"
    disposition = answer.headers["Content-Disposition"]
    assert disposition == 'attachment; filename="incident-5.fixture.json"'
    printed = cli("export", 5, RECEIVER_DATABASE_URL=db_url)
    assert printed.exit_code == 0, printed.output
    assert answer.get_data(as_text=True) == printed.stdout
    assert json.loads(printed.stdout)["incident"]["id"] == 5
    assert browser.get("/api/v1/incidents/999/fixture").status_code == 404
    page = browser.get("/incidents/5").get_data(as_text=True)
    link = '<a class="fixture-download" href="/api/v1/incidents/5/fixture"'
    assert link in page and "download incident as replay fixture</a>" in page


def test_the_cli_exports_nothing_for_an_unknown_incident(cli, db_url):
    result = cli("export", 42, RECEIVER_DATABASE_URL=db_url)
    assert result.exit_code == 1
    assert result.stderr == "Error: no incident 42\n"


@pytest.mark.slow
def test_over_http_the_summary_comes_from_the_read_api_and_matches_the_in_process_one(
    cli, tmp_path
):
    plain = tmp_path / "plain.yaml"  # no receivers: a served receiver without a worker
    plain.write_text("{}\n")
    source = f"sqlite:///{tmp_path / 'source.db'}"
    assert replay_into(cli, plain, source, FIXTURES / "ha-duplicates").exit_code == 0
    export(cli, plain, source, 2, tmp_path / "f.json")
    local = tmp_path / "local.yaml"
    in_process = replay_into(
        cli,
        plain,
        f"sqlite:///{tmp_path / 'local.db'}",
        tmp_path / "f.json",
        "--write-expect",
        local,
    )
    assert in_process.exit_code == 0, in_process.output

    served = f"sqlite:///{tmp_path / 'served.db'}"
    assert cli("db", "upgrade", RECEIVER_DATABASE_URL=served).exit_code == 0
    token = tmp_path / "token"
    token.write_text(TOKEN)
    with gunicorn(served) as server:
        args = ["replay", tmp_path / "f.json", "--url", server.url, "--token-file", token]
        result = cli(*args, "--expect", local)
    assert result.exit_code == 0, result.output
    assert "as expected: 1 incident(s) match" in result.stdout
