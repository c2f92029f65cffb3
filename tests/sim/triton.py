"""A Triton Inference Server metrics endpoint for tests: GET /metrics with values the test controls.

GPU gauges and per-model counters are served in the Prometheus text exposition format (0.0.4),
named and labelled as Triton 2.x names them. Counters grow at configured per-second rates in
continuous time read from an injectable monotonic clock, so ``rate()`` in a real Prometheus gives
back the configured rates; changing a rate never makes a counter go down.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DEFAULT_MEMORY_TOTAL = 80 * 1024**3
FAILURE_REASON = "OTHER"

# name type help, in the order they are served (help texts shortened from Triton's).
_TABLE = """\
nv_inference_request_success counter Number of successful inference requests, all batch sizes
nv_inference_request_failure counter Number of failed inference requests, all batch sizes
nv_inference_count counter Number of inferences performed (does not include cached requests)
nv_inference_exec_count counter Number of model executions performed
nv_inference_request_duration_us counter Cumulative inference request duration in microseconds
nv_inference_queue_duration_us counter Cumulative inference queuing duration in microseconds
nv_inference_compute_infer_duration_us counter Cumulative compute inference duration in microseconds
nv_inference_pending_request_count gauge Instantaneous number of pending requests awaiting execution
nv_gpu_utilization gauge GPU utilization rate [0.0 - 1.0)
nv_gpu_memory_total_bytes gauge GPU total memory, in bytes
nv_gpu_memory_used_bytes gauge GPU used memory, in bytes
"""
METRICS = {
    name: (kind, text) for name, kind, text in (r.split(" ", 2) for r in _TABLE.splitlines())
}
COUNTERS = [name for name, (kind, _) in METRICS.items() if kind == "counter"]


def escape_label_value(value: str) -> str:
    """Escape a label value for the text exposition format: backslash, double quote, newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))  # shortest text that parses back to the same float


@dataclass
class _Counter:
    """value(now) = value at the last change + rate * (now - last change)."""

    since: float
    value: float = 0.0
    rate: float = 0.0

    def at(self, now: float) -> float:
        return self.value + self.rate * max(0.0, now - self.since)

    def set_rate(self, rate: float, now: float) -> None:
        if rate < 0 or not math.isfinite(rate):
            raise ValueError(f"a counter rate must be finite and >= 0, not {rate!r}")
        self.value = self.at(now)
        self.since = max(self.since, now)
        self.rate = rate


@dataclass
class _Model:
    counters: dict[str, _Counter]
    pending: float = 0.0
    success_per_s: float = 0.0
    failure_per_s: float = 0.0
    queue_us_per_request: float = 0.0
    compute_us_per_request: float = 0.0

    def rates(self) -> dict[str, float]:
        ok, queue, compute = (
            self.success_per_s,
            self.queue_us_per_request,
            self.compute_us_per_request,
        )
        return {
            "nv_inference_request_success": ok,
            "nv_inference_request_failure": self.failure_per_s,
            "nv_inference_count": ok,  # batch size 1, no response cache
            "nv_inference_exec_count": ok,
            "nv_inference_request_duration_us": ok * (queue + compute),
            "nv_inference_queue_duration_us": ok * queue,
            "nv_inference_compute_infer_duration_us": ok * compute,
        }


@dataclass
class _Gpu:
    utilization: float = 0.0
    memory_used_bytes: float = 0.0
    memory_total_bytes: float = DEFAULT_MEMORY_TOTAL
    utilization_scale: float = 1.0


class TritonSimulator:
    """Serve Triton-like metrics on ``127.0.0.1:<free port>``; use as a context manager.

    ``set_gpu``/``set_model`` change only the values they are given (a new GPU or model starts
    from zeros, 80 GiB of memory). GPU utilization is a 0.0-1.0 ratio, served multiplied by
    ``utilization_scale`` (100 for exporters that report percent).
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, utilization_scale: float = 1.0
    ) -> None:
        self.clock = clock
        self.utilization_scale = utilization_scale
        self._lock = threading.Lock()
        self._gpus: dict[str, _Gpu] = {}
        self._models: dict[tuple[str, str], _Model] = {}
        self.serving = True  # False: /metrics answers 503
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> TritonSimulator:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.simulator = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> TritonSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def target(self) -> str:
        """The scrape target (and Prometheus ``instance`` label): ``127.0.0.1:<port>``."""
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        return f"127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.target}/metrics"

    def stop_serving(self) -> None:
        """Answer /metrics with 503 (the scrape fails, ``up`` becomes 0)."""
        self.serving = False

    def start_serving(self) -> None:
        self.serving = True

    @contextmanager
    def unavailable(self) -> Iterator[None]:
        """Answer 503 inside the block, serve again after it."""
        self.stop_serving()
        try:
            yield
        finally:
            self.start_serving()

    def set_gpu(
        self,
        uuid: str,
        utilization: float | None = None,
        memory_used_bytes: float | None = None,
        memory_total_bytes: float | None = None,
        utilization_scale: float | None = None,
    ) -> None:
        with self._lock:
            gpu = self._gpus.setdefault(uuid, _Gpu(utilization_scale=self.utilization_scale))
            if utilization is not None:
                gpu.utilization = utilization
            if memory_used_bytes is not None:
                gpu.memory_used_bytes = memory_used_bytes
            if memory_total_bytes is not None:
                gpu.memory_total_bytes = memory_total_bytes
            if utilization_scale is not None:
                gpu.utilization_scale = utilization_scale

    def remove_gpu(self, uuid: str) -> None:
        with self._lock:
            self._gpus.pop(uuid, None)

    def set_model(
        self,
        model: str,
        version: str = "1",
        pending: float | None = None,
        success_per_s: float | None = None,
        failure_per_s: float | None = None,
        queue_us_per_request: float | None = None,
        compute_us_per_request: float | None = None,
    ) -> None:
        with self._lock:
            now = self.clock()
            key = (model, version)
            if key not in self._models:
                self._models[key] = _Model({name: _Counter(since=now) for name in COUNTERS})
            state = self._models[key]
            for name, value in (
                ("pending", pending),
                ("success_per_s", success_per_s),
                ("failure_per_s", failure_per_s),
                ("queue_us_per_request", queue_us_per_request),
                ("compute_us_per_request", compute_us_per_request),
            ):
                if value is not None:
                    setattr(state, name, float(value))
            for name, rate in state.rates().items():
                state.counters[name].set_rate(rate, now)

    def remove_model(self, model: str, version: str = "1") -> None:
        """Stop serving the model's series (as when Triton unloads it)."""
        with self._lock:
            self._models.pop((model, version), None)

    def counter(self, name: str, model: str, version: str = "1") -> float:
        """A counter's value now, as /metrics would serve it."""
        with self._lock:
            return self._models[(model, version)].counters[name].at(self.clock())

    def render(self) -> str:
        """The /metrics body as served now."""
        with self._lock:
            now = self.clock()
            series: dict[str, list[tuple[dict[str, str], float]]] = {name: [] for name in METRICS}
            for (model, version), state in sorted(self._models.items()):
                labels = {"model": model, "version": version}
                for name, counter in state.counters.items():
                    extra = {"reason": FAILURE_REASON} if name.endswith("_failure") else {}
                    series[name].append(({**labels, **extra}, counter.at(now)))
                series["nv_inference_pending_request_count"].append((labels, state.pending))
            for uuid, gpu in sorted(self._gpus.items()):
                labels = {"gpu_uuid": uuid}
                scaled = gpu.utilization * gpu.utilization_scale
                series["nv_gpu_utilization"].append((labels, scaled))
                series["nv_gpu_memory_used_bytes"].append((labels, gpu.memory_used_bytes))
                series["nv_gpu_memory_total_bytes"].append((labels, gpu.memory_total_bytes))
        lines: list[str] = []
        for name, samples in series.items():
            if not samples:
                continue
            kind, help_text = METRICS[name]
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                text = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in sorted(labels.items()))
                lines.append(f"{name}{{{text}}} {format_value(value)}")
        return "\n".join(lines) + "\n" if lines else ""

    def _respond(self) -> tuple[int, str]:
        return (200, self.render()) if self.serving else (503, "simulated outage\n")


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        simulator: TritonSimulator = self.server.simulator  # type: ignore[attr-defined]
        if self.path.split("?", 1)[0] != "/metrics":
            status, body = 404, "not found\n"
        else:
            status, body = simulator._respond()
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output clean
