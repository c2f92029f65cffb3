"""The outbox's claim with 100,000 pending deliveries: the claim alone and claim/settle cycles.

    R=var/bench/outbox-claim.jsonl
    .venv/bin/python -m bench.outbox_claim --database sqlite --results $R
    .venv/bin/python -m bench.outbox_claim --database postgres --results $R
    .venv/bin/python -m bench.outbox_claim --database postgres --autovacuum off --results $R

A fresh migrated database of its own (``bench.intake.fresh_database``: ``var/bench/outbox-run.db``,
Postgres ``bench_outbox_run``) is seeded with bulk Core inserts, oldest first (ids in that
order), for two receivers (``pd`` and ``slack``), as an outage leaves it: ``--sent`` sent rows
(4 per incident and receiver), ``--backing-off`` pending deliveries not due for 1 to 6 hours
(each the first open delivery of its incident and receiver, 1 to 8 failed attempts), ``--blocked``
due ones queued behind those (an update behind its backing-off trigger: due but not claimable),
and ``--due`` claimable ones (the newest). Then ``ANALYZE``; with ``--autovacuum off`` the outbox
tables (``deliveries``, ``delivery_attempts``, ``notification_threads``) get
``autovacuum_enabled = off`` first.

Measured, in this process, through the receiver's own code (``UnitOfWork``,
``DeliveryRepository.claim`` with the worker's batch, claim timeout and look-ahead):

1. the claim alone (``--samples`` times: claim 20, roll back, so nothing changes);
2. ``--cycles`` claim/settle cycles as the worker runs them: the claim committed, then each of
   the 20 settled in a transaction of its own (the delivery's state, an attempt, the thread),
   90 % sent and 10 % failed again (due in 1 to 6 hours); between cycles, not timed, the intake
   queues 20 new updates due now (of incidents whose deliveries are all sent), so about
   ``--due`` stay claimable. Claim and cycle times are reported per tenth of the run;
3. the claim alone again, after the cycles' dead tuples;
4. the vendor recovers: every delivery backing off released as the worker does it
   (``DeliveryRepository.release`` by chunks), then the claim with all of them due, alone and
   in ``--drain-cycles`` cycles.

Reported: p50/p99 (and max) per phase; on Postgres the deliveries table's live and dead tuples,
its autovacuum and autoanalyze counts and sizes, and ``EXPLAIN (ANALYZE, BUFFERS)`` of the claim
before and after the cycles (SQLite: ``EXPLAIN QUERY PLAN``); the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, insert, text

from bench.intake import PG_ADMIN, REPO, db_kind, fresh_database
from bench.outbox_seed import RECEIVERS, Seed, seed
from receiver.notify.outbox import BATCH, CLAIM_AHEAD, CLAIM_TIMEOUT, RELEASE_CHUNK
from receiver.store.db import make_engine
from receiver.store.tables import Delivery
from receiver.store.unit_of_work import UnitOfWork

OUTBOX_TABLES = ("deliveries", "delivery_attempts", "notification_threads")


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p99 and max, in milliseconds (``values`` in seconds)."""
    ordered = sorted(values)

    def at(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 2)

    return {"n": len(ordered), "p50": at(0.50), "p99": at(0.99), "max": at(1.0)}


def claim_once(uow_factory: Any, commit: bool) -> tuple[float, list[Delivery]]:
    """The worker's claim (its batch, timeout, look-ahead); seconds taken and the rows."""
    started = time.perf_counter()
    with uow_factory() as uow:
        now = datetime.now(UTC)
        rows = uow.deliveries.claim(BATCH, now, now - CLAIM_TIMEOUT, due_by=now + CLAIM_AHEAD)
        if commit:
            uow.commit()
    return time.perf_counter() - started, [d for d, _ in rows]


def settle(uow_factory: Any, delivery: Delivery, threads: set[tuple[int, str]], rng: Any) -> None:
    """One send's settle as the worker writes it: the delivery's state, the attempt, the thread
    (``threads``: the (incident, receiver) pairs that have one)."""
    now = datetime.now(UTC)
    ok = rng.random() >= 0.1
    if ok:
        values = {"state": "sent", "sent_at": now, "last_error": None}
    else:
        due = now + timedelta(seconds=rng.uniform(3600, 6 * 3600))
        values = {"state": "pending", "due_at": due, "last_error": "HTTP 500"}
    attempt = {
        "delivery_id": delivery.id,
        "at": now,
        "outcome": "ok" if ok else "retry",
        "status_code": 202 if ok else 500,
        "latency_ms": 40,
        "reason": "accepted" if ok else "HTTP 500",
        "excerpt": None,
    }
    key = (delivery.incident_id, delivery.receiver)
    with uow_factory() as uow:
        uow.deliveries.settle(delivery.id, values, attempt)
        if ok:
            external = {"dedup_key": f"{key[0]:064x}"}
            uow.deliveries.remember(key in threads, *key, external, 0, now)
            threads.add(key)
        uow.commit()


def refill(engine: Engine, plan: Seed, cycle: int) -> None:
    """The intake's share of a cycle: ``BATCH`` new updates due now, of settled incidents."""
    now = datetime.now(UTC)
    rows = []
    for n in range(BATCH):
        incident_id, receiver = plan.settled_pair(cycle * BATCH + n)
        seq = 100 + cycle
        rows.append(
            {
                "incident_id": incident_id,
                "receiver": receiver,
                "kind": "pagerduty" if receiver == "pd" else "slack",
                "action": "update",
                "seq": seq,
                "idempotency_key": f"{incident_id}:{receiver}:update:{seq}",
                "state": "pending",
                "due_at": now,
                "created_at": now,
                "attempts": 0,
            }
        )
    with engine.begin() as conn:
        conn.execute(insert(Delivery.__table__), rows)


def capture_claim(engine: Engine, uow_factory: Any) -> tuple[str, Any]:
    """The claim's SQL and parameters as the driver got them (its statement for due ones)."""
    seen: list[tuple[str, Any]] = []

    def note(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "FROM deliveries" in statement and "due_at <=" in statement and not seen:
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", note)
    try:
        claim_once(uow_factory, commit=False)
    finally:
        event.remove(engine, "before_cursor_execute", note)
    return seen[0]


def explain(engine: Engine, uow_factory: Any) -> str:
    """The claim's plan: EXPLAIN (ANALYZE, BUFFERS) on Postgres, rolled back; SQLite's plan."""
    statement, parameters = capture_claim(engine, uow_factory)
    prefix = (
        "EXPLAIN (ANALYZE, BUFFERS) "
        if db_kind(str(engine.url)) == "postgres"
        else ("EXPLAIN QUERY PLAN ")
    )
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(prefix + statement, parameters).all()
        conn.rollback()
    return "\n".join(" | ".join(str(c) for c in row) for row in rows)


def table_stats(engine: Engine) -> dict[str, Any]:
    """Postgres: the deliveries table's tuples, vacuums and sizes (SQLite: its file size)."""
    if db_kind(str(engine.url)) != "postgres":
        path = Path(engine.url.database or "")
        wal = Path(f"{path}-wal")
        return {
            "file_mb": round(path.stat().st_size / 2**20, 1),
            "wal_mb": round(wal.stat().st_size / 2**20 if wal.exists() else 0.0, 1),
        }
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT n_live_tup, n_dead_tup, autovacuum_count, autoanalyze_count, "
                "n_tup_upd, n_tup_hot_upd, pg_table_size('deliveries') AS heap, "
                "pg_indexes_size('deliveries') AS indexes "
                "FROM pg_stat_user_tables WHERE relname = 'deliveries'"
            )
        ).one()
    stats = dict(row._mapping)
    stats["heap_mb"] = round(stats.pop("heap") / 2**20, 1)
    stats["indexes_mb"] = round(stats.pop("indexes") / 2**20, 1)
    return stats


def released(engine: Engine, uow_factory: Any, args: argparse.Namespace) -> dict[str, Any]:
    """A vendor recovers: its backlog released as the worker does it (chunks of
    ``RELEASE_CHUNK``, each its own transaction), then the claim with all of it due, alone and
    in ``--drain-cycles`` claim/settle cycles (no refill: the backlog drains)."""
    now, counts, chunks = datetime.now(UTC), 0, []
    for receiver, _ in RECEIVERS:
        count = RELEASE_CHUNK
        while count == RELEASE_CHUNK:
            began = time.perf_counter()
            with uow_factory() as uow:
                count = uow.deliveries.release(receiver, now, RELEASE_CHUNK)
                uow.commit()
            chunks.append(time.perf_counter() - began)
            counts += count
    out: dict[str, Any] = {"released": counts, "release_chunk": percentiles(chunks)}
    out["release_seconds"] = round(sum(chunks), 2)
    out["plan_released"] = explain(engine, uow_factory)
    out["claim_released"] = percentiles(
        [claim_once(uow_factory, commit=False)[0] for _ in range(args.samples)]
    )
    rng, threads, claims, cycles = random.Random(8), set(), [], []
    for _ in range(args.drain_cycles):
        began = time.perf_counter()
        took, rows = claim_once(uow_factory, commit=True)
        for delivery in rows:
            settle(uow_factory, delivery, threads, rng)
        cycles.append(time.perf_counter() - began)
        claims.append(took)
    out["drain"] = {"claim": percentiles(claims), "cycle": percentiles(cycles)}
    return out


def prepare(url: str, autovacuum: str) -> Engine:
    """Autovacuum of the outbox tables as asked (Postgres), then ANALYZE."""
    engine = make_engine(url)
    with engine.begin() as conn:
        if db_kind(url) == "postgres":
            for table in OUTBOX_TABLES:
                conn.exec_driver_sql(f"ALTER TABLE {table} SET (autovacuum_enabled = {autovacuum})")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE")
    return engine


def run(args: argparse.Namespace) -> dict[str, Any]:
    url = args.database
    if args.database in ("sqlite", "postgres"):
        url = fresh_database(args.database, "outbox", args.postgres_admin)
    kind = db_kind(url)
    load_before = os.getloadavg()
    engine = make_engine(url)
    started = time.perf_counter()
    plan = seed(engine, args.sent, args.backing_off, args.blocked, args.due)
    seeded_s = time.perf_counter() - started
    engine.dispose()
    engine = prepare(url, args.autovacuum)
    uow_factory = lambda: UnitOfWork(engine)  # noqa: E731
    result: dict[str, Any] = {
        "database": kind,
        "autovacuum": args.autovacuum if kind == "postgres" else None,
        "seeded": plan.counts(),
        "seed_seconds": round(seeded_s, 1),
        "stats_before": table_stats(engine),
        "plan_before": explain(engine, uow_factory),
    }
    result["claim_before"] = percentiles(
        [claim_once(uow_factory, commit=False)[0] for _ in range(args.samples)]
    )
    rng, threads = random.Random(7), plan.thread_pairs()
    claims, cycles = [], []
    for cycle in range(args.cycles):
        refill(engine, plan, cycle)
        began = time.perf_counter()
        took, rows = claim_once(uow_factory, commit=True)
        for delivery in rows:
            settle(uow_factory, delivery, threads, rng)
        cycles.append(time.perf_counter() - began)
        claims.append(took)
    tenth = max(1, args.cycles // 10)
    result["cycles"] = {
        "claim": percentiles(claims),
        "cycle": percentiles(cycles),
        "claim_by_tenth": [
            percentiles(claims[i : i + tenth])["p50"] for i in range(0, len(claims), tenth)
        ],
        "cycle_by_tenth": [
            percentiles(cycles[i : i + tenth])["p50"] for i in range(0, len(cycles), tenth)
        ],
    }
    result["stats_after"] = table_stats(engine)
    result["claim_after"] = percentiles(
        [claim_once(uow_factory, commit=False)[0] for _ in range(args.samples)]
    )
    result["plan_after"] = explain(engine, uow_factory)
    result |= released(engine, uow_factory, args)
    result["load"] = [round(x, 2) for x in load_before + os.getloadavg()]
    result["commit"] = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    result["versions"] = {"sqlite": sqlite3.sqlite_version}
    if kind == "postgres":
        with engine.connect() as conn:
            for setting in ("server_version", "autovacuum", "shared_buffers"):
                result["versions"][setting] = conn.exec_driver_sql(f"SHOW {setting}").scalar()
    engine.dispose()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="sqlite", help="sqlite, postgres (fresh) or a URL")
    parser.add_argument("--autovacuum", choices=("on", "off"), default="on")
    parser.add_argument(
        "--postgres-admin", default=PG_ADMIN, help="the server's maintenance database URL"
    )
    parser.add_argument("--sent", type=int, default=400_000)
    parser.add_argument("--backing-off", type=int, default=95_000)
    parser.add_argument("--blocked", type=int, default=3_000)
    parser.add_argument("--due", type=int, default=2_000)
    parser.add_argument("--samples", type=int, default=200, help="claims timed alone")
    parser.add_argument("--cycles", type=int, default=5_000)
    parser.add_argument("--drain-cycles", type=int, default=200, help="cycles once released")
    parser.add_argument("--results", help="append the run as a JSON line to this file")
    args = parser.parse_args(argv)
    result = run(args)
    line = json.dumps(result)
    if args.results:
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        with open(args.results, "a", encoding="utf-8") as out:
            out.write(line + "\n")
    for key in ("plan_before", "plan_after", "plan_released"):
        print(f"-- {key}\n{result.pop(key)}", file=sys.stderr)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
