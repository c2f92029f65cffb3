"""After a vendor outage, the outbox resumes within seconds of the vendor's recovery.

PagerDuty (the TLS stand-in, on the ManualClock that moves with the receiver's FakeClock)
answers 500 for 30 s, then 429 with ``Retry-After: 5`` for 45 s more, then recovers. Incidents
open, grow and resolve meanwhile. Every delivery must go out within a few seconds after the
recovery, exactly once, each incident's in order, with one worker or two.
"""

from __future__ import annotations

from typing import Any

import pytest

from receiver.bootstrap import build_delivery_worker
from receiver.model.alerts import sha256_hex
from receiver.notify.outbox import DeliveryWorker
from tests.support.envs import DeliveryEnv
from tests.support.payloads import critical, group_body
from tests.support.storage import statements

OUTAGE_500, OUTAGE_429, RETRY_AFTER = 30, 45, 5
RECOVERY = OUTAGE_500 + OUTAGE_429
SOON = RETRY_AFTER + 1  # the probe's last 429 asked for RETRY_AFTER; a second to spare
STEP = 0.5  # seconds of worker clock between drains


def firing(k: int, alerts: int = 1) -> dict[str, Any]:
    """Group ``k`` with its first ``alerts`` critical alerts firing."""
    return group_body(
        *[critical(pod=f"pod-{k}", instance=f"i{n}") for n in range(alerts)], key=f"g{k}"
    )


def resolved(k: int) -> dict[str, Any]:
    both = [critical(pod=f"pod-{k}", instance=f"i{n}", status="resolved") for n in range(2)]
    return group_body(*both, key=f"g{k}")


# second -> webhook bodies posted then: five incidents open, each grows by an alert (an
# update), two resolve (their pending update cancelled, a resolve queued)
TIMELINE: dict[float, list[dict[str, Any]]] = {
    0: [firing(0)],
    2: [firing(0, 2)],
    4: [firing(1)],
    6: [firing(1, 2)],
    12: [firing(2)],
    14: [firing(2, 2)],
    20: [resolved(1)],
    35: [firing(3)],
    37: [firing(3, 2)],
    45: [resolved(3)],
    50: [firing(4)],
    52: [firing(4, 2)],
}


def pd_open(env: DeliveryEnv) -> list[list[Any]]:
    return [row for row in env.outbox("pending", "sending") if row[1] == "pd"]


def run_outage(env: DeliveryEnv, workers: list[DeliveryWorker]) -> float:
    """Play the timeline through the outage and past the recovery, draining every worker each
    step, each first in turn (so each sees the outage and has its own probe); return the
    worker-clock second at which no PagerDuty delivery was left open."""
    env.pd.fail(500, seconds=OUTAGE_500)
    env.pd.fail(429, seconds=RECOVERY, retry_after=RETRY_AFTER)  # after the 500s' window
    elapsed, step = 0.0, 0
    while elapsed <= RECOVERY + 120:
        for doc in TIMELINE.get(elapsed, []):
            env.post(doc)
        for n in range(len(workers)):
            workers[(step + n) % len(workers)].drain()
        if elapsed >= RECOVERY and not pd_open(env):
            return elapsed
        env.advance(STEP)
        elapsed, step = elapsed + STEP, step + 1
    raise AssertionError(f"still open two minutes after the recovery: {pd_open(env)}")


def dedup_keys(env: DeliveryEnv) -> dict[int, str]:
    """Incident id -> its PagerDuty dedup key (the group strategy: sha256 of the groupKey)."""
    ids = sorted({d.incident_id for d in env.deliveries()})
    return {i: sha256_hex(env.incident(i)["group"]["group_key"]) for i in ids}


@pytest.mark.parametrize("worker_count", [1, 2])
def test_every_delivery_goes_out_once_and_in_order_within_seconds_of_the_recovery(
    make_env, worker_count
):
    env = make_env({"delivery.backoff_initial_seconds": 2})
    workers = [env.worker] + [build_delivery_worker(env.container) for _ in range(worker_count - 1)]
    for worker in workers:
        worker.rand = lambda: 1.0  # no jitter: the longest backoffs
    settled_at = run_outage(env, workers)
    for worker in workers[1:]:
        worker.close()

    assert settled_at - RECOVERY <= SOON
    accepted = [r["at"] - env.pd.requests[0]["at"] for r in env.pd.requests if r["status"] == 202]
    assert accepted and min(accepted) >= RECOVERY  # nothing got through the outage
    keys = dedup_keys(env)
    sent = [d for d in env.deliveries() if d.receiver == "pd" and d.state == "sent"]
    assert {d.state for d in env.deliveries() if d.receiver == "pd"} <= {"sent", "cancelled"}
    for incident_id, key in keys.items():
        expected = [
            "resolve" if d.action == "resolve" else "trigger"
            for d in sent
            if d.incident_id == incident_id
        ]
        events = [e["event_action"] for e in env.pd.events if e["dedup_key"] == key]
        assert events == expected, incident_id  # each delivery once, in the incident's order
    assert len(env.pd.events) == len(sent)
    assert env.pd.pages == len(keys)


def pd_attempts(env: DeliveryEnv) -> list[list[int | None]]:
    """Status codes of every attempt of each PagerDuty delivery, in queueing order."""
    ids = sorted({d.incident_id for d in env.deliveries()})
    return [codes for i in ids for codes in env.attempts(i, "pd")]


def test_one_delivery_probes_the_down_vendor_while_the_others_back_off(make_env):
    env = make_env({"delivery.backoff_initial_seconds": 2, "delivery.probe_seconds": 2})
    env.worker.rand = lambda: 1.0
    env.pd.fail(500, seconds=60)
    for k in range(3):
        env.post(firing(k))
    for _ in range(int(60 / STEP) + 1):
        env.drain()
        env.advance(STEP)
    # the probe every 2 s (0, 2, ..., 58), the others at 0, 2, 6, 14, 30 (next: 62); the
    # probe's success at 60 makes them due, and they go out at once
    assert pd_attempts(env) == [[500] * 30 + [202], [500] * 5 + [202], [500] * 5 + [202]]
    accepted = [r["at"] - env.pd.requests[0]["at"] for r in env.pd.requests if r["status"] == 202]
    assert accepted == [60, 60, 60]


def releases(engine):
    """The statements that release a receiver's backlog (make its deliveries due now)."""
    return statements(engine, "UPDATE deliveries SET due_at")


def test_sends_to_a_healthy_vendor_cost_no_release_and_a_recovery_costs_one(make_env):
    env = make_env()
    env.post(firing(0))
    with releases(env.container.engine) as first:
        env.drain()
    assert len(first) == 2  # each receiver's first success: a backlog may predate the worker
    for k in range(1, 6):
        env.post(firing(k))
    with releases(env.container.engine) as normal:
        env.drain()
    assert normal == [] and len(env.outbox("sent")) == 12
    env.pd.fail(500, times=1)
    env.post(firing(6))
    with releases(env.container.engine) as recovery:
        env.drain()
        env.advance(2)  # the probe's interval
        env.drain()
    assert len(recovery) == 1
    assert {d.state for d in env.deliveries()} == {"sent"}


def test_a_success_releases_what_another_worker_left_backing_off(make_env):
    """Worker A sees the failures and stops; worker B, healthy so far, sends A's probe when
    it falls due and releases the delivery A left backing off for a minute."""
    env = make_env({"delivery.backoff_initial_seconds": 60})
    other = build_delivery_worker(env.container)
    try:
        env.post(firing(0))
        other.drain()  # B's first success (and release) before the outage
        env.pd.fail(500, times=2)
        env.post(firing(1))
        env.post(firing(2))
        env.worker.rand = lambda: 1.0
        env.drain()  # A: the first failure is its probe (2 s), the second backs off (60 s)
        assert pd_attempts(env) == [[202], [500], [500]]
        env.advance(2)
        other.drain()
    finally:
        other.close()
    assert pd_attempts(env) == [[202], [500, 202], [500, 202]]
    assert {d.state for d in env.deliveries()} == {"sent"}
