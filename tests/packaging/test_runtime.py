"""The processes the image runs: gunicorn with deploy/gunicorn.conf.py (the package's own gunicorn
settings, extended), the worker's metrics endpoint, and the HEALTHCHECK script.

The slow tests start the real processes: gunicorn serving and logging as the web pods do, with
its workers' metrics added up, and ``receiver worker`` with the manifest's metrics options.
"""

from __future__ import annotations

import ast
import json
import signal
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
import requests
from packaging.requirements import Requirement
from prometheus_client.parser import text_string_to_metric_families

from receiver import gunicorn_conf as package
from receiver.settings import Settings
from tests.packaging.helpers import (
    DEPLOY,
    GUNICORN_CONF,
    HEALTHCHECK,
    MULTIPROC_ENV,
    container_of,
    gunicorn_namespace,
    gunicorn_settings,
    healthcheck_module,
    image_files,
)
from tests.support.servers import (
    BIN,
    REPO_ROOT,
    Process,
    free_port,
    receiver_env,
    started,
    stop,
    wait_ready,
)

# deploy/gunicorn.conf.py sets these itself, on purpose (its comments say why)
OVERRIDDEN = {"graceful_timeout", "logconfig_dict"}


# --- deploy/gunicorn.conf.py ----------------------------------------------------------------


def test_gunicorn_binds_the_receivers_listen_settings(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "receiver.yaml"
    config.write_text("listen: {host: 10.1.2.3, port: 8181, workers: 5}\nlog_level: warning\n")
    clean_env.setenv("RECEIVER_CONFIG", str(config))
    settings = gunicorn_settings()
    assert settings["bind"] == ["10.1.2.3:8181"]
    assert settings["workers"] == 5
    assert settings["loglevel"] == "warning"
    logging = settings["logconfig_dict"]
    assert logging["loggers"]["gunicorn.error"]["level"] == "WARNING"
    assert logging["root"]["level"] == "WARNING"
    # environment over the file, as for every setting
    clean_env.setenv("RECEIVER_LISTEN__HOST", "::")
    clean_env.setenv("RECEIVER_LISTEN__PORT", "9300")
    assert gunicorn_settings()["bind"] == ["[::]:9300"]


def test_gunicorn_config_extends_the_packages_own(clean_env: pytest.MonkeyPatch) -> None:
    """One source of truth: every gunicorn setting and hook of receiver/gunicorn_conf.py (the one
    `receiver serve` runs) is the web pods' too, unless this file overrides it on purpose."""
    namespace = gunicorn_namespace()
    settings = gunicorn_settings()
    defined = {name for name in settings if hasattr(package, name)}
    assert {"logconfig_dict", "child_exit", "accesslog"} <= defined
    for name in defined - OVERRIDDEN:
        assert namespace[name] is getattr(package, name) or namespace[name] == getattr(
            package, name
        ), f"{name}: deploy/gunicorn.conf.py differs from receiver/gunicorn_conf.py"
    assert namespace["child_exit"] is package.child_exit, "dead workers' metric files marked"
    assert settings["accesslog"] is None
    # the package's logging, with only the formatter choice, the levels and the access logger
    # changed: gunicorn logs access lines whenever a logconfig_dict is set, accesslog or not
    ours, theirs = settings["logconfig_dict"], package.logconfig_dict
    for key in ("version", "filters", "formatters"):
        assert ours[key] == theirs[key]
    assert ours["handlers"].keys() == theirs["handlers"].keys()
    access = ours["loggers"]["gunicorn.access"]
    assert access["handlers"] == [] and access["propagate"] is False
    assert access["level"] == "CRITICAL", "the application writes the access line, not gunicorn"
    assert ours["loggers"]["gunicorn.error"]["handlers"] == ["stderr"]
    assert settings["graceful_timeout"] != package.graceful_timeout  # the pod's own, see below


def test_gunicorn_logs_in_the_configured_format(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def formatter() -> str:
        return str(gunicorn_settings()["logconfig_dict"]["handlers"]["stderr"]["formatter"])

    assert formatter() == Settings().log_format == "json"
    config = tmp_path / "receiver.yaml"
    config.write_text("log_format: text\n")
    clean_env.setenv("RECEIVER_CONFIG", str(config))
    assert formatter() == "text", "the file's log_format, not only RECEIVER_LOG_FORMAT"
    clean_env.setenv("RECEIVER_LOG_FORMAT", "json")
    assert formatter() == "json"
    assert set(package.logconfig_dict["formatters"]) >= {"json", "text"}


def test_gunicorn_config_for_containers(clean_env: pytest.MonkeyPatch) -> None:
    settings = gunicorn_settings()
    assert settings["bind"] == [f"127.0.0.1:{Settings().listen.port}"]
    assert settings["workers"] == Settings().listen.workers
    assert settings["errorlog"] == "-"
    assert settings["preload_app"] is False, "each worker its own engine and metric files"
    assert settings["worker_tmp_dir"] in ("/dev/shm", None)
    if "control_socket_disable" in settings:  # gunicorn 25+: no socket under a read-only $HOME
        assert settings["control_socket_disable"] is True
    assert settings["forwarded_allow_ips"] == ["127.0.0.1", "::1"]
    clean_env.setenv("FORWARDED_ALLOW_IPS", "10.0.0.0/8")
    assert gunicorn_settings()["forwarded_allow_ips"] == ["10.0.0.0/8"]


def test_gunicorn_master_prepares_the_multiprocess_metrics_directory(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    on_starting = gunicorn_settings()["on_starting"]
    on_starting(None)  # no directory configured: nothing to do
    directory = tmp_path / "run" / "metrics"
    clean_env.setenv(MULTIPROC_ENV, str(directory))
    on_starting(None)
    assert directory.is_dir(), "created when missing (e.g. under a tmpfs /tmp)"
    # a restarted container finds the files of its previous run in the pod's emptyDir
    for name in ("counter_7.db", "histogram_7.db"):
        (directory / name).write_bytes(b"\0" * 16)
    (directory / "keep.txt").write_text("not prometheus_client's")
    on_starting(None)
    assert sorted(p.name for p in directory.iterdir()) == ["keep.txt"]


def test_gunicorn_config_reports_an_invalid_configuration(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "receiver.yaml"
    config.write_text("listen: {port: 99999}\n")
    clean_env.setenv("RECEIVER_CONFIG", str(config))
    with pytest.raises(SystemExit, match=r"listen\.port"):
        gunicorn_namespace()


def test_deploy_scripts_import_only_what_the_image_has() -> None:
    """The image has the standard library, the runtime dependencies and the receiver package."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    dependencies = {Requirement(d).name.lower() for d in project["dependencies"]}
    for script in (GUNICORN_CONF, HEALTHCHECK):
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "__future__":
                    continue
                if top == "receiver":
                    module = REPO_ROOT / (name.replace(".", "/") + ".py")
                    package_dir = REPO_ROOT / name.replace(".", "/") / "__init__.py"
                    assert module.exists() or package_dir.exists(), f"{script.name}: {name}"
                    continue
                assert top in dependencies, f"{script.name} imports {name}, not a dependency"


# --- the real processes -------------------------------------------------------------------


def _json_lines(text: str) -> list[dict[str, Any]]:
    lines = [line for line in text.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # every line is one JSON object


def _unauthorized(url: str) -> float:
    """receiver_webhooks_total{result="unauthorized"} in one scrape of ``url``/metrics."""
    answer = requests.get(url + "/metrics", timeout=5)
    assert answer.status_code == 200
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            if (sample.name, sample.labels.get("result")) == (
                "receiver_webhooks_total",
                "unauthorized",
            ):
                return sample.value
    return 0.0


def _refused_by_both_workers(process: Process, url: str) -> int:
    """Unauthenticated webhooks, each on a connection of its own, until both gunicorn workers
    have refused some (the kernel hands each connection to whichever worker accepts first);
    how many in all."""
    refused, pids = 0, set()
    while len(pids) < 2 and refused < 200:
        with requests.post(url + "/api/v1/alertmanager", data=b"{}", timeout=5) as answer:
            assert answer.status_code == 401
        refused += 1
        pids = {
            r["process"]
            for r in _json_lines(process.stderr())
            if r.get("logger") == "receiver.access" and r.get("status") == 401
        }
    assert len(pids) == 2, f"refused by the processes {pids} only, in {refused} requests"
    return refused


@pytest.mark.slow
def test_gunicorn_with_the_config_file_serves_logs_json_and_adds_up_metrics(
    sqlite_migrated: str, tmp_path: Path
) -> None:
    port = free_port()
    metrics_dir = tmp_path / "pod" / "metrics"  # missing: the master creates it
    env = receiver_env(
        sqlite_migrated,
        extra={
            "RECEIVER_LISTEN__PORT": str(port),
            "RECEIVER_LISTEN__WORKERS": "2",
            MULTIPROC_ENV: str(metrics_dir),
        },
    )
    command = [str(BIN / "gunicorn"), "-c", str(GUNICORN_CONF), "receiver.asgi:app"]
    url = f"http://127.0.0.1:{port}"
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    with started(command, env) as process:
        wait_ready(process, url)
        assert requests.get(url + "/healthz", timeout=5).status_code == 200
        listing = requests.get(
            url + "/api/v1/incidents?limit=5",
            headers={
                "X-Request-ID": "ingress-42",
                "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01",
            },
            timeout=5,
        )
        assert listing.status_code == 200
        assert listing.headers["X-Request-ID"] == "ingress-42"
        assert listing.headers["traceparent"].split("-")[1] == trace_id, "the trace continued"
        refused = _refused_by_both_workers(process, url)
        # whichever worker answers the scrape, it adds up both workers' counters
        for _ in range(6):
            assert _unauthorized(url) == refused
        # the image's HEALTHCHECK, run as Docker would with this process as process 1
        check = healthcheck_module()
        with pytest.MonkeyPatch.context() as mp:
            for name, value in env.items():
                mp.setenv(name, value)
            assert check.main(command) == 0
        stop(process, signal.SIGTERM)
        assert process.popen.returncode == 0, process.stderr()
        assert process.stdout().strip() == "", "logs go to stderr only"
        records = _json_lines(process.stderr())
    assert any(r["logger"] == "gunicorn.error" for r in records), "gunicorn's own lines: JSON"
    assert not [r for r in records if r["logger"] == "gunicorn.access"], "no gunicorn access log"
    access = [r for r in records if r["logger"] == "receiver.access"]
    assert [r["message"] for r in access] == [
        "GET /api/v1/incidents 200",
        *["POST /api/v1/alertmanager 401"] * refused,
    ], "probes and scrapes are left out at INFO, everything else is logged once"
    first = access[0]
    assert (first["request_id"], first["trace_id"], first["status"]) == (
        "ingress-42",
        trace_id,
        200,
    )
    assert isinstance(first["latency_ms"], float)
    assert len({r["request_id"] for r in access[1:]}) == refused, "one id made per request"
    assert list(metrics_dir.glob("counter_*.db")), "the workers counted into the directory"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RECEIVER_LISTEN__PORT", str(port))
        assert check.main(command) == 1, "nothing answers once gunicorn has stopped"


@pytest.mark.slow
def test_the_worker_serves_its_metrics_as_the_manifest_runs_it(sqlite_migrated: str) -> None:
    args = container_of("worker")["args"]
    port = free_port()
    position = args.index("--metrics-port") + 1
    args = [*args[:position], str(port), *args[position + 1 :]]
    command = [str(BIN / "receiver"), *args]
    env = receiver_env(sqlite_migrated, tokens=())
    with started(command, env) as process:
        url = f"http://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 20
        answer = None
        while time.monotonic() < deadline and process.popen.poll() is None:
            try:
                answer = requests.get(url, timeout=2)
                break
            except requests.RequestException:
                time.sleep(0.2)
        assert answer is not None and answer.status_code == 200, process.stderr()
        names = {f.name for f in text_string_to_metric_families(answer.text)}
        assert {"receiver_deliveries", "receiver_reconcile_runs"} <= names
        assert "receiver_outbox_deliveries" not in names, "store gauges are the web's"
        check = healthcheck_module()
        assert check.target(command) == url
        assert check.main(command) == 0
        stop(process, signal.SIGTERM)
        assert process.popen.returncode == 0, process.stderr()


# --- deploy/healthcheck.py ------------------------------------------------------------------


def test_healthcheck_asks_what_the_container_runs(clean_env: pytest.MonkeyPatch) -> None:
    check = healthcheck_module()
    clean_env.setenv("RECEIVER_LISTEN__PORT", "9444")
    clean_env.setenv("RECEIVER_LISTEN__HOST", "0.0.0.0")
    python, receiver = "/opt/venv/bin/python", "/opt/venv/bin/receiver"
    assert check.target([python, receiver, "serve"]) == "http://127.0.0.1:9444/healthz"
    web = ["/opt/venv/bin/python", "/opt/venv/bin/gunicorn", "-c", "x.py", "receiver.asgi:app"]
    assert check.target(web) == "http://127.0.0.1:9444/healthz"
    behind_a_proxy = [*web[:-1], "receiver.wsgi:app"]
    assert check.target(behind_a_proxy) == "http://127.0.0.1:9444/healthz"
    worker = [python, receiver, "worker", "--metrics-port", "9100"]
    assert check.target(worker) == "http://127.0.0.1:9100/metrics"
    assert check.target([python, receiver, "worker", "--metrics-port=9101"]).endswith(
        ":9101/metrics"
    )
    assert check.target([python, receiver, "worker"]) is None
    assert check.target([python, receiver, "db", "upgrade"]) is None
    assert check.main([python, receiver, "db", "upgrade"]) == 0
    # the metrics address: a wildcard is asked on the loopback, anything else as given
    for address, asked in (
        ("0.0.0.0", "127.0.0.1"),
        ("::", "[::1]"),
        ("127.0.0.1", "127.0.0.1"),
        ("10.0.0.7", "10.0.0.7"),
        ("fd00::7", "[fd00::7]"),
    ):
        argv = [*worker, "--metrics-address", address]
        assert check.target(argv) == f"http://{asked}:9100/metrics", address
    equals = [python, receiver, "worker", "--metrics-address=10.0.0.8", "--metrics-port=9102"]
    assert check.target(equals) == "http://10.0.0.8:9102/metrics"
    # the manifests' worker command is one the check understands, on the pod's loopback
    argv = [python, receiver, *container_of("worker")["args"]]
    assert check.target(argv) == "http://127.0.0.1:9100/metrics"


def test_deploy_holds_only_what_the_image_copies() -> None:
    """Every script of deploy/ is in the image (the Dockerfile copies it)."""
    copied = set(image_files().values())
    for path in sorted(DEPLOY.glob("*.py")):
        assert path in copied, f"{path.name} is not copied into the image"
