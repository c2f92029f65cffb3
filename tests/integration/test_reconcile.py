"""Reconciliation with a REAL Alertmanager (0.25 and 0.33): alerts it no longer holds go stale,
then resolve; only the alerts of the receivers of open incidents are fetched."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from receiver.alertmanager import AlertmanagerUnavailable
from receiver.app import create_app
from receiver.bootstrap import bootstrap, build_reconciler
from receiver.cli import main
from tests.support.alertmanager import AlertmanagerCluster
from tests.support.api import detail, post_webhook, timeline_kinds
from tests.support.payloads import rfc3339
from tests.support.servers import disposing_engines, free_port
from tests.support.versions import VERSIONS, Versions

pytestmark = pytest.mark.slow
# Alertmanager holds the alerts and notifies nobody (receivers without integrations). The
# webhooks below come from "triton"; a `team` label routes to receivers whose names need
# escaping, to ones an unescaped or unanchored regex of them would match, and elsewhere.
OURS = "ops.a+b (prod)|équipe"
OTHERS = {
    "dot-and-plus": "opsXaab prod|équipe",  # matched by OURS unescaped
    "prefix": f"{OURS}-canary",  # matched by OURS unanchored
    "elsewhere": "elsewhere",
}
TEAMS = {"ours": OURS, **OTHERS}
SILENT = {
    "route": {
        "receiver": "triton",
        "routes": [{"matchers": [f'team="{t}"'], "receiver": r} for t, r in TEAMS.items()],
    },
    "receivers": [{"name": name} for name in ("triton", *TEAMS.values())],
}
ROUTED = {
    "receivers": {
        "pd": {"type": "pagerduty", "routing_key": "r" * 32, "base_url": "https://127.0.0.1:9"}
    },
    "routes": [{"matchers": ['severity="critical"'], "receivers": ["pd"]}],
}


@pytest.fixture(scope="module", params=VERSIONS, ids=str)
def alertmanager(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AlertmanagerCluster]:
    versions: Versions = request.param
    binary = versions.require("alertmanager")
    directory = tmp_path_factory.mktemp(f"am-{versions.id}")
    with AlertmanagerCluster(SILENT, size=1, tmp_dir=directory, binary=binary) as cluster:
        yield cluster


class Env:
    """The receiver (in-process, fake clock) reconciling against the real Alertmanager."""

    def __init__(self, make_settings: Any, clock: Any, urls: list[str], grace: float = 10):
        settings = make_settings(
            {
                **ROUTED,
                "alertmanager.urls": urls,
                "alertmanager.stale_grace_minutes": grace,
                "alertmanager.min_age_seconds": 60,
                "alertmanager.timeout_seconds": 2,
            }
        )
        self.clock = clock
        self.container = bootstrap(settings, clock=clock)
        self.client = create_app(container=self.container).test_client()
        self.reconciler = build_reconciler(self.container)
        self.test_id = uuid.uuid4().hex[:8]

    def labels(self, name: str, **extra: str) -> dict[str, str]:
        return {"alertname": name, "severity": "critical", "test": self.test_id, **extra}

    def fire(self, *label_sets: dict[str, str], receiver: str = "triton") -> int:
        """Alertmanager notifies these firing alerts as one group: our incident's id."""
        body = {
            "version": "4",
            "receiver": receiver,
            "status": "firing",
            "groupKey": f'{{}}:{{test="{self.test_id}"}}',
            "groupLabels": {"test": self.test_id},
            "alerts": [
                {"status": "firing", "labels": labels, "startsAt": rfc3339(self.clock.now)}
                for labels in label_sets
            ],
        }  # no fingerprint: the receiver derives Alertmanager's own
        answer = post_webhook(self.client, json.dumps(body), "triton").get_json()
        return answer["incidents"][0]

    def incident(self, incident_id: int) -> dict[str, Any]:
        return detail(self.client, incident_id)

    def timeline(self, incident_id: int) -> list[str]:
        return timeline_kinds(self.client, incident_id)

    def close(self) -> None:
        self.reconciler.client.close()
        self.container.engine.dispose()


@pytest.fixture
def make_reconcile_env(make_settings, clock, alertmanager) -> Iterator[Any]:
    made: list[Env] = []

    def build(urls: list[str] | None = None, grace: float = 10) -> Env:
        made.append(Env(make_settings, clock, urls or alertmanager.urls, grace))
        return made[-1]

    yield build
    for env in made:
        env.close()


def hold(alertmanager: AlertmanagerCluster, *label_sets: dict[str, str]) -> None:
    """Prometheus's part: tell Alertmanager these alerts are active (real time)."""
    now, later = datetime.now(UTC), datetime.now(UTC) + timedelta(hours=1)
    alertmanager.post_alerts(
        [{"labels": s, "startsAt": rfc3339(now), "endsAt": rfc3339(later)} for s in label_sets]
    )


def release(alertmanager: AlertmanagerCluster, *label_sets: dict[str, str]) -> None:
    """The alerts resolve in Alertmanager (whose resolve notification then gets lost)."""
    now = datetime.now(UTC)
    alertmanager.post_alerts(
        [
            {
                "labels": labels,
                "startsAt": rfc3339(now - timedelta(minutes=5)),
                "endsAt": rfc3339(now - timedelta(seconds=1)),
            }
            for labels in label_sets
        ]
    )


def test_an_alert_alertmanager_still_holds_stays_open(make_reconcile_env, alertmanager):
    env = make_reconcile_env()
    held = env.labels("TritonHighErrorRate", model="llama")
    hold(alertmanager, held)
    incident = env.fire(held)
    env.clock.advance(minutes=2)
    report = env.reconciler.run_once()
    assert report.checked >= 1 and env.incident(incident)["status"] == "firing"
    assert incident not in report.incidents and "stale" not in env.timeline(incident)


def test_a_lost_resolve_goes_stale_then_resolves_after_the_grace_with_a_resolve_queued(
    make_reconcile_env, alertmanager
):
    env = make_reconcile_env(grace=10)
    lost = env.labels("TritonGPUMemoryHigh", gpu_uuid="GPU-1")
    hold(alertmanager, lost)
    incident = env.fire(lost)
    release(alertmanager, lost)
    env.clock.advance(minutes=2)

    first = env.reconciler.run_once()
    stale_at = env.clock.now
    page = env.incident(incident)
    assert page["status"] == "firing" and len(first.marked_stale) == 1
    assert page["alerts"][0]["episodes"][0]["absent_since"] == stale_at.isoformat()
    stale = next(e for e in page["timeline"] if e["kind"] == "stale")
    assert "no longer reports it active" in stale["detail"]["reason"]
    assert stale["detail"]["resolve_at"] == rfc3339(stale_at + timedelta(minutes=10))

    env.clock.advance(minutes=9)
    assert env.reconciler.run_once().resolved == []  # within the grace: still open
    assert env.incident(incident)["status"] == "firing"

    env.clock.advance(minutes=1)
    last = env.reconciler.run_once()
    page = env.incident(incident)
    assert last.incidents == [incident] and page["status"] == "resolved"
    assert page["resolved_at"] == stale_at.isoformat()  # when Alertmanager stopped holding it
    reconciled = next(e for e in page["timeline"] if e["kind"] == "reconciled")
    assert "lost resolve" in reconciled["detail"]["reason"]
    kinds = [e["kind"] for e in page["timeline"]]  # the reason first, then what it concluded
    assert kinds.index("stale") < kinds.index("reconciled") < kinds.index("resolved")
    assert [d["action"] for d in page["deliveries"]] == ["trigger", "resolve"]
    assert page["payloads"][-1]["user_agent"] == "receiver-reconcile"
    assert env.reconciler.run_once().resolved == []  # nothing left to do


def test_an_alert_that_comes_back_within_the_grace_is_no_longer_stale(
    make_reconcile_env, alertmanager
):
    env = make_reconcile_env(grace=10)
    flaky = env.labels("TritonHighLatency", model="mistral")
    incident = env.fire(flaky)  # Alertmanager does not hold it (yet)
    env.clock.advance(minutes=2)
    assert len(env.reconciler.run_once().marked_stale) == 1

    hold(alertmanager, flaky)  # e.g. Alertmanager restarted and Prometheus re-sent it
    assert len(env.reconciler.run_once().cleared) == 1
    env.clock.advance(minutes=30)
    assert env.reconciler.run_once().resolved == []
    assert env.incident(incident)["status"] == "firing"
    assert env.timeline(incident)[-2:] == ["stale", "stale_cleared"]


def test_a_silenced_alert_is_still_active_and_not_stale(make_reconcile_env, alertmanager):
    env = make_reconcile_env(grace=0)
    silenced = env.labels("TritonFewHealthyPods")
    hold(alertmanager, silenced)
    alertmanager.silence({"test": env.test_id})
    incident = env.fire(silenced)
    env.clock.advance(minutes=2)
    assert env.reconciler.run_once().marked_stale == []
    assert env.incident(incident)["status"] == "firing"


def test_only_the_lost_alerts_of_a_group_resolve_and_the_incident_stays_open(
    make_reconcile_env, alertmanager
):
    env = make_reconcile_env(grace=0)
    kept, lost = (env.labels("TritonGPUMemoryHigh", gpu_uuid=g) for g in ("GPU-a", "GPU-b"))
    hold(alertmanager, kept)
    incident = env.fire(kept, lost)
    env.clock.advance(minutes=2)
    report = env.reconciler.run_once()
    assert len(report.resolved) == 1 and report.incidents == [incident]
    page = env.incident(incident)
    states = {a["labels"]["gpu_uuid"]: a["episodes"][-1]["status"] for a in page["alerts"]}
    assert states == {"GPU-a": "firing", "GPU-b": "resolved"}
    assert page["status"] == "firing"


def test_alerts_younger_than_the_minimum_age_are_not_judged(make_reconcile_env, alertmanager):
    env = make_reconcile_env(grace=0)
    incident = env.fire(env.labels("TritonHighErrorRate", model="new"))
    env.clock.advance(seconds=59)
    assert env.reconciler.run_once().marked_stale == []
    env.clock.advance(seconds=1)
    assert env.reconciler.run_once().incidents == [incident]


def test_nothing_is_concluded_when_no_alertmanager_answers(make_reconcile_env):
    env = make_reconcile_env(urls=[f"http://127.0.0.1:{free_port()}"], grace=0)
    incident = env.fire(env.labels("TritonHighErrorRate", model="x"))
    env.clock.advance(minutes=5)
    with pytest.raises(AlertmanagerUnavailable, match="unreachable"):
        env.reconciler.run_once()
    assert env.incident(incident)["status"] == "firing"
    assert "stale" not in env.timeline(incident)


def test_one_alertmanager_of_the_pair_down_is_reported_and_the_other_answers(
    make_reconcile_env, alertmanager
):
    dead = f"http://127.0.0.1:{free_port()}"
    env = make_reconcile_env(urls=[dead, *alertmanager.urls], grace=0)
    held = env.labels("TritonHighErrorRate", model="pair")
    hold(alertmanager, held)
    incident = env.fire(held)
    env.clock.advance(minutes=2)
    report = env.reconciler.run_once()
    assert report.unavailable and report.unavailable[0].startswith(dead.removeprefix("http://"))
    assert env.incident(incident)["status"] == "firing"


def held_fingerprints(alertmanager: AlertmanagerCluster, test_id: str) -> dict[str, str]:
    """team label -> fingerprint of the alerts of this test Alertmanager holds."""
    alerts = alertmanager.alerts(filter=[f'test="{test_id}"'])
    return {a["labels"].get("team", ""): a["fingerprint"] for a in alerts}


def test_only_the_alerts_of_the_receivers_asked_for_are_fetched(make_reconcile_env, alertmanager):
    env = make_reconcile_env()
    hold(alertmanager, *(env.labels("TritonHighErrorRate", team=t) for t in TEAMS))
    held = held_fingerprints(alertmanager, env.test_id)
    assert set(held) == set(TEAMS)
    client = env.reconciler.client
    assert client.active([OURS]).fingerprints & set(held.values()) == {held["ours"]}
    both = client.active([OURS, OTHERS["prefix"]]).fingerprints & set(held.values())
    assert both == {held["ours"], held["prefix"]}
    assert client.active([]).fingerprints == set()  # nothing to check: nothing fetched


def test_the_pass_asks_for_its_receivers_and_ignores_the_others_alerts(
    make_reconcile_env, alertmanager
):
    env = make_reconcile_env(grace=0)
    ours, lost = env.labels("TritonHighErrorRate", team="ours"), env.labels("Lost", team="ours")
    hold(alertmanager, ours, *(env.labels("Other", team=t) for t in OTHERS))
    incident = env.fire(ours, lost, receiver=OURS)
    env.clock.advance(minutes=2)
    asked: list[set[str]] = []
    active = env.reconciler.client.active
    env.reconciler.client.active = lambda names: asked.append(set(names)) or active(names)
    report = env.reconciler.run_once()
    assert len(asked) == 1 and OURS in asked[0] and not asked[0] & set(OTHERS.values())
    page = env.incident(incident)
    states = {a["labels"]["alertname"]: a["episodes"][-1]["status"] for a in page["alerts"]}
    assert states == {"TritonHighErrorRate": "firing", "Lost": "resolved"}
    assert incident in report.incidents


def test_receiver_reconcile_runs_one_pass_and_says_what_it_did(
    make_reconcile_env, db_url, alertmanager
):
    env = make_reconcile_env()
    incident = env.fire(env.labels("TritonHighErrorRate", model="cli"))  # never held: lost
    environment = {
        "RECEIVER_DATABASE_URL": db_url,
        "RECEIVER_ALERTMANAGER__URLS": ",".join(alertmanager.urls),
        "RECEIVER_ALERTMANAGER__STALE_GRACE_MINUTES": "0",
    }
    with disposing_engines():
        result = CliRunner().invoke(main, ["reconcile"], env=environment)
    assert result.exit_code == 0, result.output
    assert "1 newly stale (resolved after 0 min unless back)" in result.output
    assert f"incidents changed: {incident}" in result.output
    assert env.incident(incident)["status"] == "resolved"


def test_receiver_reconcile_without_an_alertmanager_says_so(db_url):
    with disposing_engines():
        result = CliRunner().invoke(main, ["reconcile"], env={"RECEIVER_DATABASE_URL": db_url})
    assert result.exit_code == 1
    assert "no Alertmanager configured (alertmanager.urls)" in result.output
