"""No secret leaves the receiver: not the PagerDuty routing key, the Slack token or the webhook
bearer token, in any log record, database row, API answer, command output or settings repr.

Both notifiers are driven through successes and every failure path they have (PagerDuty 500,
429, an unreachable port; Slack invalid_auth, ratelimited, an unreachable port), then every place
the receiver writes to is searched for the secrets and for their distinctive part (``LEAKCHECK``,
which a truncated secret still shows). The stand-ins' own records hold the secrets: that is the
vendor's side and not searched.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask.testing import FlaskClient
from sqlalchemy import select

from receiver.app import create_app
from receiver.bootstrap import Container, bootstrap, build_delivery_worker
from receiver.notify.outbox import DeliveryWorker
from receiver.notify.pagerduty import MAX_EXCERPT
from receiver.settings import ConfigError, Settings, load_settings
from receiver.store import migrate
from receiver.store.tables import Base, Delivery, DeliveryAttempt, Incident
from tests.standins.pagerduty import INVALID, PagerDutyStandIn
from tests.standins.slack import SlackStandIn
from tests.support.cli import invoke, without_receiver_variables
from tests.support.clock import FakeClock
from tests.support.payloads import alert, webhook
from tests.support.servers import disposing_engines, free_port

MARK = "LEAKCHECK"
ROUTING_KEY = "LEAKCHECKpd-routing-key-01234567"
SLACK_TOKEN = "xoxb-LEAKCHECK-slack"
WEBHOOK_TOKEN = "LEAKCHECK-webhook"
NEEDLES = (ROUTING_KEY, SLACK_TOKEN, WEBHOOK_TOKEN, MARK)
CHANNEL_ID = "C0ALERTS1"
ALL_STATES = ("pending", "sending", "sent", "dead", "cancelled")

Cli = Callable[..., str]


@dataclass
class Bench:
    """The receiver on a FakeClock (app and delivery worker) between two stand-ins."""

    config: Path
    env: dict[str, str]
    settings: Settings
    container: Container
    client: FlaskClient
    worker: DeliveryWorker
    clock: FakeClock
    pagerduty: PagerDutyStandIn
    slack: SlackStandIn

    def fire(self, name: str, target: str) -> None:
        """A critical alert of its own group, routed to receiver ``target``, sent with the token."""
        firing = alert(name, severity="critical", target=target)
        body = {**webhook(firing), "commonLabels": firing["labels"]}
        headers = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
        answer = self.client.post("/api/v1/alertmanager", json=body, headers=headers)
        assert answer.status_code == 200, answer.get_data(as_text=True)

    def outcomes(self) -> dict[str, tuple[str, list[str]]]:
        """alertname -> (delivery state, attempt outcomes in order)."""
        with self.container.engine.connect() as conn:
            rows = conn.execute(
                select(Incident.alertname, Delivery.id, Delivery.state)
                .join(Delivery, Delivery.incident_id == Incident.id)
                .order_by(Delivery.id)
            ).all()
            tries = conn.execute(
                select(DeliveryAttempt.delivery_id, DeliveryAttempt.outcome).order_by(
                    DeliveryAttempt.id
                )
            ).all()
        return {
            name: (state, [outcome for d, outcome in tries if d == delivery_id])
            for name, delivery_id, state in rows
        }


def write_config(tmp_path: Path, database_url: str, pd_url: str, ca: str, slack_url: str) -> Path:
    """Receivers without their secrets (those come from the environment and a file)."""
    closed = free_port()
    config = {
        "database_url": database_url,
        "receivers": {
            "pd": {"type": "pagerduty", "base_url": pd_url, "ca_bundle": ca},
            "pd_down": {"type": "pagerduty", "base_url": f"https://127.0.0.1:{closed}"},
            "slack": {"type": "slack", "channel": CHANNEL_ID, "base_url": slack_url},
            "slack_down": {  # another channel: pacing is per channel, shared by receivers
                "type": "slack",
                "channel": "C0UNREACHED",
                "base_url": f"http://127.0.0.1:{closed}/api/",
            },
        },
        "routes": [
            {"matchers": [f'target="{name}"'], "receivers": [name]}
            for name in ("pd", "pd_down", "slack", "slack_down")
        ],
        "delivery": {"coalesce_seconds": 0, "slack_min_interval_seconds": 0},
    }
    path = tmp_path / "receiver.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def secret_env(tmp_path: Path) -> dict[str, str]:
    token_file = tmp_path / "slack-token"
    token_file.write_text(SLACK_TOKEN + "\n", encoding="utf-8")
    return {
        "RECEIVER_RECEIVERS__PD__ROUTING_KEY": ROUTING_KEY,
        "RECEIVER_RECEIVERS__PD_DOWN__ROUTING_KEY": ROUTING_KEY,
        "RECEIVER_RECEIVERS__SLACK__TOKEN_FILE": str(token_file),
        "RECEIVER_RECEIVERS__SLACK_DOWN__TOKEN": SLACK_TOKEN,
        "RECEIVER_AUTH__BEARER_TOKENS": WEBHOOK_TOKEN,
    }


@pytest.fixture
def bench(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Iterator[Bench]:
    caplog.set_level(logging.DEBUG)  # the root: every library's debug records are captured
    with ExitStack() as stack:
        pagerduty = stack.enter_context(PagerDutyStandIn())
        channels = {"#alerts": CHANNEL_ID}
        slack = stack.enter_context(
            SlackStandIn(token=SLACK_TOKEN, channels=channels, rate_limit=False)
        )
        url = f"sqlite:///{tmp_path / 'receiver.db'}"
        config = write_config(tmp_path, url, pagerduty.base_url, pagerduty.ca_file, slack.base_url)
        env = {"RECEIVER_CONFIG": str(config), **secret_env(tmp_path)}
        settings = load_settings(environ=env)
        clock = FakeClock()
        container = bootstrap(settings, clock=clock)
        stack.callback(container.close)
        migrate.upgrade(container.engine)
        worker = build_delivery_worker(container)
        assert worker is not None
        stack.callback(worker.close)
        client = create_app(container=container).test_client()
        yield Bench(config, env, settings, container, client, worker, clock, pagerduty, slack)
        assert pagerduty.errors == [] and slack.errors == []


@pytest.fixture
def cli_output(monkeypatch: pytest.MonkeyPatch) -> Cli:
    """``receiver <args>`` in process with only the given RECEIVER_* variables; its output."""
    without_receiver_variables(monkeypatch)

    def run(*args: str, env: dict[str, str]) -> str:
        with disposing_engines():
            return invoke(*args, **env).output

    return run


def dump_database(container: Container) -> str:
    """Every row of every table, as text."""
    lines = []
    with container.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            lines += [f"{table.name}: {tuple(row)!r}" for row in conn.execute(select(table))]
    return "\n".join(lines)


def sinks(bench: Bench, caplog: pytest.LogCaptureFixture, cli: Cli) -> dict[str, str]:
    """Everything the receiver wrote or would show anyone, by where it came from."""
    client = bench.client
    texts: dict[str, str] = {}
    listing = client.get("/api/v1/incidents?limit=500")
    texts["GET /api/v1/incidents"] = listing.get_data(as_text=True)
    for incident in listing.get_json()["incidents"]:
        path = f"/api/v1/incidents/{incident['id']}"
        texts[f"GET {path}"] = client.get(path).get_data(as_text=True)
    for path in ("/metrics", "/healthz", "/readyz"):
        texts[f"GET {path}"] = client.get(path).get_data(as_text=True)
    states = [arg for state in ALL_STATES for arg in ("--state", state)]
    texts["receiver outbox list"] = cli("outbox", "list", *states, "--limit", "500", env=bench.env)
    texts["receiver check-config"] = cli("check-config", env=bench.env)
    texts["database"] = dump_database(bench.container)
    settings = bench.settings
    texts["str(settings)"], texts["repr(settings)"] = str(settings), repr(settings)
    texts["settings.model_dump_json()"] = settings.model_dump_json()
    texts["log messages"] = "\n".join(r.getMessage() for r in caplog.records)
    texts["formatted logs"] = caplog.text  # with tracebacks
    return texts


def leaks(texts: dict[str, str]) -> dict[str, list[str]]:
    found = {where: [n for n in NEEDLES if n in text] for where, text in texts.items()}
    return {where: needles for where, needles in found.items() if needles}


def test_no_secret_shows_in_logs_database_api_commands_or_settings_after_every_outcome(
    bench: Bench, caplog: pytest.LogCaptureFixture, cli_output: Cli
) -> None:
    pd, slack = bench.pagerduty, bench.slack
    pd.fail(500, times=1)  # one request per attempt: the outbox owns retries
    bench.fire("PdServerError", "pd")
    bench.worker.run_once()
    pd.fail(429, times=1)
    bench.fire("PdThrottled", "pd")
    bench.worker.run_once()
    bench.fire("PdAccepted", "pd")
    bench.fire("PdUnreachable", "pd_down")
    bench.worker.run_once()
    slack.fail("invalid_auth", times=1)
    bench.fire("SlackInvalidAuth", "slack")
    bench.worker.run_once()
    slack.fail("ratelimited", times=1)
    bench.fire("SlackRatelimited", "slack")
    bench.worker.run_once()
    bench.fire("SlackPosted", "slack")
    bench.fire("SlackUnreachable", "slack_down")
    bench.worker.run_once()
    rejected = bench.client.post(
        "/api/v1/alertmanager",
        json=webhook(alert("Rejected")),
        headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}-typo"},
    )
    assert rejected.status_code == 401
    bench.clock.advance(minutes=10)  # past every backoff: the retries go out
    bench.worker.drain()

    assert bench.outcomes() == {
        "PdServerError": ("sent", ["retry", "ok"]),
        "PdThrottled": ("sent", ["retry", "ok"]),
        "PdAccepted": ("sent", ["ok"]),
        "PdUnreachable": ("pending", ["retry", "retry"]),
        "SlackInvalidAuth": ("dead", ["give_up"]),
        "SlackRatelimited": ("sent", ["retry", "ok"]),
        "SlackPosted": ("sent", ["ok"]),
        "SlackUnreachable": ("pending", ["retry", "retry"]),
    }
    texts = sinks(bench, caplog, cli_output)
    assert "network error" in texts["receiver outbox list"]  # last errors are listed
    assert "slack: invalid_auth" in texts["receiver outbox list"]
    loggers = {r.name.split(".")[0] for r in caplog.records}
    # (the pagerduty client's own logger is silenced by the notifier: the outbox records
    # every answer itself)
    assert {"slack_sdk", "receiver"} <= loggers, "library logs were not captured"
    assert leaks(texts) == {}


def test_a_configuration_error_about_a_secret_does_not_quote_it(
    bench: Bench, cli_output: Cli
) -> None:
    short_key = ROUTING_KEY[:31]
    env = {**bench.env, "RECEIVER_RECEIVERS__PD__ROUTING_KEY": short_key}
    with pytest.raises(ConfigError) as raised:
        load_settings(environ=env)
    assert "receivers.pd.routing_key" in str(raised.value)
    output = cli_output("check-config", env=env)
    assert "receivers.pd.routing_key" in output
    assert leaks({"ConfigError": str(raised.value), "receiver check-config": output}) == {}


def straddling_body() -> dict[str, Any]:
    """A 400 whose text has the routing key across the excerpt cut, the errors without it."""
    for pad in range(MAX_EXCERPT):
        body = {**INVALID, "message": "x" * pad + ROUTING_KEY, "errors": ["bad payload"]}
        if json.dumps(body).find(ROUTING_KEY) == MAX_EXCERPT - 12:
            return body
    raise AssertionError("no padding puts the key across the cut")


def test_a_pagerduty_error_that_quotes_the_routing_key_leaks_it_nowhere(
    bench: Bench, caplog: pytest.LogCaptureFixture, cli_output: Cli
) -> None:
    errors = [f"routing_key {ROUTING_KEY} does not belong to an active integration"]
    bench.pagerduty.fail(400, times=1, body={**INVALID, "errors": errors})
    bench.fire("PdRejected", "pd")
    bench.worker.run_once()

    assert bench.outcomes() == {"PdRejected": ("dead", ["give_up"])}
    assert leaks(sinks(bench, caplog, cli_output)) == {}


def test_an_excerpt_cut_inside_the_routing_key_keeps_no_part_of_it(
    bench: Bench, caplog: pytest.LogCaptureFixture, cli_output: Cli
) -> None:
    bench.pagerduty.fail(400, times=1, body=straddling_body())
    bench.fire("PdRejected", "pd")
    bench.worker.run_once()

    assert bench.outcomes() == {"PdRejected": ("dead", ["give_up"])}
    assert leaks(sinks(bench, caplog, cli_output)) == {}
