"""The ``receiver`` command: check-config, replay (in process and over HTTP), db prune (raw
payloads and incidents), serve."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from sqlalchemy import func, select, text, update

from receiver.app import create_app
from receiver.settings import load_settings
from receiver.store import migrate
from receiver.store.db import make_engine
from receiver.store.tables import AlertEpisode, AlertGroup, Incident, WebhookReceipt
from tests.support.api import AUTH, TOKEN, read_json
from tests.support.cli import Run
from tests.support.payloads import FIXTURES
from tests.support.servers import (
    BIN,
    REPO_ROOT,
    Server,
    free_port,
    gunicorn,
    receiver_env,
    started,
    wait_ready,
)

EXAMPLE = REPO_ROOT / "config" / "receiver.example.yaml"
SCENARIO = FIXTURES / "single-repeat-resolve"  # sample input: the commands are under test
RECORDED = sorted(
    p.name for p in SCENARIO.glob("*.json") if "body_raw" in json.loads(p.read_text())
)


def table_rows(output: str) -> dict[str, list[str]]:
    """Rows of the replay table by file name."""
    return {line.split()[0]: line.split() for line in output.splitlines() if ".json" in line}


def write_yaml(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def test_check_config_accepts_the_example_with_a_token_file_and_never_prints_a_secret(
    cli: Run, tmp_path: Path
) -> None:
    secret = tmp_path / "tokens"
    secret.write_text(TOKEN + "\n")
    routing_key, slack_token = "R" * 32, "xoxb-check-config-secret"
    (tmp_path / "pd").write_text(routing_key)
    (tmp_path / "slack").write_text(slack_token)
    result = cli(
        "check-config",
        "--config",
        str(EXAMPLE),
        RECEIVER_AUTH__BEARER_TOKENS_FILE=str(secret),
        RECEIVER_DATABASE_URL="postgresql://receiver:db-s3cret@db.example:5432/receiver",
        RECEIVER_RECEIVERS__PAGERDUTY_CRITICAL__ROUTING_KEY_FILE=str(tmp_path / "pd"),
        RECEIVER_RECEIVERS__SLACK_WARNINGS__TOKEN_FILE=str(tmp_path / "slack"),
    )
    assert result.exit_code == 0, result.output
    assert "configuration OK" in result.stdout
    assert "1 bearer token(s)" in result.stdout
    assert "postgresql://receiver:***@db.example:5432/receiver" in result.stdout
    for leaked in (TOKEN, "db-s3cret", routing_key, slack_token):
        assert leaked not in result.output


def test_check_config_without_any_credential_exits_2_naming_the_auth_error(
    cli: Run, tmp_path: Path
) -> None:
    (tmp_path / "pd").write_text("R" * 32)
    result = cli(
        "check-config",
        "--config",
        str(EXAMPLE),
        RECEIVER_RECEIVERS__PAGERDUTY_CRITICAL__ROUTING_KEY_FILE=str(tmp_path / "pd"),
    )
    assert result.exit_code == 2
    # the missing Slack token and the missing webhook credentials, reported together
    assert "configuration has 2 error(s)" in result.stderr
    assert "receivers.slack_warnings.token_file: cannot read secret file" in result.stderr
    assert "auth: no bearer token or basic auth configured" in result.stderr


def test_check_config_lists_every_mistake_of_a_config_at_once(cli: Run, tmp_path: Path) -> None:
    config = write_yaml(
        tmp_path / "bad.yaml",
        {"colour": "blue", "listen": {"port": "abc"}, "log_level": "LOUD"},
    )
    result = cli("check-config", "--config", str(config), RECEIVER_AUTH__BEARER_TOKENS=TOKEN)
    assert result.exit_code == 2
    assert "configuration has 3 error(s)" in result.stderr
    errors = [line.strip() for line in result.stderr.splitlines() if line.startswith("  - ")]
    assert any(e.startswith("- colour: unknown setting") for e in errors), errors
    assert any(e.startswith("- listen.port:") for e in errors), errors
    assert any(e.startswith("- log_level:") and "DEBUG" in e for e in errors), errors


def test_routes_test_reads_utf8_matchers_and_quoted_label_names(cli: Run, tmp_path: Path) -> None:
    doc = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    doc["routes"] = [
        {
            "matchers": ['{"service.name"="api", "gpu model"=~"A100|H100"}'],
            "receivers": ["pagerduty_critical"],
        },
        {"matchers": ["模型=llama", '"a=b"="c"'], "receivers": ["slack_warnings"]},
    ]
    doc["default_receivers"] = []
    for key in ("runbooks_path", "context_path", "slos_path"):
        doc[key] = str(EXAMPLE.parent / doc[key])
    config = str(write_yaml(tmp_path / "utf8.yaml", doc))
    (tmp_path / "pd").write_text("R" * 32)
    (tmp_path / "slack").write_text("xoxb-routes-test")
    env = {
        "RECEIVER_AUTH__BEARER_TOKENS": TOKEN,
        "RECEIVER_RECEIVERS__PAGERDUTY_CRITICAL__ROUTING_KEY_FILE": str(tmp_path / "pd"),
        "RECEIVER_RECEIVERS__SLACK_WARNINGS__TOKEN_FILE": str(tmp_path / "slack"),
    }
    paged = cli("routes", "test", "service.name=api", "gpu model=H100", "--config", config, **env)
    assert paged.exit_code == 0, paged.output
    assert paged.stdout.splitlines() == ["pagerduty_critical (pagerduty)"]
    posted = cli("routes", "test", "模型=llama", '"a=b"=c', "--config", config, **env)
    assert posted.stdout.splitlines() == ["slack_warnings (slack)"], posted.output
    missed = cli("routes", "test", "模型=llama", "a=b=c", "--config", config, **env)
    assert missed.exit_code == 1 and "no receiver" in missed.stdout  # the name is "a" here
    bad = cli("routes", "test", '"a=b', "--config", config, **env)
    assert bad.exit_code == 2 and "expected label=value" in bad.stderr


def test_replay_in_process_stores_every_recorded_request(cli: Run, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'replay.db'}"
    result = cli("replay", str(SCENARIO), RECEIVER_DATABASE_URL=url)
    assert result.exit_code == 0, result.output
    rows = table_rows(result.stdout)
    assert sorted(rows) == RECORDED
    assert {name: row[2] for name, row in rows.items()} == dict.fromkeys(RECORDED, "200")
    assert rows[RECORDED[0]][4] == "1"  # new
    assert rows[RECORDED[-1]][6] == "1"  # resolved
    assert f"{len(RECORDED)} sent, {len(RECORDED)} stored, 0 not stored" in result.stdout
    assert "skipped" in result.stderr and "index.json" in result.stderr


def test_replay_in_process_accepts_a_token_in_receiver_replay_token(
    cli: Run, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    result = cli("replay", str(SCENARIO), RECEIVER_REPLAY_TOKEN=TOKEN, RECEIVER_DATABASE_URL=url)
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One gunicorn on a migrated SQLite file for the HTTP replays."""
    url = f"sqlite:///{tmp_path_factory.mktemp('served') / 'receiver.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    with gunicorn(url) as running:
        yield running


def replay_over_http(
    server: Server, token: str, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """The real ``receiver replay --url`` command, with the token in a file."""
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    command = [str(BIN / "receiver"), "replay", str(SCENARIO), "--url", server.url]
    return subprocess.run(
        [*command, "--token-file", str(token_file)],
        env=receiver_env(tokens=()),
        capture_output=True,
        text=True,
        timeout=60,
    )


def served_incidents(server: Server, **params: str) -> list[dict[str, Any]]:
    return read_json(server.url, "/api/v1/incidents", **params)["incidents"]


@pytest.mark.slow
def test_replay_over_http_with_a_token_file_stores_all_and_the_incident_ends_resolved(
    server: Server, tmp_path: Path
) -> None:
    result = replay_over_http(server, TOKEN, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = table_rows(result.stdout)
    assert {name: row[2] for name, row in rows.items()} == dict.fromkeys(RECORDED, "200")
    (incident,) = served_incidents(server, receiver="triton-critical")
    assert incident["status"] == "resolved"
    assert incident["counts"]["notifications"] == len(RECORDED)
    assert incident["resolved_at"] is not None


@pytest.mark.slow
def test_replay_over_http_with_a_wrong_token_exits_1_showing_401s(
    server: Server, tmp_path: Path
) -> None:
    before = served_incidents(server)
    result = replay_over_http(server, "not-the-token", tmp_path)
    assert result.returncode == 1
    rows = table_rows(result.stdout)
    assert {name: row[2] for name, row in rows.items()} == dict.fromkeys(RECORDED, "401")
    assert f"{len(RECORDED)} sent, 0 stored, {len(RECORDED)} not stored" in result.stdout
    assert served_incidents(server) == before


def test_db_prune_deletes_payloads_past_retention_and_keeps_incidents(
    db_url: str, cli: Run
) -> None:
    assert cli("replay", str(SCENARIO), RECEIVER_DATABASE_URL=db_url).exit_code == 0
    engine = make_engine(db_url)  # disposed by the cli fixture, as every engine of the test
    with engine.begin() as conn:
        ids = list(conn.scalars(select(WebhookReceipt.id).order_by(WebhookReceipt.id)))
        old, recent = ids[:3], ids[3:]
        long_ago = datetime.now(UTC) - timedelta(days=31)
        conn.execute(
            update(WebhookReceipt).where(WebhookReceipt.id.in_(old)).values(received_at=long_ago)
        )
        # replay stores requests at their recorded times: make the rest recent whatever today is
        conn.execute(
            update(WebhookReceipt)
            .where(WebhookReceipt.id.in_(recent))
            .values(received_at=datetime.now(UTC))
        )
    result = cli("db", "prune", RECEIVER_DATABASE_URL=db_url)
    assert result.exit_code == 0, result.output
    assert "pruned 3 raw payload(s) older than 30 days" in result.stdout
    with engine.connect() as conn:
        unused = "SELECT sha256 FROM payload_bodies EXCEPT SELECT body_sha256 FROM webhook_receipts"
        assert conn.execute(text(unused)).all() == []
    settings = load_settings(environ={}, overrides={"database_url": db_url}, require_auth=False)
    client = create_app(settings).test_client()
    assert [client.get(f"/api/v1/payloads/{i}").status_code for i in old] == [404] * 3
    kept = [client.get(f"/api/v1/payloads/{i}") for i in recent]
    assert [k.status_code for k in kept] == [200] * 3
    recorded = json.loads((SCENARIO / RECORDED[-1]).read_text())["body_raw"]
    assert kept[-1].get_data(as_text=True) == recorded
    (summary,) = client.get("/api/v1/incidents").get_json()["incidents"]
    detail = client.get(f"/api/v1/incidents/{summary['id']}").get_json()
    assert detail["status"] == "resolved"
    assert detail["counts"]["notifications"] == len(RECORDED)
    assert [p["receipt"] for p in detail["payloads"]] == recent


def test_db_prune_deletes_old_resolved_incidents_when_retention_is_on(
    db_url: str, cli: Run
) -> None:
    assert cli("replay", str(SCENARIO), RECEIVER_DATABASE_URL=db_url).exit_code == 0
    env = {"RECEIVER_DATABASE_URL": db_url}
    off = cli("db", "prune", **env)
    assert off.exit_code == 0, off.output
    assert "incident retention off (retention.incident_days not set)" in off.stdout
    engine = make_engine(db_url)  # disposed by the cli fixture
    long_ago = datetime.now(UTC) - timedelta(days=40)
    with (
        engine.begin() as conn
    ):  # the replayed incident, resolved 40 days ago, in a group idle since
        conn.execute(update(Incident).values(opened_at=long_ago, resolved_at=long_ago))
        conn.execute(update(AlertGroup).values(last_seen_at=long_ago))
        (incident_id,) = conn.scalars(select(Incident.id)).all()
        episodes = conn.scalars(select(func.count()).select_from(AlertEpisode)).one()

    assert cli("db", "prune", "--incident-days", "0.5", **env).exit_code == 2
    kept = cli("db", "prune", "--incident-days", "41", **env)
    assert "pruned 0 incident(s) resolved more than 41 days ago in 1 pass(es): nothing" in (
        kept.stdout
    )
    result = cli("db", "prune", **env, RECEIVER_RETENTION__INCIDENT_DAYS="30")
    assert result.exit_code == 0, result.output
    assert "pruned 1 incident(s) resolved more than 30 days ago in 1 pass(es): " in result.stdout
    assert f"alert_episodes {episodes}, " in result.stdout
    assert f"incident_receipts {len(RECORDED)}, webhook_receipts {len(RECORDED)}, " in (
        result.stdout
    )
    assert result.stdout.rstrip().endswith("incidents 1, payload_bodies 3, alert_groups 1")
    settings = load_settings(environ={}, overrides={"database_url": db_url}, require_auth=False)
    client = create_app(settings).test_client()
    assert client.get(f"/api/v1/incidents/{incident_id}").status_code == 404
    assert client.get("/api/v1/incidents").get_json()["incidents"] == []


def serve_command(cli: Run, tmp_path: Path, workers: int = 2) -> tuple[list[str], str]:
    """``receiver serve`` on a migrated SQLite file and a free port; its base URL."""
    port = free_port()
    config = write_yaml(
        tmp_path / "receiver.yaml",
        {
            "database_url": f"sqlite:///{tmp_path / 'serve.db'}",
            "listen": {"host": "127.0.0.1", "port": port, "workers": workers},
        },
    )
    assert cli("db", "upgrade", "--config", str(config)).exit_code == 0
    return [str(BIN / "receiver"), "serve", "--config", str(config)], f"http://127.0.0.1:{port}"


def serve_env(tmp_path: Path, tokens: tuple[str, ...] = (TOKEN,)) -> dict[str, str]:
    # gunicorn's control socket goes to $XDG_RUNTIME_DIR: keep it in this test's directory
    return receiver_env(tokens=tokens, extra={"XDG_RUNTIME_DIR": str(tmp_path)})


@pytest.mark.slow
def test_serve_prints_its_address_accepts_a_webhook_and_stops_on_sigterm(
    cli: Run, tmp_path: Path
) -> None:
    command, base = serve_command(cli, tmp_path)
    body = json.loads((SCENARIO / RECORDED[0]).read_text())["body_raw"]
    with started(command, serve_env(tmp_path)) as process:
        wait_ready(process, base)
        assert f"serving on {base}" in process.stdout()
        with requests.Session() as session:
            answer = session.post(
                base + "/api/v1/alertmanager/triton-critical",
                data=body,
                headers={**AUTH, "Content-Type": "application/json"},
                timeout=10,
            )
        assert answer.status_code == 200, answer.text
        assert answer.json()["new"] == 1
        process.popen.send_signal(signal.SIGTERM)
        assert process.popen.wait(timeout=20) == 0, process.stderr()
        assert not process.group_alive(), "gunicorn or the worker outlived `receiver serve`"
        access = [json.loads(line) for line in process.stderr().splitlines() if "access" in line]
        assert [
            (a["message"], a["status"]) for a in access if a["logger"] == "receiver.access"
        ] == [("POST /api/v1/alertmanager/triton-critical 200", 200)]


@pytest.mark.slow
def test_serve_leaves_no_orphans_serving_after_sighup(cli: Run, tmp_path: Path) -> None:
    command, base = serve_command(cli, tmp_path, workers=1)
    with started(command, serve_env(tmp_path)) as process:
        wait_ready(process, base)
        process.popen.send_signal(signal.SIGHUP)
        try:
            process.popen.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return  # serve survived SIGHUP (e.g. handed it to gunicorn to reload): no orphans
        deadline = time.monotonic() + 1  # serve waits for its children: they should be gone
        while process.group_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not process.group_alive(), "gunicorn or the worker outlived `receiver serve`"


@pytest.mark.slow
def test_serve_without_any_credential_refuses_to_start(cli: Run, tmp_path: Path) -> None:
    command, _ = serve_command(cli, tmp_path)
    with started(command, serve_env(tmp_path, tokens=())) as process:
        assert process.popen.wait(timeout=30) == 1
        assert "no bearer token or basic auth configured" in process.stderr()
        assert "serving on" not in process.stdout()
