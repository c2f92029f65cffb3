"""The longest statement and the longest pause inside the transaction of the largest webhooks,
which the database timeouts (``database.*``) must leave room for.

    .venv/bin/python -m bench.large_webhooks --database sqlite
    .venv/bin/python -m bench.large_webhooks --database postgres --alerts 5000 --rounds 3

The app runs in process (``create_app`` on a fresh migrated database, the shipped runbook
catalogue, a PagerDuty and a Slack receiver routed to every alert, deliveries dry) and posts,
through Flask's test client, one notification of ``--alerts`` alerts (``intake.max_alerts``
allows 5,000) in each of its stages: new (a new group's first notification: the opening
shortcut), repeat (the same body again), resolved (every alert resolved: the full intake), and
fired again (the same alerts with a later ``startsAt``: new episodes of a flapping series, the
full intake). Every stage runs ``--rounds`` times on a new pod.

Per stage it prints the request's time; the longest execute (the cursor's, which on Postgres
fetches every row too); the longest statement until the next one begins (SQLite fetches rows
after execute: this bounds that, pause included); the longest pause between two statements of
one transaction (Python working: what Postgres's ``idle_in_transaction_session_timeout``
sees); and the number of statements.
"""

from __future__ import annotations

import argparse
import json
import platform
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, event

from bench import payloads
from bench.intake import fresh_database
from receiver.app import create_app
from receiver.bootstrap import bootstrap
from receiver.settings import load_settings

TOKEN = "bench-token-0123456789abcdef"
STAGES = ("new", "repeat", "resolved", "fired again")


@dataclass
class Timings:
    """What one request's transactions did, statement by statement."""

    statements: int = 0
    longest_execute: float = 0.0
    longest_statement: float = 0.0
    longest_pause: float = 0.0
    _started: float | None = None
    _ended: float | None = None
    longest_sql: str = field(default="", repr=False)

    def begin(self, sql: str) -> None:
        now = time.perf_counter()
        self.close(now)
        if self._ended is not None:
            self.longest_pause = max(self.longest_pause, now - self._ended)
        self._started, self.statements = now, self.statements + 1
        self._sql = sql

    def executed(self) -> None:
        self._ended = time.perf_counter()
        if self._started is not None:
            self.longest_execute = max(self.longest_execute, self._ended - self._started)

    def close(self, now: float | None = None) -> None:
        """The statement in progress ends (the next starts, or its transaction ends)."""
        if self._started is None:
            return
        took = (now or time.perf_counter()) - self._started
        if took > self.longest_statement:
            self.longest_statement, self.longest_sql = took, self._sql[:80]
        self._started = None

    def transaction_over(self) -> None:
        self.close()
        self._ended = None


@contextmanager
def timed(engine: Engine) -> Iterator[list[Timings]]:
    """Collect the Timings of every request made inside the block (the last in the list)."""
    found: list[Timings] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if found:
            found[-1].begin(statement)

    def after(*_: Any) -> None:
        if found:
            found[-1].executed()

    def over(*_: Any) -> None:
        if found:
            found[-1].transaction_over()

    listeners = [
        ("before_cursor_execute", before),
        ("after_cursor_execute", after),
        ("commit", over),
        ("rollback", over),
    ]
    for name, fn in listeners:
        event.listen(engine, name, fn)
    try:
        yield found
    finally:
        for name, fn in listeners:
            event.remove(engine, name, fn)


def stage_bodies(alerts: int, uid: str) -> dict[str, bytes]:
    """The notification of each stage for the pod ``uid``."""
    firing = payloads.document(alerts)
    text = json.dumps(firing).replace(payloads.PLACEHOLDER, uid)
    resolved = json.loads(text)
    resolved["status"] = "resolved"
    for alert in resolved["alerts"]:
        alert["status"], alert["endsAt"] = "resolved", "2026-11-28T10:05:00.000Z"
    again = json.loads(text)
    for alert in again["alerts"]:
        alert["startsAt"] = "2026-11-28T10:10:00.000Z"
    return {
        "new": text.encode(),
        "repeat": text.encode(),
        "resolved": json.dumps(resolved).encode(),
        "fired again": json.dumps(again).encode(),
    }


def settings_for(url: str) -> Any:
    return load_settings(
        environ={},
        overrides={
            "database_url": url,
            "auth.bearer_tokens": [TOKEN],
            "runbooks_path": "config/runbooks.yaml",
            "receivers": {
                "pd": {"type": "pagerduty", "routing_key": "r" * 32},
                "slack": {"type": "slack", "token": "xoxb-bench", "channel": "C0BENCH"},
            },
            "default_receivers": ["pd", "slack"],
            "delivery.dry_run": True,
        },
    )


def run(kind: str, alerts: int, rounds: int) -> dict[str, list[dict[str, Any]]]:
    """Post every stage ``rounds`` times; the Timings of each request, per stage."""
    url = fresh_database(kind, name="large")
    container = bootstrap(settings_for(url))
    client = create_app(container=container).test_client()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    results: dict[str, list[dict[str, Any]]] = {stage: [] for stage in STAGES}
    try:
        with timed(container.engine) as found:
            for _ in range(rounds):
                bodies = stage_bodies(alerts, secrets.token_hex(8))
                for stage in STAGES:
                    found.append(Timings())
                    started = time.perf_counter()
                    answer = client.post(payloads.PATH, data=bodies[stage], headers=headers)
                    took = time.perf_counter() - started
                    assert answer.status_code == 200, (stage, answer.status_code, answer.text)
                    t = found[-1]
                    t.close()
                    results[stage].append(
                        {
                            "request_s": took,
                            "execute_s": t.longest_execute,
                            "statement_s": t.longest_statement,
                            "pause_s": t.longest_pause,
                            "statements": t.statements,
                            "longest": t.longest_sql,
                            "bytes": len(bodies[stage]),
                        }
                    )
    finally:
        container.close()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--alerts", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    results = run(args.database, args.alerts, args.rounds)
    print(f"{args.database}, {args.alerts} alerts, {args.rounds} rounds, {platform.node()}")
    print(
        "| stage | body | request s | longest execute s | execute to next s | longest pause s "
        "| statements |"
    )
    print("|---|---|---|---|---|---|---|")
    for stage, runs in results.items():
        worst = max(runs, key=lambda r: r["statement_s"])
        print(
            f"| {stage} | {worst['bytes'] / 1e6:.1f} MB "
            f"| {max(r['request_s'] for r in runs):.2f} "
            f"| {max(r['execute_s'] for r in runs):.3f} | {worst['statement_s']:.3f} "
            f"| {max(r['pause_s'] for r in runs):.3f} | {worst['statements']} |"
        )


if __name__ == "__main__":
    main()
