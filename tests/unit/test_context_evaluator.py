"""Context evaluation: one question per (query, time), a time budget, a short cache; the client."""

import json
import math
import socket
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from receiver.enrich.context import ContextConfig, ContextSpec
from receiver.enrich.prometheus import (
    ContextEvaluator,
    EpisodeQuery,
    PrometheusClient,
    PrometheusError,
)
from receiver.settings import PrometheusSettings

AT = datetime(2026, 11, 28, 0, 20, tzinfo=UTC)
LABELS = {"alertname": "TritonGPUMemoryHigh", "gpu_uuid": "GPU-1", "model": "llama2_7b"}
CONFIG = ContextConfig(
    items=(
        ContextSpec(
            "gpu_utilization", "GPU", ('util{gpu_uuid="{{gpu_uuid}}"}',), "percent", "auto"
        ),
        ContextSpec("gpu_memory_used", "Memory", ('mem{gpu_uuid="{{gpu_uuid}}"}',), "bytes"),
        ContextSpec("queue_time", "Queue", ('queue{model="{{model}}"}[{{window}}]',), "ms"),
    ),
    params=(("window", "5m"),),
)
KEYS = ["gpu_utilization", "gpu_memory_used", "queue_time"]
ONE = [EpisodeQuery(LABELS, AT)]
UNREACHABLE = PrometheusError("unreachable", "Prometheus unreachable")


class FakePrometheus:
    """Stands in for Prometheus: answers by the metric name a query starts with, records calls."""

    def __init__(self, **answers: object):
        self.answers = {
            "util": [({"gpu": "0"}, 0.875)],
            "mem": [({"gpu": "0"}, 80 * 1024**3)],
            "queue": [({}, 12.5)],
            **answers,
        }
        self.calls: list[tuple[str, datetime]] = []
        self._lock = threading.Lock()

    def query(self, promql: str, at: datetime) -> object:
        with self._lock:
            self.calls.append((promql, at))
        answer = self.answers[promql.split("{")[0]]
        if isinstance(answer, Exception):
            raise answer
        return answer


class StalledPrometheus:
    """Answers only once released, like a Prometheus that hangs."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def query(self, promql: str, at: datetime) -> object:
        self.release.wait(10)
        return [({}, 1.0)]


@pytest.fixture
def make_evaluator():
    made: list[ContextEvaluator] = []

    def build(client, config=CONFIG, **kwargs) -> ContextEvaluator:
        kwargs.setdefault("budget_seconds", 5.0)
        made.append(ContextEvaluator(client, config, **kwargs))
        return made[-1]

    yield build
    for evaluator in made:
        evaluator.close()


def test_identical_queries_at_the_same_time_are_asked_once_for_all_episodes(make_evaluator):
    client = FakePrometheus()
    results = make_evaluator(client).evaluate([EpisodeQuery(dict(LABELS), AT)] * 3)
    assert sorted(client.calls) == [
        ('mem{gpu_uuid="GPU-1"}', AT),
        ('queue{model="llama2_7b"}[5m]', AT),
        ('util{gpu_uuid="GPU-1"}', AT),
    ]
    assert len(results) == 3
    assert results[0] == results[1] == results[2]


def test_episodes_starting_at_different_times_are_asked_separately(make_evaluator):
    client = FakePrometheus()
    later = AT + timedelta(minutes=7)
    results = make_evaluator(client).evaluate(
        [EpisodeQuery(LABELS, AT), EpisodeQuery(LABELS, later)]
    )
    assert len(client.calls) == 6
    assert sorted({at for _, at in client.calls}) == [AT, later]
    assert [item["time"] for item in results[1]] == [later.isoformat()] * 3


def test_items_come_back_in_config_order_scaled_and_displayed(make_evaluator):
    other = {"alertname": "TritonHighLatency", "model": "mistral"}
    results = make_evaluator(FakePrometheus()).evaluate(
        [EpisodeQuery(LABELS, AT), EpisodeQuery(other, AT)]
    )
    assert [[item["key"] for item in items] for items in results] == [KEYS, KEYS]
    util, memory, queue = results[0]
    assert util["status"] == "ok"
    assert util["query"] == 'util{gpu_uuid="GPU-1"}'
    assert util["time"] == AT.isoformat()
    assert util["values"] == [{"labels": {"gpu": "0"}, "value": 87.5, "display": "87.5 %"}]
    assert memory["values"][0]["display"] == "80.0 GiB"
    assert queue["values"] == [{"labels": {}, "value": 12.5, "display": "12.5 ms"}]
    no_gpu = results[1][0]
    assert (no_gpu["status"], no_gpu["query"]) == ("unavailable", None)
    assert no_gpu["reason"] == "the alert has none of: gpu_uuid"


@pytest.mark.parametrize(
    ("answer", "reason"),
    [(UNREACHABLE, "Prometheus unreachable"), ([], "no data at that time")],
)
def test_an_item_without_an_answer_is_unavailable_with_a_reason(make_evaluator, answer, reason):
    items = make_evaluator(FakePrometheus(util=answer)).evaluate(ONE)[0]
    assert (items[0]["status"], items[0]["reason"]) == ("unavailable", reason)
    assert "values" not in items[0]
    assert [item["status"] for item in items[1:]] == ["ok", "ok"]


def test_queries_that_outlast_the_budget_are_unavailable_and_evaluate_returns(make_evaluator):
    client, outcomes = StalledPrometheus(), []
    evaluator = make_evaluator(client, budget_seconds=0.3, on_outcome=outcomes.append)
    try:
        started = time.monotonic()
        items = evaluator.evaluate(ONE)[0]
        elapsed = time.monotonic() - started
    finally:
        client.release.set()
    assert elapsed < 0.3 + 1
    assert [(item["status"], item["reason"]) for item in items] == [
        ("unavailable", "no answer within the budget of 0.3 s")
    ] * 3
    assert outcomes == ["budget"] * 3


def test_each_query_outcome_is_reported_and_a_repeat_answers_from_the_cache(make_evaluator):
    client, outcomes = FakePrometheus(mem=[], queue=UNREACHABLE), []
    evaluator = make_evaluator(client, on_outcome=outcomes.append)
    evaluator.evaluate(ONE)
    assert sorted(outcomes) == ["empty", "ok", "unreachable"]
    outcomes.clear()
    items = evaluator.evaluate(ONE)[0]
    assert sorted(outcomes) == ["cached", "empty", "unreachable"]
    assert len(client.calls) == 5
    assert items[0]["values"][0]["display"] == "87.5 %"


def test_the_cache_expires_after_cache_seconds_on_the_injected_clock(make_evaluator):
    client, now = FakePrometheus(), [1000.0]
    evaluator = make_evaluator(client, cache_seconds=30, monotonic=lambda: now[0])
    evaluator.evaluate(ONE)
    now[0] += 30
    evaluator.evaluate(ONE)
    assert len(client.calls) == 3
    now[0] += 0.5
    evaluator.evaluate(ONE)
    assert len(client.calls) == 6


@pytest.mark.parametrize("answer", [UNREACHABLE, PrometheusError("timeout", "slow"), []])
def test_errors_and_empty_answers_are_not_cached(make_evaluator, answer):
    client, outcomes = FakePrometheus(util=answer), []
    evaluator = make_evaluator(client, on_outcome=outcomes.append)
    evaluator.evaluate(ONE)
    evaluator.evaluate(ONE)
    assert [q for q, _ in client.calls].count('util{gpu_uuid="GPU-1"}') == 2
    assert outcomes.count("cached") == 2


def test_nan_values_have_no_value_and_display_nan(make_evaluator):
    client = FakePrometheus(util=[({"gpu": "0"}, float("nan")), ({"gpu": "1"}, 0.5)])
    util = make_evaluator(client).evaluate(ONE)[0][0]
    assert util["values"] == [
        {"labels": {"gpu": "0"}, "value": None, "display": "NaN"},
        {"labels": {"gpu": "1"}, "value": 50.0, "display": "50.0 %"},
    ]


def test_more_than_sixteen_series_are_cut_to_sixteen_in_label_order(make_evaluator):
    client = FakePrometheus(util=[({"gpu": f"{i:02d}"}, 0.5) for i in reversed(range(20))])
    util = make_evaluator(client).evaluate(ONE)[0][0]
    assert [v["labels"]["gpu"] for v in util["values"]] == [f"{i:02d}" for i in range(16)]


# --- PrometheusClient against a small real HTTP server -----------------------------------------

CET = timezone(timedelta(hours=1))


def success(kind: str, result: object) -> dict[str, object]:
    return {"status": "success", "data": {"resultType": kind, "result": result}}


VECTOR = success(
    "vector",
    [
        {"metric": {"__name__": "nv_gpu_utilization", "gpu": "0"}, "value": [1, "0.5"]},
        {"metric": {"gpu": "1"}, "value": [1, "NaN"]},
    ],
)


class CannedServer(ThreadingHTTPServer):
    daemon_threads = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), CannedHandler)
        self.reply: tuple[int, object] = (200, VECTOR)
        self.seen: list[tuple[str, dict[str, list[str]], dict[str, str]]] = []
        self.stall, self.release = False, threading.Event()


class CannedHandler(BaseHTTPRequestHandler):
    server: CannedServer

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        self.server.seen.append((url.path, parse_qs(url.query), dict(self.headers)))
        if self.server.stall:
            self.server.release.wait(10)
            return
        status, body = self.server.reply
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def prometheus():
    server = CannedServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def make_client(prometheus):
    made: list[PrometheusClient] = []

    def build(url: str | None = None, **settings: object) -> PrometheusClient:
        url = url or f"http://127.0.0.1:{prometheus.server_port}/"
        settings.setdefault("timeout_seconds", 5.0)
        made.append(PrometheusClient(PrometheusSettings(url=url, **settings)))
        return made[-1]

    yield build
    for client in made:
        client.session.close()


def test_a_vector_answer_becomes_samples_without_the_metric_name(prometheus, make_client):
    samples = make_client().query('nv_gpu_utilization{gpu=~"0|1"}', AT)
    assert samples[0] == ({"gpu": "0"}, 0.5)
    assert samples[1][0] == {"gpu": "1"} and math.isnan(samples[1][1])
    path, params, _ = prometheus.seen[0]
    assert path == "/api/v1/query"
    assert params["query"] == ['nv_gpu_utilization{gpu=~"0|1"}']


def test_a_scalar_answer_is_one_sample_without_labels(prometheus, make_client):
    prometheus.reply = (200, success("scalar", [1, "3"]))
    assert make_client().query("scalar(up)", AT) == [({}, 3.0)]


@pytest.mark.parametrize(
    ("at", "sent"),
    [
        (datetime(2024, 1, 1, tzinfo=UTC), "1704067200.000"),
        (datetime(2024, 1, 1, 1, 0, 0, 250000, tzinfo=CET), "1704067200.250"),
    ],
)
def test_the_time_is_sent_as_the_unix_timestamp_of_the_datetime(prometheus, make_client, at, sent):
    make_client().query("up", at)
    assert prometheus.seen[0][1]["time"] == [sent]


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (
            (400, {"status": "error", "errorType": "bad_data", "error": "parse error"}),
            "Prometheus error (bad_data): parse error",
        ),
        ((502, b"<html>upstream down</html>"), "Prometheus error (HTTP 502): Bad Gateway"),
        ((200, success("matrix", [])), "unexpected result type 'matrix'"),
    ],
)
def test_an_error_answer_raises_prometheus_error(prometheus, make_client, reply, reason):
    prometheus.reply = reply
    with pytest.raises(PrometheusError) as caught:
        make_client().query("up", AT)
    assert caught.value.outcome == "error"
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    "body",
    [
        ["success"],
        success("vector", [{"value": [1, "x"]}]),
        success("vector", [{"metric": {}}]),
        success("scalar", []),
    ],
)
def test_a_malformed_success_body_raises_prometheus_error(prometheus, make_client, body):
    prometheus.reply = (200, body)
    with pytest.raises(PrometheusError) as caught:
        make_client().query("up", AT)
    assert caught.value.outcome == "error"


def test_a_malformed_answer_leaves_items_unavailable_rather_than_raising(
    prometheus, make_client, make_evaluator
):
    prometheus.reply = (200, ["not", "prometheus"])
    items = make_evaluator(make_client()).evaluate(ONE)[0]
    assert [item["status"] for item in items] == ["unavailable"] * 3


def test_a_closed_port_is_unreachable(make_client):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(PrometheusError) as caught:
        make_client(url=f"http://127.0.0.1:{port}").query("up", AT)
    assert (caught.value.outcome, caught.value.reason) == ("unreachable", "Prometheus unreachable")


def test_a_server_slower_than_the_timeout_is_a_timeout(prometheus, make_client):
    prometheus.stall = True
    with pytest.raises(PrometheusError) as caught:
        make_client(timeout_seconds=0.2).query("up", AT)
    assert (caught.value.outcome, caught.value.reason) == ("timeout", "timed out after 0.2 s")


def test_the_per_query_timeout_never_exceeds_the_budget(make_client):
    assert make_client(timeout_seconds=5, budget_seconds=0.3).timeout == 0.3


@pytest.mark.parametrize(
    ("credentials", "header"),
    [
        ({"bearer_token": "s3cret"}, "Bearer s3cret"),
        ({"basic_auth": {"username": "ops", "password": "pa:ss"}}, "Basic b3BzOnBhOnNz"),
        ({}, None),
    ],
    ids=["bearer", "basic", "none"],
)
def test_configured_credentials_are_sent(prometheus, make_client, credentials, header):
    make_client(**credentials).query("up", AT)
    assert prometheus.seen[0][2].get("Authorization") == header


def test_a_range_answer_becomes_series_of_points_asked_over_the_window(prometheus, make_client):
    prometheus.reply = (
        200,
        success(
            "matrix",
            [{"metric": {"__name__": "up", "gpu": "0"}, "values": [[100, "0.5"], [160, "0.75"]]}],
        ),
    )
    series = make_client().query_range("up", AT - timedelta(minutes=30), AT, timedelta(minutes=1))
    assert series == [({"gpu": "0"}, [(100.0, 0.5), (160.0, 0.75)])]
    path, params, _ = prometheus.seen[0]
    assert path == "/api/v1/query_range"
    assert (params["start"], params["end"], params["step"]) == (
        [f"{(AT - timedelta(minutes=30)).timestamp():.3f}"],
        [f"{AT.timestamp():.3f}"],
        ["60"],
    )


def test_an_instant_answer_to_a_range_query_is_an_error(prometheus, make_client):
    with pytest.raises(PrometheusError, match="unexpected result type 'vector'"):
        make_client().query_range("up", AT - timedelta(minutes=5), AT, timedelta(seconds=15))


class SeriesPrometheus(FakePrometheus):
    """Also answers range queries: util rose from 50 % to the alert's 87.5 %."""

    def __init__(self, series: object = None, **answers: object):
        super().__init__(**answers)
        self.series = series
        self.ranges: list[tuple[str, datetime, datetime, timedelta]] = []

    def query_range(self, promql: str, start: datetime, end: datetime, step: timedelta) -> object:
        with self._lock:
            self.ranges.append((promql, start, end, step))
        if isinstance(self.series, Exception):
            raise self.series
        end_s = end.timestamp()
        return self.series or [
            ({"gpu": "0"}, [(end_s - 120, 0.5), (end_s - 60, 0.7), (end_s, 0.875)])
        ]


SERIES_CONFIG = ContextConfig(
    items=(
        ContextSpec("gpu_utilization", "GPU", ('util{gpu_uuid="{{gpu_uuid}}"}',), "percent",
                    "auto", series=True),
        ContextSpec("gpu_memory_used", "Memory", ('mem{gpu_uuid="{{gpu_uuid}}"}',), "bytes"),
    ),
)  # fmt: skip


def test_a_series_item_keeps_the_window_before_the_start_scaled_like_its_value(make_evaluator):
    client = SeriesPrometheus()
    util, memory = make_evaluator(client, SERIES_CONFIG).evaluate(ONE)[0]
    assert client.ranges == [
        ('util{gpu_uuid="GPU-1"}', AT - timedelta(minutes=30), AT, timedelta(minutes=1))
    ]
    assert util["values"][0]["value"] == 87.5
    assert util["series"] == [
        {"labels": {"gpu": "0"}, "points": [[-120.0, 50.0], [-60.0, 70.0], [0.0, 87.5]]}
    ]
    assert "series" not in memory  # only items marked series: true


def test_a_failed_range_query_costs_the_chart_not_the_value(make_evaluator):
    client = SeriesPrometheus(series=UNREACHABLE)
    util = make_evaluator(client, SERIES_CONFIG).evaluate(ONE)[0][0]
    assert util["status"] == "ok" and util["values"][0]["value"] == 87.5
    assert "series" not in util
