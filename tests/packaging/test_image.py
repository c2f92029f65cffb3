"""The image itself, run the way the manifests run it (the same files, environment, user,
read-only root and emptyDirs): check-config, the migration Job, the web with its probes, metrics
and HEALTHCHECK, and the worker's metrics port.

``RECEIVER_TEST_IMAGE=receiver:dev`` names an image built from this Dockerfile (and needs a
Docker engine on this machine); without it these tests skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
import requests

from receiver.store import migrate
from tests.packaging.helpers import (
    container_of,
    empty_dir_mounts,
    localized_env,
    manifest_env,
    pod_spec,
    workload,
)
from tests.support.servers import free_port

PodOptions = Callable[[str], list[str]]


@pytest.fixture
def image() -> str:
    tag = os.environ.get("RECEIVER_TEST_IMAGE")
    if not tag:
        pytest.skip("RECEIVER_TEST_IMAGE not set (an image built from the Dockerfile)")
    if shutil.which("docker") is None:
        pytest.skip("no docker client")
    return tag


def docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def pod_options(tmp_path: Path, pg_url: str) -> PodOptions:
    """Docker options running a container as the manifests run a component's: the ConfigMap
    and Secret files mounted read-only where the pods mount them, the container's environment,
    its user, a read-only root with a tmpfs for each emptyDir, the host's network."""
    localized_env(workload("web"), tmp_path, pg_url)  # writes the mounted files under tmp_path
    mounted = [tmp_path / "etc" / "receiver", tmp_path / "run" / "secrets" / "receiver"]
    for path in mounted:
        path.chmod(0o755)
        for file in path.iterdir():
            file.chmod(0o644)

    def options(component: str) -> list[str]:
        obj = workload(component)
        out: list[str] = []
        for path in mounted:
            out += ["-v", f"{path}:/{path.relative_to(tmp_path)}:ro"]
        for name, value in manifest_env(obj).items():
            out += ["-e", f"{name}={value}"]
        uid = pod_spec(obj)["securityContext"]["runAsUser"]
        out += ["--user", f"{uid}:{uid}", "--read-only", "--network", "host"]
        for mount_path in empty_dir_mounts(obj):
            out += ["--tmpfs", mount_path]
        return out

    return options


@pytest.mark.slow
def test_the_image_runs_as_the_manifests_run_it(
    image: str, pod_options: PodOptions, pg_url: str
) -> None:
    help_text = docker("run", "--rm", image, "--help")
    assert help_text.returncode == 0, help_text.stderr
    for command in ("serve", "worker", "db", "check-config"):
        assert command in help_text.stdout
    checked = docker("run", "--rm", *pod_options("web"), image, "check-config")
    assert checked.returncode == 0, checked.stderr
    assert "configuration OK" in checked.stdout
    # the migration Job's command on an empty database, then the check the guide recommends
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    migrated = docker(
        "run", "--rm", *pod_options("migrate"), image, *container_of("migrate")["args"]
    )
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert migrated.stdout.strip().endswith(f"at {migrate.head_revision()}")
    checked = docker("run", "--rm", *pod_options("migrate"), image, "db", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    web = container_of("web")
    port = free_port()
    name = f"receiver-test-{port}"
    started_web = docker(
        "run", "-d", "--name", name, *pod_options("web"), "-e", f"RECEIVER_LISTEN__PORT={port}",
        "--entrypoint", web["command"][0], image, *web["command"][1:],
    )  # fmt: skip
    assert started_web.returncode == 0, started_web.stderr
    try:
        url = f"http://127.0.0.1:{port}"
        ready = _poll(url + web["readinessProbe"]["httpGet"]["path"])
        assert ready == 200, docker("logs", name).stderr
        metrics = requests.get(url + "/metrics", timeout=5)
        assert metrics.status_code == 200 and "receiver_webhooks_total" in metrics.text
        health = docker("exec", name, "python", "/app/deploy/healthcheck.py")
        assert health.returncode == 0, health.stderr
        # the workers count into the pod's metrics directory (writable on a read-only root)
        directory = manifest_env(workload("web"))["PROMETHEUS_MULTIPROC_DIR"]
        listed = docker(
            "exec", name, "python", "-c", f"import os; print(os.listdir({directory!r}))"
        )
        assert "counter_" in listed.stdout or "histogram_" in listed.stdout, listed.stderr
    finally:
        stopped = docker("stop", "--time", "25", name)
        exit_code = docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        docker("rm", "-f", name)
    assert stopped.returncode == 0 and exit_code == "0", "gunicorn stops cleanly on SIGTERM"


@pytest.mark.slow
def test_the_worker_image_serves_its_metrics_port(image: str, pod_options: PodOptions) -> None:
    args = container_of("worker")["args"]
    port = free_port()  # the host's network: not the manifest's 9100, which may be taken
    position = args.index("--metrics-port") + 1
    args = [*args[:position], str(port), *args[position + 1 :]]
    name = f"receiver-test-worker-{port}"
    started_worker = docker("run", "-d", "--name", name, *pod_options("worker"), image, *args)
    assert started_worker.returncode == 0, started_worker.stderr
    try:
        assert _poll(f"http://127.0.0.1:{port}/metrics") == 200, docker("logs", name).stderr
        health = docker("exec", name, "python", "/app/deploy/healthcheck.py")
        assert health.returncode == 0, health.stderr
    finally:
        stopped = docker("stop", "--time", "25", name)
        exit_code = docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        docker("rm", "-f", name)
    assert stopped.returncode == 0 and exit_code == "0", "the worker stops cleanly on SIGTERM"


def _poll(url: str, seconds: float = 30) -> int | None:
    deadline = time.monotonic() + seconds
    status = None
    while time.monotonic() < deadline:
        try:
            status = requests.get(url, timeout=2).status_code
        except requests.RequestException:
            status = None
        if status == 200:
            return status
        time.sleep(0.5)
    return status
