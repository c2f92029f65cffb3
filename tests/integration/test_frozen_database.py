"""A Postgres that stops answering without closing its connections (a frozen process, a proxy
that lost its upstream): a real TCP proxy in front of the real server freezes, the receiver
(real gunicorn, and a real worker) talks to the server through it with its default timeouts.

Requests must get 503 within seconds (not hang until gunicorn kills the worker at 30 s),
``/readyz`` must say why it is not ready, the worker must keep looping and log the outage once,
and everything must work again after the thaw without a restart, with nothing half-written.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
import yaml
from sqlalchemy import Engine, select
from sqlalchemy.engine import make_url

from receiver.app import create_app
from receiver.bootstrap import bootstrap
from receiver.settings import load_settings
from receiver.store.db import make_engine
from receiver.store.tables import Delivery
from tests.support.api import AUTH, TOKEN, WEBHOOKS
from tests.support.payloads import alert, webhook
from tests.support.servers import Process, gunicorn, receiver_env, started
from tests.support.storage import row_count
from tests.support.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

# the defaults answer within about 6 s (statement timeout 5 s + 1 s, or connect timeout 5 s);
# far below gunicorn's 30 s, generous enough for a loaded test machine
ANSWER_WITHIN = 15.0
DEADLINE = 60.0  # for what happens after the thaw, and for the worker's log lines
HOOK = "/api/v1/alertmanager/team-a"


def through(proxy: TcpProxy, url: str) -> str:
    """``url`` with its host and port those of ``proxy``."""
    parsed = make_url(url).set(host="127.0.0.1", port=proxy.port)
    return parsed.render_as_string(hide_password=False)


@pytest.fixture
def proxy(pg_url: str) -> Iterator[TcpProxy]:
    with TcpProxy(make_url(pg_url).port or 5432, make_url(pg_url).host or "127.0.0.1") as p:
        yield p


@pytest.fixture
def direct(pg_url: str) -> Iterator[Engine]:
    """An engine on the database itself, not through the proxy: what is really stored."""
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


def body(name: str, alerts: int) -> str:
    firing = [alert(name, instance=f"host-{n}") for n in range(alerts)]
    return json.dumps(webhook(*firing, group_key=f"{{}}:{{alertname={name}}}"))


def post(url: str, text: str) -> tuple[requests.Response, float]:
    """POST a webhook; the answer and how long it took (ReadTimeout past 25 s)."""
    started_at = time.monotonic()
    headers = {**AUTH, "Content-Type": "application/json"}
    answer = requests.post(url + HOOK, data=text, headers=headers, timeout=25)
    return answer, time.monotonic() - started_at


def timed_get(url: str) -> tuple[requests.Response, float]:
    started_at = time.monotonic()
    answer = requests.get(url, timeout=25)
    return answer, time.monotonic() - started_at


def poll(what: str, condition: Callable[[], bool], *processes: Process) -> None:
    """Wait for ``condition`` (deadline ``DEADLINE``); fail early if a process exits."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        for process in processes:
            if process.popen.poll() is not None:
                pytest.fail(f"exited while waiting for {what}:\n{process.stderr()}", pytrace=False)
        if time.monotonic() > deadline:
            output = "".join(p.stderr()[-3000:] for p in processes)
            pytest.fail(f"no {what} within {DEADLINE:g} s\n{output}", pytrace=False)
        time.sleep(0.1)


def ready(url: str) -> bool:
    try:
        return requests.get(url + "/readyz", timeout=25).status_code == 200
    except requests.RequestException:
        return False


def test_a_frozen_postgres_gets_503_within_seconds_and_200_again_after_the_thaw(
    proxy: TcpProxy, pg_url: str, direct: Engine
) -> None:
    with gunicorn(through(proxy, pg_url)) as server:
        before, _ = post(server.url, body("DiskFull", 3))
        assert before.status_code == 200, before.text

        proxy.freeze()
        during, took = post(server.url, body("GpuHot", 2))
        assert during.status_code == 503, during.text
        assert during.json()["error"] == "storage_unavailable"
        assert took < ANSWER_WITHIN, f"503 only after {took:.1f} s"

        readiness, took = timed_get(server.url + "/readyz")
        assert readiness.status_code == 503 and took < ANSWER_WITHIN, (took, readiness.text)
        reason = readiness.json()["reason"]
        assert reason.startswith("database unavailable: ") and TOKEN not in reason

        listing, took = timed_get(server.url + "/api/v1/incidents")
        assert listing.status_code == 503 and took < ANSWER_WITHIN, (took, listing.text)
        assert listing.json()["error"] == "storage_unavailable"

        # the counters, without the gauges (each gunicorn worker's own: no multiprocess dir)
        scrape, took = timed_get(server.url + "/metrics")
        assert scrape.status_code == 200 and took < ANSWER_WITHIN, took
        assert f"# TYPE {WEBHOOKS} counter" in scrape.text
        assert "receiver_open_incidents" not in scrape.text

        proxy.thaw()
        poll("/readyz 200 after the thaw", lambda: ready(server.url), server.process)
        after, _ = post(server.url, body("GpuHot", 2))
        assert after.status_code == 200, after.text
        assert after.json()["new"] == 2

    # the frozen attempt left nothing: each webhook is stored once, whole
    assert {name: row_count(direct, name) for name in STORED} == {
        "alert_groups": 2,
        "incidents": 2,
        "alert_episodes": 5,
        "webhook_receipts": 2,
        "incident_receipts": 2,
    }


STORED = ("alert_groups", "incidents", "alert_episodes", "webhook_receipts", "incident_receipts")


def worker_config(tmp_path: Path, database_url: str) -> Path:
    """One PagerDuty receiver for everything, deliveries dry (rendered, recorded, not sent)."""
    config = {
        "database_url": database_url,
        "auth": {"bearer_tokens": [TOKEN]},
        "receivers": {"pd": {"type": "pagerduty", "routing_key": "r" * 32}},
        "default_receivers": ["pd"],
        "delivery": {"dry_run": True, "coalesce_seconds": 0},
        "log_level": "DEBUG",
        "log_format": "text",
    }
    path = tmp_path / "receiver.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def store(config: Path, pg_url: str, text: str) -> None:
    """Store a webhook straight into the database (not through the proxy)."""
    settings = load_settings(config, environ={}).model_copy(update={"database_url": pg_url})
    headers = {**AUTH, "Content-Type": "application/json"}
    with bootstrap(settings) as container:
        client = create_app(container=container).test_client()
        answer = client.post(HOOK, data=text, headers=headers)
        assert answer.status_code == 200, answer.get_data(as_text=True)


def delivery_states(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(Delivery.state).order_by(Delivery.id)).scalars())


def lines(process: Process, text: str) -> int:
    return sum(text in line for line in process.stderr().splitlines())


def test_the_worker_keeps_looping_through_a_freeze_logs_it_once_and_resumes(
    proxy: TcpProxy, pg_url: str, direct: Engine, tmp_path: Path
) -> None:
    config = worker_config(tmp_path, through(proxy, pg_url))
    command = [sys.executable, "-m", "receiver.cli", "worker", "--poll", "0.1"]
    with started(command, receiver_env(tokens=(), config=config)) as worker:
        store(config, pg_url, body("DiskFull", 1))
        poll("the first delivery", lambda: delivery_states(direct) == ["sent"], worker)

        proxy.freeze()
        store(config, pg_url, body("GpuHot", 1))  # due now; the worker cannot see it yet
        # passes go on, each step failing within its timeouts: logged once, then quietly
        poll("a warning", lambda: lines(worker, "database unavailable (") == 1, worker)
        poll("three failed passes", lambda: lines(worker, "still unavailable") >= 2, worker)
        assert lines(worker, "database unavailable (") == 1
        assert delivery_states(direct) == ["sent", "pending"]

        proxy.thaw()
        both_sent = ["sent", "sent"]
        poll("the frozen time's delivery", lambda: delivery_states(direct) == both_sent, worker)
        poll("the end of the outage logged", lambda: lines(worker, "answers again") == 1, worker)
        assert worker.popen.poll() is None, "the worker is still running"
        assert lines(worker, "database unavailable (") == 1
