"""The receiver's own observability: request ids, traces carried to deliveries, JSON log lines,
/metrics with the store gauges, and metrics added up across gunicorn workers and the worker."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from receiver.app import create_app
from receiver.bootstrap import bootstrap, build_delivery_worker
from receiver.logs import ContextFilter, JsonFormatter
from tests.support.api import AUTH, post_webhook
from tests.support.payloads import alert, webhook
from tests.support.servers import BIN, free_port, receiver_env, started, wait_ready

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"
DRY = {
    "receivers": {
        "pd": {"type": "pagerduty", "routing_key": "k" * 32, "base_url": "https://127.0.0.1:9"}
    },
    "default_receivers": ["pd"],
    "delivery.dry_run": True,
}


def error_rate_webhook(model: str = "llama") -> str:
    """A firing critical TritonHighErrorRate of ``model``, grouped by model."""
    entry = alert("TritonHighErrorRate", starts=10, severity="critical", model=model)
    return json.dumps(webhook(entry, receiver="triton", group_key=f'{{}}:{{model="{model}"}}'))


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    """Every log line written meanwhile, as the JSON the receiver writes in production."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.fixture
def env(make_settings, clock):
    container = bootstrap(make_settings(DRY), clock=clock)
    yield container, create_app(container=container).test_client()
    container.engine.dispose()


def test_a_webhook_continues_the_senders_trace_and_answers_with_ids(env, logged):
    _, client = env
    answer = post_webhook(
        client,
        error_rate_webhook(),
        "triton",
        headers={"traceparent": TRACEPARENT, "X-Request-ID": "am-7"},
    )
    assert answer.status_code == 200
    assert answer.headers["X-Request-ID"] == "am-7"
    ours = answer.headers["traceparent"].split("-")
    assert ours[1] == TRACE and ours[2] != "00f067aa0ba902b7"  # same trace, a span of our own
    (access,) = [r for r in lines(logged) if r["logger"] == "receiver.access"]
    assert access["message"] == "POST /api/v1/alertmanager/triton 200"
    assert (access["request_id"], access["trace_id"], access["status"]) == ("am-7", TRACE, 200)
    assert access["latency_ms"] > 0


def test_without_a_traceparent_a_trace_is_started_and_a_request_id_made(env):
    _, client = env
    answer = post_webhook(
        client, error_rate_webhook(), "triton", headers={"X-Request-ID": "bad id!"}
    )
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", answer.headers["traceparent"])
    assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["X-Request-ID"])  # bad one replaced


def test_deliveries_carry_the_webhooks_trace_into_the_workers_log_lines(env, logged):
    container, client = env
    post_webhook(client, error_rate_webhook(), "triton", headers={"traceparent": TRACEPARENT})
    worker = build_delivery_worker(container)
    try:
        assert worker.drain() == 1
    finally:
        worker.close()
    (sent,) = [r for r in lines(logged) if r["logger"] == "receiver.notify.outbox"]
    assert sent["trace_id"] == TRACE
    assert (sent["outcome"], sent["action"], sent["receiver"]) == ("ok", "trigger", "pd")
    assert sent["delivery_id"] and sent["incident_id"] and "latency_ms" in sent
    assert "k" * 32 not in logged.getvalue()  # the routing key never reaches a log line


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_show_the_outbox_open_incidents_and_delivery_latency(env, clock):
    container, client = env
    post_webhook(client, error_rate_webhook(), "triton")
    clock.advance(seconds=30)  # the worker sends it 30 s after the webhook
    before = samples(client.get("/metrics").get_data(as_text=True))
    assert (
        before[("receiver_outbox_deliveries", (("kind", "pagerduty"), ("state", "pending")))] == 1
    )
    assert before[("receiver_outbox_oldest_due_seconds", ())] == 30
    assert before[("receiver_open_incidents", (("severity", "critical"),))] == 1
    worker = build_delivery_worker(container)
    try:
        worker.drain()
    finally:
        worker.close()
    after = samples(client.get("/metrics").get_data(as_text=True))
    assert (
        "receiver_outbox_deliveries",
        (("kind", "pagerduty"), ("state", "pending")),
    ) not in after
    assert after[("receiver_delivery_latency_seconds_count", (("kind", "pagerduty"),))] == 1
    assert after[("receiver_delivery_latency_seconds_sum", (("kind", "pagerduty"),))] == 30
    assert after[("receiver_webhooks_total", (("receiver", "triton"), ("result", "stored")))] == 1


def test_metrics_still_answer_with_the_counters_when_the_database_is_down(make_settings, clock):
    settings = make_settings({"database_url": f"postgresql://postgres@127.0.0.1:{free_port()}/x"})
    container = bootstrap(settings, clock=clock)
    try:
        answer = create_app(container=container).test_client().get("/metrics")
        assert answer.status_code == 200
        text = answer.get_data(as_text=True)
        assert "receiver_intake_duration_seconds" in text
        assert "receiver_outbox_deliveries" not in text
    finally:
        container.engine.dispose()


@pytest.mark.slow
def test_serve_adds_up_the_counters_of_every_gunicorn_worker_and_the_worker(tmp_path: Path):
    port = free_port()
    config = tmp_path / "receiver.yaml"
    config.write_text(
        json.dumps(
            {
                "database_url": f"sqlite:///{tmp_path / 'serve.db'}",
                "listen": {"host": "127.0.0.1", "port": port, "workers": 2},
                **{k: v for k, v in DRY.items() if "." not in k},
                "delivery": {"dry_run": True},
            }
        )
    )
    env = receiver_env(extra={"XDG_RUNTIME_DIR": str(tmp_path)})
    base = f"http://127.0.0.1:{port}"
    with started([str(BIN / "receiver"), "db", "upgrade", "--config", str(config)], env) as up:
        assert up.popen.wait(timeout=60) == 0
    with started([str(BIN / "receiver"), "serve", "--config", str(config)], env) as process:
        wait_ready(process, base)
        with requests.Session() as session:
            for n in range(12):  # new connections: both gunicorn workers answer some
                session.close()
                answer = session.post(
                    f"{base}/api/v1/alertmanager/triton",
                    data=error_rate_webhook(model=f"m{n}"),
                    headers={**AUTH, "Content-Type": "application/json"},
                    timeout=10,
                )
                assert answer.status_code == 200
            deadline, found = time.monotonic() + 30, {}
            while time.monotonic() < deadline:
                found = samples(session.get(base + "/metrics", timeout=10).text)
                if (
                    found.get(
                        ("receiver_deliveries_total", (("kind", "pagerduty"), ("outcome", "ok")))
                    )
                    == 12
                ):
                    break
                time.sleep(0.2)
        stored = ("receiver_webhooks_total", (("receiver", "triton"), ("result", "stored")))
        assert found[stored] == 12  # both gunicorn workers, added up
        sent = ("receiver_deliveries_total", (("kind", "pagerduty"), ("outcome", "ok")))
        assert found.get(sent) == 12, process.stderr()[-2000:]  # the worker's, through the web
        logs = [json.loads(line) for line in process.stderr().splitlines() if line.startswith("{")]
        assert any(r.get("logger") == "receiver.access" for r in logs)
