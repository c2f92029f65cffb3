"""The ``receiver`` command: serve, worker, db upgrade|check|prune, check-config, replay, export."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click
from prometheus_client import start_http_server

from receiver.bootstrap import Container, bootstrap, load_catalogues, load_slos, utc_now
from receiver.logs import configure_logging
from receiver.metrics import MULTIPROC_ENV
from receiver.model.go_strings import go_unquote
from receiver.settings import ConfigError, Settings, load_settings
from receiver.store import migrate
from receiver.worker import prune_incidents, prune_raw_payloads, run_worker

if TYPE_CHECKING:
    from receiver.replay import HttpTarget, InProcessTarget, ReplayResult

CONFIG_HELP = "YAML config file (default: $RECEIVER_CONFIG; RECEIVER_* variables override it)"


def _settings(config: str | None, require_auth: bool = False) -> Settings:
    try:
        return load_settings(config, require_auth=require_auth)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _container(settings: Settings, clock: Callable[[], datetime] = utc_now) -> Container:
    try:
        return bootstrap(settings, clock=clock)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
@click.version_option(package_name="receiver")
def main() -> None:
    """Alertmanager webhook receiver and incident router for LLM serving on Triton."""


@main.command("check-config")
@click.option("--config", "-c", help=CONFIG_HELP)
def check_config(config: str | None) -> None:
    """Validate a configuration and list every error."""
    try:
        settings = load_settings(config)
        runbooks, context = load_catalogues(settings)
        slos = load_slos(settings)
    except ConfigError as exc:
        click.echo(f"configuration has {len(exc.errors)} error(s):", err=True)
        for error in exc.errors:
            click.echo(f"  - {error}", err=True)
        sys.exit(2)
    prometheus = settings.prometheus.url or "none (context disabled)"
    click.echo(
        f"runbooks: {len(runbooks.entries)} catalogue entries; context: {len(context.items)} "
        f"queries; SLOs: {len(slos.targets)} model(s) besides the defaults; "
        f"Prometheus: {prometheus}"
    )
    auth = settings.auth
    mode = (
        "DISABLED (allow_unauthenticated)"
        if not auth.configured
        else (
            f"{len(auth.bearer_tokens)} bearer token(s)"
            + (", basic auth" if auth.basic_auth else "")
        )
    )
    click.echo(f"configuration OK: database {_redact(settings.database_url)}; webhook auth {mode}")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@main.group()
def db() -> None:
    """Database schema and retention."""


@db.command("upgrade")
@click.option("--config", "-c", help=CONFIG_HELP)
@click.option("--revision", default="head", show_default=True)
def db_upgrade(config: str | None, revision: str) -> None:
    """Create or migrate the schema (Alembic)."""
    settings = _settings(config)
    with _container(settings) as container:
        migrate.upgrade(container.engine, revision)
        current = migrate.current_revision(container.engine)
    click.echo(f"database {_redact(settings.database_url)} at {current}")


@db.command("check")
@click.option("--config", "-c", help=CONFIG_HELP)
def db_check(config: str | None) -> None:
    """Exit 1 unless the schema is at the head revision and matches the models."""
    with _container(_settings(config)) as container:
        current, head = migrate.current_revision(container.engine), migrate.head_revision()
        problems = [] if current == head else [f"schema at {current}, head is {head}"]
        if current == head:
            problems += [f"drift: {d}" for d in migrate.drift(container.engine)]
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        sys.exit(1)
    click.echo(f"database schema at head ({head}) and in sync with the models")


@db.command("prune")
@click.option("--config", "-c", help=CONFIG_HELP)
@click.option(
    "--incident-days",
    type=click.FloatRange(min=1),
    help="This once: prune resolved incidents older than N days (else retention.incident_days).",
)
def db_prune(config: str | None, incident_days: float | None) -> None:
    """Delete raw payloads older than intake.raw_retention_days and, with incident retention
    on, resolved incidents older than retention.incident_days (the worker does both hourly)."""
    with _container(_settings(config)) as container:
        deleted = prune_raw_payloads(container)
        days = container.settings.intake.raw_retention_days
        click.echo(f"pruned {deleted} raw payload(s) older than {days:g} days")
        report = prune_incidents(container, days=incident_days)
    if report is None:
        click.echo("incident retention off (retention.incident_days not set)")
        return
    click.echo(
        f"pruned {report.incidents} incident(s) resolved more than {report.days:g} days ago "
        f"in {report.passes} pass(es): {report.details()}"
    )


@main.command("reconcile")
@click.option("--config", "-c", help=CONFIG_HELP)
def reconcile_command(config: str | None) -> None:
    """Check open incidents against Alertmanager now (the worker does it on a schedule)."""
    from receiver.alertmanager import AlertmanagerUnavailable
    from receiver.bootstrap import build_reconciler

    with _container(_settings(config)) as container:
        reconciler = build_reconciler(container)
        if reconciler is None:
            raise click.ClickException("no Alertmanager configured (alertmanager.urls)")
        try:
            report = reconciler.run_once()
        except AlertmanagerUnavailable as exc:
            raise click.ClickException(f"no Alertmanager answered: {exc}") from None
        finally:
            reconciler.client.close()
    grace = container.settings.alertmanager.stale_grace_minutes
    click.echo(f"{report.checked} firing alert(s) checked against Alertmanager")
    click.echo(f"{len(report.marked_stale)} newly stale (resolved after {grace:g} min unless back)")
    click.echo(f"{len(report.cleared)} reported again, {len(report.resolved)} resolved")
    if report.incidents:
        click.echo("incidents changed: " + ", ".join(str(i) for i in report.incidents))
    for failure in report.unavailable:
        click.echo(f"not answering: {failure}", err=True)


@main.command()
@click.option("--config", "-c", help=CONFIG_HELP)
@click.option("--poll", default=0.5, show_default=True, help="seconds between passes")
@click.option("--once", is_flag=True, help="one pass, then exit")
@click.option("--metrics-port", type=int, help="serve the worker's metrics on this port")
@click.option(
    "--metrics-address",
    default="127.0.0.1",
    show_default=True,
    help="address for --metrics-port (0.0.0.0 in a container, for the ServiceMonitor)",
)
def worker(
    config: str | None, poll: float, once: bool, metrics_port: int | None, metrics_address: str
) -> None:
    """Background work: context, deliveries, Watchdog, reconciliation, retention."""
    settings = _settings(config)
    configure_logging(settings.log_level, settings.log_format)
    stop = threading.Event()
    if once:
        stop.set()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with _container(settings) as container:
        if metrics_port is not None:
            registry = container.metrics.registry
            start_http_server(metrics_port, addr=metrics_address, registry=registry)
        run_worker(container, stop, poll_seconds=poll)


@main.group()
def runbooks() -> None:
    """The runbook catalogue and the alerts it does not cover."""


@runbooks.command("missing")
@click.option("--config", "-c", help=CONFIG_HELP)
@click.option("--days", default=7.0, show_default=True, help="look back this many days")
def runbooks_missing(config: str | None, days: float) -> None:
    """List alertnames seen in the last N days that had no runbook (exit 1 if any)."""
    with _container(_settings(config)) as container:
        rows = container.queries.runbooks_missing(container.clock() - timedelta(days=days))
    if not rows:
        click.echo(f"every alert seen in the last {days:g} days had a runbook")
        return
    click.echo(f"{'alertname':<40} {'episodes':>8} {'incidents':>9}  last seen")
    for row in rows:
        last = row["last_seen"].strftime("%Y-%m-%d %H:%M UTC")
        click.echo(f"{row['alertname']:<40} {row['episodes']:>8} {row['incidents']:>9}  {last}")
    sys.exit(1)


@main.group()
def routes() -> None:
    """The routing tree."""


@routes.command("test")
@click.argument("labels", nargs=-1, required=True)
@click.option("--config", "-c", help=CONFIG_HELP)
def routes_test(labels: tuple[str, ...], config: str | None) -> None:
    """Print the receivers a label set reaches: receiver routes test severity=critical ...

    A name holding ``=`` goes in double quotes, Go escapes allowed: '"a=b"=value'."""
    label_set = dict(_label_arg(item) for item in labels)
    container = _container(_settings(config))
    reached = container.router.receivers_for(label_set)
    if not reached:
        click.echo("no receiver: nothing would be sent")
        sys.exit(1)
    for name in reached:
        click.echo(f"{name} ({container.settings.receivers[name].type})")


def _label_arg(item: str) -> tuple[str, str]:
    """``name=value``; a double-quoted name may hold any character (a dot, ``=``, a space)."""
    if item.startswith('"'):
        end = 1
        while end < len(item) and item[end] != '"':
            end += 2 if item[end] == "\\" else 1
        try:
            name = go_unquote(item[: end + 1]) if end < len(item) else None
        except ValueError as exc:
            raise click.BadParameter(f"bad quoted label name in {item!r}: {exc}") from None
        rest = item[end + 1 :]
    else:
        name, sep, value = item.partition("=")
        rest = sep + value
    if not name or not rest.startswith("="):
        raise click.BadParameter(f"expected label=value, got {item!r}")
    return name, rest[1:]


@main.group()
def outbox() -> None:
    """Deliveries waiting, failed or dead."""


@outbox.command("list")
@click.option("--config", "-c", help=CONFIG_HELP)
@click.option("--state", multiple=True, help="pending, sending, sent, dead, cancelled")
@click.option("--limit", default=50, show_default=True)
def outbox_list(config: str | None, state: tuple[str, ...], limit: int) -> None:
    """List deliveries, newest first (default: those not sent yet, and dead ones)."""
    with _container(_settings(config)) as container:
        rows = container.queries.deliveries(list(state) or ["pending", "sending", "dead"], limit)
    header = f"{'id':>6} {'incident':>8} {'receiver':<24} {'action':<8} {'state':<9}"
    click.echo(header + " attempts  last error")
    for r in rows:
        click.echo(
            f"{r['id']:>6} {r['incident_id']:>8} {r['receiver']:<24} {r['action']:<8} "
            f"{r['state']:<9} {r['attempts']:>8}  {r['last_error'] or ''}"
        )


@outbox.command("retry")
@click.argument("delivery_ids", nargs=-1, type=int, required=True)
@click.option("--config", "-c", help=CONFIG_HELP)
def outbox_retry(delivery_ids: tuple[int, ...], config: str | None) -> None:
    """Queue dead deliveries again, due now."""
    with _container(_settings(config)) as container, container.uow() as uow:
        revived = uow.deliveries.revive(list(delivery_ids), container.clock())
        uow.commit()
    click.echo(f"{revived} delivery(ies) queued again")
    if revived != len(delivery_ids):
        sys.exit(1)


@main.command()
@click.option("--config", "-c", help=CONFIG_HELP)
def serve(config: str | None) -> None:
    """Serve webhooks and the API with gunicorn, and run the worker beside it (single node)."""
    settings = _settings(config, require_auth=True)
    env = dict(os.environ)
    if config:
        env["RECEIVER_CONFIG"] = str(Path(config).resolve())
    listen = settings.listen
    click.echo(f"receiver: serving on http://{listen.host}:{listen.port}  (Ctrl-C to stop)")
    command = [
        sys.executable, "-m", "gunicorn",
        "--config", "python:receiver.gunicorn_conf",
        "--bind", f"{listen.host}:{listen.port}",
        "--workers", str(listen.workers),
        "--worker-class", "asgi",
        "receiver.asgi:app",
    ]  # fmt: skip
    worker_command = [sys.executable, "-m", "receiver.cli", "worker"]
    # web and worker processes count into one directory; /metrics adds them up
    metrics_dir = None
    if not env.get(MULTIPROC_ENV):
        metrics_dir = tempfile.mkdtemp(prefix="receiver-metrics-")
        env[MULTIPROC_ENV] = metrics_dir
    env.setdefault("RECEIVER_LOG_FORMAT", settings.log_format)
    processes = [
        subprocess.Popen(command, env=env, preexec_fn=_die_with_parent),
        subprocess.Popen(worker_command, env=env, preexec_fn=_die_with_parent),
    ]

    stopping = threading.Event()

    def _stop(_signum: int, _frame: object) -> None:
        stopping.set()
        for process in processes:
            if process.poll() is None:
                process.terminate()

    # a closed terminal (HUP) or QUIT stops everything too: no orphan keeps serving the port
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, _stop)
    code = _supervise(processes, stopping)
    if metrics_dir:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    sys.exit(code)


def _die_with_parent() -> None:
    """In the child: get SIGTERM if ``receiver serve`` dies, even by SIGKILL (Linux only)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _supervise(processes: list[subprocess.Popen[bytes]], stopping: threading.Event) -> int:
    """Wait until one process exits, stop the others, return the exit status.

    Asked to stop (``stopping``), a child ended by our SIGTERM counts as a clean exit; a child
    that dies on its own makes the whole command fail with its code.
    """
    stopped = threading.Event()
    codes: list[int] = []

    def watch(process: subprocess.Popen[bytes]) -> None:
        codes.append(process.wait())
        stopped.set()

    for process in processes:
        threading.Thread(target=watch, args=(process,), daemon=True).start()
    stopped.wait()
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if stopping.is_set():
        failed = [p.returncode for p in processes if p.returncode not in (0, -signal.SIGTERM)]
        return failed[0] if failed else 0
    return codes[0] or 1


@main.command(name="replay")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--url", help="base URL of a running receiver; without it, replay in-process")
@click.option("--config", "-c", help=CONFIG_HELP + " (in-process replay)")
@click.option("--token-file", type=click.Path(exists=True), help="file holding a bearer token")
@click.option("--timed", is_flag=True, help="wait the recorded time between requests")
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="with --timed: wait N times less (in process, the receiver's clock follows the "
    "recorded times anyway)",
)
@click.option(
    "--expect",
    "expect_path",
    type=click.Path(exists=True, dir_okay=False),
    help="compare the incidents and deliveries the replay made with this summary (YAML or "
    "JSON); exit 1 with a diff when they differ",
)
@click.option(
    "--write-expect",
    "write_path",
    type=click.Path(dir_okay=False),
    help="write the summary of the incidents and deliveries the replay made (.json: JSON)",
)
def replay_command(
    paths: tuple[str, ...],
    url: str | None,
    config: str | None,
    token_file: str | None,
    timed: bool,
    speed: float,
    expect_path: str | None,
    write_path: str | None,
) -> None:
    """Post recorded fixtures or webhook bodies and print what each request got.

    In process, each request is handled at its recorded time after a worker pass (context, then
    deliveries, rendered dry: nothing is ever sent), as in production. See docs/replay.md.
    """
    from receiver import replay
    from receiver.fixture import FixtureError

    if expect_path and write_path:
        raise click.UsageError("--expect and --write-expect exclude each other")
    try:
        items = replay.load_items(paths, warn=lambda m: click.echo(m, err=True))
    except FixtureError as exc:
        raise click.ClickException(str(exc)) from None
    if not items:
        raise click.ClickException("nothing to replay")
    with _replay_target(url, config, _replay_headers(token_file)) as target:
        results = replay.replay(items, target, timed=timed, speed=speed)
        if isinstance(target, replay.InProcessTarget):
            waited = target.settle()
            click.echo(
                "in process: each request at its recorded time; deliveries rendered, not sent; "
                f"then {waited / 60:g} more minutes for held-back deliveries"
            )
        click.echo(replay.format_table(results))
        failed = sum(1 for r in results if r.status >= 300)
        click.echo(f"{len(results)} sent, {len(results) - failed} stored, {failed} not stored")
        differs = False
        if expect_path or write_path:
            differs = _expectation(target, results, expect_path, write_path, failed)
    if failed or differs:
        sys.exit(1)


def _replay_headers(token_file: str | None) -> dict[str, str]:
    token = os.environ.get("RECEIVER_REPLAY_TOKEN")
    if token_file:
        token = Path(token_file).read_text(encoding="utf-8").strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


@contextmanager
def _replay_target(
    url: str | None, config: str | None, headers: dict[str, str]
) -> Iterator[HttpTarget | InProcessTarget]:
    """A running receiver, or this process on a simulated clock (auth off, schema migrated)."""
    from receiver.replay import HttpTarget, InProcessTarget, SimulatedClock

    if url:
        http = HttpTarget(url, headers)
        try:
            yield http
        finally:
            http.close()
        return
    settings = _settings(config)
    settings.auth.allow_unauthenticated = True
    settings.auth.bearer_tokens, settings.auth.basic_auth = [], None
    settings.delivery.dry_run = True
    clock = SimulatedClock()
    with _container(settings, clock) as container:
        migrate.upgrade(container.engine)
        target = InProcessTarget(container, clock, headers)
        try:
            yield target
        finally:
            target.close()


def _expectation(
    target: HttpTarget | InProcessTarget,
    results: list[ReplayResult],
    expect_path: str | None,
    write_path: str | None,
    failed: int,
) -> bool:
    """Write or compare the summary of what the replay made; True when it differs."""
    from receiver import expect
    from receiver.replay import ReadError, touched_incidents

    try:
        details = [target.incident(i) for i in touched_incidents(results)]
    except ReadError as exc:
        raise click.ClickException(str(exc)) from None
    summary = expect.summarize(details)
    if write_path:
        if failed:
            raise click.ClickException(f"not writing {write_path}: {failed} request(s) not stored")
        Path(write_path).write_text(expect.dumps(summary, write_path), encoding="utf-8")
        click.echo(f"wrote the summary of {len(details)} incident(s) to {write_path}")
        return False
    assert expect_path is not None
    try:
        expected = expect.load(expect_path)
    except expect.ExpectationError as exc:
        raise click.ClickException(str(exc)) from None
    diff = expect.differences(expected, summary, expect_path)
    if not diff:
        click.echo(f"as expected: {len(details)} incident(s) match {expect_path}")
        return False
    click.echo("\n".join(diff))
    click.echo(f"this replay differs from {expect_path} (- expected, + this replay)", err=True)
    return True


@main.command(name="export")
@click.argument("incident_id", type=int)
@click.option("--config", "-c", help=CONFIG_HELP)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    help="write the fixture to this file (default: standard output)",
)
def export_command(incident_id: int, config: str | None, output: str | None) -> None:
    """Write an incident's raw requests as a fixture that `receiver replay` accepts."""
    from receiver import fixture
    from receiver.store.export import IncidentNotFound, PayloadsPruned

    with _container(_settings(config)) as container:
        try:
            text = fixture.export(container.engine, incident_id, container.flap_policy)
        except IncidentNotFound:
            raise click.ClickException(f"no incident {incident_id}") from None
        except PayloadsPruned as exc:
            raise click.ClickException(str(exc)) from None
    if output is None:
        click.echo(text, nl=False)
        return
    Path(output).write_text(text, encoding="utf-8")
    count = len(json.loads(text)["items"])
    click.echo(f"wrote incident {incident_id}: a replay fixture of {count} request(s), {output}")


if __name__ == "__main__":
    configure_logging()
    main()
