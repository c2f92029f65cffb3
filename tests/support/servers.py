"""Real processes for integration and end-to-end tests: gunicorn serving receiver.asgi:app.

Every process starts in its own session (process group) so that stopping it also stops the
children it forked (gunicorn workers); output goes to temporary files, shown when start fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest
import requests
from sqlalchemy import Engine, event

from tests.support.api import TOKEN

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # console scripts of the venv running the tests
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def receiver_env(
    database_url: str | None = None,
    tokens: Iterable[str] = (TOKEN,),
    config: str | os.PathLike[str] | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """This process's environment without any RECEIVER_* variable, then the given settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    if database_url is not None:
        env["RECEIVER_DATABASE_URL"] = database_url
    if tokens := list(tokens):
        env["RECEIVER_AUTH__BEARER_TOKENS"] = ",".join(tokens)
    if config is not None:
        env["RECEIVER_CONFIG"] = str(config)
    env.update(extra or {})
    return env


@dataclass
class Process:
    """A started process with its captured output."""

    popen: subprocess.Popen[bytes]
    stdout_file: IO[bytes]
    stderr_file: IO[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stdout(self) -> str:
        return _read(self.stdout_file)

    def stderr(self) -> str:
        return _read(self.stderr_file)

    def group_alive(self) -> bool:
        """Whether any process of its group (the process or a child it forked) still runs.

        A killed child whose parent died first is a zombie until PID 1 reaps it, which some
        container inits do late or never: zombies count as gone."""
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:  # exited while we looked
                continue
            state, group = fields[0], int(fields[2])
            if group == self.pid and state != "Z":
                return True
        return False


def _read(file: IO[bytes]) -> str:
    file.flush()
    file.seek(0)
    return file.read().decode("utf-8", "replace")


@contextmanager
def started(
    command: list[str],
    env: Mapping[str, str],
    cwd: Path = REPO_ROOT,
    stop_signal: int = signal.SIGTERM,
) -> Iterator[Process]:
    """Run ``command`` in a new process group; on exit stop the whole group, then KILL it."""
    with ExitStack() as stack:
        out = stack.enter_context(tempfile.TemporaryFile())
        err = stack.enter_context(tempfile.TemporaryFile())
        popen = subprocess.Popen(
            command, env=dict(env), cwd=cwd, stdout=out, stderr=err, start_new_session=True
        )
        process = Process(popen, out, err)
        try:
            yield process
        finally:
            stop(process, stop_signal)


def stop(process: Process, signum: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> None:
    """Signal the process group, wait, kill what is left; idempotent."""
    _signal_group(process, signum)
    try:
        process.popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _signal_group(process, signal.SIGKILL)
        process.popen.wait(timeout=timeout)
    deadline = time.monotonic() + timeout
    while process.group_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if process.group_alive():
        _signal_group(process, signal.SIGKILL)


def _signal_group(process: Process, signum: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def wait_ready(
    process: Process,
    base_url: str,
    timeout: float = READY_TIMEOUT,
    statuses: Iterable[int] = (200,),
) -> None:
    """Poll ``GET /readyz`` until it answers 200 (or one of ``statuses``); fail with the
    captured output otherwise."""
    statuses = tuple(statuses)
    deadline = time.monotonic() + timeout
    last = "no answer"
    with requests.Session() as session:
        while time.monotonic() < deadline:
            try:
                answer = session.get(base_url + "/readyz", timeout=2)
            except requests.RequestException as exc:
                last = type(exc).__name__
            else:
                if answer.status_code in statuses:
                    return
                last = f"{answer.status_code} {answer.text[:300]}"
            try:
                code = process.popen.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                continue
            _fail(process, f"exited with {code} before it was ready")
    _fail(process, f"not ready within {timeout:g} s (last /readyz: {last})")


def _fail(process: Process, what: str) -> None:
    pytest.fail(
        f"{process.popen.args!r} {what}\n--- stdout ---\n{process.stdout()}"
        f"\n--- stderr ---\n{process.stderr()}",
        pytrace=False,
    )


@contextmanager
def disposing_engines() -> Iterator[list[Engine]]:
    """Collect every engine that connects inside the block, then dispose of them all.

    Commands run in process (click's CliRunner) build engines they never dispose; their pooled
    connections would otherwise be closed by the garbage collector, with a ResourceWarning.
    """
    seen: list[Engine] = []

    def remember(conn: object) -> None:
        engine = conn.engine  # type: ignore[attr-defined]
        if all(engine is not e for e in seen):
            seen.append(engine)

    event.listen(Engine, "engine_connect", remember)
    try:
        yield seen
    finally:
        event.remove(Engine, "engine_connect", remember)
        for engine in seen:
            engine.dispose()


def _no_control_socket() -> list[str]:
    """Gunicorn 27 opens a control socket at $XDG_RUNTIME_DIR/gunicorn.ctl or
    ~/.gunicorn/gunicorn.ctl, one path for every gunicorn of the user: test servers running side
    by side must not share one (older gunicorns have no such socket and no such option)."""
    from gunicorn import config

    known = any(s.name == "control_socket_disable" for s in config.KNOWN_SETTINGS)
    return ["--no-control-socket"] if known else []


@dataclass
class Server:
    url: str
    process: Process


@contextmanager
def gunicorn(
    database_url: str,
    tokens: Iterable[str] = (TOKEN,),
    config: str | os.PathLike[str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    workers: int = 2,
    prefix: Iterable[str] = (),
    ready_statuses: Iterable[int] = (200,),
) -> Iterator[Server]:
    """A real gunicorn serving ``receiver.asgi:app`` (as ``receiver serve`` and the image do)
    on a free port, ready when yielded (its ``/readyz`` answers one of ``ready_statuses``);
    ``prefix`` runs it through another command (``setpriv ...``)."""
    port = free_port()
    command = [
        *prefix,
        sys.executable, "-m", "gunicorn",
        "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers),
        "--graceful-timeout", "5",
        "--worker-class", "asgi",
        *_no_control_socket(),
        "receiver.asgi:app",
    ]  # fmt: skip
    env = receiver_env(database_url, tokens, config, extra_env)
    with started(command, env) as process:
        url = f"http://127.0.0.1:{port}"
        wait_ready(process, url, statuses=ready_statuses)
        yield Server(url, process)
