"""Seed an outbox as an outage leaves it, fast: bulk Core inserts (``bench.outbox_claim``).

Oldest first, so ids follow: incidents whose deliveries are all sent (4 per receiver), then
incidents whose first delivery per receiver backs off (due in 1 to 6 hours), updates queued
behind some of those (due, but blocked), and the newest incidents' triggers (due, claimable).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, insert, select

from receiver.store.tables import AlertGroup, Delivery, Incident, NotificationThread

RECEIVERS = (("pd", "pagerduty"), ("slack", "slack"))
SENT_ACTIONS = ("trigger", "update", "update", "resolve")
ROWS_PER_STATEMENT = 1000


@dataclass
class Seed:
    """What was seeded: incident id ranges (1-based, in insertion order) and row counts."""

    settled: int  # incidents 1..settled: every delivery sent
    backlog: int  # the next ones: first delivery per receiver backing off
    fresh: int  # the newest: a trigger per receiver, due
    rows: dict[str, int]

    def settled_pair(self, n: int) -> tuple[int, str]:
        """The n-th (incident, receiver) of the settled incidents, round robin."""
        pairs = self.settled * len(RECEIVERS)
        incident, receiver = divmod(n % pairs, len(RECEIVERS))
        return incident + 1, RECEIVERS[receiver][0]

    def thread_pairs(self) -> set[tuple[int, str]]:
        """The (incident, receiver) pairs seeded with a notification thread: the settled ones."""
        return {(i, r) for i in range(1, self.settled + 1) for r, _ in RECEIVERS}

    def counts(self) -> dict[str, int]:
        return dict(self.rows)


def _chunks(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == ROWS_PER_STATEMENT:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _insert(engine: Engine, table: Any, rows: Iterator[dict[str, Any]]) -> int:
    total = 0
    with engine.begin() as conn:
        for chunk in _chunks(rows):
            conn.execute(insert(table), chunk)
            total += len(chunk)
    return total


def _incidents(count: int, now: datetime) -> tuple[Iterator[dict[str, Any]], Iterator[Any]]:
    def groups() -> Iterator[dict[str, Any]]:
        for i in range(1, count + 1):
            key = f'{{}}:{{group="g{i}"}}'
            yield {
                "receiver": "triton",
                "group_key": key,
                "group_key_sha256": hashlib.sha256(key.encode()).hexdigest(),
                "group_key_derived": False,
                "group_labels": {"group": f"g{i}"},
                "first_seen_at": now,
                "last_seen_at": now,
            }

    def incidents() -> Iterator[dict[str, Any]]:
        for i in range(1, count + 1):
            yield {
                "group_id": i,
                "open_group_id": None,
                "status": "resolved",
                "receiver": "triton",
                "alertname": "TritonHighErrorRate",
                "severity": "critical",
                "title": f"High error rate {i}",
                "labels": {"alertname": "TritonHighErrorRate"},
                "annotations": {},
                "search_text": f"high error rate {i}",
                "opened_at": now,
                "first_received_at": now,
                "last_received_at": now,
            }

    return groups(), incidents()


def _delivery(i: int, receiver: str, kind: str, action: str, seq: int, **values: Any) -> dict:
    row = {
        "incident_id": i,
        "receiver": receiver,
        "kind": kind,
        "action": action,
        "seq": seq,
        "idempotency_key": f"{i}:{receiver}:{action}:{seq}",
        "claimed_at": None,
        "sent_at": None,
        "last_error": None,
    }
    return {**row, **values}


def _deliveries(plan: Seed, blocked: int, now: datetime, rng: random.Random) -> Iterator[dict]:
    old = now - timedelta(days=3)
    for i in range(1, plan.settled + 1):
        for receiver, kind in RECEIVERS:
            for seq, action in enumerate(SENT_ACTIONS, 1):
                at = old + timedelta(seconds=i)
                yield _delivery(
                    i, receiver, kind, action, seq, state="sent", due_at=at, created_at=at,
                    claimed_at=at, sent_at=at, attempts=1,
                )  # fmt: skip
    backlog = range(plan.settled + 1, plan.settled + plan.backlog + 1)
    for i in backlog:
        for receiver, kind in RECEIVERS:
            due = now + timedelta(seconds=rng.uniform(3600, 6 * 3600))
            yield _delivery(
                i, receiver, kind, "trigger", 1, state="pending", due_at=due,
                created_at=now - timedelta(minutes=30), claimed_at=now - timedelta(minutes=5),
                attempts=rng.randint(1, 8), last_error="HTTP 500",
            )  # fmt: skip
    for n in range(blocked):
        i, (receiver, kind) = backlog[n // 2], RECEIVERS[n % 2]
        yield _delivery(
            i, receiver, kind, "update", 2, state="pending", due_at=now - timedelta(minutes=1),
            created_at=now - timedelta(minutes=1), attempts=0,
        )  # fmt: skip
    for i in range(plan.settled + plan.backlog + 1, plan.settled + plan.backlog + plan.fresh + 1):
        for receiver, kind in RECEIVERS:
            at = now - timedelta(seconds=rng.uniform(0, 60))
            yield _delivery(
                i, receiver, kind, "trigger", 1, state="pending", due_at=at, created_at=at,
                attempts=0,
            )  # fmt: skip


def _threads(plan: Seed, now: datetime) -> Iterator[dict[str, Any]]:
    for i in range(1, plan.settled + 1):
        for receiver, _ in RECEIVERS:
            external = {"dedup_key": f"{i:064x}"}
            yield {"incident_id": i, "receiver": receiver, "external": external,
                   "last_event_id": 0, "updated_at": now}  # fmt: skip


def seed(engine: Engine, sent: int, backing_off: int, blocked: int, due: int) -> Seed:
    """Fill an empty migrated database; the counts are per row kind (see the module)."""
    now, rng = datetime.now(UTC), random.Random(17)
    per_incident = len(RECEIVERS)
    plan = Seed(
        settled=sent // (per_incident * len(SENT_ACTIONS)),
        backlog=backing_off // per_incident,
        fresh=due // per_incident,
        rows={},
    )
    assert blocked <= plan.backlog * per_incident, "more blocked updates than backing-off rows"
    groups, incidents = _incidents(plan.settled + plan.backlog + plan.fresh, now)
    plan.rows["alert_groups"] = _insert(engine, AlertGroup.__table__, groups)
    plan.rows["incidents"] = _insert(engine, Incident.__table__, incidents)
    with engine.connect() as conn:
        assert conn.scalar(select(func.max(Incident.id))) == plan.rows["incidents"]
    plan.rows["deliveries"] = _insert(
        engine, Delivery.__table__, _deliveries(plan, blocked, now, rng)
    )
    plan.rows["notification_threads"] = _insert(
        engine, NotificationThread.__table__, _threads(plan, now)
    )
    plan.rows |= {
        "sent": plan.settled * per_incident * len(SENT_ACTIONS),
        "backing_off": plan.backlog * per_incident,
        "blocked": blocked,
        "due": plan.fresh * per_incident,
    }
    return plan
