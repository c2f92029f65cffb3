"""Reading the packaging as its tools read it: the Dockerfile as Docker, deploy/gunicorn.conf.py
as gunicorn, the manifests as Kubernetes (volumes, envFrom, the image's entrypoint), and a
scanner for anything that looks like a real secret."""

from __future__ import annotations

import json
import re
import runpy
import shlex
import types
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import click
import yaml
from gunicorn.config import Config as GunicornConfig
from werkzeug.security import generate_password_hash

from receiver.cli import main as cli_main
from tests.support.api import TOKEN
from tests.support.servers import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
DEPLOY = REPO_ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
GUNICORN_CONF = DEPLOY / "gunicorn.conf.py"
HEALTHCHECK = DEPLOY / "healthcheck.py"
OPERATIONS = REPO_ROOT / "docs" / "operations.md"
RECEIVER_ALERTS = REPO_ROOT / "config" / "prometheus" / "receiver-alerts.yml"
EXAMPLE_SECRET = "secret.example.yaml"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

API_VERSIONS = {
    "ConfigMap": "v1",
    "Secret": "v1",
    "Service": "v1",
    "Deployment": "apps/v1",
    "Job": "batch/v1",
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "PodMonitor": "monitoring.coreos.com/v1",
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


# --- deploy/gunicorn.conf.py and deploy/healthcheck.py ----------------------------------------


def gunicorn_namespace() -> dict[str, Any]:
    """What deploy/gunicorn.conf.py defines, executed as gunicorn executes it."""
    return runpy.run_path(str(GUNICORN_CONF))


def gunicorn_settings() -> dict[str, Any]:
    """Settings of the config file, as gunicorn takes them (every known name it defines)."""
    config = GunicornConfig()
    for name, value in gunicorn_namespace().items():
        if name in config.settings:
            config.set(name, value)
    return {name: config.settings[name].get() for name in config.settings}


def healthcheck_module() -> types.SimpleNamespace:
    return types.SimpleNamespace(**runpy.run_path(str(HEALTHCHECK)))


# --- the Kubernetes manifests -----------------------------------------------------------------


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


def container_of(component: str) -> dict[str, Any]:
    (container,) = pod_spec(workload(component))["containers"]
    return container


def example_secret() -> dict[str, Any]:
    (secret,) = documents(K8S / EXAMPLE_SECRET)
    return secret


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


def empty_dir_mounts(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Mount path -> the emptyDir volume mounted there, for the workload's container."""
    spec = pod_spec(obj)
    (container,) = spec["containers"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    return {
        m["mountPath"]: volumes[m["name"]]["emptyDir"]
        for m in container["volumeMounts"]
        if "emptyDir" in volumes[m["name"]]
    }


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


def container_argv(container: dict[str, Any]) -> list[str]:
    """What the container runs: its command, else the image's ENTRYPOINT, then its args."""
    entrypoint = only(final_stage(), "ENTRYPOINT").exec_form()
    cmd = only(final_stage(), "CMD").exec_form()
    if "command" in container:
        return [*container["command"], *container.get("args", [])]
    return [*entrypoint, *container.get("args", cmd)]


def receiver_context(args: list[str]) -> tuple[str, click.Context]:
    """Parse ``receiver ARGS`` with the real click commands: the command's dotted name and its
    parsed parameters (raises on an unknown command or an invalid option)."""
    command: click.Command = cli_main
    path = []
    while isinstance(command, click.Group):
        assert args, f"receiver {' '.join(path)} needs a subcommand"
        name, *args = args
        assert name in command.commands, f"no command `receiver {' '.join([*path, name])}`"
        command = command.commands[name]
        path.append(name)
    context = command.make_context(" ".join(path), list(args))
    return " ".join(path), context


def check_receiver_command(args: list[str]) -> str:
    """Parse ``receiver ARGS`` with the real click commands; the command's dotted name."""
    return receiver_context(args)[0]


# --- secrets ---------------------------------------------------------------------------------

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
