"""The whole pipeline as real processes: Triton pods -> Prometheus -> 2 Alertmanagers -> receiver.

Two simulated Triton pods (``pod_a`` carries most scenarios' models and GPUs; ``pod_b`` is the
one taken down, and holds the flapping GPU in a GPU group of its own) are scraped every second
as job ``triton`` by a real Prometheus evaluating the shipped rules made fast (``fast_rules``),
and on Prometheus 3 a rule with UTF-8 label names (``utf8_rules``), which alerts both clustered
Alertmanagers running the shipped config made fast. They notify the receiver: gunicorn with 2
workers plus a separate ``receiver worker`` on one Postgres database, sending to PagerDuty and
Slack stand-ins.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from tests.e2e.configs import (
    SHIPPED_RULES,
    SLACK_CHANNEL,
    SLACK_TOKEN,
    alertmanager_config,
    receiver_config,
)
from tests.e2e.fast_rules import fast_rules
from tests.e2e.utf8_rules import utf8_rules
from tests.sim.triton import TritonSimulator
from tests.standins.pagerduty import PagerDutyStandIn
from tests.standins.slack import SlackStandIn
from tests.support.alertmanager import AlertmanagerCluster
from tests.support.api import TOKEN
from tests.support.prometheus import PrometheusServer
from tests.support.servers import Process, Server, gunicorn, receiver_env, started
from tests.support.versions import binary_version

WORKER = [sys.executable, "-m", "receiver.cli", "worker", "--poll", "0.2"]
INTAKE_LOCK_TIMEOUT_MS = 500  # gunicorn's Postgres sessions give up on a lock after this


class AlertingPrometheus(PrometheusServer):
    """PrometheusServer that also sends its alerts to the given Alertmanagers (API v2)."""

    def __init__(self, targets: list[str], alertmanagers: list[str], **kwargs: Any) -> None:
        super().__init__(targets, **kwargs)
        self.alertmanagers = [url.removeprefix("http://") for url in alertmanagers]

    def config(self) -> dict[str, Any]:
        config = super().config()
        config["alerting"] = {
            "alertmanagers": [
                {"api_version": "v2", "static_configs": [{"targets": self.alertmanagers}]}
            ]
        }
        return config

    def active_alertmanagers(self) -> set[str]:
        """The Alertmanager URLs Prometheus currently sends to."""
        answer = requests.get(self.url + "/api/v1/alertmanagers", timeout=10).json()
        return {am["url"] for am in answer["data"]["activeAlertmanagers"]}


@dataclass
class Stack:
    """Every running part, with the URLs and handles the scenarios use."""

    pod_a: TritonSimulator
    pod_b: TritonSimulator
    prometheus: AlertingPrometheus
    alertmanagers: AlertmanagerCluster
    receiver: Server
    worker: Process
    pagerduty: PagerDutyStandIn
    slack: SlackStandIn
    database_url: str

    def processes(self) -> dict[str, Process]:
        """Every process of the stack by name (for liveness checks and failure output)."""
        found = {"gunicorn": self.receiver.process, "worker": self.worker}
        if self.prometheus.process is not None:
            found["prometheus"] = self.prometheus.process
        for n, node in enumerate(self.alertmanagers.nodes):
            found[f"alertmanager-{n}"] = node.process
        return found

    def dead(self) -> list[str]:
        """Names of the processes that have exited."""
        return [name for name, p in self.processes().items() if p.popen.poll() is not None]

    def output(self, tail: int = 3000) -> str:
        """The last ``tail`` characters each process logged, for failure messages."""
        return "".join(
            f"\n--- {name} (stderr, tail) ---\n{p.stderr()[-tail:]}"
            for name, p in self.processes().items()
        )


HEARTBEAT = "receiver_heartbeat_last_seen_timestamp_seconds"


def with_lock_timeout(database_url: str, milliseconds: int) -> str:
    """The Postgres URL with a libpq ``options`` setting lock_timeout for every session."""
    url = make_url(database_url)
    url = url.update_query_dict({"options": f"-c lock_timeout={milliseconds}"})
    return url.render_as_string(hide_password=False)


@contextmanager
def running_stack(
    tmp_dir: Path, database_url: str, prometheus_binary: str, alertmanager_binary: str
) -> Iterator[Stack]:
    """Start everything, wait until a Watchdog went all the way through, stop all on exit."""
    with ExitStack() as stack:
        pagerduty = stack.enter_context(PagerDutyStandIn())
        channels = {"#triton-e2e": SLACK_CHANNEL}
        slack = stack.enter_context(SlackStandIn(token=SLACK_TOKEN, channels=channels))
        pod_a = stack.enter_context(TritonSimulator())
        pod_b = stack.enter_context(TritonSimulator())
        token_file = tmp_dir / "receiver-token"
        token_file.write_text(TOKEN + "\n", encoding="utf-8")
        # Ports first: Prometheus alerts the Alertmanagers, which notify the receiver, which
        # queries Prometheus. Prometheus retries its sends until the Alertmanagers are up.
        alertmanagers = AlertmanagerCluster({}, size=2, tmp_dir=tmp_dir, binary=alertmanager_binary)
        prometheus = stack.enter_context(
            AlertingPrometheus(
                [pod_a.target, pod_b.target],
                alertmanagers=alertmanagers.urls,
                rule_files=[
                    fast_rules(SHIPPED_RULES, tmp_dir / "triton-alerts.fast.yml"),
                    *utf8_rules(tmp_dir, binary_version(prometheus_binary)),
                ],
                tmp_dir=tmp_dir,
                binary=prometheus_binary,
                extra_args=["--rules.alert.resend-delay=1s"],
            )
        )
        config = receiver_config(
            tmp_dir / "receiver.yaml", prometheus.url, pagerduty, slack, alertmanagers.urls
        )
        intake_url = with_lock_timeout(database_url, INTAKE_LOCK_TIMEOUT_MS)
        receiver = stack.enter_context(gunicorn(intake_url, config=config, workers=2))
        worker = stack.enter_context(started(WORKER, receiver_env(database_url, config=config)))
        version = binary_version(alertmanager_binary)
        alertmanagers.config = alertmanager_config(receiver.url, token_file, version)
        stack.enter_context(alertmanagers)
        running = Stack(
            pod_a=pod_a,
            pod_b=pod_b,
            prometheus=prometheus,
            alertmanagers=alertmanagers,
            receiver=receiver,
            worker=worker,
            pagerduty=pagerduty,
            slack=slack,
            database_url=database_url,
        )
        _wait_for_watchdog(running)
        yield running


def _wait_for_watchdog(stack: Stack, timeout: float = 60.0) -> None:
    """Prometheus sends to both Alertmanagers and the receiver has had a Watchdog heartbeat."""
    deadline = time.monotonic() + timeout
    wanted = {url + "/api/v2/alerts" for url in stack.alertmanagers.urls}
    last: Any = None
    while time.monotonic() < deadline:
        if dead := stack.dead():
            raise RuntimeError(f"{dead} exited while the stack started{stack.output()}")
        active = stack.prometheus.active_alertmanagers()
        beat = watchdog_heartbeat(stack)
        last = (sorted(active), beat)
        if active >= wanted and beat is not None:
            return
        time.sleep(0.2)
    raise RuntimeError(f"no Watchdog heartbeat within {timeout:g} s: {last}{stack.output()}")


def watchdog_heartbeat(stack: Stack) -> float | None:
    """When the receiver last got the Watchdog (its /metrics gauge), or None."""
    text = requests.get(stack.receiver.url + "/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == HEARTBEAT and sample.labels.get("heartbeat") == "Watchdog":
                return sample.value
    return None
