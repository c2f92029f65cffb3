"""The Triton metrics simulator and the real-Prometheus harness: what is served is what is stored.

The first tests read the exposition text only; the rest run Prometheus 2.42 scraping the
module's simulator every second (give each test its own model and GPU names).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.sim.triton import COUNTERS, TritonSimulator
from tests.support.clock import ManualClock
from tests.support.prometheus import PrometheusError, PrometheusServer, require_prometheus

slow = pytest.mark.slow
GIB = 1024**3
RATE_MODEL = "rate-4"
ODD_NAME = 'llama\\3 "70b"\nchat'


def families(sim: TritonSimulator) -> dict[str, tuple[str, list[tuple[dict[str, str], float]]]]:
    """name -> (type, [(labels, value)]) as prometheus_client parses the served text."""
    parsed = text_string_to_metric_families(sim.render())
    return {f.name: (f.type, [(s.labels, s.value) for s in f.samples]) for f in parsed}


@pytest.fixture(scope="module", autouse=True)
def rate_model(scraped_sim: TritonSimulator) -> Iterator[None]:
    """Start the rate test's counters first, so their history grows while other tests run."""
    scraped_sim.set_model(
        RATE_MODEL,
        success_per_s=4,
        failure_per_s=1,
        queue_us_per_request=2500,
        compute_us_per_request=40000,
    )
    yield


def test_the_exposition_text_has_triton_names_types_and_labels() -> None:
    sim = TritonSimulator(clock=ManualClock())
    sim.set_gpu("GPU-1", utilization=0.25, memory_used_bytes=3 * GIB, memory_total_bytes=80 * GIB)
    sim.set_model("llama", version="2", pending=7, success_per_s=1)

    parsed = families(sim)

    assert parsed["nv_gpu_utilization"] == ("gauge", [({"gpu_uuid": "GPU-1"}, 0.25)])
    assert parsed["nv_gpu_memory_used_bytes"] == ("gauge", [({"gpu_uuid": "GPU-1"}, 3 * GIB)])
    assert parsed["nv_gpu_memory_total_bytes"] == ("gauge", [({"gpu_uuid": "GPU-1"}, 80 * GIB)])
    model = {"model": "llama", "version": "2"}
    assert parsed["nv_inference_pending_request_count"] == ("gauge", [(model, 7.0)])
    for name in COUNTERS:  # prometheus_client names counter samples <family>_total
        kind, samples = parsed[name]
        labels = {**model, "reason": "OTHER"} if name.endswith("_failure") else model
        assert (kind, samples) == ("counter", [(labels, 0.0)]), name
    assert "# HELP nv_inference_request_success " in sim.render()


def test_label_values_with_backslash_quote_and_newline_are_escaped() -> None:
    sim = TritonSimulator(clock=ManualClock())
    sim.set_model(ODD_NAME, pending=1)

    assert r'model="llama\\3 \"70b\"\nchat"' in sim.render()
    _, samples = families(sim)["nv_inference_pending_request_count"]
    assert samples == [({"model": ODD_NAME, "version": "1"}, 1.0)]


def test_counters_grow_at_their_rates_and_never_decrease_when_rates_change() -> None:
    clock = ManualClock()
    sim = TritonSimulator(clock=clock)
    sim.set_model("m", success_per_s=4, queue_us_per_request=2500, compute_us_per_request=100)
    clock.advance(10)
    assert sim.counter("nv_inference_request_success", "m") == pytest.approx(40)
    assert sim.counter("nv_inference_queue_duration_us", "m") == pytest.approx(100_000)
    assert sim.counter("nv_inference_request_duration_us", "m") == pytest.approx(104_000)

    seen = {name: sim.counter(name, "m") for name in COUNTERS}
    for rate in (0, 9, 0.5, 0, 3):
        sim.set_model("m", success_per_s=rate, failure_per_s=rate)
        clock.advance(2.5)
        _, success = families(sim)["nv_inference_request_success"]
        assert success[0][1] == pytest.approx(seen["nv_inference_request_success"] + rate * 2.5)
        for name in COUNTERS:
            now = sim.counter(name, "m")
            assert now >= seen[name], (name, rate)
            seen[name] = now


def test_metrics_answer_503_while_serving_is_stopped(triton_sim: TritonSimulator) -> None:
    triton_sim.set_gpu("GPU-1", utilization=0.5)
    with requests.Session() as session:
        with triton_sim.unavailable():
            assert session.get(triton_sim.url, timeout=5).status_code == 503
        answer = session.get(triton_sim.url, timeout=5)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert 'nv_gpu_utilization{gpu_uuid="GPU-1"} 0.5' in answer.text


@slow
def test_gauges_reach_prometheus_with_the_exact_served_values(
    prometheus: PrometheusServer, scraped_sim: TritonSimulator
) -> None:
    scraped_sim.set_gpu("GPU-a", utilization=0.73, memory_used_bytes=41 * GIB + 7)
    scraped_sim.set_gpu("GPU-b", utilization=0.05, memory_total_bytes=40 * GIB)
    scraped_sim.set_model("gauges", pending=12)
    scraped_sim.set_model(ODD_NAME, pending=3)

    def by(label: str, promql: str) -> dict[str, float]:
        result = prometheus.wait_for(promql, lambda r: len(r) >= 2)
        return {labels[label]: value for labels, value in result}

    assert by("gpu_uuid", 'nv_gpu_utilization{gpu_uuid=~"GPU-[ab]"}') == {
        "GPU-a": 0.73,
        "GPU-b": 0.05,
    }
    used = by("gpu_uuid", 'nv_gpu_memory_used_bytes{gpu_uuid=~"GPU-[ab]"}')
    assert used == {"GPU-a": 41 * GIB + 7, "GPU-b": 0}
    total = by("gpu_uuid", 'nv_gpu_memory_total_bytes{gpu_uuid=~"GPU-[ab]"}')
    assert total == {"GPU-a": 80 * GIB, "GPU-b": 40 * GIB}
    pending = by("model", 'nv_inference_pending_request_count{model!="rate-4"}')
    assert pending == {"gauges": 12, ODD_NAME: 3}
    [(labels, _)] = prometheus.query('nv_gpu_utilization{gpu_uuid="GPU-a"}')
    assert labels["job"] == "triton"
    assert labels["instance"] == scraped_sim.target


@slow
def test_utilization_on_the_0_to_100_scale_reaches_prometheus_as_percent(
    prometheus: PrometheusServer, scraped_sim: TritonSimulator
) -> None:
    scraped_sim.set_gpu("GPU-pct", utilization=0.61, utilization_scale=100)

    result = prometheus.wait_for('nv_gpu_utilization{gpu_uuid="GPU-pct"}', bool)

    assert [value for _, value in result] == [0.61 * 100]


@slow
def test_rate_of_a_counter_growing_at_4_per_second_is_4_once_10_seconds_of_samples_exist(
    prometheus: PrometheusServer,
) -> None:
    success = f'nv_inference_request_success{{model="{RATE_MODEL}"}}'
    prometheus.wait_for(f"count_over_time({success}[1m])", lambda r: r and r[0][1] >= 11)
    at = time.time()  # every query below is evaluated at this one instant

    assert prometheus.value(f"rate({success}[10s])", at) == pytest.approx(4, rel=0.10)
    failure = f'nv_inference_request_failure{{model="{RATE_MODEL}",reason="OTHER"}}'
    assert prometheus.value(f"rate({failure}[10s])", at) == pytest.approx(1, rel=0.10)
    # rate() divides the extrapolated increase by the whole window, not by the history inside it:
    # with n one-second samples in a 30 s window it is about 4 * n / 30 (n < 30: underestimated).
    n = prometheus.value(f"count_over_time({success}[30s])", at)
    assert prometheus.value(f"rate({success}[30s])", at) == pytest.approx(4 * n / 30, rel=0.10)


@slow
def test_queue_and_compute_time_per_request_are_the_ratio_of_two_rates(
    prometheus: PrometheusServer,
) -> None:
    def per_request(counter: str) -> float:
        selector = f'{{model="{RATE_MODEL}"}}[30s]'
        promql = f"rate({counter}{selector}) / rate(nv_inference_request_success{selector})"
        [(_, value)] = prometheus.wait_for(promql, bool)
        return value

    assert per_request("nv_inference_queue_duration_us") == pytest.approx(2500, rel=0.05)
    assert per_request("nv_inference_compute_infer_duration_us") == pytest.approx(40000, rel=0.05)
    assert per_request("nv_inference_request_duration_us") == pytest.approx(42500, rel=0.05)


@slow
def test_a_bad_query_raises_with_prometheus_s_error(prometheus: PrometheusServer) -> None:
    with pytest.raises(PrometheusError, match="bad_data"):
        prometheus.query("rate(nv_inference_request_success)")


@slow
def test_a_prometheus_that_cannot_start_fails_with_its_output(tmp_path: Path) -> None:
    require_prometheus()
    server = PrometheusServer(["127.0.0.1:1"], scrape_interval="often", tmp_dir=tmp_path)

    with pytest.raises(PrometheusError, match=r"(?s)exited with .*often"):
        server.__enter__()
    assert list(tmp_path.iterdir()) == []  # its temporary directory is gone


@slow
def test_a_target_answering_503_is_down_and_its_series_go_stale_at_once(
    prometheus: PrometheusServer, scraped_sim: TritonSimulator
) -> None:
    up = f'up{{job="triton",instance="{scraped_sim.target}"}}'
    scraped_sim.set_model("outage", pending=5)
    prometheus.wait_for('nv_inference_pending_request_count{model="outage"}', bool)

    with scraped_sim.unavailable():
        prometheus.wait_for(up, lambda r: [v for _, v in r] == [0.0])
        assert prometheus.query('nv_inference_pending_request_count{model="outage"}') == []

    prometheus.wait_for(up, lambda r: [v for _, v in r] == [1.0])
    assert prometheus.value('nv_inference_pending_request_count{model="outage"}') == 5
