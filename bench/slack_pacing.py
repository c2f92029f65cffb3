"""Slack pacing of the delivery worker: gaps between posts per channel, total throughput.

    R=var/bench/slack.jsonl
    .venv/bin/python -m bench.slack_pacing --database sqlite   --channels 10 --rate 20 \
        --seconds 30 --results $R
    .venv/bin/python -m bench.slack_pacing --database postgres --channels 10 --rate 20 \
        --seconds 30 --results $R
    .venv/bin/python -m bench.slack_pacing --database sqlite   --channels 50 --rate 100 \
        --seconds 30 --results $R
    .venv/bin/python -m bench.slack_pacing --database postgres --channels 50 --rate 100 \
        --seconds 30 --results $R
    .venv/bin/python -m bench.slack_pacing --database postgres --channels 10 --rate 20 \
        --seconds 30 --worker-processes 2 --results $R
    .venv/bin/python -m bench.slack_pacing --database sqlite   --channels 10 --rate 5 \
        --seconds 30 --results $R       # under the pacing's ceiling: no backlog

Starts the Slack Web API stand-in of the test suite (``tests/standins/slack.py``: HTTP on
127.0.0.1, one connection per request, answering 429 with ``Retry-After: 1`` when a channel gets
a second chat.postMessage within a second), a fresh migrated database of its own
(``bench.intake.fresh_database``: ``var/bench/slack-run.db``, Postgres ``bench_slack_run``),
``gunicorn -c python:receiver.gunicorn_conf --workers 2
receiver.wsgi:app`` and ``python -m receiver.cli worker`` (the default poll of 0.5 s, as
``receiver serve`` runs it; ``--worker-processes`` of them on Postgres), both with
``--channels`` Slack receivers on the stand-in, one per channel (``slack_001`` posts to channel
``C0BENCH001``, ...; ``delivery.slack_min_interval_seconds`` at its default, 1 s), and context
off. Route *k* sends an alert to receiver *k* alone, matching its pod name
(``pod=~"triton-llama3-70b-c001.*"``): every webhook is a new critical alert of a new pod
(``bench/payloads.py``) whose name starts with its channel number, so it opens an incident that
queues exactly one Slack trigger (a chat.postMessage) to exactly one channel.

First a warm-up: one webhook per channel, waited for until posted (not counted). Then it posts
``--rate`` webhooks per second for ``--seconds`` (open loop: request *i* is due at *i* / rate,
for channel *i* mod N; ``--senders`` threads post, one connection per request). With the
defaults (20 webhooks/s over 10 channels: 2 per channel per second against a pacing of 1) a
backlog forms in every channel, so the run measures the pacing itself. Then it polls the
stand-in until every incident's message has been posted (giving up after ``--drain-timeout``
s, or after 60 s without a new message).

Reported, from the stand-in's record of every request (arrival time on this process's monotonic
clock, which the worker's pacing clock also is): per channel the number of chat.postMessage
calls (thread replies and refused calls included) and the minimum and median gap between
consecutive ones, the 429s it answered and any other error; the total posts/s (each channel's
posts over its own first to last post, summed over channels; the pacing's ceiling is one per
channel) and posts per 10 s window; webhook-to-post latency (post arrival minus the moment the
webhook's POST started) against the latency a perfect pacer would give (each channel posting its
queue first in, first out, exactly one second apart, no processing time), and how many posts
came after the post of a newer webhook of their channel (0 for first in, first out); delivered
of expected, duplicates and misrouted posts; the worker's CPU per post (and the web's per
webhook, Postgres's per post); on Postgres, how many times deliveries were claimed per post
(the deliveries table's update counter / 2: a claim and a settle update a row once each; held
back by pacing or sent alike); the resident size of the worker; the outbox's final states and
attempts from the database; the code measured (its tree, commit and a digest of uncommitted
changes under ``receiver/``, and whether that changed during the run). ``--keep-logs DIR`` keeps
the worker's and gunicorn's logs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from itertools import pairwise
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from bench.delivery import Sent, open_loop, percentile
from bench.intake import (
    REPO,
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
from tests.standins.slack import SlackStandIn

SLACK_TOKEN = "xoxb-bench-" + secrets.token_hex(8)
POD_PREFIX = "triton-llama3-70b-"  # payloads.py names the pod POD_PREFIX + uid


def channel_id(k: int) -> str:
    return f"C0BENCH{k:03d}"  # matches the stand-in's (and Slack's) channel-ID pattern


def receiver_name(k: int) -> str:
    return f"slack_{k:03d}"


def send_at_rate(
    base: str, rate: float, count: int, channels: int, senders: int, salt: str
) -> list[Sent]:
    """Open loop: webhook i is due at start + i / rate, for channel i mod N (round robin).

    Its pod is ``c<channel><salt><counter>``, so route k (``pod=~"...c<k>.*"``) takes it."""

    def make(i: int, due: float) -> Sent:
        k = i % channels + 1
        return Sent(f"c{k:03d}{salt}{i:08x}", due, channel=channel_id(k))

    return open_loop(base, rate, count, senders, make)


def posts(slack: SlackStandIn) -> list[dict[str, Any]]:
    """Every chat.postMessage the stand-in received (answered or not), in arrival order."""
    return [c for c in slack.calls if c["method"] == "chat.postMessage"]


def first_posts(calls: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Incident id -> the first accepted top-level post carrying it in its metadata."""
    found: dict[int, dict[str, Any]] = {}
    for call in calls:
        body = call.get("json") or {}
        payload = (body.get("metadata") or {}).get("event_payload") or {}
        incident = payload.get("incident")
        if call.get("status") == 200 and incident is not None and incident not in found:
            found[incident] = call
    return found


def wait_posted(
    slack: SlackStandIn, plan: list[Sent], timeout: float, stall: float = 60
) -> dict[int, float]:
    """Poll the stand-in until every stored webhook's incident has its message; give up after
    ``timeout`` s, or after ``stall`` s without a new message."""
    wanted = {s.incident for s in plan if s.incident is not None}
    now = time.monotonic()
    deadline, progress, count = now + timeout, now, 0
    while True:
        found = first_posts(posts(slack))
        seen = {i: c["at"] for i, c in found.items() if i in wanted}
        now = time.monotonic()
        if len(seen) > count:
            progress, count = now, len(seen)
        if len(seen) == len(wanted) or now >= deadline or now - progress >= stall:
            return seen
        time.sleep(0.5)


def ideal_posts(stored: list[Sent], interval: float) -> dict[int, float]:
    """A perfect pacer: each channel posts its webhooks in arrival order, ``interval`` apart,
    each as soon as it is stored and the channel's previous post is ``interval`` old."""
    out: dict[int, float] = {}
    last: dict[str, float] = {}
    for s in sorted(stored, key=lambda s: s.answered):
        at = max(s.answered, last.get(s.channel, -1e9) + interval)
        last[s.channel] = out[s.incident or 0] = at
    return out


def gaps_of(times: list[float]) -> list[float]:
    ordered = sorted(times)
    return [b - a for a, b in pairwise(ordered)]


def ms(value: float) -> float:
    return round(value * 1000, 1)


def analyse(
    slack: SlackStandIn,
    plan: list[Sent],
    received: dict[int, float],
    channels: int,
    interval: float,
    window: float = 10.0,
) -> dict[str, Any]:
    calls = slack.calls
    post_calls = [c for c in calls if c["method"] == "chat.postMessage"]
    by_channel: dict[str, list[float]] = defaultdict(list)
    for call in post_calls:
        by_channel[str((call.get("json") or {}).get("channel"))].append(call["at"])
    per_channel = []
    for k in range(1, channels + 1):
        times = by_channel.get(channel_id(k), [])
        gaps = gaps_of(times)
        per_channel.append(
            {
                "channel": channel_id(k),
                "posts": len(times),
                "min_gap_s": round(min(gaps), 3) if gaps else None,
                "median_gap_s": round(statistics.median(gaps), 3) if gaps else None,
                "gaps_under_interval": sum(1 for g in gaps if g < interval),
            }
        )
    all_gaps = [g for c in by_channel.values() for g in gaps_of(c)]
    statuses = Counter(c.get("status") for c in calls)
    errors = Counter(
        f"{c['method']}:{(c.get('response') or {}).get('error')}"
        for c in calls
        if isinstance(c.get("response"), dict) and c["response"].get("ok") is False
    )

    # delivered: the measured incidents' messages, on the channel their route names
    stored = {s.incident: s for s in plan if s.incident is not None}
    found = first_posts(post_calls)
    misrouted = sum(
        1
        for i, call in found.items()
        if i in stored and (call.get("json") or {}).get("channel") != stored[i].channel
    )
    top_level = Counter(
        ((c.get("json") or {}).get("metadata") or {}).get("event_payload", {}).get("incident")
        for c in post_calls
        if c.get("status") == 200 and not (c.get("json") or {}).get("thread_ts")
    )
    duplicates = sum(n - 1 for i, n in top_level.items() if i in stored and n > 1)
    done = sorted(
        ((at, stored[i]) for i, at in received.items() if i in stored), key=lambda d: d[0]
    )
    latencies = [at - s.posted for at, s in done]
    ideal = ideal_posts(list(stored.values()), interval)
    ideal_latencies = [ideal[i] - s.posted for i, s in stored.items()]

    # throughput: each channel's posts from its first to its last, summed over channels
    def summed_rate(posted: list[tuple[float, Sent]]) -> float:
        times: dict[str, list[float]] = defaultdict(list)
        for at, s in posted:
            times[s.channel].append(at)
        return sum((len(t) - 1) / (max(t) - min(t)) for t in times.values() if len(t) > 1)

    # order: posts whose webhook arrived before that of a post already made in their channel
    arrival = {id(s): n for n, s in enumerate(sorted(stored.values(), key=lambda s: s.answered))}
    newest: dict[str, int] = {}
    overtaken = 0
    for _, s in done:
        overtaken += arrival[id(s)] < newest.get(s.channel, -1)
        newest[s.channel] = max(arrival[id(s)], newest.get(s.channel, -1))
    by_window: dict[int, list[float]] = defaultdict(list)
    t0 = plan[0].due if plan else 0.0
    for at, s in done:
        by_window[int((s.due - t0) // window)].append(at - s.posted)
    per_window: list[float] = []
    if done:
        counts = Counter(int((at - done[0][0]) // window) for at, _ in done)
        per_window = [round(counts.get(w, 0) / window, 2) for w in range(max(counts) + 1)]
    last_webhook = max((s.posted for s in plan), default=0.0)
    mins = [c["min_gap_s"] for c in per_channel if c["min_gap_s"] is not None]
    medians = [c["median_gap_s"] for c in per_channel if c["median_gap_s"] is not None]
    return {
        "webhooks": len(plan),
        "stored": len(stored),
        "failed": len(plan) - len(stored),
        "delivered": len(latencies),
        "missing": len(stored) - len(latencies),
        "duplicate_posts": duplicates,
        "misrouted": misrouted,
        "calls": dict(Counter(c["method"] for c in calls)),
        "post_calls": len(post_calls),
        "thread_replies": sum(1 for c in post_calls if (c.get("json") or {}).get("thread_ts")),
        "status_429": statuses.get(429, 0),
        "statuses": {str(k): v for k, v in sorted(statuses.items(), key=lambda kv: str(kv[0]))},
        "slack_errors": dict(errors),
        "min_gap_s": round(min(all_gaps), 3) if all_gaps else None,
        "gaps_under_interval": sum(1 for g in all_gaps if g < interval),
        "gaps": len(all_gaps),
        "median_gap_s": round(statistics.median(all_gaps), 3) if all_gaps else None,
        "channel_median_gap_s": [min(medians), max(medians)] if medians else None,
        "channel_min_gap_s": [min(mins), max(mins)] if mins else None,
        "posts_per_s": round(summed_rate(done), 2),
        "ideal_posts_per_s": round(summed_rate([(ideal[i], s) for i, s in stored.items()]), 2),
        "posts_per_s_by_10s": per_window,
        "p50_ms": ms(percentile(latencies, 50)),
        "p99_ms": ms(percentile(latencies, 99)),
        "max_ms": ms(max(latencies, default=float("nan"))),
        "windows": [
            {
                "from_s": int(w * window),
                "webhooks": len(v),
                "p50_ms": ms(percentile(v, 50)),
                "max_ms": ms(max(v)),
            }
            for w, v in sorted(by_window.items())
        ],
        "posted_after_a_newer": overtaken,
        "ideal_p50_ms": ms(percentile(ideal_latencies, 50)),
        "ideal_p99_ms": ms(percentile(ideal_latencies, 99)),
        "ideal_max_ms": ms(max(ideal_latencies, default=float("nan"))),
        "drained_after_last_webhook_s": round(
            (done[-1][0] if done else last_webhook) - last_webhook, 1
        ),
        "ideal_drain_s": round(max(ideal.values(), default=last_webhook) - last_webhook, 1),
        "intake_p99_ms": ms(percentile([s.answered - s.posted for s in stored.values()], 99)),
        "sender_late_p99_ms": ms(percentile([s.posted - s.due for s in plan if s.posted], 99)),
        "per_channel": per_channel,
    }


def outbox_state(url: str) -> dict[str, Any]:
    """Deliveries by state (with their attempts) and attempts by HTTP status, from the database."""
    queries = {
        "deliveries": "SELECT state, count(*), coalesce(sum(attempts), 0) FROM deliveries "
        "GROUP BY state",
        "attempts": "SELECT coalesce(status_code, 0), outcome, count(*) FROM delivery_attempts "
        "GROUP BY 1, 2",
    }
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        with sqlite3.connect(parsed.database) as conn:
            rows = {k: conn.execute(q).fetchall() for k, q in queries.items()}
    else:
        # every claim and every settle updates a delivery row once: on Postgres the table's
        # update counter shows how often deliveries were claimed (posts and pacing holds alike)
        queries["updates"] = (
            "SELECT n_tup_upd, 0 FROM pg_stat_user_tables WHERE relname = 'deliveries'"
        )
        plain = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(plain, autocommit=True) as conn:
            deadline = time.monotonic() + 10  # the receiver's backends flush their counts on exit
            while (
                time.monotonic() < deadline
                and conn.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchone()[0]
            ):  # type: ignore[index]
                time.sleep(0.2)
            rows = {k: conn.execute(q).fetchall() for k, q in queries.items()}
    out: dict[str, Any] = {
        "deliveries": {s: {"count": n, "attempts": a} for s, n, a in rows["deliveries"]},
        "attempts": {f"{code} {outcome}": n for code, outcome, n in rows["attempts"]},
    }
    if "updates" in rows:
        out["delivery_row_updates"] = rows["updates"][0][0] if rows["updates"] else None
    return out


def code_state() -> dict[str, Any]:
    """The commit measured, and a digest of the uncommitted changes under receiver/ (if any)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return done.stdout

    diff = git("diff", "HEAD", "--", "receiver")
    return {
        "tree": str(REPO),
        "commit": git("rev-parse", "--short", "HEAD").strip(),
        "receiver_changed": git("diff", "HEAD", "--name-only", "--", "receiver").split(),
        "receiver_diff_sha256": hashlib.sha256(diff.encode()).hexdigest()[:12] if diff else None,
    }


def config_for(slack: SlackStandIn, channels: int) -> dict[str, Any]:
    return {
        "runbooks_path": str(REPO / "config" / "runbooks.yaml"),
        "context_path": str(REPO / "config" / "context.yaml"),
        "receivers": {
            receiver_name(k): {
                "type": "slack",
                "token": SLACK_TOKEN,
                "channel": channel_id(k),
                "base_url": slack.base_url,
            }
            for k in range(1, channels + 1)
        },
        "routes": [
            {"matchers": [f'pod=~"{POD_PREFIX}c{k:03d}.*"'], "receivers": [receiver_name(k)]}
            for k in range(1, channels + 1)
        ],
        "default_receivers": [],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="sqlite", help="sqlite, postgres (fresh) or a URL")
    parser.add_argument("--channels", type=int, default=10, help="Slack channels (receivers)")
    parser.add_argument("--rate", type=float, default=20, help="webhooks per second, all channels")
    parser.add_argument("--seconds", type=float, default=30, help="seconds of sending")
    parser.add_argument("--senders", type=int, default=16, help="posting threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--poll", type=float, default=0.5, help="receiver worker --poll")
    parser.add_argument(
        "--worker-processes", type=int, default=1, help="receiver workers (Postgres only: >1)"
    )
    parser.add_argument("--drain-timeout", type=float, default=300, help="wait for the rest")
    parser.add_argument("--max-load", type=float, default=1.0)
    parser.add_argument("--max-wait", type=float, default=120)
    parser.add_argument("--results", help="append the run as a JSON line to this file")
    parser.add_argument("--keep-logs", help="copy the worker's and gunicorn's logs to this dir")
    args = parser.parse_args(argv)
    if not 1 <= args.channels <= 999:
        parser.error("--channels: 1 to 999")
    if args.worker_processes > 1 and args.database == "sqlite":
        parser.error("SQLite runs one worker (docs/operations.md)")
    interval = 1.0  # delivery.slack_min_interval_seconds, left at its default

    WORK.mkdir(parents=True, exist_ok=True)
    channels = {f"bench-{k:03d}": channel_id(k) for k in range(1, args.channels + 1)}
    with (
        tempfile.TemporaryDirectory(prefix="bench-slack-") as tmp,
        SlackStandIn(token=SLACK_TOKEN, channels=channels) as slack,
    ):
        scratch = Path(tmp)
        url = (
            fresh_database(args.database, "slack")
            if args.database in ("sqlite", "postgres")
            else args.database
        )
        kind = db_kind(url)
        env = receiver_env(url, scratch, config_for(slack, args.channels))
        load_before, waited = wait_for_quiet(args.max_load, args.max_wait)
        code = code_state()  # what the processes about to start import
        count = round(args.rate * args.seconds)
        print(
            f"-- slack pacing {kind}: {args.channels} channels, {args.rate:g} webhooks/s for "
            f"{args.seconds:g} s ({count} webhooks, {count / args.channels:.0f} per channel); "
            f"load {load_before:.2f} (waited {waited:.0f} s)",
            file=sys.stderr,
        )
        worker_log = scratch / "worker.log"
        with (
            gunicorn("receiver.wsgi:app", env, args.workers, scratch / "gunicorn.log") as server,
            receiver_workers(env, args.worker_processes, args.poll, worker_log) as workers,
        ):
            warm = send_at_rate(
                server.url,
                args.channels,
                args.channels,
                args.channels,
                args.senders,
                secrets.token_hex(2),
            )
            warmed = wait_posted(slack, warm, 60)
            if len(warmed) < args.channels:
                raise SystemExit(
                    f"warm-up: {len(warmed)} of {args.channels} posted in 60 s\n"
                    f"worker log:\n{tail(worker_log)}"
                )
            gunicorn_pids = server.workers
            pg = postgres_pids() if kind == "postgres" else []
            pids = [w.pid for w in workers]
            cpu0, web0, pg0 = cpu_seconds(pids), cpu_seconds(gunicorn_pids), cpu_seconds(pg)
            started = time.monotonic()
            plan = send_at_rate(
                server.url,
                args.rate,
                count,
                args.channels,
                args.senders,
                secrets.token_hex(2),
            )
            received = wait_posted(slack, plan, args.drain_timeout)
            wall = time.monotonic() - started
            worker_cpu = cpu_seconds(pids) - cpu0
            web_cpu = cpu_seconds(gunicorn_pids) - web0
            pg_cpu = cpu_seconds(pg) - pg0
            rss = {
                "worker_rss_mib": [round(status_kib(p, "VmRSS") / 1024, 1) for p in pids],
                "worker_peak_rss_mib": [round(status_kib(p, "VmHWM") / 1024, 1) for p in pids],
                "gunicorn_workers_rss_mib": [
                    round(status_kib(p, "VmRSS") / 1024, 1) for p in gunicorn_pids
                ],
            }
        summary = analyse(slack, plan, received, args.channels, interval)
        posted = max(summary["delivered"], 1)
        outbox = outbox_state(url)
        updates = outbox.get("delivery_row_updates")
        record = {
            "db": kind,
            "channels": args.channels,
            "rate": args.rate,
            "seconds": args.seconds,
            "poll_s": args.poll,
            "worker_processes": args.worker_processes,
            **summary,
            "worker_cpu_ms_per_post": round(worker_cpu * 1000 / posted, 2),
            "worker_cpu_share": round(worker_cpu / wall, 2),  # of one CPU, sending + draining
            "web_cpu_ms_per_webhook": round(web_cpu * 1000 / max(summary["stored"], 1), 2),
            "postgres_cpu_ms_per_post": round(pg_cpu * 1000 / posted, 2) if pg else None,
            **rss,
            "outbox": outbox,
            # claims (a claim and a settle each update the row once) per post, warm-up included
            "claims_per_post": round(updates / 2 / max(summary["post_calls"], 1), 1)
            if updates is not None
            else None,
            "standin_errors": len(slack.errors),
            "load_before": round(load_before, 2),
            "load_after": round(os.getloadavg()[0], 2),
            "code": code,
            "code_changed_during_run": code_state() != code,
            "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        worker_errors = [x for x in tail(worker_log, 100000).splitlines() if "ERROR" in x]
        record["worker_log_errors"] = len(worker_errors)
        if args.keep_logs:
            keep = Path(args.keep_logs)
            keep.mkdir(parents=True, exist_ok=True)
            stem = f"slack-{kind}-{args.channels}ch-{time.strftime('%H%M%S')}"
            shutil.copyfile(worker_log, keep / f"{stem}-worker.log")
            shutil.copyfile(scratch / "gunicorn.log", keep / f"{stem}-gunicorn.log")
    shown = {k: v for k, v in record.items() if k != "per_channel"}
    print(json.dumps(shown, indent=1), file=sys.stderr)
    for row in record["per_channel"][:20]:
        print(
            f"  {row['channel']}: {row['posts']} posts, gap min {row['min_gap_s']} s, "
            f"median {row['median_gap_s']} s, {row['gaps_under_interval']} under {interval:g} s",
            file=sys.stderr,
        )
    if worker_errors:
        print("worker errors (first 3):\n" + "\n".join(worker_errors[:3]), file=sys.stderr)
    if args.results:
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        with open(args.results, "a") as out:
            out.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
