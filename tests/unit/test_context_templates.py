"""Context query templates: variants filled from labels, display scaling, loading, shipped file."""

import math
from pathlib import Path

import pytest
import yaml

from receiver.enrich.context import ContextConfig, ContextConfigError, ContextSpec, format_value

SHIPPED = Path(__file__).parents[2] / "config" / "context.yaml"
NAN, INF = float("nan"), float("inf")

GPU_UTIL = ContextSpec(
    "gpu_utilization",
    "GPU utilization",
    ('util{gpu_uuid="{{gpu_uuid}}"}', 'util{instance="{{ instance }}"}'),
    "percent",
    "auto",
)


def test_render_uses_the_first_variant_whose_placeholders_are_all_present():
    labels = {"gpu_uuid": "GPU-1", "instance": "node:8002"}
    assert GPU_UTIL.render(labels, {}) == 'util{gpu_uuid="GPU-1"}'
    assert GPU_UTIL.render({"instance": "node:8002"}, {}) == 'util{instance="node:8002"}'


def test_an_empty_label_value_counts_as_absent():
    labels = {"gpu_uuid": "", "instance": "node:8002"}
    assert GPU_UTIL.render(labels, {}) == 'util{instance="node:8002"}'
    assert GPU_UTIL.render({"instance": ""}, {}) is None


def test_render_gives_none_when_no_variant_is_usable():
    assert GPU_UTIL.render({"alertname": "TritonNoHealthyPods", "job": "triton"}, {}) is None


def test_params_fill_their_placeholders():
    spec = ContextSpec("rate", "Rate", ('rate(x{model="{{model}}"}[{{window}}])',))
    assert spec.render({"model": "m"}, {"window": "5m"}) == 'rate(x{model="m"}[5m])'
    assert spec.render({"model": "m"}, {}) is None


def test_label_values_are_escaped_for_a_promql_string():
    labels = {"instance": 'a\\b"c\nd'}
    assert GPU_UTIL.render(labels, {}) == r'util{instance="a\\b\"c\nd"}'


def test_a_label_value_that_looks_like_a_placeholder_is_not_expanded_again():
    spec = ContextSpec("x", "X", ('x{model="{{model}}"}[{{window}}]',))
    assert spec.render({"model": "{{window}}"}, {"window": "5m"}) == 'x{model="{{window}}"}[5m]'


def test_an_empty_parameter_value_does_not_crash_rendering():
    spec = ContextSpec("rate", "Rate", ("rate(x[{{window}}])",))
    assert spec.render({}, {"window": ""}) in ("rate(x[])", None)


def test_needed_labels_lists_every_placeholder_once_sorted():
    spec = ContextSpec("q", "Q", ('a{model="{{model}}"}[{{window}}]', 'b{instance="{{instance}}"}'))
    assert spec.needed_labels() == ["instance", "model", "window"]
    assert GPU_UTIL.needed_labels() == ["gpu_uuid", "instance"]


@pytest.mark.parametrize(
    ("scale", "values", "shown"),
    [
        ("auto", [0.875, 0.5, 0.0, 1.0], [87.5, 50.0, 0.0, 100.0]),
        ("auto", [87.5, 0.5, 100.0], [87.5, 0.5, 100.0]),
        ("ratio", [0.5, 2.0], [50.0, 200.0]),
        ("ratio", [87.5], [8750.0]),
        ("none", [0.5, 87.5], [0.5, 87.5]),
    ],
)
def test_present_scales_values_for_display(scale, values, shown):
    spec = ContextSpec("k", "K", ("q",), "percent", scale)
    assert spec.present(values) == pytest.approx(shown)


def test_auto_scaling_ignores_nan_and_infinity_when_deciding():
    spec = ContextSpec("k", "K", ("q",), "percent", "auto")
    nan, ratio, inf = spec.present([NAN, 0.25, INF])
    assert math.isnan(nan) and ratio == 25.0 and inf == INF
    kept = spec.present([NAN, 87.0])
    assert math.isnan(kept[0]) and kept[1] == 87.0


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (87.5, "percent", "87.5 %"),
        (0.04, "percent", "0.0 %"),
        (0, "bytes", "0 B"),
        (1023, "bytes", "1023 B"),
        (1024, "bytes", "1.0 KiB"),
        (1536, "bytes", "1.5 KiB"),
        (1024**2, "bytes", "1.0 MiB"),
        (1024**3 - 1024**2, "bytes", "1023.0 MiB"),
        (1024**3, "bytes", "1.0 GiB"),
        (80 * 1024**3, "bytes", "80.0 GiB"),
        (2 * 1024**4, "bytes", "2.0 TiB"),
        (5000 * 1024**4, "bytes", "5000.0 TiB"),
        (12.34, "ms", "12.3 ms"),
        (999.9, "ms", "999.9 ms"),
        (1000, "ms", "1.00 s"),
        (1500, "ms", "1.50 s"),
        (3.14159, "req_per_s", "3.14 req/s"),
        (7.0, "count", "7"),
        (2.5, "count", "2.50"),
        (0.000123456, "none", "0.0001235"),
        (12345678, "none", "1.235e+07"),
    ],
)
def test_format_value_gives_a_short_reading_per_unit(value, unit, text):
    assert format_value(value, unit) == text


@pytest.mark.parametrize("unit", ["percent", "bytes", "ms", "req_per_s", "count", "none"])
def test_format_value_names_nan_and_infinities_for_every_unit(unit):
    assert format_value(NAN, unit) == "NaN"
    assert format_value(INF, unit) == "+Inf"
    assert format_value(-INF, unit) == "-Inf"


# --- loading ---------------------------------------------------------------------------------


def load_errors(tmp_path: Path, doc: object) -> list[str]:
    path = tmp_path / "context.yaml"
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(ContextConfigError) as caught:
        ContextConfig.load(path)
    return caught.value.errors


def item(key: str, **extra: object) -> dict[str, object]:
    return {"key": key, "title": key.title(), "queries": ["up"], **extra}


def test_duplicate_item_keys_are_rejected(tmp_path):
    errors = load_errors(tmp_path, {"items": [item("a"), item("b"), item("a"), item("b")]})
    assert errors == [f"{tmp_path / 'context.yaml'}: duplicate item keys: a, b"]


def test_every_invalid_field_is_listed_at_once(tmp_path):
    doc = {
        "param": {"window": "5m"},
        "items": [
            item("ok"),
            item("unit", unit="seconds"),
            item("Bad-Key"),
            item("empty", queries=[]),
            item("extra", colour="red"),
            item("scale", scale="log"),
        ],
    }
    errors = load_errors(tmp_path, doc)
    located = sorted(error.split(": ")[1] for error in errors)
    assert located == [
        "items.1.unit",
        "items.2.key",
        "items.3.queries",
        "items.4.colour",
        "items.5.scale",
        "param",
    ]
    assert all(error.startswith(str(tmp_path / "context.yaml")) for error in errors)


def test_an_unreadable_or_invalid_file_is_a_config_error(tmp_path):
    with pytest.raises(ContextConfigError, match="cannot read"):
        ContextConfig.load(tmp_path / "missing.yaml")
    assert "not valid YAML" in load_errors(tmp_path, "items: [\n")[0]
    (not_a_mapping,) = load_errors(tmp_path, "- key: a\n")
    assert ": (file): " in not_a_mapping


def test_no_context_file_means_no_items():
    assert ContextConfig.load(None) == ContextConfig()


# --- the shipped file ------------------------------------------------------------------------

GPU_ALERT = {"alertname": "TritonGPUMemoryHigh", "gpu_uuid": "GPU-5f3c", "instance": "n1:8002"}
MODEL_ALERT = {
    "alertname": "TritonHighLatency",
    "model": "llama2_7b",
    "version": "1",
    "instance": "n1:8002",
}


@pytest.fixture(scope="module")
def shipped() -> ContextConfig:
    return ContextConfig.load(SHIPPED)


def rendered(config: ContextConfig, labels: dict[str, str]) -> dict[str, str | None]:
    return {spec.key: spec.render(labels, config.param_map) for spec in config.items}


def test_the_shipped_file_has_the_gpu_and_queue_items_in_order(shipped):
    assert [spec.key for spec in shipped.items] == [
        "gpu_utilization",
        "gpu_memory_used",
        "gpu_memory_total",
        "gpu_memory_used_percent",
        "pending_requests",
        "queue_time",
        "compute_time",
        "request_rate",
        "failure_rate",
        "slo_availability",
        "slo_budget_remaining",
        "slo_burn_rate",
    ]
    assert [spec.key for spec in shipped.items if spec.slo] == [
        "slo_availability",
        "slo_budget_remaining",
        "slo_burn_rate",
    ]
    assert shipped.param_map == {"window": "5m"}


def test_a_gpu_alert_queries_its_own_gpu(shipped):
    queries = rendered(shipped, GPU_ALERT)
    for key in ("gpu_utilization", "gpu_memory_used", "gpu_memory_total"):
        assert 'gpu_uuid="GPU-5f3c"' in queries[key]
        assert "instance=" not in queries[key]
    assert queries["gpu_memory_used_percent"].count('gpu_uuid="GPU-5f3c"') == 2
    assert queries["queue_time"] is None and queries["failure_rate"] is None


def test_a_model_alert_queries_its_model_over_the_window(shipped):
    queries = rendered(shipped, MODEL_ALERT)
    for key in ("pending_requests", "queue_time", "compute_time", "request_rate", "failure_rate"):
        assert 'model="llama2_7b"' in queries[key]
    for key in ("queue_time", "compute_time", "request_rate", "failure_rate"):
        assert "[5m]" in queries[key] and "{{" not in queries[key]
    assert queries["queue_time"] == (
        'sum(rate(nv_inference_queue_duration_us{model="llama2_7b"}[5m])) / '
        'sum(rate(nv_inference_request_success{model="llama2_7b"}[5m])) / 1000'
    )
    assert queries["gpu_utilization"] == 'nv_gpu_utilization{instance="n1:8002"}'


def test_an_alert_without_gpu_model_or_instance_renders_no_query(shipped):
    queries = rendered(shipped, {"alertname": "TritonNoHealthyPods", "job": "triton"})
    assert queries == dict.fromkeys(queries)
    assert len(queries) == len(shipped.items) == 12


def test_the_shipped_file_charts_the_gpu_and_queue_items_over_half_an_hour():
    config = ContextConfig.load(SHIPPED)
    charted = {spec.key for spec in config.items if spec.series}
    assert {"gpu_utilization", "pending_requests", "queue_time"} <= charted
    assert "gpu_memory_total" not in charted
    assert (config.series.range.total_seconds(), config.series.step.total_seconds()) == (1800, 60)


def test_a_series_step_below_one_second_is_refused(tmp_path):
    path = tmp_path / "context.yaml"
    path.write_text("series: {range_minutes: 30, step_seconds: 0}\nitems: []\n")
    with pytest.raises(ContextConfigError, match=r"series\.step_seconds"):
        ContextConfig.load(path)
