"""A bench for the outbox: PagerDuty and Slack stand-ins, a container and app on the FakeClock,
and the delivery worker, plus readers of what the stand-ins received.

Time is never slept: the FakeClock (the receiver's clock) and one ManualClock (the stand-ins'
clock and the Slack notifier's pacing clock) move together through ``DeliveryEnv.advance``.
Tests build benches through ``EnvFactory`` (the ``make_env`` fixture of tests/integration).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from receiver.app import create_app
from receiver.bootstrap import Container, bootstrap, build_delivery_worker
from receiver.notify.outbox import DeliveryWorker
from receiver.replay import AppTarget, load_items
from receiver.settings import Settings
from receiver.store.db import make_engine
from receiver.store.tables import Delivery
from tests.standins.pagerduty import PagerDutyStandIn
from tests.standins.slack import SlackStandIn
from tests.support.api import AUTH, detail
from tests.support.clock import FakeClock, ManualClock
from tests.support.payloads import alert, group_body

ROUTING_KEY = "R" * 32
SLACK_TOKEN = "xoxb-test"
CHANNEL_ID = "C0TRITON1"
CHANNELS = {"#triton-alerts": CHANNEL_ID}
# settings, or a function of the bench's stand-ins that gives them
Overrides = dict[str, Any] | Callable[[PagerDutyStandIn, SlackStandIn], dict[str, Any]]


def delivery_overrides(
    pd: PagerDutyStandIn, slack: SlackStandIn, channel: str = CHANNEL_ID
) -> dict[str, Any]:
    """Receivers ``pd`` and ``slack`` on the stand-ins, routed like the example configuration."""
    return {
        "receivers": {
            "pd": {
                "type": "pagerduty",
                "routing_key": ROUTING_KEY,
                "base_url": pd.base_url,
                "ca_bundle": pd.ca_file,
            },
            "slack": {
                "type": "slack",
                "token": SLACK_TOKEN,
                "channel": channel,
                "base_url": slack.base_url,
            },
        },
        "routes": [
            {"matchers": ['severity="critical"'], "receivers": ["pd"], "continue": True},
            {"matchers": ['severity=~"critical|warning"'], "receivers": ["slack"]},
        ],
        "default_receivers": ["slack"],
        "delivery.coalesce_seconds": 0,
        "delivery.backoff_initial_seconds": 1,
        "delivery.slack_min_interval_seconds": 0,
    }


@dataclass
class DeliveryEnv:
    clock: FakeClock
    mono: ManualClock
    pd: PagerDutyStandIn
    slack: SlackStandIn
    container: Container
    app: Flask
    worker: DeliveryWorker
    _client: FlaskClient | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        return self.container.settings

    @property
    def client(self) -> FlaskClient:
        if self._client is None:
            self._client = self.app.test_client()
        return self._client

    # -- driving ---------------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Move the receiver's clock and the stand-ins' clock together."""
        self.clock.advance(seconds=seconds)
        self.mono.advance(seconds)

    def advance_to(self, when: datetime) -> None:
        if when > self.clock.now:
            self.advance((when - self.clock.now).total_seconds())

    def drain(self) -> int:
        return self.worker.drain()

    def post(self, doc: dict[str, Any], receiver: str | None = None) -> dict[str, Any]:
        """POST one webhook body that must be stored; return the intake's summary."""
        path = "/api/v1/alertmanager" + (f"/{receiver}" if receiver else "")
        response = self.client.post(path, json=doc, headers=AUTH)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    def post_warnings(self, names: str) -> list[int]:
        """One new incident per name, each a warning (Slack only, one channel); their ids."""
        opened: list[int] = []
        for name in names:
            doc = group_body(alert("TritonHighLatency", model=name), key=name)
            opened += self.post(doc)["incidents"]
        return opened

    def replay(self, folder: str, root: Path) -> list[dict[str, Any]]:
        """Replay a folder of recorded set ``root`` (of ``FIXTURE_SETS``) one request at a time,
        at its recorded time, draining the outbox after each request so the sends interleave as
        in production."""
        target = AppTarget(self.app, AUTH)
        answers = []
        for item in load_items([root / folder], warn=lambda _m: None):
            if item.recorded_at is not None:
                self.advance_to(datetime.fromtimestamp(item.recorded_at, self.clock.now.tzinfo))
            status, answer = target.post(item.path, item.body)
            assert status == 200, answer
            answers.append(answer)
            self.drain()
        return answers

    # -- reading ---------------------------------------------------------------------------------

    def incident(self, incident_id: int) -> dict[str, Any]:
        return detail(self.client, incident_id)

    def deliveries(self) -> list[Delivery]:
        """Every outbox row, in queueing order (detached copies)."""
        with Session(self.container.engine, expire_on_commit=False) as session:
            return list(session.scalars(select(Delivery).order_by(Delivery.id)))

    def attempts(self, incident_id: int, receiver: str) -> list[list[int | None]]:
        """Status codes of every attempt of each delivery of one incident to one receiver."""
        rows = self.incident(incident_id)["deliveries"]
        return [
            [a["status_code"] for a in d["attempts"]] for d in rows if d["receiver"] == receiver
        ]

    def pd_events(self) -> list[list[Any]]:
        """Accepted events: (event_action, dedup_key prefix, payload.severity, payload.class)."""
        out = []
        for event in self.pd.events:
            payload = event.get("payload") or {}
            out.append(
                [
                    event["event_action"],
                    event["dedup_key"][:8],
                    payload.get("severity"),
                    payload.get("class"),
                ]
            )
        return out

    def slack_calls(self) -> list[list[Any]]:
        """Every call: (method, channel, whether it is a thread reply)."""
        out = []
        for call in self.slack.calls:
            args = {**call["params"], **(call["json"] or {})}
            out.append([call["method"], args.get("channel"), "thread_ts" in args])
        return out

    def posted_incidents(self, channel: str = CHANNEL_ID) -> list[int]:
        """The incident of each message in the channel, in posting order (its metadata)."""
        return [m["metadata"]["event_payload"]["incident"] for m in self.slack.messages(channel)]

    def slack_messages(self, channel: str = CHANNEL_ID) -> list[dict[str, Any]]:
        return [
            {"text": m["text"], "updates": len(m["updates"]), "replies": m["reply_count"]}
            for m in self.slack.messages(channel)
        ]

    def outbox(self, *states: str) -> list[list[Any]]:
        """(incident id, receiver, action, state) of every delivery, or of those in ``states``."""
        return [
            [d.incident_id, d.receiver, d.action, d.state]
            for d in self.deliveries()
            if not states or d.state in states
        ]

    def observed(self) -> dict[str, Any]:
        """What a golden file compares."""
        return {
            "pagerduty": {"events": self.pd_events(), "pages": self.pd.pages},
            "slack": {"calls": self.slack_calls(), "messages": self.slack_messages()},
            "outbox": self.outbox(),
        }


class EnvFactory:
    """Builds benches on this test's database; closes every one of them at teardown."""

    def __init__(self, make_settings: Any, clock: FakeClock) -> None:
        self.make_settings, self.clock = make_settings, clock
        self.stack = ExitStack()
        self.standins: list[PagerDutyStandIn | SlackStandIn] = []

    def __call__(
        self,
        overrides: Overrides | None = None,
        channel: str = CHANNEL_ID,
        slack_rate_limit: bool = False,
        slack_options: dict[str, Any] | None = None,
        engine_options: dict[str, Any] | None = None,
    ) -> DeliveryEnv:
        """A bench; ``overrides``: settings (or a function of the stand-ins giving them);
        ``slack_options``: more SlackStandIn arguments (its channels default to ``CHANNELS``);
        ``engine_options``: the database engine's (``make_engine``)."""
        mono = ManualClock(self.clock.now.timestamp())  # epoch seconds, as the receiver's clock
        pd = self.stack.enter_context(PagerDutyStandIn(clock=mono))
        options = {"channels": CHANNELS, **(slack_options or {})}
        slack = self.stack.enter_context(
            SlackStandIn(
                SLACK_TOKEN, rate_limit=slack_rate_limit, clock=mono, epoch=mono, **options
            )
        )
        self.standins += [pd, slack]
        if callable(overrides):
            overrides = overrides(pd, slack)
        settings = self.make_settings(
            {**delivery_overrides(pd, slack, channel), **(overrides or {})}
        )
        engine = None
        if engine_options is not None:
            engine = make_engine(settings.database_url, **engine_options)
        container = bootstrap(settings, clock=self.clock, engine=engine)
        self.stack.callback(container.engine.dispose)
        worker = build_delivery_worker(container)
        assert worker is not None
        self.stack.callback(worker.close)
        return DeliveryEnv(
            self.clock, mono, pd, slack, container, create_app(container=container), worker
        )

    def close(self) -> None:
        self.stack.close()
        for standin in self.standins:
            assert standin.errors == [], "a stand-in failed while handling a request"

    def __enter__(self) -> EnvFactory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
