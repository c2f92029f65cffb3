"""Two real Alertmanagers clustered with each other: Debian 12's ``prometheus-alertmanager`` 0.25
unless ``binary`` or $RECEIVER_TEST_ALERTMANAGER names another (the e2e stack runs 0.33 too:
tests/support/versions.py).

``AlertmanagerCluster`` writes one configuration for both, starts each on free 127.0.0.1 ports
(web and cluster) with its storage in a temporary directory, peers them with each other and
waits until both are ready, settled and list each other as peers. ``--cluster.peer-timeout=0s``
makes every peer send at once instead of waiting for the first to gossip its send, so each
notification reaches the receiver from both (the HA duplicates it must absorb). Helpers read
alerts, post alerts, create, list and expire silences and read metrics through the v2 API.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.payloads import rfc3339
from tests.support.servers import Process, free_port, started
from tests.support.skips import first_executable, require_binary

DEFAULT_BINARY = "/usr/bin/prometheus-alertmanager"  # Debian's name for alertmanager
BINARY_ENV = "RECEIVER_TEST_ALERTMANAGER"
READY_TIMEOUT = 30.0
POLL = 0.1


class AlertmanagerError(RuntimeError):
    """An Alertmanager did not start, did not cluster, or refused an API call."""


def alertmanager_binary() -> str | None:
    """$RECEIVER_TEST_ALERTMANAGER, Debian's binary, or ``alertmanager`` on $PATH."""
    return first_executable(
        os.environ.get(BINARY_ENV), DEFAULT_BINARY, shutil.which("alertmanager")
    )


def require_alertmanager() -> str:
    """The alertmanager binary's path; skip (fail in CI) without one."""
    return require_binary("Alertmanager", alertmanager_binary(), "prometheus-alertmanager")


@dataclass
class Node:
    """One running Alertmanager."""

    url: str
    cluster_address: str
    process: Process


class AlertmanagerCluster:
    """``size`` clustered Alertmanagers sharing ``config``; use as a context manager."""

    def __init__(
        self,
        config: dict[str, Any],
        size: int = 2,
        tmp_dir: Path | None = None,
        binary: str | None = None,
        peer_timeout: str = "0s",
        web_ports: list[int] | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.config = config
        self.size = size
        self.tmp_dir = tmp_dir
        self.binary = binary or alertmanager_binary()
        self.peer_timeout = peer_timeout
        self.web_ports = web_ports or [free_port() for _ in range(size)]
        self.extra_args = extra_args or []  # e.g. --enable-feature=event-recorder
        self.nodes: list[Node] = []
        self._stack = ExitStack()
        self._http = requests.Session()

    @property
    def urls(self) -> list[str]:
        """Each node's base URL (known before the nodes start)."""
        return [f"http://127.0.0.1:{port}" for port in self.web_ports]

    def __enter__(self) -> AlertmanagerCluster:
        if self.binary is None:
            raise AlertmanagerError(
                "no alertmanager binary (apt-get install prometheus-alertmanager)"
            )
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        self._http.close()

    def _start(self) -> None:
        directory = Path(tempfile.mkdtemp(prefix="alertmanager-", dir=self.tmp_dir))
        self._stack.callback(shutil.rmtree, directory, ignore_errors=True)
        config_file = directory / "alertmanager.yml"
        config_file.write_text(yaml.safe_dump(self.config, sort_keys=False))
        peers = [f"127.0.0.1:{free_port()}" for _ in range(self.size)]
        for n, (port, address) in enumerate(zip(self.web_ports, peers, strict=True)):
            url = f"http://127.0.0.1:{port}"
            command = [
                str(self.binary),
                f"--config.file={config_file}",
                f"--storage.path={directory / f'data-{n}'}",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--web.external-url={url}",
                f"--cluster.listen-address={address}",
                f"--cluster.advertise-address={address}",
                *(f"--cluster.peer={other}" for other in peers if other != address),
                f"--cluster.peer-timeout={self.peer_timeout}",
                "--cluster.pushpull-interval=1s",
                "--cluster.settle-timeout=2s",
                "--cluster.reconnect-interval=1s",
                "--log.level=debug",
                *self.extra_args,
            ]
            process = self._stack.enter_context(started(command, os.environ, cwd=directory))
            self.nodes.append(Node(url, address, process))
        self._wait_clustered()

    def _wait_clustered(self, timeout: float = READY_TIMEOUT) -> None:
        """Every node answers, has settled (``ready``) and lists every node as a peer."""
        wanted = {node.cluster_address for node in self.nodes}
        deadline = time.monotonic() + timeout
        last: dict[int, str] = {}
        for n, node in enumerate(self.nodes):
            while True:
                if node.process.popen.poll() is not None:
                    raise self._failure(n, f"exited with {node.process.popen.returncode}")
                try:
                    cluster = self.status(n)["cluster"]
                except (requests.RequestException, AlertmanagerError, ValueError) as exc:
                    last[n] = type(exc).__name__
                else:
                    seen = {peer["address"] for peer in cluster.get("peers") or []}
                    if cluster.get("status") == "ready" and seen >= wanted:
                        break
                    last[n] = f"status {cluster.get('status')}, peers {sorted(seen)}"
                if time.monotonic() > deadline:
                    raise self._failure(n, f"not clustered within {timeout:g} s: {last[n]}")
                time.sleep(POLL)

    def _failure(self, n: int, what: str) -> AlertmanagerError:
        return AlertmanagerError(f"alertmanager {n} {what}\n--- stderr ---\n{self.output(n)}")

    def output(self, n: int) -> str:
        """What node ``n`` logged so far (it logs to stderr)."""
        return self.nodes[n].process.stderr() if n < len(self.nodes) else ""

    def _call(self, n: int, method: str, path: str, **kwargs: Any) -> Any:
        answer = self._http.request(method, self.nodes[n].url + path, timeout=10, **kwargs)
        if answer.status_code >= 300:
            raise AlertmanagerError(f"{method} {path}: {answer.status_code} {answer.text[:300]}")
        return answer.json() if answer.content else None

    def status(self, n: int = 0) -> dict[str, Any]:
        """GET /api/v2/status: cluster (status, peers), config, uptime, version."""
        return self._call(n, "GET", "/api/v2/status")

    def alerts(self, n: int = 0, **filters: Any) -> list[dict[str, Any]]:
        """GET /api/v2/alerts; ``filter=['model="x"']``, ``active``, ``silenced``, ... as params."""
        return self._call(n, "GET", "/api/v2/alerts", params=filters)

    def post_alerts(self, alerts: list[dict[str, Any]], nodes: list[int] | None = None) -> None:
        """POST /api/v2/alerts to each node (all of them by default), as Prometheus does."""
        for n in range(self.size) if nodes is None else nodes:
            self._call(n, "POST", "/api/v2/alerts", json=alerts)

    def silence(
        self,
        matchers: dict[str, str],
        minutes: float = 10,
        comment: str = "e2e",
        n: int = 0,
        created_by: str = "receiver-e2e",
    ) -> str:
        """POST /api/v2/silences with equality matchers; the silence id (gossiped to peers)."""
        now = datetime.now(UTC)
        body = {
            "matchers": [
                {"name": k, "value": v, "isRegex": False, "isEqual": True}
                for k, v in matchers.items()
            ],
            "startsAt": rfc3339(now),
            "endsAt": rfc3339(now + timedelta(minutes=minutes)),
            "createdBy": created_by,
            "comment": comment,
        }
        return str(self._call(n, "POST", "/api/v2/silences", json=body)["silenceID"])

    def update_silence(self, silence_id: str, n: int = 0, **changes: Any) -> str:
        """POST /api/v2/silences with the stored silence's ``id``, fields and ``changes``
        (``comment``, ``endsAt``); the id it has then (a new one if Alertmanager replaced it)."""
        stored = self._call(n, "GET", f"/api/v2/silence/{silence_id}")
        keys = ("id", "matchers", "startsAt", "endsAt", "createdBy", "comment")
        body = {**{k: stored[k] for k in keys}, **changes}
        return str(self._call(n, "POST", "/api/v2/silences", json=body)["silenceID"])

    def silences(self, n: int = 0) -> list[dict[str, Any]]:
        """GET /api/v2/silences: every silence node ``n`` knows, with its ``status.state``."""
        return self._call(n, "GET", "/api/v2/silences")

    def expire(self, silence_id: str, n: int = 0) -> None:
        """DELETE /api/v2/silence/<id>: end a silence now (gossiped to peers)."""
        self._call(n, "DELETE", f"/api/v2/silence/{silence_id}")

    def metric(self, n: int, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` on node ``n`` whose labels include ``labels``."""
        answer = self._http.get(self.nodes[n].url + "/metrics", timeout=10)
        total = 0.0
        for family in text_string_to_metric_families(answer.text):
            for sample in family.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    total += sample.value
        return total
