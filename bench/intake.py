"""Webhook intake throughput and latency under gunicorn, driven by wrk.

    .venv/bin/python -m bench.intake --database sqlite --results var/bench/intake/results.jsonl
    .venv/bin/python -m bench.intake --database postgres --paths repeat --alerts 1 \
        --connections 8 --results var/bench/intake/results.jsonl
    .venv/bin/python -m bench.intake --database sqlite:///var/bench/intake-1m.db --history 1m ...
    .venv/bin/python -m bench.intake --ceiling --results var/bench/intake/results.jsonl
    .venv/bin/python -m bench.intake --database sqlite --paths new --profile var/bench/intake/prof
    .venv/bin/python -m bench.intake --report var/bench/intake/results.jsonl

Each run starts ``gunicorn -c python:receiver.gunicorn_conf --workers 2 receiver.wsgi:app`` (as
``receiver serve`` does: ``PROMETHEUS_MULTIPROC_DIR`` set, JSON logs at INFO to a file) with a
config of its own: the shipped runbook catalogue, no Prometheus (context off), a PagerDuty and a
Slack receiver routed as in ``config/receiver.example.yaml`` with ``delivery.dry_run`` (the
intake queues their deliveries; no worker runs, nothing is sent). ``--database sqlite`` or
``postgres`` gives every run a fresh, empty, migrated database (a copy of a migrated template);
a URL runs against that database as it is (a seeded one: ``bench/seed.py``; the new-alert runs
add their incidents to it).

wrk (Debian's ``wrk``) posts the bodies of ``bench/payloads.py`` with the bearer token, first
``--warmup`` seconds unmeasured, then ``--duration`` seconds measured, 2 threads, ``-c`` 8 or 32
connections. ``repeat``: the same body on every request (after the first, duplicates); ``new``:
a new pod per request (a new group, incident, alert episodes, and two queued deliveries).

Before each run the script waits (up to ``--max-wait`` s) for the 1-minute load average to drop
below ``--max-load`` and records it. After it: the resident size of each gunicorn worker, the
CPU seconds the workers (and, on Postgres, every postgres process) used during the measured
part, and the rows the database holds. Results are appended to ``--results`` as JSON lines;
``--report`` prints the tables of docs/benchmarks.md from them (the median run of each
configuration, with the range when it ran more than once).

``--profile DIR`` also runs ``py-spy record`` (200 Hz, CPU samples; with ``--profile-idle`` waiting
threads too, so the time spent waiting for a lock or the database shows) on every gunicorn worker
during the measured part, writes the raw collapsed stacks to DIR and prints the top functions
inside gunicorn's ``handle_request``; profiled runs are marked and left out of the throughput
tables (the sampler slows the workers).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from bench import payloads

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "var" / "bench" / "intake"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
TOKEN = "bench-" + secrets.token_urlsafe(18)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


# -- processes ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def status_kib(pid: int, field: str) -> int:
    """VmRSS, VmHWM, ... of a process in KiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / CLK_TCK


def cpu_times() -> list[int]:
    """The machine's jiffies: user nice system idle iowait irq softirq steal (``/proc/stat``)."""
    return [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


def busy_and_steal(before: list[int], after: list[int]) -> tuple[float, float]:
    """Share of the machine's CPU time that was busy, and that the hypervisor took (steal)."""
    delta = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(delta) or 1
    return 1 - (delta[3] + delta[4]) / total, delta[7] / total


def postgres_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-x", "postgres"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def wait_for_quiet(max_load: float, max_wait: float) -> tuple[float, float]:
    """Wait until the 1-minute load average is below ``max_load`` (at most ``max_wait`` s)."""
    started = time.monotonic()
    while os.getloadavg()[0] >= max_load and time.monotonic() - started < max_wait:
        time.sleep(2)
    return os.getloadavg()[0], time.monotonic() - started


@dataclass
class Server:
    url: str
    master: int
    log: Path

    @property
    def workers(self) -> list[int]:
        return children(self.master)


@contextmanager
def gunicorn(app: str, env: dict[str, str], workers: int, log: Path) -> Iterator[Server]:
    """gunicorn -c python:receiver.gunicorn_conf --workers N APP on a free port, ready."""
    port = free_port()
    command = [
        sys.executable, "-m", "gunicorn",
        "-c", "python:receiver.gunicorn_conf",
        "--workers", str(workers),
        "--bind", f"127.0.0.1:{port}",
        *(["--worker-class", "asgi"] if app.endswith("asgi:app") else []),
        app,
    ]  # fmt: skip
    with open(log, "wb") as err:
        process = subprocess.Popen(
            command, env=env, cwd=REPO, stdout=err, stderr=err, start_new_session=True
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(process, url, workers, log)
            yield Server(url, process.pid, log)
        finally:
            stop([process])


@contextmanager
def receiver_workers(
    env: dict[str, str], count: int, poll: float, log: Path
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` ``receiver worker`` processes (``--poll``), their output appended to ``log``;
    stopped on exit (SIGTERM to each process group, SIGKILL after 20 s)."""
    command = [sys.executable, "-m", "receiver.cli", "worker", "--poll", f"{poll:g}"]
    with open(log, "ab") as out:
        workers = [
            subprocess.Popen(
                command, env=env, cwd=REPO, stdout=out, stderr=out, start_new_session=True
            )
            for _ in range(count)
        ]
        try:
            yield workers
        finally:
            stop(workers)


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to each process's group, then SIGKILL to any still running after 20 s."""
    for process in processes:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_ready(process: subprocess.Popen[bytes], url: str, workers: int, log: Path) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited with {process.returncode}:\n{tail(log)}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as answer:
                if answer.status == 200 and len(children(process.pid)) == workers:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"gunicorn not ready in 60 s:\n{tail(log)}")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# -- databases ----------------------------------------------------------------------------------


def fresh_database(kind: str, name: str = "intake", admin: str = PG_ADMIN) -> str:
    """A new, empty, migrated database of ``kind`` (sqlite, postgres), a copy of a template
    migrated to the code's head (again when it moved); returns its URL. ``name``: each
    benchmark's own (``var/bench/NAME-run.db``, ``bench_NAME_HEAD_run``), so another benchmark
    running at the same time can neither drop it nor lock its template. ``admin``: the
    Postgres server's maintenance database."""
    from receiver.store import migrate
    from receiver.store.db import make_engine

    # the template is named after the schema's head: trees at other revisions, benchmarked
    # alternately against the same server, never migrate each other's template
    head = migrate.head_revision()
    if kind == "sqlite":
        template, run = WORK.parent / f"{name}-{head}-template.db", WORK.parent / f"{name}-run.db"
        engine = make_engine(f"sqlite:///{template}")
        migrate.upgrade(engine)
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{run}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(template, run)
        return f"sqlite:///{run}"
    pg_template, pg_run = f"bench_{name}_{head}_template", f"bench_{name}_{head}_run"
    server = make_url(admin)
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (pg_template,)
        ).fetchone():
            conn.execute(f'CREATE DATABASE "{pg_template}"')
    engine = make_engine(server.set(database=pg_template).render_as_string(hide_password=False))
    migrate.upgrade(engine)
    engine.dispose()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{pg_run}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{pg_run}" TEMPLATE "{pg_template}"')
    return server.set(database=pg_run).render_as_string(hide_password=False)


def count_rows(url: str) -> dict[str, int]:
    tables = ("incidents", "alert_episodes", "webhook_receipts", "deliveries")
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        with sqlite3.connect(parsed.database) as conn:
            return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
    plain = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


def db_kind(url: str) -> str:
    return "sqlite" if make_url(url).get_backend_name() == "sqlite" else "postgres"


def db_versions() -> dict[str, str]:
    with psycopg.connect(PG_ADMIN) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
    return {"sqlite": sqlite3.sqlite_version, "postgres": pg}


# -- the receiver's configuration ---------------------------------------------------------------


INTAKE_CONFIG: dict[str, Any] = {
    "runbooks_path": str(REPO / "config" / "runbooks.yaml"),
    "context_path": str(REPO / "config" / "context.yaml"),
    "receivers": {
        "pagerduty_critical": {
            "type": "pagerduty",
            "routing_key": "b" * 32,
            "base_url": "https://127.0.0.1:9",
        },
        "slack_warnings": {
            "type": "slack",
            "token": "xoxb-bench",
            "channel": "C0BENCH01",
            "base_url": "http://127.0.0.1:9/api/",
        },
    },
    "routes": [
        {
            "matchers": ['severity="critical"'],
            "receivers": ["pagerduty_critical"],
            "continue": True,
        },
        {"matchers": ['severity=~"critical|warning"'], "receivers": ["slack_warnings"]},
    ],
    "default_receivers": ["slack_warnings"],
    "delivery": {"dry_run": True},
}


def receiver_env(url: str, scratch: Path, config: dict[str, Any] | None = None) -> dict[str, str]:
    """Environment of a receiver process: its own config file (JSON is YAML), token, metrics
    directory (emptied: a new server counts from zero)."""
    path = scratch / "receiver.yaml"
    path.write_text(json.dumps(INTAKE_CONFIG if config is None else config, indent=1))
    metrics = scratch / "metrics"
    shutil.rmtree(metrics, ignore_errors=True)
    metrics.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    env.update(
        RECEIVER_CONFIG=str(path),
        RECEIVER_DATABASE_URL=url,
        RECEIVER_AUTH__BEARER_TOKENS=TOKEN,
        RECEIVER_LOG_FORMAT="json",
        RECEIVER_LOG_LEVEL="INFO",
        PROMETHEUS_MULTIPROC_DIR=str(metrics),
    )
    return env


# -- wrk ----------------------------------------------------------------------------------------


def run_wrk(
    url: str, mode: str, alerts: int, connections: int, seconds: float, salt: str, scratch: Path
) -> dict[str, Any]:
    lua = scratch / "intake.lua"
    lua.write_text(payloads.WRK_LUA)
    tpl = scratch / f"template-{alerts}.json"
    tpl.write_text(payloads.template(alerts))
    command = [
        "wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds:g}s", "--timeout", "10s",
        "-s", str(lua), url + payloads.PATH, "--", mode, str(tpl), TOKEN, salt,
    ]  # fmt: skip
    before = os.times()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    after = os.times()
    if done.returncode != 0:
        raise SystemExit(f"wrk failed ({done.returncode}): {done.stderr}\n{done.stdout}")
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"no RESULT line from wrk:\n{done.stdout}\n{done.stderr}")
    result = json.loads(line.removeprefix("RESULT "))
    result["wrk_cpu_s"] = round(
        (after.children_user - before.children_user)
        + (after.children_system - before.children_system),
        2,
    )
    return result


# -- one run ------------------------------------------------------------------------------------


@dataclass
class Plan:
    target: str  # receiver or ceiling
    database: str  # sqlite, postgres or a URL
    history: str
    path: str
    alerts: int
    connections: int


def run_one(plan: Plan, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    load_before, waited = wait_for_quiet(args.max_load, args.max_wait)
    if plan.target == "ceiling":
        url, kind, app = "", "-", "bench.ceiling:app"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    else:
        url = (
            fresh_database(plan.database)
            if plan.database in ("sqlite", "postgres")
            else plan.database
        )
        kind, app = db_kind(url), args.app
        env = receiver_env(url, scratch)
        if args.variant:
            env["BENCH_VARIANT"] = args.variant
            app = "bench.variants:app"
    rows_before = count_rows(url) if url else {}
    log = scratch / "gunicorn.log"
    label = (
        f"{plan.target} {kind} {plan.history} {plan.path} {plan.alerts} alert(s) "
        f"c{plan.connections}" + (f" variant {args.variant}" if args.variant else "")
    )
    print(f"-- {label}: load {load_before:.2f} (waited {waited:.0f} s)", file=sys.stderr)
    with gunicorn(app, env, args.workers, log) as server:
        salt = secrets.token_hex(2)
        run_wrk(server.url, plan.path, plan.alerts, plan.connections, args.warmup, salt, scratch)
        if plan.path == "new":
            salt = secrets.token_hex(2)
        workers = server.workers
        pg = postgres_pids() if kind == "postgres" else []
        cpu0, pg0, machine0 = cpu_seconds(workers), cpu_seconds(pg), cpu_times()
        spies = start_profilers(server, args, plan, kind) if args.profile else []
        started = time.monotonic()
        result = run_wrk(
            server.url, plan.path, plan.alerts, plan.connections, args.duration, salt, scratch
        )
        elapsed = time.monotonic() - started
        cpu1, pg1 = cpu_seconds(workers), cpu_seconds(pg)
        busy, steal = busy_and_steal(machine0, cpu_times())
        for spy in spies:
            spy.wait(timeout=60)
        rss = [status_kib(p, "VmRSS") for p in workers]
        hwm = [status_kib(p, "VmHWM") for p in workers]
        errors = sum(1 for line in tail(log, 100000).splitlines() if '"levelname": "ERROR"' in line)
    load_after = os.getloadavg()[0]
    requests = result["requests"]
    seconds = result["duration_us"] / 1e6
    record = {
        "target": plan.target,
        "db": kind,
        "history": plan.history,
        "path": plan.path,
        "alerts": plan.alerts,
        "connections": plan.connections,
        "workers": args.workers,
        "variant": args.variant or None,
        "duration_s": round(seconds, 2),
        "requests": requests,
        "rps": round(requests / seconds, 1),
        "alerts_per_s": round(requests * plan.alerts / seconds, 1),
        "p50_ms": round(result["p50_us"] / 1000, 2),
        "p90_ms": round(result["p90_us"] / 1000, 2),
        "p99_ms": round(result["p99_us"] / 1000, 2),
        "p999_ms": round(result["p999_us"] / 1000, 2),
        "max_ms": round(result["max_us"] / 1000, 2),
        "non_2xx": result["status_errors"],
        "socket_errors": result["connect_errors"]
        + result["read_errors"]
        + result["write_errors"]
        + result["timeouts"],
        "worker_cpu_ms_per_req": round((cpu1 - cpu0) * 1000 / max(requests, 1), 3),
        "worker_cpu_share": round((cpu1 - cpu0) / elapsed / args.workers, 3),
        "postgres_cpu_ms_per_req": round((pg1 - pg0) * 1000 / max(requests, 1), 3) if pg else None,
        "wrk_cpu_s": result["wrk_cpu_s"],
        "machine_busy": round(busy, 3),
        "machine_steal": round(steal, 4),
        "worker_rss_mib": [round(k / 1024, 1) for k in rss],
        "worker_peak_rss_mib": [round(k / 1024, 1) for k in hwm],
        "rows_before": rows_before,
        "rows_after": count_rows(url) if url else {},
        "log_errors": errors,
        "load_before": round(load_before, 2),
        "load_after": round(load_after, 2),
        "profiled": bool(args.profile),
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    print(
        f"   {record['rps']:8.1f} req/s  {record['alerts_per_s']:8.1f} alerts/s  "
        f"p50 {record['p50_ms']:6.2f} ms  p99 {record['p99_ms']:6.2f} ms  "
        f"non-2xx {record['non_2xx']}  errors {record['socket_errors']}  "
        f"CPU {record['worker_cpu_ms_per_req']:.2f} ms/req  RSS {record['worker_rss_mib']} MiB  "
        f"load after {load_after:.2f}",
        file=sys.stderr,
    )
    if record["non_2xx"] or record["socket_errors"] or errors:
        print(f"   !! failures; gunicorn log tail:\n{tail(log, 5)}", file=sys.stderr)
    return record


# -- profiling ----------------------------------------------------------------------------------


def start_profilers(
    server: Server, args: argparse.Namespace, plan: Plan, kind: str
) -> list[subprocess.Popen[bytes]]:
    out = Path(args.profile)
    out.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).parent / "py-spy"
    spies = []
    for pid in server.workers:
        mode = "wall" if args.profile_idle else "cpu"
        name = (
            f"{kind}-{plan.history}-{plan.path}-{plan.alerts}-c{plan.connections}-{mode}-{pid}.txt"
        )
        command = [
            str(spy), "record", "--pid", str(pid), "--duration", f"{args.duration:g}",
            "--rate", "200", *(["--idle"] if args.profile_idle else []),
            "--nonblocking", "--format", "raw", "--output", str(out / name),
        ]  # fmt: skip
        spies.append(
            subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
    return spies


FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
REQUEST_FRAME = "SyncWorker.handle_request"  # gunicorn's sync worker: one request, no accept


def load_stacks(files: list[Path]) -> list[tuple[list[str], int]]:
    stacks = []
    for file in files:
        for line in file.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            frames = []
            for raw in stack.split(";"):
                m = FRAME.match(raw)
                if m is None:
                    frames.append(raw)
                    continue
                where = m.group("file")
                short = where.split("site-packages/")[-1].split("/main/")[-1]
                frames.append(f"{m.group('func')} ({short})")
            stacks.append((frames, int(count)))
    return stacks


DRIVER_CALLS = ("do_execute ", "do_executemany ", "do_commit ", "do_rollback ", "do_ping ")
COMPONENTS = [  # (name, what the leaf frame's "(file)" starts with)
    ("database driver: SQLite/libpq calls, waits", ("psycopg/", "sqlite3/", "psycopg_binary/")),
    ("SQLAlchemy (Core, ORM, pool)", ("sqlalchemy/", "<sqlalchemy")),
    ("pydantic (webhook validation)", ("pydantic/", "pydantic_core/")),
    ("receiver/ itself", ("receiver/",)),
    ("logging (stdlib + receiver/logs.py)", ("logging/",)),
    ("prometheus_client", ("prometheus_client/",)),
    ("Flask + Werkzeug", ("flask/", "werkzeug/")),
    ("gunicorn (HTTP parsing, socket writes)", ("gunicorn/",)),
    ("json (stdlib)", ("json/",)),
]


def component(leaf: str) -> str:
    """Where a leaf frame's time goes, by the module it runs in."""
    func, _, where = leaf.rpartition(" (")
    if any(func.endswith(call.strip()) for call in DRIVER_CALLS):
        return COMPONENTS[0][0]
    if where.startswith("receiver/logs.py"):
        return "logging (stdlib + receiver/logs.py)"
    for name, prefixes in COMPONENTS:
        if where.startswith(prefixes):
            return name
    return "other (stdlib, uuid, hashlib, ...)"


def profile_summary(files: list[Path], top: int = 25, root: str = REQUEST_FRAME) -> str:
    """Inclusive and self shares of the samples inside ``root`` (gunicorn's handle_request)."""
    stacks = load_stacks(files)
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    parts: Counter[str] = Counter()
    total = 0
    for frames, count in stacks:
        idx = next((i for i, f in enumerate(frames) if f.startswith(root + " ")), None)
        if idx is None:
            continue
        inside = frames[idx:]
        total += count
        for f in set(inside):
            inclusive[f] += count
        own[inside[-1]] += count
        parts[component(inside[-1])] += count
    all_samples = sum(c for _, c in stacks)
    lines = [
        f"samples: {all_samples}, inside {root}: {total} "
        f"({100 * total / max(all_samples, 1):.1f} %; the rest: accept, or idle between requests)",
        "",
        "by component (self time of the leaf frame):",
        *(f"  {100 * c / max(total, 1):5.1f} %  {name}" for name, c in parts.most_common()),
        "",
        "inclusive (share of request time):",
    ]
    for f, c in inclusive.most_common(top * 3):
        lines.append(f"  {100 * c / total:5.1f} %  {f}")
    lines += ["", "self (leaf frames):"]
    for f, c in own.most_common(top):
        lines.append(f"  {100 * c / total:5.1f} %  {f}")
    return "\n".join(lines)


# -- report -------------------------------------------------------------------------------------


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median throughput; ``runs``/``rps_range`` say how many and how far."""
    ordered = sorted(runs, key=lambda r: r["rps"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["runs"] = len(runs)
    chosen["rps_range"] = (ordered[0]["rps"], ordered[-1]["rps"])
    return chosen


def report(path: Path) -> str:
    """Markdown tables: the median run of each configuration (by req/s), with the range of
    req/s over its runs when it ran more than once."""
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    rows = [r for r in rows if not r.get("profiled")]
    grouped: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        key = (
            r["target"],
            r["db"]
            + (f" ({r['variant']})" if r.get("variant") else "")
            + (f" ({r['workers']} workers)" if r.get("workers", 2) != 2 else ""),
            r["history"],
            r["path"],
            r["alerts"],
            r["connections"],
        )
        grouped.setdefault(key, []).append(r)
    latest = {key: _median_run(runs) for key, runs in grouped.items()}
    ceilings = {
        (r["alerts"], r["connections"]): r for r in latest.values() if r["target"] == "ceiling"
    }
    out = [
        "| database | stored | path | alerts | conns | req/s | alerts/s | p50 ms | p99 ms "
        "| of ceiling | CPU ms/req | worker RSS MiB | load |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    order = {"empty": 0, "100k": 1, "1m": 2}
    keys = sorted(
        (k for k in latest if k[0] == "receiver"),
        key=lambda k: (k[1], order.get(k[2], 9), k[3] != "repeat", k[4], k[5]),
    )
    for key in keys:
        r = latest[key]
        ceiling = ceilings.get((r["alerts"], r["connections"]))
        share = f"{100 * r['rps'] / ceiling['rps']:.1f} %" if ceiling else "-"
        cpu = r["worker_cpu_ms_per_req"]
        if r.get("postgres_cpu_ms_per_req") is not None:
            cpu = f"{cpu:.1f} + {r['postgres_cpu_ms_per_req']:.1f}"
        else:
            cpu = f"{cpu:.1f}"
        flag = " (!)" if r["non_2xx"] or r["socket_errors"] else ""
        low, high = r["rps_range"]
        spread = f" ({low:,.0f}-{high:,.0f}, {r['runs']} runs)" if r["runs"] > 1 else ""
        out.append(
            f"| {key[1]} | {r['history']} | {r['path']} | {r['alerts']} | {r['connections']} "
            f"| {r['rps']:,.0f}{flag}{spread} | {r['alerts_per_s']:,.0f} | {r['p50_ms']:.1f} "
            f"| {r['p99_ms']:.1f} | {share} | {cpu} "
            f"| {' / '.join(f'{m:.0f}' for m in r['worker_rss_mib'])} | {r['load_before']:.2f} |"
        )
    if ceilings:
        out += [
            "",
            "| ceiling | alerts | conns | req/s | p50 ms | p99 ms | CPU ms/req | RSS MiB | load |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for (alerts, conns), r in sorted(ceilings.items()):
            out.append(
                f"| bare Flask | {alerts} | {conns} | {r['rps']:,.0f} | {r['p50_ms']:.1f} "
                f"| {r['p99_ms']:.1f} | {r['worker_cpu_ms_per_req']:.2f} "
                f"| {' / '.join(f'{m:.0f}' for m in r['worker_rss_mib'])} "
                f"| {r['load_before']:.2f} |"
            )
    return "\n".join(out)


# -- main ---------------------------------------------------------------------------------------


def csv(kind: type, text: str) -> list[Any]:
    return [kind(x) for x in text.split(",") if x]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="sqlite", help="sqlite, postgres (fresh) or a URL")
    parser.add_argument("--history", default="empty", help="label of what the database holds")
    parser.add_argument("--ceiling", action="store_true", help="the bare Flask app instead")
    parser.add_argument("--app", default="receiver.wsgi:app", help="gunicorn target")
    parser.add_argument("--variant", help="run bench.variants:app with this BENCH_VARIANT")
    parser.add_argument("--paths", default="repeat,new")
    parser.add_argument("--alerts", default="1,10", help="alerts per webhook")
    parser.add_argument("--connections", default="8,32")
    parser.add_argument("--duration", type=float, default=20, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=5, help="unmeasured seconds first")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--max-load", type=float, default=1.0)
    parser.add_argument("--max-wait", type=float, default=120, help="seconds to wait for it")
    parser.add_argument("--results", help="append each run as a JSON line to this file")
    parser.add_argument("--profile", help="py-spy every worker; raw stacks into this folder")
    parser.add_argument(
        "--profile-idle",
        action="store_true",
        help="sample waiting threads too (wall time: lock and database waits show)",
    )
    parser.add_argument("--report", help="print the tables from a --results file, then exit")
    parser.add_argument("--summarise", nargs="+", help="print the top functions of py-spy files")
    parser.add_argument("--root", default=REQUEST_FRAME, help="--summarise: samples inside this")
    args = parser.parse_args(argv)
    if args.report:
        print(report(Path(args.report)))
        return
    if args.summarise:
        print(profile_summary([Path(f) for f in args.summarise], root=args.root))
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    WORK.mkdir(parents=True, exist_ok=True)
    versions = {"python": platform.python_version(), "wrk": wrk_version(), **db_versions()}
    print(" · ".join(f"{k} {v}" for k, v in versions.items()), file=sys.stderr)
    target = "ceiling" if args.ceiling else "receiver"
    paths = ["ceiling"] if args.ceiling else csv(str, args.paths)
    with tempfile.TemporaryDirectory(prefix="bench-intake-") as tmp:
        scratch = Path(tmp)
        for path in paths:
            for alerts in csv(int, args.alerts):
                for conns in csv(int, args.connections):
                    mode = "repeat" if path == "ceiling" else path
                    plan = Plan(target, args.database, args.history, mode, alerts, conns)
                    record = run_one(plan, args, scratch)
                    record["versions"] = versions
                    if args.results:
                        with open(args.results, "a") as out:
                            out.write(json.dumps(record) + "\n")
                    if args.profile:
                        kind = "wall" if args.profile_idle else "cpu"
                        prefix = f"{record['db']}-{plan.history}-{mode}-{alerts}-c{conns}-{kind}-"
                        files = sorted(Path(args.profile).glob(prefix + "*.txt"))
                        print(profile_summary(files), file=sys.stderr)


def wrk_version() -> str:
    done = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    first = (done.stdout or done.stderr).splitlines()[0]
    return first.split()[1] if len(first.split()) > 1 else first


if __name__ == "__main__":
    main()
