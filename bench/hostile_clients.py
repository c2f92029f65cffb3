"""Webhook latency while hostile clients hold connections or guess passwords.

    .venv/bin/python -m bench.hostile_clients --app receiver.wsgi:app --results R.jsonl
    .venv/bin/python -m bench.hostile_clients --app receiver.asgi:app --results R.jsonl
    .venv/bin/python -m bench.hostile_clients --report R.jsonl  (R: e.g. var/bench/hostile)

Each run starts ``gunicorn -c python:receiver.gunicorn_conf --workers 2 APP`` (the asyncio worker
for ``receiver.asgi:app``, sync workers for ``receiver.wsgi:app``) on a fresh migrated database
with the intake benchmark's config plus a UI user, then, for each scenario, starts the hostile
clients, waits 2 s and posts ``--rate`` new webhooks per second for ``--seconds`` (open loop, one
connection each, a 30 s client timeout) and records their latency from when each was due, so
a webhook the server keeps waiting counts all of its wait (no coordinated omission):

- ``quiet``: nobody else;
- ``slow-headers``: ``--slow`` connections each sending one more header line every second;
- ``slow-bodies``: ``--slow`` connections each announcing a 100 kB body and sending a byte a
  second;
- ``guessers``: ``--guessers`` threads posting wrong passwords to /login as fast as answers
  come (``--no-limits``: login limits so high they never apply, as before they existed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from werkzeug.security import generate_password_hash

from bench.delivery import Sent, open_loop, percentile
from bench.intake import (
    INTAKE_CONFIG,
    TOKEN,
    WORK,
    fresh_database,
    gunicorn,
    receiver_env,
    wait_for_quiet,
)

SCENARIOS = ("quiet", "slow-headers", "slow-bodies", "guessers")


def _connect(base: str) -> socket.socket:
    parts = urlsplit(base)
    return socket.create_connection((parts.hostname, parts.port), timeout=60)


def _trickle(base: str, count: int, stop: threading.Event, bodies: bool) -> None:
    head = f"POST /api/v1/alertmanager HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
    if bodies:
        head += "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            with suppress(OSError):
                sock = _connect(base)
                sock.sendall(head.encode())
                sockets.append(sock)
        while not stop.wait(1.0):
            for sock in sockets:
                with suppress(OSError):
                    sock.sendall(b" " if bodies else b"X-Slow: 1\r\n")
    finally:
        for sock in sockets:
            sock.close()


def _guess(base: str, stop: threading.Event, counts: dict[int, int]) -> None:
    with requests.Session() as session:
        while not stop.is_set():
            try:
                page = session.get(base + "/login", timeout=30).text
                token = re.search(r'name="csrf_token" value="([^"]+)"', page)
                data = {
                    "username": "admin",
                    "password": secrets.token_hex(8),
                    "csrf_token": token.group(1) if token else "",
                }
                status = session.post(base + "/login", data=data, timeout=30).status_code
            except requests.RequestException:
                status = -1
            counts[status] = counts.get(status, 0) + 1


@contextmanager
def hostile(scenario: str, base: str, args: argparse.Namespace) -> Iterator[dict[int, int]]:
    """The scenario's hostile clients, running until the block ends; login answers counted."""
    stop, counts = threading.Event(), {}
    targets: list[Callable[[], None]] = []
    if scenario in ("slow-headers", "slow-bodies"):
        bodies = scenario == "slow-bodies"
        targets.append(lambda: _trickle(base, args.slow, stop, bodies))
    elif scenario == "guessers":
        targets += [lambda: _guess(base, stop, counts)] * args.guessers
    threads = [threading.Thread(target=t, daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    time.sleep(2)  # let them take hold
    try:
        yield counts
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)


def run(app: str, args: argparse.Namespace, scratch: Path) -> list[dict[str, Any]]:
    config = json.loads(json.dumps(INTAKE_CONFIG))
    config["ui"] = {
        "users": {"admin": generate_password_hash("not-the-guess")},
        "secret_key": secrets.token_urlsafe(32),
        "cookie_secure": False,
    }
    if args.no_limits:
        config["ui"]["login_limits"] = {"per_user": 10**9, "per_address": 10**9}
    url = fresh_database(args.database, "hostile")
    env = receiver_env(url, scratch, config)
    results = []
    with gunicorn(app, env, 2, scratch / "gunicorn.log") as server:
        for scenario in args.scenarios.split(","):
            load, _ = wait_for_quiet(args.max_load, args.max_wait)
            with hostile(scenario, server.url, args) as logins:
                salt = f"{scenario[:4]}{secrets.token_hex(3)}"
                plan = open_loop(
                    server.url,
                    args.rate,
                    round(args.rate * args.seconds),
                    args.senders,
                    lambda i, due, salt=salt: Sent(f"{salt}{i:08x}", due),
                )
                deadline = time.monotonic() + 40
                while any(s.answered == 0 for s in plan) and time.monotonic() < deadline:
                    time.sleep(0.1)
            results.append(summarise(app, scenario, plan, logins, load, args))
            print(json.dumps(results[-1]), flush=True)
    return results


def summarise(
    app: str,
    scenario: str,
    plan: list[Sent],
    logins: dict[int, int],
    load: float,
    args: argparse.Namespace,
) -> dict[str, Any]:
    ok = [(s.answered - s.due) * 1000 for s in plan if s.status == 200]
    return {
        "app": app,
        "scenario": scenario,
        "database": args.database,
        "limits": not args.no_limits,
        "slow": args.slow,
        "guessers": args.guessers,
        "rate": args.rate,
        "webhooks": len(plan),
        "stored": len(ok),
        "failed": len(plan) - len(ok),
        "p50_ms": round(percentile(ok, 50), 1),
        "p99_ms": round(percentile(ok, 99), 1),
        "max_ms": round(max(ok), 1) if ok else None,
        "logins": {str(k): v for k, v in sorted(logins.items())},
        "load_before": round(load, 2),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
    }


def report(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    lines = [
        "| app | scenario | login limits | stored | p50 ms | p99 ms | max ms | logins |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        logins = ", ".join(f"{k}: {v}" for k, v in r["logins"].items()) or "-"
        times = [r["p50_ms"], r["p99_ms"], r["max_ms"]] if r["stored"] else ["-"] * 3
        lines.append(
            f"| {r['app']} | {r['scenario']} | {'on' if r['limits'] else 'off'} | "
            f"{r['stored']}/{r['webhooks']} | {' | '.join(map(str, times))} | {logins} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--app", default="receiver.asgi:app")
    parser.add_argument("--database", default="sqlite", help="sqlite or postgres")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--slow", type=int, default=50, help="slow connections")
    parser.add_argument("--guessers", type=int, default=4)
    parser.add_argument("--no-limits", action="store_true", help="login limits out of reach")
    parser.add_argument("--rate", type=float, default=20, help="webhooks per second")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--senders", type=int, default=400, help="at most this many at once")
    parser.add_argument("--max-load", type=float, default=1.5)
    parser.add_argument("--max-wait", type=float, default=120)
    parser.add_argument("--results", help="append each scenario as a JSON line to this file")
    parser.add_argument("--report", help="print the table from a --results file, then exit")
    args = parser.parse_args(argv)
    if args.report:
        print(report(Path(args.report)))
        return
    WORK.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=WORK) as scratch:
        results = run(args.app, args, Path(scratch))
    if args.results:
        with open(args.results, "a") as out:
            for result in results:
                out.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
