"""A real Prometheus for tests, without pytest fixtures: Debian 12's ``prometheus`` 2.42 unless
``binary`` or $RECEIVER_TEST_PROMETHEUS names another (the e2e stack runs 3.5 too:
tests/support/versions.py).

``PrometheusServer`` writes a prometheus.yml scraping the given targets as job ``triton``, runs
Prometheus on a free 127.0.0.1 port with its TSDB in a temporary directory, waits for /-/ready
and stops it (TERM, then KILL) on exit, removing the directory. Failures raise
``PrometheusError`` (or ``AssertionError`` for ``wait_for``) carrying Prometheus's output.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.support.servers import Process, free_port, started
from tests.support.skips import first_executable, require_binary

READY_TIMEOUT = 30.0
POLL_INTERVAL = 0.2
DEFAULT_BINARY = "/usr/bin/prometheus"
BINARY_ENV = "RECEIVER_TEST_PROMETHEUS"  # another prometheus binary to use

Labels = dict[str, str]
Result = list[tuple[Labels, float]]


class PrometheusError(RuntimeError):
    """Prometheus did not start, or answered a query with an error."""


def prometheus_binary() -> str | None:
    """Path of the prometheus binary ($RECEIVER_TEST_PROMETHEUS, /usr/bin/prometheus, $PATH)."""
    return first_executable(os.environ.get(BINARY_ENV), DEFAULT_BINARY, shutil.which("prometheus"))


def require_prometheus() -> str:
    """The prometheus binary's path; skip (fail in CI) without one."""
    return require_binary("Prometheus", prometheus_binary(), "prometheus")


class PrometheusServer:
    """Run Prometheus scraping ``targets``; use as a context manager."""

    def __init__(
        self,
        targets: Sequence[str],
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        rule_files: Sequence[Path] = (),
        tmp_dir: Path | None = None,
        binary: str | None = None,
        extra_args: Sequence[str] = (),
        wait_for_scrape: bool = True,
    ) -> None:
        self.targets = list(targets)
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.rule_files = [Path(f).resolve() for f in rule_files]
        self.tmp_dir = tmp_dir
        self.binary = binary or prometheus_binary()
        self.extra_args = list(extra_args)
        self.wait_for_scrape = wait_for_scrape
        self.port = 0
        self.directory: Path | None = None
        self.process: Process | None = None
        self._stack = ExitStack()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "scrape_configs": [
                {
                    "job_name": "triton",
                    "honor_labels": False,
                    "static_configs": [{"targets": self.targets}],
                }
            ],
        }
        if self.rule_files:
            config["rule_files"] = [str(f) for f in self.rule_files]
        return config

    def __enter__(self) -> PrometheusServer:
        if self.binary is None:
            raise PrometheusError("no prometheus binary (apt-get install prometheus)")
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def _start(self) -> None:
        directory = Path(tempfile.mkdtemp(prefix="prometheus-", dir=self.tmp_dir))
        self._stack.callback(shutil.rmtree, directory, ignore_errors=True)
        self.directory = directory
        config_file = directory / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        self.port = free_port()
        command = [
            str(self.binary),
            f"--config.file={config_file}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
            *self.extra_args,
        ]
        # Registered after rmtree, so it runs first: stop the process, then remove its files.
        self.process = self._stack.enter_context(started(command, os.environ, cwd=directory))
        self._wait_ready()
        if self.wait_for_scrape and self.targets:
            # 2.42 applies new target sets at most every 5 s: the first scrape comes ~5 s late.
            wanted = set(self.targets)
            try:
                self.wait_for('up{job="triton"}', lambda r: {m["instance"] for m, _ in r} >= wanted)
            except AssertionError as exc:
                raise self._failure(f"scraped not every target: {exc}") from None

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        last = "no answer"
        with requests.Session() as session:
            while time.monotonic() < deadline:
                try:
                    answer = session.get(self.url + "/-/ready", timeout=2)
                except requests.RequestException as exc:
                    last = type(exc).__name__
                else:
                    if answer.status_code == 200:
                        return
                    last = f"{answer.status_code} {answer.text.strip()[:200]}"
                try:
                    code = self.process.popen.wait(timeout=POLL_INTERVAL)
                except subprocess.TimeoutExpired:
                    continue
                raise self._failure(f"exited with {code} before it was ready")
        raise self._failure(f"not ready within {timeout:g} s (last /-/ready: {last})")

    def _failure(self, what: str) -> PrometheusError:
        assert self.process is not None
        return PrometheusError(f"prometheus {what}\n--- stderr ---\n{self.process.stderr()}")

    def output(self) -> str:
        """What Prometheus logged so far (it logs to stderr)."""
        return self.process.stderr() if self.process is not None else ""

    def query(self, promql: str, time: float | datetime | None = None) -> Result:
        """Evaluate an instant query; a vector or scalar as ``[(labels, value), ...]``."""
        params = {"query": promql}
        if time is not None:
            stamp = time.timestamp() if isinstance(time, datetime) else float(time)
            params["time"] = f"{stamp:.3f}"
        with requests.Session() as session:
            answer = session.get(self.url + "/api/v1/query", params=params, timeout=10)
        try:
            body = answer.json()
        except ValueError:
            raise PrometheusError(
                f"{promql}: HTTP {answer.status_code} {answer.text[:300]}"
            ) from None
        if body.get("status") != "success":
            raise PrometheusError(f"{promql}: {body.get('errorType')}: {body.get('error')}")
        data = body["data"]
        if data["resultType"] == "vector":
            return [(item["metric"], float(item["value"][1])) for item in data["result"]]
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        raise PrometheusError(f"{promql}: a {data['resultType']}, not an instant vector")

    def value(self, promql: str, time: float | datetime | None = None) -> float:
        """The single value of a query that must return exactly one sample."""
        result = self.query(promql, time)
        if len(result) != 1:
            raise AssertionError(f"{promql}: expected one sample, got {result}")
        return result[0][1]

    def wait_for(
        self,
        promql: str,
        predicate: Callable[[Result], bool] = bool,
        timeout: float = 30.0,
        interval: float = POLL_INTERVAL,
    ) -> Result:
        """Poll ``promql`` until ``predicate(result)`` holds; return that result."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if predicate(result):
                return result
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{promql}: condition not met within {timeout:g} s; last result: {result}"
                )
            time.sleep(interval)

    def reload(self) -> None:
        """Re-read the configuration and rule files (POST /-/reload)."""
        with requests.Session() as session:
            answer = session.post(self.url + "/-/reload", timeout=10)
        if answer.status_code != 200:
            raise PrometheusError(f"reload failed: {answer.status_code} {answer.text[:300]}")
