"""Incident retention passes on a seeded database: time per pass (one transaction), its rows,
and the plan of every statement of the first pass.

    .venv/bin/python -m bench.retention sqlite:///var/bench/100k.db --days 60 --passes 20
    .venv/bin/python -m bench.retention postgresql://postgres@127.0.0.1:5432/bench_100k \
        --days 60 --passes 20 --explain

The passes commit: run it on a copy (``cp`` the SQLite file; ``CREATE DATABASE copy TEMPLATE
seeded`` on Postgres). Each pass is ``IncidentRetention.prune`` in its own unit of work, exactly
what the worker and ``receiver db prune`` run. ``--explain`` prints the plans (EXPLAIN QUERY
PLAN on SQLite, EXPLAIN on Postgres) of the first pass's statements, taken inside the pass's
transaction before it commits; ``--sql`` prints each statement's time.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from datetime import timedelta
from typing import Any

import sqlalchemy
from sqlalchemy import event

from receiver.bootstrap import bootstrap
from receiver.settings import load_settings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="sqlite:///path.db or postgresql://user@host/dbname")
    parser.add_argument("--days", type=float, default=60, help="prune resolved before this")
    parser.add_argument("--batch", type=int, default=500, help="incidents per pass")
    parser.add_argument("--passes", type=int, default=10)
    parser.add_argument("--explain", action="store_true", help="plans of the first pass")
    parser.add_argument("--sql", action="store_true", help="statement times of the first pass")
    return parser.parse_args(argv)


class Statements:
    """The statements a pass runs, with their parameters and times."""

    def __init__(self, engine: Any):
        self.rows: list[tuple[str, Any, float]] = []
        self.on = False
        self._started = 0.0
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, *_args: Any) -> None:
        self._started = time.perf_counter()

    def _after(self, _conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if self.on and not statement.startswith(("BEGIN", "SELECT 1")):
            self.rows.append((statement, params, 1000 * (time.perf_counter() - self._started)))


def explain(cursor: Any, dialect: str, statement: str, params: Any) -> list[str]:
    """The plan of one statement, one line a node."""
    if dialect == "sqlite":
        cursor.execute("EXPLAIN QUERY PLAN " + statement, params)
        return [row[-1] for row in cursor.fetchall()]
    cursor.execute("EXPLAIN (COSTS OFF) " + statement, params)
    return [row[0] for row in cursor.fetchall() if "Cond:" not in row[0] and "= ANY" not in row[0]]


def one_pass(
    container: Any, cutoff: Any, args: argparse.Namespace, first: bool, log: Statements
) -> tuple[float, dict[str, int]]:
    """Run (and commit) one pass; its time in ms (the plans, if asked, not counted) and its
    counts."""
    log.on, log.rows = first, []
    with container.uow() as uow:
        started = time.perf_counter()
        counts = uow.retention.prune(cutoff, args.batch)
        ms = 1000 * (time.perf_counter() - started)
        log.on = False
        if first and args.explain:
            cursor = uow.session.connection().connection.dbapi_connection.cursor()
            for statement, params, _ms in log.rows:
                print("  " + " ".join(statement.split())[:100])
                for line in explain(cursor, container.engine.dialect.name, statement, params):
                    print("      " + line)
        started = time.perf_counter()
        uow.commit()
        ms += 1000 * (time.perf_counter() - started)
    if first and args.sql:
        for statement, _params, took in log.rows:
            print(f"  {took:7.1f} ms  " + " ".join(statement.split())[:90])
    return ms, counts


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = load_settings(environ={}, overrides={"database_url": args.url}, require_auth=False)
    container = bootstrap(settings)
    log = Statements(container.engine)
    print(f"python {platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}, {args.url}")
    cutoff = container.clock() - timedelta(days=args.days)
    times, totals = [], {}
    for n in range(args.passes):
        ms, counts = one_pass(container, cutoff, args, n == 0, log)
        times.append(ms)
        totals = {k: totals.get(k, 0) + v for k, v in counts.items()}
        print(f"pass {n + 1}: {ms:7.1f} ms, {counts['incidents']} incidents")
        if counts["incidents"] < args.batch:
            break
    print("rows:", ", ".join(f"{k} {v}" for k, v in totals.items() if v))
    if times:
        print(f"per pass: median {statistics.median(times):.0f} ms, max {max(times):.0f} ms")
    container.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
