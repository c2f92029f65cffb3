"""Evaluate context queries against the Prometheus HTTP API, within a time budget, never raising.

Each query runs at the episode's ``startsAt`` (``/api/v1/query?time=``), so replaying a fixture
later gives the same answer. Identical (query, time) pairs are asked once per evaluation and
cached briefly; whatever has not answered when the budget runs out is "unavailable".
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from receiver.enrich.context import ContextConfig, ContextSpec, format_value
from receiver.enrich.slo import SloCatalogue, describe
from receiver.http import upstream_session
from receiver.settings import PrometheusSettings

log = logging.getLogger(__name__)
Sample = tuple[dict[str, str], float]
Series = tuple[dict[str, str], list[tuple[float, float]]]
MAX_SERIES = 16  # per item: enough for every GPU of a node
MAX_CHART_SERIES = 8
Ask = tuple[str, datetime, bool]  # (query, time, whether the range before that time)
CACHE_SIZE = 1024


class PrometheusError(Exception):
    """A query that gave no usable answer; ``outcome`` is a metric label, ``reason`` for people."""

    def __init__(self, outcome: str, reason: str):
        super().__init__(reason)
        self.outcome, self.reason = outcome, reason


class PrometheusClient:
    """A thin client of ``/api/v1/query`` with a per-query timeout."""

    def __init__(self, settings: PrometheusSettings):
        if not settings.url:
            raise ValueError("no Prometheus URL configured")
        self.base = settings.url.rstrip("/")
        self.timeout = min(settings.timeout_seconds, settings.budget_seconds)
        self.session = upstream_session(settings)

    def query(self, promql: str, at: datetime) -> list[Sample]:
        """An instant query; raise PrometheusError with a reason fit for an on-call page."""
        data = self._get("query", {"query": promql, "time": f"{at.timestamp():.3f}"})
        return _parsed(_samples, data)

    def query_range(
        self, promql: str, start: datetime, end: datetime, step: timedelta
    ) -> list[Series]:
        """A range query (for charts): each series' (unix time, value) points."""
        params = {
            "query": promql,
            "start": f"{start.timestamp():.3f}",
            "end": f"{end.timestamp():.3f}",
            "step": f"{step.total_seconds():g}",
        }
        return _parsed(_matrix, self._get("query_range", params))

    def _get(self, endpoint: str, params: dict[str, str]) -> dict[str, Any]:
        """GET an API endpoint and return its ``data``, or raise PrometheusError."""
        try:
            response = self.session.get(
                f"{self.base}/api/v1/{endpoint}", params=params, timeout=self.timeout
            )
        except requests.Timeout:
            raise PrometheusError("timeout", f"timed out after {self.timeout:g} s") from None
        except requests.ConnectionError:
            raise PrometheusError("unreachable", "Prometheus unreachable") from None
        except requests.RequestException as exc:
            raise PrometheusError("error", f"request failed: {type(exc).__name__}") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if response.status_code != 200 or body.get("status") != "success":
            detail = body.get("error") or response.reason or "no detail"
            kind = body.get("errorType") or f"HTTP {response.status_code}"
            raise PrometheusError("error", f"Prometheus error ({kind}): {str(detail)[:300]}")
        data = body.get("data")
        return data if isinstance(data, dict) else {}


def _parsed(parse: Callable[[dict[str, Any]], Any], data: dict[str, Any]) -> Any:
    try:
        return parse(data)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        reason = f"malformed response from Prometheus ({type(exc).__name__})"
        raise PrometheusError("error", reason) from None


def _matrix(data: dict[str, Any]) -> list[Series]:
    kind, result = data.get("resultType"), data.get("result")
    if kind != "matrix" or not isinstance(result, list):
        raise PrometheusError("error", f"unexpected result type {kind!r} for a range query")
    return [
        (
            {k: v for k, v in series.get("metric", {}).items() if k != "__name__"},
            [(float(t), float(v)) for t, v in series["values"]],
        )
        for series in result
    ]


def _samples(data: dict[str, Any]) -> list[Sample]:
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar" and isinstance(result, list):
        return [({}, float(result[1]))]
    if kind == "vector" and isinstance(result, list):
        samples = []
        for series in result:
            labels = {k: v for k, v in series.get("metric", {}).items() if k != "__name__"}
            samples.append((labels, float(series["value"][1])))
        return samples
    raise PrometheusError("error", f"unexpected result type {kind!r} (use an instant vector)")


@dataclass(frozen=True)
class EpisodeQuery:
    """What to evaluate for one alert episode."""

    labels: dict[str, str]
    at: datetime


class ContextEvaluator:
    """Evaluates every context item for a batch of episodes within one time budget."""

    def __init__(
        self,
        client: PrometheusClient,
        config: ContextConfig,
        budget_seconds: float,
        cache_seconds: float = 30,
        on_outcome: Callable[[str], None] = lambda _outcome: None,
        monotonic: Callable[[], float] = time.monotonic,
        slos: SloCatalogue | None = None,
    ):
        self.client, self.config, self.budget = client, config, budget_seconds
        self.cache_seconds, self.on_outcome, self.monotonic = cache_seconds, on_outcome, monotonic
        self.slos = slos or SloCatalogue()
        self._cache: OrderedDict[tuple[str, float, bool], tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="context")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def evaluate(self, episodes: list[EpisodeQuery]) -> list[list[dict[str, Any]]]:
        """Items for each episode, in order; never raises, never exceeds the budget."""
        params = [{**self.config.param_map, **self.slos.params_for(e.labels)} for e in episodes]
        plans = [
            [
                (spec, spec.render(e.labels, p))
                for spec in self.config.items
                if not spec.slo or "slo_target" in p  # SLO items only for a model with an SLO
            ]
            for e, p in zip(episodes, params, strict=True)
        ]
        wanted: set[Ask] = set()
        for e, plan in zip(episodes, plans, strict=True):
            for spec, query in plan:
                if query:
                    wanted.add((query, e.at, False))
                    if spec.series:
                        wanted.add((query, e.at, True))
        answers = self._ask(wanted)
        evaluated_at = datetime.now(UTC).isoformat()
        return [
            [
                _item(
                    spec,
                    query,
                    e.at,
                    answers.get((query, e.at, False)) if query else None,
                    evaluated_at,
                    p,
                    answers.get((query, e.at, True)) if spec.series and query else None,
                )
                for spec, query in plan
            ]
            for e, p, plan in zip(episodes, params, plans, strict=True)
        ]

    def _run(self, ask: Ask) -> Any:
        query, at, ranged = ask
        if not ranged:
            return self.client.query(query, at)
        window = self.config.series
        return self.client.query_range(query, at - window.range, at, window.step)

    def _ask(self, wanted: set[Ask]) -> dict[Ask, Any]:
        """Run the distinct queries concurrently; answers are results or a PrometheusError."""
        answers: dict[Ask, Any] = {}
        futures: dict[Future[Any], Ask] = {}
        for key in wanted:
            cached = self._cached(key)
            if cached is not None:
                answers[key] = cached
                self.on_outcome("cached")
            else:
                futures[self._pool.submit(self._run, key)] = key
        done, pending = wait(futures, timeout=self.budget)
        for future in done:
            key = futures[future]
            try:
                answers[key] = future.result()
                self._store(key, answers[key])
                self.on_outcome("ok" if answers[key] else "empty")
            except PrometheusError as exc:
                answers[key] = exc
                self.on_outcome(exc.outcome)
            except Exception as exc:  # a bug must cost one item, never the worker
                log.exception("context query failed unexpectedly")
                answers[key] = PrometheusError("error", f"internal error: {type(exc).__name__}")
                self.on_outcome("error")
        for future in pending:
            future.cancel()
            answers[futures[future]] = PrometheusError(
                "budget", f"no answer within the budget of {self.budget:g} s"
            )
            self.on_outcome("budget")
        failures = [a.reason for a in answers.values() if isinstance(a, PrometheusError)]
        if failures:
            log.warning(
                "context: %d of %d queries unavailable (%s)",
                len(failures),
                len(answers),
                failures[0],
            )
        return answers

    def _cached(self, key: Ask) -> Any:
        with self._lock:
            hit = self._cache.get((key[0], key[1].timestamp(), key[2]))
            if hit is None or hit[0] < self.monotonic():
                return None
            return hit[1]

    def _store(self, key: Ask, samples: Any) -> None:
        if self.cache_seconds <= 0 or not samples:
            return
        with self._lock:
            self._cache[(key[0], key[1].timestamp(), key[2])] = (
                self.monotonic() + self.cache_seconds,
                samples,
            )
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)


def _item(
    spec: ContextSpec,
    query: str | None,
    at: datetime,
    answer: Any,
    evaluated_at: str,
    params: dict[str, str] | None = None,
    series: Any = None,
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "key": spec.key,
        "title": spec.title,
        "unit": spec.unit,
        "query": query,
        "time": at.isoformat(),
        "evaluated_at": evaluated_at,
    }
    if query is None:
        needed = ", ".join(spec.needed_labels(params))
        return {**item, "status": "unavailable", "reason": f"the alert has none of: {needed}"}
    if isinstance(answer, PrometheusError):
        return {**item, "status": "unavailable", "reason": answer.reason}
    if not answer:
        return {**item, "status": "unavailable", "reason": "no data at that time"}
    samples = sorted(answer, key=lambda s: sorted(s[0].items()))[:MAX_SERIES]
    factor = spec.factor([v for _, v in samples])
    item = {
        **item,
        "status": "ok",
        "values": [
            {
                "labels": labels,
                "value": value * factor if math.isfinite(value) else None,
                "display": format_value(value * factor, spec.unit),
            }
            for labels, value in samples
        ],
    }
    if isinstance(series, list) and series:
        item["series"] = _chart(series, at, factor)
    if spec.slo and params:
        item["objective"] = describe(params)
        if spec.unit == "budget":
            minutes = float(params["slo_budget_minutes"])
            for v in item["values"]:
                if v["value"] is not None:
                    left = v["value"] * minutes
                    v["display"] += f" ({left:.1f} of {minutes:.1f} min)"
    return item


def _chart(series: list[Series], at: datetime, factor: float) -> list[dict[str, Any]]:
    """The series before ``at`` as (seconds relative to ``at``, display value) points."""
    end = at.timestamp()
    return [
        {
            "labels": labels,
            "points": [[round(t - end, 3), v * factor] for t, v in points if math.isfinite(v)],
        }
        for labels, points in sorted(series, key=lambda s: sorted(s[0].items()))[:MAX_CHART_SERIES]
    ]
