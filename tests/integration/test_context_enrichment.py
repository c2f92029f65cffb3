"""GPU and queue context from a REAL Prometheus scraping the Triton simulator, and its failures."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from receiver.app import create_app
from receiver.bootstrap import Container, bootstrap, build_enricher
from receiver.enrich.prometheus import EpisodeQuery
from receiver.worker import run_worker
from tests.support.api import post_webhook
from tests.support.clock import FakeClock
from tests.support.servers import free_port

SHIPPED_CONTEXT = Path(__file__).parents[2] / "config" / "context.yaml"
GIB = 1024**3
pytestmark = pytest.mark.slow


def context_file(tmp_path: Path, window: str = "10s", extra: list[dict] | None = None) -> Path:
    """The shipped context queries with a window that ~15 s of test history fills."""
    doc = yaml.safe_load(SHIPPED_CONTEXT.read_text())
    doc["params"]["window"] = window
    doc["items"] += extra or []
    path = tmp_path / "context.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def make_container(make_settings, tmp_path: Path) -> Iterator[Any]:
    """Containers with context enabled against a given Prometheus URL; disposed afterwards."""
    built: list[Container] = []

    def build(url: str, **overrides: Any) -> Container:
        settings = make_settings(
            {
                "prometheus.url": url,
                "prometheus.cache_seconds": 0,
                "context_path": str(overrides.pop("context", None) or context_file(tmp_path)),
                **overrides,
            }
        )
        built.append(bootstrap(settings, clock=FakeClock(datetime.now(UTC))))
        return built[-1]

    yield build
    for container in built:
        container.engine.dispose()


def context_webhook(*alerts: dict[str, Any]) -> str:
    """A bare webhook of ``firing_at`` alerts: only what context needs."""
    return json.dumps(
        {"receiver": "ctx", "status": "firing", "groupKey": "{}:ctx", "alerts": list(alerts)}
    )


def firing_at(name: str, starts_at: datetime, **labels: str) -> dict[str, Any]:
    """An alert firing since ``starts_at``: real time, as Prometheus' history is."""
    return {
        "status": "firing",
        "labels": {"alertname": name, **labels},
        "startsAt": starts_at.isoformat().replace("+00:00", "Z"),
    }


def stored_context(client, incident_id: int) -> dict[str, Any]:
    return client.get(f"/api/v1/incidents/{incident_id}").get_json()["context"]


def items_by_key(context: dict[str, Any], fingerprint: str | None = None) -> dict[str, Any]:
    return {
        i["key"]: i
        for i in context["items"]
        if fingerprint is None or fingerprint in i["fingerprints"]
    }


def only_value(item: dict[str, Any], **labels: str) -> float:
    assert item["status"] == "ok", item
    values = [v for v in item["values"] if all(v["labels"].get(k) == x for k, x in labels.items())]
    assert len(values) == 1, item
    return values[0]["value"]


@pytest.fixture
def served(scraped_sim, prometheus) -> dict[str, Any]:
    """Known values served by the simulator, present in Prometheus with >10 s of history."""
    gpu, model = "GPU-ctx-0001", "llama_ctx"
    scraped_sim.set_gpu(
        gpu, utilization=0.875, memory_used_bytes=70 * GIB, memory_total_bytes=80 * GIB
    )
    scraped_sim.set_model(
        model, pending=7, success_per_s=4, failure_per_s=1, queue_us_per_request=2500,
        compute_us_per_request=40000,
    )  # fmt: skip
    # rate() over a window longer than the history underestimates: wait for 14 s of samples
    prometheus.wait_for(
        f'count_over_time(nv_inference_request_failure{{model="{model}"}}[1m])',
        lambda r: r and r[0][1] >= 14,
        timeout=40,
    )
    # an earlier test may have changed the shared simulator: wait until Prometheus has these
    prometheus.wait_for(f'nv_gpu_utilization{{gpu_uuid="{gpu}"}}', lambda r: r and r[0][1] == 0.875)
    return {"gpu": gpu, "model": model, "instance": scraped_sim.target}


def test_the_snapshot_holds_the_gpu_queue_and_rate_values_the_simulator_served(
    make_container, tmp_path, prometheus, served
):
    container = make_container(prometheus.url)
    client = create_app(container=container).test_client()
    at = datetime.now(UTC)  # after `served`: every value is in Prometheus
    gpu_alert = firing_at(
        "TritonGPUMemoryHigh", at, gpu_uuid=served["gpu"], instance=served["instance"]
    )
    model_alert = firing_at(
        "TritonHighErrorRate", at, model=served["model"], instance=served["instance"]
    )

    answer = post_webhook(client, context_webhook(gpu_alert, model_alert), "ctx").get_json()
    assert stored_context(client, answer["incidents"][0])["state"] == "pending"  # not yet: worker
    assert build_enricher(container).drain() == 2

    context = stored_context(client, answer["incidents"][0])
    assert context["state"] == "done"
    detail = client.get(f"/api/v1/incidents/{answer['incidents'][0]}").get_json()
    fps = {a["labels"]["alertname"]: a["fingerprint"] for a in detail["alerts"]}
    gpu = items_by_key(context, fps["TritonGPUMemoryHigh"])
    assert only_value(gpu["gpu_utilization"], gpu_uuid=served["gpu"]) == pytest.approx(87.5)
    assert gpu["gpu_utilization"]["values"][0]["display"] == "87.5 %"
    assert only_value(gpu["gpu_memory_used"]) == 70 * GIB
    assert only_value(gpu["gpu_memory_total"]) == 80 * GIB
    assert only_value(gpu["gpu_memory_used_percent"]) == pytest.approx(87.5)
    # a GPU alert names no model: the queue of every model on its instance
    assert only_value(gpu["pending_requests"], model=served["model"]) == 7
    model = items_by_key(context, fps["TritonHighErrorRate"])
    assert only_value(model["pending_requests"]) == 7
    assert only_value(model["queue_time"]) == pytest.approx(2.5, rel=0.02)
    assert only_value(model["compute_time"]) == pytest.approx(40.0, rel=0.02)
    assert only_value(model["request_rate"]) == pytest.approx(5.0, rel=0.1)
    assert only_value(model["failure_rate"]) == pytest.approx(1.0, rel=0.15)
    # every GPU of the alert's instance, since the model alert names none
    assert only_value(model["gpu_utilization"], gpu_uuid=served["gpu"]) == pytest.approx(87.5)
    assert all(i["time"] == at.isoformat() for i in context["items"])


def test_evaluating_again_later_gives_the_same_answer_for_the_same_start(
    make_container, prometheus, served, scraped_sim
):
    container = make_container(prometheus.url)
    client = create_app(container=container).test_client()
    at = datetime.now(UTC)  # after `served`: every value is in Prometheus
    body = context_webhook(firing_at("TritonGPUMemoryHigh", at, gpu_uuid=served["gpu"]))
    incident = post_webhook(client, body, "ctx").get_json()["incidents"][0]
    build_enricher(container).drain()
    first = items_by_key(stored_context(client, incident))["gpu_utilization"]

    scraped_sim.set_gpu(served["gpu"], utilization=0.10)
    prometheus.wait_for(
        f'nv_gpu_utilization{{gpu_uuid="{served["gpu"]}"}}', lambda r: r and r[0][1] == 0.10
    )
    later = make_container(prometheus.url)
    labels = {"alertname": "TritonGPUMemoryHigh", "gpu_uuid": served["gpu"]}
    enricher = build_enricher(later)
    items = enricher.evaluator.evaluate([EpisodeQuery(labels, at)])[0]
    enricher.evaluator.close()
    again = {i["key"]: i for i in items}["gpu_utilization"]
    assert again["values"][0]["value"] == first["values"][0]["value"] == pytest.approx(87.5)


def test_a_promql_error_and_an_empty_result_are_unavailable_with_their_reason(
    make_container, tmp_path, prometheus, served
):
    broken = {
        "key": "broken",
        "title": "Broken",
        "queries": ['nv_gpu_utilization{gpu_uuid="{{gpu_uuid}}"'],
    }
    container = make_container(prometheus.url, context=context_file(tmp_path, extra=[broken]))
    client = create_app(container=container).test_client()
    at = datetime.now(UTC)  # after `served`: every value is in Prometheus
    body = context_webhook(
        firing_at("TritonHighErrorRate", at, model="no_such_model", gpu_uuid=served["gpu"])
    )
    incident = post_webhook(client, body, "ctx").get_json()["incidents"][0]
    build_enricher(container).drain()

    items = items_by_key(stored_context(client, incident))
    assert items["broken"]["status"] == "unavailable"
    assert "bad_data" in items["broken"]["reason"]
    assert items["pending_requests"] == {**items["pending_requests"], "status": "unavailable"}
    assert items["pending_requests"]["reason"] == "no data at that time"
    assert only_value(items["gpu_utilization"]) == pytest.approx(87.5)  # the rest still works


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers: a hung Prometheus."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


@pytest.mark.parametrize("kind", ["down", "hanging"])
def test_an_unreachable_or_hanging_prometheus_gives_unavailable_items_within_the_budget(
    make_container, silent_server, kind
):
    url = silent_server if kind == "hanging" else f"http://127.0.0.1:{free_port()}"
    container = make_container(
        url,
        **{"prometheus.timeout_seconds": 2, "prometheus.budget_seconds": 0.5},
    )
    client = create_app(container=container).test_client()
    at = datetime.now(UTC)
    answer = post_webhook(
        client,
        context_webhook(firing_at("TritonHighErrorRate", at, model="m", gpu_uuid="g")),
        "ctx",
    )
    assert answer.status_code == 200  # intake never waits for Prometheus

    started = time.monotonic()
    stop = threading.Event()
    stop.set()
    run_worker(container, stop)  # one pass of the real worker loop
    elapsed = time.monotonic() - started

    assert elapsed < 0.5 + 1.0, "the budget bounds a pass"
    items = stored_context(client, answer.get_json()["incidents"][0])["items"]
    assert items and all(i["status"] == "unavailable" for i in items)
    # a hung Prometheus is cut off by the per-query timeout or the budget, whichever is first
    expected = ("budget", "timed out") if kind == "hanging" else ("unreachable",)
    reasons = [i["reason"] for i in items if i["query"]]
    assert reasons and all(any(e in r for e in expected) for r in reasons), reasons
    outcomes = ("budget", "timeout") if kind == "hanging" else ("unreachable",)
    counted = sum(
        container.metrics.registry.get_sample_value(
            "receiver_context_queries_total", {"outcome": outcome}
        )
        or 0
        for outcome in outcomes
    )
    assert counted >= 1


def test_a_charted_item_keeps_what_prometheus_held_before_the_start(
    make_container, tmp_path, prometheus, scraped_sim
):
    gpu = f"GPU-chart-{tmp_path.name}"  # a GPU of its own: no other test's values in its past
    scraped_sim.set_gpu(gpu, utilization=0.5, memory_used_bytes=GIB, memory_total_bytes=2 * GIB)
    prometheus.wait_for(
        f'count_over_time(nv_gpu_utilization{{gpu_uuid="{gpu}"}}[1m])',
        lambda r: r and r[0][1] >= 8,
        timeout=40,
    )
    doc = yaml.safe_load(context_file(tmp_path).read_text())
    doc["series"] = {"range_minutes": 1, "step_seconds": 2}
    path = tmp_path / "charted.yaml"
    path.write_text(yaml.safe_dump(doc))
    container = make_container(prometheus.url, context=path)
    client = create_app(container=container).test_client()
    at = datetime.now(UTC)
    body = context_webhook(firing_at("TritonGPUMemoryHigh", at, gpu_uuid=gpu))
    incident = post_webhook(client, body, "ctx").get_json()["incidents"][0]
    build_enricher(container).drain()

    items = items_by_key(stored_context(client, incident))
    (line,) = items["gpu_utilization"]["series"]
    assert line["labels"]["gpu_uuid"] == gpu
    offsets = [t for t, _ in line["points"]]
    # Prometheus has had >= 8 s of samples: the points before the start are there, 2 s apart
    assert len(offsets) >= 4 and offsets == sorted(offsets)
    assert all(-60 <= t <= 0 for t in offsets) and offsets[-1] == pytest.approx(0, abs=0.01)
    assert [v for _, v in line["points"]] == pytest.approx([50.0] * len(offsets))  # as percent
    assert "series" not in items["gpu_memory_total"]  # not marked series: true


def test_a_model_alert_carries_its_slo_status_as_calculated_by_hand(
    make_container, tmp_path, prometheus, scraped_sim
):
    model = f"llama_slo_{tmp_path.name[-12:]}"  # its own counters: nobody else's history
    scraped_sim.set_model(model, success_per_s=19, failure_per_s=1)  # 5 % of requests fail
    prometheus.wait_for(
        f'count_over_time(nv_inference_request_failure{{model="{model}"}}[1m])',
        lambda r: r and r[0][1] >= 8,
        timeout=40,
    )
    slos = tmp_path / "slos.yaml"
    slos.write_text(
        yaml.safe_dump(
            {
                "defaults": {"window": "10m", "burn_window": "20s"},
                "models": {model: {"availability": {"target": 0.9}}},
            }
        )
    )
    container = make_container(prometheus.url, slos_path=str(slos))
    client = create_app(container=container).test_client()
    at = datetime.now(UTC)
    body = context_webhook(
        firing_at("TritonHighErrorRate", at, model=model),
        firing_at("TritonGPUMemoryHigh", at, gpu_uuid="GPU-no-model"),
    )
    incident = post_webhook(client, body, "ctx").get_json()["incidents"][0]
    build_enricher(container).drain()
    detail = client.get(f"/api/v1/incidents/{incident}").get_json()
    fps = {a["labels"]["alertname"]: a["fingerprint"] for a in detail["alerts"]}
    items = items_by_key(detail["context"], fps["TritonHighErrorRate"])

    # by hand: 1 failure in 20 requests; objective 90 % leaves a 10 % error budget, of which
    # 5 % is spent: half the budget left, 0.5 of the 1 minute (10 % of 10 minutes) of outage
    assert only_value(items["slo_availability"]) == pytest.approx(95.0, abs=0.1)
    assert only_value(items["slo_budget_remaining"]) == pytest.approx(0.5, abs=0.02)
    shown = items["slo_budget_remaining"]["values"][0]["display"]
    assert shown.startswith(("49.", "50.")) and shown.endswith("(0.5 of 1.0 min)"), shown
    assert only_value(items["slo_burn_rate"]) == pytest.approx(0.5, abs=0.05)
    assert items["slo_budget_remaining"]["objective"] == "90 % over 10m"
    # a GPU alert names no model: no SLO items for it
    gpu = items_by_key(detail["context"], fps["TritonGPUMemoryHigh"])
    assert not {k for k in gpu if k.startswith("slo_")}
