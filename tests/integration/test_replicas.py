"""Several replicas on one Postgres: two gunicorn receivers and two ``receiver worker`` processes.

What an HA pair of Alertmanagers does to a replicated receiver: each notification leaves both
peers at about the same time (the bodies differ only in ``externalURL``), one copy lands on each
receiver replica, and every group's notifications follow each other (trigger, repeat, growth,
resolve) while the groups interleave. The recorded ``ha-duplicates`` requests of a recorded set
(each test runs once per set: 0.25's stale firing after its resolve and a peer's copy 52 ms
later; 0.33.1's repeats and a peer's stale firing after the resolve) are posted byte-identical
to both replicas too.
The senders behave like Alertmanager behind a load balancer: a 503 or a connection error is
retried (on the next replica), anything else is final.

Two workers drain the outbox into a PagerDuty stand-in (TLS) and a Slack stand-in, and the
replicas must have behaved like one receiver: one incident per group episode; per PagerDuty
dedup key one page (one alert opened), its trigger first and one resolve last; one Slack message
per incident, edited in place; nothing dead; one receipt per webhook (a 503 stores nothing).
The growth's update re-sends the trigger (PagerDuty merges it into the open alert) unless the
resolve cancels it first; the even groups wait until their update went out before resolving, so
both paths are always taken. The second test SIGKILLs one receiver replica mid-stream;
Alertmanager's retries of what it lost reach the survivor, and still nobody is paged twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from sqlalchemy import Engine, func, select

from receiver.store.db import make_engine
from receiver.store.tables import AlertGroup, Delivery, Incident, WebhookReceipt
from tests.standins.pagerduty import PagerDutyStandIn
from tests.standins.slack import SlackStandIn
from tests.support.api import AUTH
from tests.support.envs import CHANNELS, SLACK_TOKEN, delivery_overrides
from tests.support.payloads import FIXTURE_SETS, alert
from tests.support.servers import Process, Server, gunicorn, receiver_env, started

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

GROUPS = 10
UPDATE_FIRST = range(0, GROUPS, 2)
CHANNEL_ID = CHANNELS["#triton-alerts"]
PEERS = ("http://alertmanager-0.example:9093", "http://alertmanager-1.example:9093")
STEPS = ("trigger", "repeat", "growth", "resolve")
WORKER = [sys.executable, "-m", "receiver.cli", "worker", "--poll", "0.1"]
HEADERS = {**AUTH, "Content-Type": "application/json", "User-Agent": "Alertmanager/0.25.0"}
POST_DEADLINE = 20.0  # Alertmanager gives up after max(group_interval, 10 s); so do we, roughly
DRAIN_DEADLINE = 30.0
# (new, duplicate, resolved, stale) summed over the two copies of each step: whichever replica
# wins the group's row lock, the two answers together always say this
SYNTHETIC_SUMS = {
    "trigger": (1, 1, 0, 0),
    "repeat": (0, 2, 0, 0),
    "growth": (1, 3, 0, 0),
    "resolve": (0, 2, 2, 0),
}
SENT = [("trigger", "sent")]
SENT_AND_RESOLVED = [("trigger", "sent"), ("resolve", "sent")]


@dataclass(frozen=True)
class RecordedGroup:
    """A group of a recorded ha-duplicates folder and what the replicas must leave of it."""

    first: int  # the index of its first request in the folder
    status: str  # of its one incident
    alerts: int  # and as many episodes
    notifications: int  # each of its requests once per replica
    plan: dict[str, list[tuple[str, str]]]  # the outbox rows (action, state) per receiver


# per set: (new, duplicate, resolved, stale) summed over the two copies of each request, and the
# groups. 0.25's folder: the flapping GPU episode on triton-gpu-max2 (Slack only: firing,
# resolve, the peer's stale firing and resolve) and the critical llama2_7b group from both nodes
# after the outage, its resolve not in the folder (PagerDuty and Slack, still firing). 0.33.1's:
# only that critical group, from :19093 (first notification, new alerts added and a repeat, all
# of the same two alerts; the resolve), then :19094's stale firing and resolve: it resolves.
RECORDED = {
    "0.25": (
        [(1, 1, 0, 0), (0, 1, 1, 0), (0, 0, 0, 2), (0, 2, 0, 0), (2, 2, 0, 0), (0, 4, 0, 0)],
        [
            RecordedGroup(0, "resolved", 1, 8, {"slack": SENT_AND_RESOLVED}),
            RecordedGroup(4, "firing", 2, 4, {"pd": SENT, "slack": SENT}),
        ],
    ),
    "0.33.1": (
        [(2, 2, 0, 0), (0, 4, 0, 0), (0, 4, 0, 0), (0, 2, 2, 0), (0, 0, 0, 4), (0, 4, 0, 0)],
        [
            RecordedGroup(
                0, "resolved", 2, 12, {"pd": SENT_AND_RESOLVED, "slack": SENT_AND_RESOLVED}
            )
        ],
    ),
}


# -- the webhooks -----------------------------------------------------------------------------


def group_key(n: int) -> str:
    return f'{{}}/{{severity="critical"}}:{{group="g{n:02d}"}}'


def synthetic_doc(n: int, step: str, peer: int) -> dict[str, Any]:
    """Group ``n``'s notification at ``step`` as HA peer ``peer`` sends it."""
    labels = {"severity": "critical", "model": f"model-{n:02d}", "group": f"g{n:02d}"}
    status = "resolved" if step == "resolve" else "firing"
    ends = 30 if step == "resolve" else None  # the resolve ends both alerts: the group resolved

    def one(instance: int, starts: int) -> dict[str, Any]:
        where = f"10.0.{n}.{instance}:8002"
        return alert("TritonHighErrorRate", status, starts, ends, instance=where, **labels)

    alerts = [one(1, n)] if step in ("trigger", "repeat") else [one(1, n), one(2, n + 1)]
    common = {
        k: v for k, v in alerts[0]["labels"].items() if all(a["labels"][k] == v for a in alerts)
    }
    return {
        "receiver": "triton-critical",
        "status": status,
        "alerts": alerts,
        "groupLabels": {"group": f"g{n:02d}"},
        "commonLabels": common,
        "commonAnnotations": alerts[0]["annotations"] if len(alerts) == 1 else {},
        "externalURL": PEERS[peer],
        "version": "4",
        "groupKey": group_key(n),
        "truncatedAlerts": 0,
    }


@dataclass
class Post:
    """One webhook request as Alertmanager sends it, with every try it took."""

    label: str  # "g03 growth" or "ha 005"
    path: str
    body: bytes
    first: int  # index of the replica it goes to first
    tries: list[tuple[str, int | str]] = field(default_factory=list)
    status: int | None = None
    answer: dict[str, Any] | None = None

    @property
    def sums(self) -> tuple[int, int, int, int]:
        a = self.answer or {}
        return a.get("new", 0), a.get("duplicate", 0), a.get("resolved", 0), a.get("stale", 0)


Step = list[Post] | Callable[[], None]  # posts sent at once, all answered; or a wait
Sequence = list[Step]


def synthetic_sequences(wait_update_sent: Callable[[int], None]) -> list[Sequence]:
    """Per group: trigger, repeat, growth, resolve; each step once from each peer. The groups in
    UPDATE_FIRST resolve only once their growth update went out (so an update is sent, then the
    resolve); the others resolve at once (the update is sent or absorbed by the resolve)."""
    path = "/api/v1/alertmanager/triton-critical"
    sequences: list[Sequence] = []
    for n in range(GROUPS):
        sequence: Sequence = []
        for step in STEPS:
            if step == "resolve" and n in UPDATE_FIRST:
                sequence.append(lambda n=n: wait_update_sent(n))
            label = f"g{n:02d} {step}"
            bodies = [json.dumps(synthetic_doc(n, step, peer)).encode() for peer in (0, 1)]
            sequence.append([Post(label, path, body, peer) for peer, body in enumerate(bodies)])
        sequences.append(sequence)
    return sequences


def recorded_items(version: str) -> list[dict[str, Any]]:
    folder = FIXTURE_SETS[version] / "ha-duplicates"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("[0-9][0-9][0-9].json"))]


def recorded_sequence(version: str) -> Sequence:
    """A set's ha-duplicates requests in order, each posted byte-identical to both replicas."""
    steps = []
    for i, item in enumerate(recorded_items(version)):
        receiver = item["path"].rsplit("/", 1)[-1]
        path = f"/api/v1/alertmanager/{receiver}"
        body = item["body_raw"].encode()
        steps.append([Post(f"ha {i + 1:03d}", path, body, replica) for replica in (0, 1)])
    return steps


# -- the processes ----------------------------------------------------------------------------


@dataclass
class Replica:
    name: str
    url: str
    process: Process


@dataclass
class Deployment:
    replicas: list[Replica]
    workers: list[Process]
    pagerduty: PagerDutyStandIn
    slack: SlackStandIn
    engine: Engine

    def wait_update_sent(self, n: int) -> None:
        """Poll until group ``n``'s update went out to both receivers."""
        query = (
            select(Delivery.receiver)
            .join(Incident, Incident.id == Delivery.incident_id)
            .join(AlertGroup, AlertGroup.id == Incident.group_id)
            .where(AlertGroup.group_key == group_key(n), Delivery.action == "update")
            .where(Delivery.state == "sent")
        )
        deadline = time.monotonic() + DRAIN_DEADLINE
        while True:
            with self.engine.connect() as conn:
                sent = set(conn.scalars(query))
            if sent == {"pd", "slack"}:
                return
            assert time.monotonic() < deadline, f"g{n:02d}: update sent only to {sent}"
            time.sleep(0.05)


def nested(overrides: dict[str, Any]) -> dict[str, Any]:
    """Dotted override keys (``delivery.coalesce_seconds``) as a YAML document."""
    doc: dict[str, Any] = {}
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = doc
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return doc


def start_together(
    stack: ExitStack, managers: list[AbstractContextManager[Server]]
) -> list[Server]:
    """Enter the servers' context managers at once (each waits until its server is ready);
    every one that started is exited by ``stack``, also when another one failed to start."""
    with ThreadPoolExecutor(len(managers)) as pool:
        futures = [pool.submit(manager.__enter__) for manager in managers]
    for manager, future in zip(managers, futures, strict=True):
        if future.exception() is None:
            stack.push(manager)
    return [future.result() for future in futures]


@pytest.fixture
def deployment(tmp_path: Path, pg_url: str) -> Iterator[Deployment]:
    """Stand-ins, two gunicorn receivers (2 workers each) and two workers on one database."""
    with ExitStack() as stack:
        pd = stack.enter_context(PagerDutyStandIn())
        slack = stack.enter_context(SlackStandIn(SLACK_TOKEN, CHANNELS, rate_limit=False))
        config = tmp_path / "receiver.yaml"
        doc = {"database_url": pg_url, **nested(delivery_overrides(pd, slack))}
        config.write_text(yaml.safe_dump(doc), encoding="utf-8")
        engine = make_engine(pg_url)
        stack.callback(engine.dispose)
        servers = start_together(stack, [gunicorn(pg_url, config=config) for _ in "AB"])
        replicas = [Replica(n, s.url, s.process) for n, s in zip("AB", servers, strict=True)]
        workers = [stack.enter_context(started(WORKER, receiver_env(config=config))) for _ in "12"]
        yield Deployment(replicas, workers, pd, slack, engine)
    assert pd.errors == [], "the PagerDuty stand-in failed while handling a request"
    assert slack.errors == [], "the Slack stand-in failed while handling a request"


# -- sending like Alertmanager ----------------------------------------------------------------


class Feed:
    """Posts webhooks as Alertmanager does behind a load balancer: a 503 or a network error is
    retried with backoff (on the next replica) until POST_DEADLINE; any other answer is final."""

    def __init__(self, replicas: list[Replica]) -> None:
        self.replicas = replicas
        self.done: list[Post] = []
        self.changed = threading.Condition()

    def send(self, post: Post) -> None:
        deadline = time.monotonic() + POST_DEADLINE
        attempt = 0
        while True:
            replica = self.replicas[(post.first + attempt) % len(self.replicas)]
            try:
                response = requests.post(
                    replica.url + post.path, data=post.body, headers=HEADERS, timeout=30
                )
            except requests.RequestException as exc:
                refused = "refused" in str(exc).lower()  # not sent; else dropped in flight
                post.tries.append((replica.name, "refused" if refused else type(exc).__name__))
            else:
                post.tries.append((replica.name, response.status_code))
                if response.status_code != 503:
                    post.status = response.status_code
                    if response.status_code == 200:
                        post.answer = response.json()
                    break
            attempt += 1
            if time.monotonic() > deadline:
                break
            time.sleep(min(0.025 * 2**attempt, 0.5))  # retry backoff, not synchronisation
        with self.changed:
            self.done.append(post)
            self.changed.notify_all()

    def run(self, sequences: list[Sequence]) -> None:
        """Every sequence in its own thread, released together; each step's posts at once."""
        start = threading.Barrier(len(sequences))
        width = max(
            len(step) for sequence in sequences for step in sequence if isinstance(step, list)
        )
        with ThreadPoolExecutor(len(sequences) * width) as pool:

            def drive(sequence: Sequence) -> None:
                start.wait(timeout=30)
                for step in sequence:
                    if callable(step):
                        step()
                        continue
                    for future in [pool.submit(self.send, post) for post in step]:
                        future.result()

            with ThreadPoolExecutor(len(sequences)) as drivers:
                for future in [drivers.submit(drive, s) for s in sequences]:
                    future.result()


def all_posts(sequences: list[Sequence]) -> list[Post]:
    return [
        p for sequence in sequences for step in sequence if isinstance(step, list) for p in step
    ]


def assert_every_webhook_answered_2xx(posts: list[Post]) -> None:
    final = {p.label + f" #{p.first}": (p.status, p.tries) for p in posts if p.status != 200}
    assert final == {}, "webhooks not stored (the tries of each)"
    for post in posts:
        codes = [code for _, code in post.tries]
        assert 500 not in codes, f"{post.label}: an internal error {post.tries}"
        assert all(c in (200, 503) or isinstance(c, str) for c in codes), post.tries


def assert_answer_sums(posts: list[Post], version: str) -> None:
    by_step: dict[str, list[int]] = {}
    for post in posts:
        sums = by_step.setdefault(post.label, [0, 0, 0, 0])
        for i, value in enumerate(post.sums):
            sums[i] += value
    expected = {
        f"g{n:02d} {step}": list(SYNTHETIC_SUMS[step]) for n in range(GROUPS) for step in STEPS
    }
    expected.update({f"ha {i + 1:03d}": list(s) for i, s in enumerate(RECORDED[version][0])})
    assert by_step == expected


# -- waiting and reading ----------------------------------------------------------------------


def read_db(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        groups = {row.id: row.group_key for row in conn.execute(select(AlertGroup.__table__))}
        incidents = [dict(r._mapping) for r in conn.execute(select(Incident.__table__))]
        deliveries = [
            dict(r._mapping) for r in conn.execute(select(Delivery.__table__).order_by(Delivery.id))
        ]
        receipts = conn.scalar(select(func.count()).select_from(WebhookReceipt))
    return {
        "groups": groups,
        "incidents": incidents,
        "deliveries": deliveries,
        "receipts": receipts,
    }


def wait_drained(env: Deployment) -> dict[str, Any]:
    """Poll until no delivery is pending or sending; fail if a worker exits or at the deadline."""
    deadline = time.monotonic() + DRAIN_DEADLINE
    while True:
        state = read_db(env.engine)
        open_rows = [d for d in state["deliveries"] if d["state"] in ("pending", "sending")]
        if not open_rows:
            return state
        for worker in env.workers:
            if worker.popen.poll() is not None:
                pytest.fail(f"a worker exited:\n{worker.stderr()}", pytrace=False)
        if time.monotonic() > deadline:
            rows = [(d["idempotency_key"], d["state"], d["last_error"]) for d in open_rows]
            logs = "".join(f"\n--- worker stderr ---\n{w.stderr()[-3000:]}" for w in env.workers)
            pytest.fail(f"outbox not drained in {DRAIN_DEADLINE:g} s: {rows}{logs}", pytrace=False)
        time.sleep(0.05)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Outcome:
    """What the test reports: retries seen and how the update deliveries went."""

    retried_503: int = 0
    rerouted: int = 0
    network_errors: Counter[str] = field(default_factory=Counter)
    stored_unanswered: int = 0  # receipts beyond the 2xx answers: stored, then the replica died
    updates: Counter[str] = field(default_factory=Counter)

    def __str__(self) -> str:
        return (
            f"503s retried: {self.retried_503}; posts rerouted after a network error: "
            f"{self.rerouted} {dict(self.network_errors)}; stored but unanswered: "
            f"{self.stored_unanswered}; update deliveries: {dict(self.updates)}"
        )


def assert_replicas_acted_as_one(
    env: Deployment, state: dict[str, Any], posts: list[Post], exact_counts: bool, version: str
) -> Outcome:
    """One incident per group episode, one page and one resolve per dedup key, one Slack message
    per incident, nothing dead; with ``exact_counts``, exact notification and receipt counts."""
    outcome = Outcome()
    recorded = [json.loads(item["body_raw"]) for item in recorded_items(version)]
    recorded_groups = {recorded[g.first]["groupKey"]: g for g in RECORDED[version][1]}
    synthetic_keys = [group_key(n) for n in range(GROUPS)]
    groups = state["groups"]
    assert sorted(groups.values()) == sorted([*synthetic_keys, *recorded_groups])

    # one incident per group episode, in the state the last notification left it
    by_key: dict[str, list[dict[str, Any]]] = {key: [] for key in groups.values()}
    for incident in state["incidents"]:
        by_key[groups[incident["group_id"]]].append(incident)
    assert {k: len(v) for k, v in by_key.items()} == {k: 1 for k in by_key}
    incident_of = {key: rows[0] for key, rows in by_key.items()}
    shape = {
        key: (i["status"], i["alert_count"], i["episode_count"], i["opened_by_resolve"])
        for key, i in incident_of.items()
    }
    assert shape == {
        **{key: ("resolved", 2, 2, False) for key in synthetic_keys},
        **{key: (g.status, g.alerts, g.alerts, False) for key, g in recorded_groups.items()},
    }
    notifications = {key: i["notification_count"] for key, i in incident_of.items()}
    expected_notifications = {
        **{k: 2 * len(STEPS) for k in synthetic_keys},
        **{key: g.notifications for key, g in recorded_groups.items()},
    }
    lost = sum(1 for p in posts for _, code in p.tries if isinstance(code, str))
    answered = sum(1 for p in posts if p.status == 200)
    if exact_counts:
        assert notifications == expected_notifications
        assert {k: incident_of[k]["duplicate_count"] for k in synthetic_keys} == {
            k: 5 for k in synthetic_keys
        }
        assert state["receipts"] == answered == len(posts)
    else:  # a request the killed replica stored but never answered is retried: one more receipt
        assert all(
            expected_notifications[k] <= n <= expected_notifications[k] + lost
            for k, n in notifications.items()
        ), (notifications, lost)
        assert answered == len(posts)
        assert answered <= state["receipts"] <= answered + lost

    # the outbox: one trigger and one resolve per routed receiver, updates sent or absorbed
    dead = [d["idempotency_key"] for d in state["deliveries"] if d["state"] == "dead"]
    assert dead == []
    plan: dict[tuple[str, str], list[tuple[str, str]]] = {}
    key_of_incident = {i["id"]: groups[i["group_id"]] for i in state["incidents"]}
    for d in state["deliveries"]:
        plan.setdefault((key_of_incident[d["incident_id"]], d["receiver"]), []).append(
            (d["action"], d["state"])
        )
    for (key, receiver), rows in plan.items():
        if key in synthetic_keys:
            assert rows[0] == ("trigger", "sent") and rows[-1] == ("resolve", "sent"), rows
            middle = rows[1:-1]
            assert len(middle) == 1 and middle[0][0] == "update", rows  # one growth, one update
            assert middle[0][1] in ("sent", "cancelled"), rows  # cancelled: the resolve won
            if key in (group_key(n) for n in UPDATE_FIRST):
                assert middle[0][1] == "sent", rows
            outcome.updates[f"{receiver} {middle[0][1]}"] += 1
    assert sorted(plan) == sorted(
        [
            *((k, r) for k in synthetic_keys for r in ("pd", "slack")),
            *((key, r) for key, g in recorded_groups.items() for r in g.plan),
        ]
    )
    for key, g in recorded_groups.items():
        for receiver, rows in g.plan.items():
            assert plan[(key, receiver)] == rows, (key, receiver)

    # PagerDuty: one alert (page) per dedup key; its trigger first, its one resolve last
    pd = env.pagerduty
    assert all(r["status"] == 202 for r in pd.requests), [r["status"] for r in pd.requests]
    actions: dict[str, list[str]] = {}
    for event in pd.events:
        actions.setdefault(event["dedup_key"], []).append(event["event_action"])
    paged = {key: g for key, g in recorded_groups.items() if "pd" in g.plan}
    expected_keys = {sha256(k) for k in [*synthetic_keys, *paged]}
    assert set(actions) == expected_keys
    pages = Counter(a["dedup_key"] for a in pd.alerts())
    assert pages == Counter(expected_keys), "a dedup key paged twice (or never)"
    assert pd.pages == GROUPS + len(paged)
    for key in synthetic_keys:
        sent_updates = plan[(key, "pd")].count(("update", "sent"))
        assert actions[sha256(key)] == ["trigger"] * (1 + sent_updates) + ["resolve"], key
    for key, g in paged.items():
        assert actions[sha256(key)] == [action for action, _ in g.plan["pd"]], key
    status = {a["dedup_key"]: a["status"] for a in pd.alerts()}
    assert status == {
        **{sha256(k): "resolved" for k in synthetic_keys},
        **{
            sha256(k): "triggered" if g.status == "firing" else "resolved" for k, g in paged.items()
        },
    }

    # Slack: one message per incident, its later deliveries edits of that same message
    slack = env.slack
    assert all(c["status"] == 200 and c["response"]["ok"] for c in slack.calls), slack.calls
    top_posts = [
        c
        for c in slack.calls
        if c["method"] == "chat.postMessage"
        and "thread_ts" not in {**c["params"], **(c["json"] or {})}
    ]
    assert {c["method"] for c in slack.calls} == {"chat.postMessage", "chat.update"}
    messages = slack.messages(CHANNEL_ID)
    assert len(top_posts) == len(messages) == GROUPS + len(recorded_groups)
    slack_triggers = {
        d["idempotency_key"]: key_of_incident[d["incident_id"]]
        for d in state["deliveries"]
        if d["receiver"] == "slack" and d["action"] == "trigger"
    }
    message_keys = [m["metadata"]["event_payload"]["key"] for m in messages]
    assert sorted(message_keys) == sorted(slack_triggers)
    for message in messages:
        key = slack_triggers[message["metadata"]["event_payload"]["key"]]
        edits = sum(1 for _action, st in plan[(key, "slack")][1:] if st == "sent")
        assert len(message["updates"]) == edits, (key, message["updates"])
        firing = key in recorded_groups and recorded_groups[key].status == "firing"
        prefix = "[FIRING]" if firing else "[RESOLVED]"
        assert message["text"].startswith(prefix), message["text"]

    outcome.retried_503 = sum(1 for p in posts for _, code in p.tries if code == 503)
    outcome.rerouted = sum(1 for p in posts if any(isinstance(c, str) for _, c in p.tries))
    outcome.network_errors.update(c for p in posts for _, c in p.tries if isinstance(c, str))
    outcome.stored_unanswered = state["receipts"] - answered
    return outcome


# -- the tests --------------------------------------------------------------------------------


@pytest.mark.parametrize("version", FIXTURE_SETS)
def test_two_receivers_and_two_workers_on_one_postgres_act_as_one_receiver(
    deployment: Deployment, version: str
) -> None:
    sequences = [*synthetic_sequences(deployment.wait_update_sent), recorded_sequence(version)]
    posts = all_posts(sequences)
    assert len(posts) == GROUPS * len(STEPS) * 2 + 6 * 2

    Feed(deployment.replicas).run(sequences)

    assert_every_webhook_answered_2xx(posts)
    assert_answer_sums(posts, version)
    served = Counter(name for p in posts for name, code in p.tries if code == 200)
    assert served["A"] > 0 and served["B"] > 0
    state = wait_drained(deployment)
    outcome = assert_replicas_acted_as_one(
        deployment, state, posts, exact_counts=True, version=version
    )
    assert outcome.rerouted == 0
    print(f"\nreplicas: {len(posts)} webhooks; {outcome}")


@contextmanager
def killed_after(feed: Feed, answered: int, replica: Replica) -> Iterator[None]:
    """SIGKILL ``replica``'s process group (gunicorn and its workers) from a thread of its own
    once ``answered`` webhooks are answered, while the block keeps sending."""
    errors: list[BaseException] = []
    cancelled = threading.Event()

    def due() -> bool:
        return cancelled.is_set() or len(feed.done) >= answered

    def run() -> None:
        try:
            with feed.changed:
                assert feed.changed.wait_for(due, POST_DEADLINE * 2), "too few answers to kill"
            if not cancelled.is_set():
                os.killpg(replica.process.pid, signal.SIGKILL)
                assert replica.process.popen.wait(timeout=10) == -signal.SIGKILL
        except BaseException as exc:  # raised in the test's thread below
            errors.append(exc)

    thread = threading.Thread(target=run, name="killer")
    thread.start()
    try:
        yield
    except BaseException:
        cancelled.set()
        with feed.changed:
            feed.changed.notify_all()
        raise
    finally:
        thread.join(timeout=POST_DEADLINE * 3)
        assert not thread.is_alive()
    if errors:
        raise errors[0]


@pytest.mark.parametrize("version", FIXTURE_SETS)
def test_a_replica_killed_mid_stream_loses_nothing_and_pages_nobody_twice(
    deployment: Deployment, version: str
) -> None:
    sequences = [*synthetic_sequences(deployment.wait_update_sent), recorded_sequence(version)]
    posts = all_posts(sequences)
    feed = Feed(deployment.replicas)
    doomed, survivor = deployment.replicas
    with killed_after(feed, len(posts) // 3, doomed):
        feed.run(sequences)

    assert not doomed.process.group_alive()
    assert requests.get(survivor.url + "/readyz", timeout=5).status_code == 200
    assert_every_webhook_answered_2xx(posts)
    served = Counter(name for p in posts for name, code in p.tries if code == 200)
    assert served["A"] > 0, "the replica died before it answered anything"
    state = wait_drained(deployment)
    outcome = assert_replicas_acted_as_one(
        deployment, state, posts, exact_counts=False, version=version
    )
    assert outcome.rerouted > 0, "nothing was sent to the killed replica after it died"
    after_kill = [p for p in posts if any(isinstance(c, str) for _, c in p.tries)]
    assert all(p.tries[-1] == ("B", 200) for p in after_kill), [p.tries for p in after_kill]
    print(f"\nreplica killed: {len(posts)} webhooks, served {dict(served)}; {outcome}")
