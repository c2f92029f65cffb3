"""Webhook-to-PagerDuty latency at a sustained rate: gunicorn, ``receiver worker``, a stand-in.

    .venv/bin/python -m bench.delivery --database sqlite --rate 100 --seconds 60
    .venv/bin/python -m bench.delivery --database postgres --rate 100 --seconds 60 \
        --results var/bench/intake/delivery.jsonl

Starts the PagerDuty Events API v2 stand-in of the test suite (``tests/standins/pagerduty.py``:
HTTPS on 127.0.0.1 with a certificate from its own CA, one connection per request), a fresh
migrated database, ``gunicorn -c python:receiver.gunicorn_conf --workers 2 receiver.wsgi:app``
and ``python -m receiver.cli worker`` (the default poll of 0.5 s, as ``receiver serve`` runs it),
both with one PagerDuty receiver on the stand-in (``ca_bundle`` its CA) that every alert routes
to, and context off.

Then it posts ``--rate`` webhooks per second for ``--seconds`` (open loop: request i is due at
``i / rate``; ``--senders`` threads post, one connection per request), each a new critical alert
of a new pod (``bench/payloads.py``), so each opens an incident and queues one PagerDuty trigger
whose dedup key is sha256(groupKey). With ``--new-share 0.1`` only every tenth webhook is new;
the others repeat an earlier body byte for byte (duplicates: nothing to send) and only the new
ones are timed. A webhook's latency is the stand-in's receive time of its
trigger minus the moment its POST started (one monotonic clock: the stand-in runs in this
process). A warm-up of ``--warmup`` seconds at the same rate comes first and is not counted.
After the run: latency percentiles overall and per 10 s window (a growing backlog shows there),
how late the sender was, the intake's own latency, the resident size of each gunicorn worker and
of the worker process, and the CPU the worker used per delivery.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import math
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench import payloads
from bench.intake import (
    REPO,
    TOKEN,
    WORK,
    cpu_seconds,
    db_kind,
    fresh_database,
    gunicorn,
    postgres_pids,
    receiver_env,
    receiver_workers,
    status_kib,
    tail,
    wait_for_quiet,
)

sys.path.insert(0, str(REPO))
from tests.standins.pagerduty import PagerDutyStandIn

ROUTING_KEY = "R" * 32


@dataclass
class Sent:
    """One webhook of an open-loop run: when it was due, posted and answered, and how."""

    uid: str
    due: float
    new: bool = True  # a new alert (pages); else a repeat of an earlier body (pages nothing)
    channel: str = ""  # the Slack benchmark: the channel its route posts to
    posted: float = 0.0
    answered: float = 0.0
    status: int = 0
    incident: int | None = None  # the first incident the intake answered with


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def post(base: str, sent: Sent) -> None:
    parts = urlsplit(base)
    body = payloads.body(1, sent.uid)
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {TOKEN}",
        "User-Agent": "Alertmanager/0.27.0",
    }
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        sent.posted = time.monotonic()
        conn.request("POST", payloads.PATH, body=body, headers=headers)
        answer = conn.getresponse()
        data = answer.read()
        sent.answered, sent.status = time.monotonic(), answer.status
        if answer.status == 200:
            sent.incident = (json.loads(data).get("incidents") or [None])[0]
    except (OSError, ValueError):
        sent.answered, sent.status = time.monotonic(), -1
    finally:
        conn.close()


def open_loop(
    base: str, rate: float, count: int, senders: int, make: Callable[[int, float], Sent]
) -> list[Sent]:
    """Open loop: webhook i, ``make(i, due)``, is due at start + i / rate and posted by the
    next free sender."""
    plan: list[Sent] = []
    with ThreadPoolExecutor(max_workers=senders) as pool:
        start = time.monotonic() + 0.2
        for i in range(count):
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sent = make(i, due)
            plan.append(sent)
            pool.submit(post, base, sent)
    return plan


def send_at_rate(
    base: str, rate: float, seconds: float, senders: int, salt: str, new_share: float = 1.0
) -> list[Sent]:
    """Open loop: webhook i is due at start + i / rate, posted by the next free sender.

    With ``new_share`` below 1, only that share are new alerts; the others re-send the body of
    one of the last 100 new ones (byte for byte: a duplicate, as Alertmanager's repeat_interval
    and HA peers send them), chosen at random with a fixed seed."""
    every = max(1, round(1 / new_share))
    rng = random.Random(1)
    news: list[str] = []

    def make(i: int, due: float) -> Sent:
        nonlocal news
        if i % every == 0 or not news:
            news = [*news[-99:], f"{salt}{i:012x}"]
            return Sent(news[-1], due)
        return Sent(rng.choice(news), due, new=False)

    return open_loop(base, rate, round(rate * seconds), senders, make)


def dedup_key(uid: str) -> str:
    return hashlib.sha256(payloads.group_key(uid).encode()).hexdigest()


def wait_delivered(pd: PagerDutyStandIn, plan: list[Sent], timeout: float) -> dict[str, float]:
    """Receive time of the first trigger for each webhook (dedup key -> stand-in clock)."""
    wanted = {dedup_key(s.uid) for s in plan if s.new}
    deadline = time.monotonic() + timeout
    seen: dict[str, float] = {}
    while time.monotonic() < deadline:
        for record in pd.requests:
            event = record.get("json") or {}
            key = event.get("dedup_key")
            if key in wanted and key not in seen and record.get("status") == 202:
                seen[key] = record["at"]
        if len(seen) == len(wanted):
            break
        time.sleep(0.5)
    return seen


def summarise(plan: list[Sent], received: dict[str, float], window: float) -> dict[str, Any]:
    ok = [s for s in plan if s.status == 200]
    latencies, by_window = [], {}
    t0 = plan[0].due if plan else 0.0
    for s in ok:
        if not s.new:
            continue
        at = received.get(dedup_key(s.uid))
        if at is None:
            continue
        latency = at - s.posted
        latencies.append(latency)
        by_window.setdefault(int((s.due - t0) // window), []).append(latency)
    intake = [s.answered - s.posted for s in ok]
    late = [s.posted - s.due for s in plan if s.posted]
    span = (plan[-1].posted - plan[0].posted) if len(plan) > 1 else 0.0
    return {
        "webhooks": len(plan),
        "stored": len(ok),
        "failed": len(plan) - len(ok),
        "new_alerts": sum(1 for s in plan if s.new),
        "delivered": len(latencies),
        "offered_rate": round(len(plan) / span, 1) if span else None,
        "sender_late_p99_ms": round(percentile(late, 99) * 1000, 1),
        "intake_p50_ms": round(percentile(intake, 50) * 1000, 1),
        "intake_p99_ms": round(percentile(intake, 99) * 1000, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "p90_ms": round(percentile(latencies, 90) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "max_ms": round(max(latencies, default=float("nan")) * 1000, 1),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
        "windows": [
            {
                "from_s": int(w * window),
                "webhooks": len(v),
                "p50_ms": round(percentile(v, 50) * 1000, 1),
                "p99_ms": round(percentile(v, 99) * 1000, 1),
            }
            for w, v in sorted(by_window.items())
        ],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="sqlite", help="sqlite, postgres (fresh) or a URL")
    parser.add_argument("--rate", type=float, default=100, help="webhooks per second")
    parser.add_argument("--seconds", type=float, default=60, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=5, help="seconds at the rate first")
    parser.add_argument("--senders", type=int, default=16, help="posting threads")
    parser.add_argument(
        "--new-share", type=float, default=1.0, help="share of webhooks that are new alerts"
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--poll", type=float, default=0.5, help="receiver worker --poll")
    parser.add_argument(
        "--worker-processes", type=int, default=1, help="receiver workers (Postgres only: >1)"
    )
    parser.add_argument("--drain-timeout", type=float, default=300, help="wait for the rest")
    parser.add_argument("--max-load", type=float, default=1.0)
    parser.add_argument("--max-wait", type=float, default=120)
    parser.add_argument("--results", help="append the run as a JSON line to this file")
    parser.add_argument(
        "--profile", help="py-spy the worker process (wall time) while measured: raw stacks here"
    )
    args = parser.parse_args(argv)
    if args.worker_processes > 1 and args.database == "sqlite":
        parser.error("SQLite runs one worker (docs/operations.md)")

    WORK.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-delivery-") as tmp, PagerDutyStandIn() as pd:
        scratch = Path(tmp)
        url = (
            fresh_database(args.database, "delivery")
            if args.database in ("sqlite", "postgres")
            else args.database
        )
        kind = db_kind(url)
        config = {
            "runbooks_path": str(REPO / "config" / "runbooks.yaml"),
            "context_path": str(REPO / "config" / "context.yaml"),
            "receivers": {
                "pd": {
                    "type": "pagerduty",
                    "routing_key": ROUTING_KEY,
                    "base_url": pd.base_url,
                    "ca_bundle": pd.ca_file,
                }
            },
            "routes": [],
            "default_receivers": ["pd"],
        }
        env = receiver_env(url, scratch, config)
        load_before, waited = wait_for_quiet(args.max_load, args.max_wait)
        print(
            f"-- delivery {kind}: {args.rate:g} webhooks/s ({args.new_share:.0%} new) "
            f"for {args.seconds:g} s; "
            f"load {load_before:.2f} (waited {waited:.0f} s)",
            file=sys.stderr,
        )
        worker_log = scratch / "worker.log"
        with (
            gunicorn("receiver.wsgi:app", env, args.workers, scratch / "gunicorn.log") as server,
            receiver_workers(env, args.worker_processes, args.poll, worker_log) as workers,
        ):
            worker = workers[0]
            if args.warmup:
                warm = send_at_rate(
                    server.url, args.rate, args.warmup, args.senders, secrets.token_hex(2)
                )
                wait_delivered(pd, warm, args.drain_timeout)
            gunicorn_pids = server.workers
            pg = postgres_pids() if kind == "postgres" else []
            cpu0 = cpu_seconds([w.pid for w in workers])
            web0, pg0 = cpu_seconds(gunicorn_pids), cpu_seconds(pg)
            spy = None
            if args.profile:
                Path(args.profile).mkdir(parents=True, exist_ok=True)
                out = Path(args.profile) / f"delivery-{kind}-{args.rate:g}-worker.txt"
                command = [
                    str(Path(sys.executable).parent / "py-spy"), "record",
                    "--pid", str(worker.pid), "--duration", f"{args.seconds:g}",
                    "--rate", "200", "--idle", "--nonblocking", "--format", "raw",
                    "--output", str(out),
                ]  # fmt: skip
                spy = subprocess.Popen(
                    command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            plan = send_at_rate(
                server.url,
                args.rate,
                args.seconds,
                args.senders,
                secrets.token_hex(2),
                args.new_share,
            )
            sent_done = time.monotonic()
            if spy is not None:
                spy.wait(timeout=120)
            received = wait_delivered(pd, plan, args.drain_timeout)
            drained = max(received.values(), default=sent_done) - sent_done
            worker_cpu = cpu_seconds([w.pid for w in workers]) - cpu0
            web_cpu = cpu_seconds(gunicorn_pids) - web0
            pg_cpu = cpu_seconds(pg) - pg0
            rss = {
                "gunicorn_workers_rss_mib": [
                    round(status_kib(p, "VmRSS") / 1024, 1) for p in gunicorn_pids
                ],
                "worker_rss_mib": [round(status_kib(w.pid, "VmRSS") / 1024, 1) for w in workers],
                "worker_peak_rss_mib": [
                    round(status_kib(w.pid, "VmHWM") / 1024, 1) for w in workers
                ],
            }
        summary = summarise(plan, received, 10.0)
        record = {
            "db": kind,
            "rate": args.rate,
            "new_share": args.new_share,
            "seconds": args.seconds,
            "poll_s": args.poll,
            "worker_processes": args.worker_processes,
            **summary,
            "drained_after_last_post_s": round(drained, 1),
            "worker_cpu_ms_per_delivery": round(
                worker_cpu * 1000 / max(summary["delivered"], 1), 2
            ),
            "web_cpu_ms_per_webhook": round(web_cpu * 1000 / max(summary["stored"], 1), 2),
            "postgres_cpu_ms_per_webhook": round(pg_cpu * 1000 / max(summary["stored"], 1), 2)
            if pg
            else None,
            **rss,
            "standin_errors": len(pd.errors),
            "load_before": round(load_before, 2),
            "load_after": round(os.getloadavg()[0], 2),
            "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        worker_errors = [x for x in tail(worker_log, 100000).splitlines() if "ERROR" in x]
        record["worker_log_errors"] = len(worker_errors)
    print(json.dumps(record, indent=1), file=sys.stderr)
    if worker_errors:
        print("worker errors (first 3):\n" + "\n".join(worker_errors[:3]), file=sys.stderr)
    if args.results:
        with open(args.results, "a") as out:
            out.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
