"""Per-model SLOs from config/slos.yaml: the parameters the SLO context items are filled with."""

from pathlib import Path

import pytest

from receiver.enrich.context import format_value
from receiver.enrich.slo import SloCatalogue, SloConfigError, duration_seconds

SHIPPED = Path(__file__).parents[2] / "config" / "slos.yaml"


@pytest.mark.parametrize(
    ("text", "seconds"), [("30d", 2_592_000), ("1h30m", 5400), ("5m", 300), ("1w", 604_800)]
)
def test_prometheus_durations_are_read(text, seconds):
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "1.5h", "5 m", "m5"])
def test_anything_else_is_not_a_duration(text):
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        duration_seconds(text)


def test_the_shipped_file_gives_the_default_and_the_override_budgets():
    slos = SloCatalogue.load(SHIPPED)
    default = slos.params_for({"model": "some_model"})
    assert (default["slo_target"], default["slo_error_budget"]) == ("0.999", "0.001")
    assert default["slo_budget_minutes"] == "43.2"  # 0.1 % of 30 days
    assert default["slo_window"] == "30d" and default["slo_burn_window"] == "1h"
    small = slos.params_for({"model": "tinyllama_1b"})
    assert (small["slo_error_budget"], small["slo_budget_minutes"]) == ("0.005", "216")


def test_no_model_or_no_objective_means_no_slo_parameters(tmp_path):
    assert SloCatalogue.load(SHIPPED).params_for({"gpu_uuid": "GPU-1"}) == {}
    only_models = tmp_path / "slos.yaml"
    only_models.write_text("models: {a: {availability: {target: 0.99}}}\n")
    slos = SloCatalogue.load(only_models)
    assert slos.params_for({"model": "b"}) == {}  # no default objective
    assert slos.params_for({"model": "a"})["slo_error_budget"] == "0.01"
    assert SloCatalogue.load(None).params_for({"model": "a"}) == {}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("models: {a: {availability: {target: 1.5}}}", "models.a.availability.target"),
        ("defaults: {window: 30 days}", "not a Prometheus duration"),
        ("models: [a]", "models"),
    ],
)
def test_a_bad_file_names_what_is_wrong(tmp_path, text, error):
    path = tmp_path / "slos.yaml"
    path.write_text(text + "\n")
    with pytest.raises(SloConfigError) as raised:
        SloCatalogue.load(path)
    assert error in str(raised.value) and str(path) in str(raised.value)


def test_budget_and_burn_rate_read_as_people_say_them():
    assert format_value(0.5, "budget") == "50.0 % left"
    assert format_value(-2.0, "budget") == "-200.0 % left"
    assert format_value(14.4, "burn") == "14.40x"
