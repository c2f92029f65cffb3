"""The shipped availability SLO: rules checked by promtool, burn rates and SLO file checked by hand.

promtool checks and unit-tests config/prometheus/triton-slo.yml (2.42 and 3.5); the
windows and burn-rate factors of the alerts are parsed here and compared with the documented ones
(Google SRE workbook: 14.4x over 1h and 5m, 6x over 6h and 30m page; 1x over 3d and 6h is a
ticket), and config/slos.yaml is checked for its documented keys and sane values.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.prometheus_tools import promtool, seconds
from tests.support.versions import Versions, on_each_version

ROOT = Path(__file__).parents[2]
RULES = ROOT / "config" / "prometheus" / "triton-slo.yml"
RULE_TESTS = ROOT / "tests" / "promtool" / "triton-slo.test.yml"
SLOS = ROOT / "config" / "slos.yaml"
DOC = ROOT / "docs" / "slo.md"
RUNBOOK = "https://runbooks.example.com/triton/slo-availability-burn"

# The documented alerts: (long window, short window, burn-rate factor, severity).
ALERTS: dict[str, tuple[str, str, float, str]] = {
    "TritonErrorBudgetFastBurn": ("1h", "5m", 14.4, "critical"),
    "TritonErrorBudgetSlowBurn": ("6h", "30m", 6, "critical"),
    "TritonErrorBudgetSteadyBurn": ("3d", "6h", 1, "warning"),
}
# Share of a 30-day budget each alert has seen spent when it fires: factor x long / 30 days.
BUDGET_SPENT = {"TritonErrorBudgetFastBurn": 0.02, "TritonErrorBudgetSlowBurn": 0.05,
                "TritonErrorBudgetSteadyBurn": 0.10}  # fmt: skip
SLI_WINDOWS = ["5m", "30m", "1h", "6h", "3d", "30d"]

# config/slos.yaml: section -> its keys (all documented in the file and in docs/slo.md).
SLO_SECTIONS: dict[str, set[str]] = {
    "availability": {"target"},
    "latency": {"quantile", "threshold", "histogram"},
    "throughput": {"min_rps"},
}


def groups() -> list[dict[str, Any]]:
    return yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]


def all_rules() -> list[dict[str, Any]]:
    return [rule for group in groups() for rule in group["rules"]]


def alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in all_rules() if "alert" in rule}


def records(name: str) -> list[dict[str, Any]]:
    return [rule for rule in all_rules() if rule.get("record") == name]


def slos() -> dict[str, Any]:
    return yaml.safe_load(SLOS.read_text(encoding="utf-8"))


def burn_conditions(expr: str) -> list[tuple[str, float]]:
    """(window, factor) of each `slo:sli_error:ratio_rateW / (1 - slo:objective:ratio) > F`."""
    found = re.findall(
        r"slo:sli_error:ratio_rate(\w+)\s*/\s*\(1 - slo:objective:ratio\)\s*>\s*([0-9.]+)", expr
    )
    return [(window, float(factor)) for window, factor in found]


# --- promtool ------------------------------------------------------------------------------------


@on_each_version
def test_the_slo_rules_pass_promtool_check(versions: Versions) -> None:
    result = promtool("check", "rules", RULES, on=versions)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(all_rules())} rules found" in result.stdout


@on_each_version
def test_the_slo_rules_fire_at_the_hand_calculated_times_with_exact_labels(
    versions: Versions,
) -> None:
    # One file for both: its inputs make 3.5's left-open windows count what 2.42's closed ones do
    # (why, and what differed before: the comments at its top).
    result = promtool("test", "rules", RULE_TESTS, on=versions)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


# --- the alerts ----------------------------------------------------------------------------------


def test_the_rules_file_has_exactly_the_documented_alerts() -> None:
    assert sorted(alerts()) == sorted(ALERTS)


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_every_alert_has_severity_slo_team_labels_and_the_annotations(name: str) -> None:
    rule = alerts()[name]
    assert rule["labels"] == {
        "severity": ALERTS[name][3],
        "slo": "availability",
        "team": "inference",
    }
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    assert annotations["runbook_url"] == RUNBOOK
    for key in ("summary", "description"):
        assert "{{ $labels.model }}" in annotations[key], key
        assert "{{ $value | humanize }}" in annotations[key], key  # the burn rate
    # no `for`: the short window holds a blip back, a hold time would only delay the page
    assert "for" not in rule


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_every_alert_keeps_the_model_label(name: str) -> None:
    # The alert's labels are those of the SLI series it compares, which are `sum by (model)`
    # (the exact label sets are checked by the promtool unit tests).
    windows = {window for window, _ in burn_conditions(alerts()[name]["expr"])}
    for window in windows:
        (rule,) = records(f"slo:sli_error:ratio_rate{window}")
        assert rule["expr"].count("sum by (model)") == 3, window
    (objective,) = records("slo:objective:ratio")
    assert "group by (model)" in objective["expr"] and "or on (model)" in objective["expr"]


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_the_burn_rates_and_windows_are_the_documented_ones(name: str) -> None:
    long, short, factor, _ = ALERTS[name]
    rule = alerts()[name]
    # long window first (its burn rate is the alert's value), then the short one, same factor
    assert burn_conditions(rule["expr"]) == [(long, factor), (short, factor)]
    assert re.fullmatch(r"\s*\S.*\n\s*and\n\s*\S.*\s*", rule["expr"]), "two conditions, `and`ed"
    # the workbook's pairs: the short window is 1/12 of the long one
    assert seconds(long) == 12 * seconds(short)
    # budget spent over the long window when the alert fires: 2 %, 5 %, 10 % of 30 days
    budget_window = seconds(slos()["defaults"]["window"])
    spent = factor * seconds(long) / budget_window
    assert spent == pytest.approx(BUDGET_SPENT[name])
    # ...and what the description says and computes agrees with it
    description = rule["annotations"]["description"]
    assert f"fires above {factor:g}x, {BUDGET_SPENT[name]:.0%} of the 30-day error" in description
    assert f'printf "%g / {budget_window / seconds(long):g}" $value' in description
    assert f'printf "{int(budget_window)} / %g" $value' in description
    assert f"slo:sli_error:ratio_rate{long}{{" in description


def test_the_pages_are_critical_and_the_ticket_a_warning() -> None:
    severities = {name: rule["labels"]["severity"] for name, rule in alerts().items()}
    assert severities == {name: spec[3] for name, spec in ALERTS.items()}


# --- the recording rules -------------------------------------------------------------------------


@pytest.mark.parametrize("window", SLI_WINDOWS)
def test_each_sli_is_the_error_ratio_per_model_over_its_window_guarding_zero_traffic(
    window: str,
) -> None:
    (rule,) = records(f"slo:sli_error:ratio_rate{window}")
    expr = rule["expr"]
    assert rule["labels"] == {"slo": "availability"}
    assert re.findall(r"\[([^\]]+)\]", expr) == [window] * 3
    assert expr.count("rate(nv_inference_request_failure[") == 2
    assert expr.count("rate(nv_inference_request_success[") == 1
    assert re.search(r"\n\s*> 0\n\s*\)\s*$", expr), "denominator filtered to > 0"


def test_the_budget_is_counted_over_the_window_of_the_slo_file() -> None:
    window = slos()["defaults"]["window"]
    (budget,) = records("slo:error_budget_remaining:ratio")
    assert budget["expr"].split() == (
        f"1 - slo:sli_error:ratio_rate{window} / (1 - slo:objective:ratio)".split()
    )
    # the costly 30-day rules run in their own, slower group, after the objective's group
    names = [group["name"] for group in groups()]
    budget_group = next(g for g in groups() if budget in g["rules"])
    assert seconds(budget_group["interval"]) >= 60
    assert names.index(budget_group["name"]) > 0


def default_objective() -> float:
    (rule,) = records("slo:objective:ratio")
    (value,) = re.findall(r"([0-9.]+) \* group by \(model\)", rule["expr"])
    return float(value)


def override_objectives() -> dict[str, float]:
    found = {}
    for rule in records("slo:objective_override:ratio"):
        assert rule["labels"]["slo"] == "availability"
        match = re.fullmatch(r"vector\(([0-9.]+)\)", rule["expr"].strip())
        assert match, rule["expr"]
        found[rule["labels"]["model"]] = float(match.group(1))
    return found


def test_the_default_objective_is_written_once_and_agrees_with_the_slo_file() -> None:
    assert default_objective() == slos()["defaults"]["availability"]["target"]
    code = "\n".join(line.split("#", 1)[0] for line in RULES.read_text().splitlines())
    assert len(re.findall(r"(?<![\d.])0\.999(?![\d])", code)) == 1
    for rule in alerts().values():  # thresholds are burn rates, relative to each objective
        assert "slo:objective:ratio" in rule["expr"]
        assert not re.search(r"0\.9\d", rule["expr"])


def test_the_per_model_objectives_agree_with_the_slo_file() -> None:
    config = slos()
    default = config["defaults"]["availability"]["target"]
    targets = {
        model: entry["availability"]["target"]
        for model, entry in (config["models"] or {}).items()
        if "availability" in entry and "target" in entry["availability"]
    }
    assert override_objectives() == {m: t for m, t in targets.items() if t != default}
    assert override_objectives(), "at least one example override"


# --- config/slos.yaml ----------------------------------------------------------------------------


def test_the_slo_file_has_the_documented_keys() -> None:
    config = slos()
    assert set(config) == {"defaults", "models"}
    assert set(config["defaults"]) == {"window", *SLO_SECTIONS}
    for section, keys in SLO_SECTIONS.items():
        assert set(config["defaults"][section]) == keys, section
    for model, entry in config["models"].items():
        assert re.fullmatch(r"[A-Za-z0-9_.-]+", model), model
        assert entry and set(entry) <= set(SLO_SECTIONS), (model, "window is set in defaults only")
        for section, values in entry.items():
            assert values and set(values) <= SLO_SECTIONS[section], (model, section)


def effective(model: str) -> dict[str, Any]:
    """A model's objectives: the defaults, overridden key by key inside each section."""
    config = slos()
    merged: dict[str, Any] = {"window": config["defaults"]["window"]}
    for section in SLO_SECTIONS:
        override = config["models"].get(model, {}).get(section, {})
        merged[section] = {**config["defaults"][section], **override}
    return merged


@pytest.mark.parametrize(
    "model", ["(defaults)", *sorted(yaml.safe_load(SLOS.read_text())["models"])]
)
def test_the_slo_values_are_sane(model: str) -> None:
    slo = effective(model)
    assert seconds(slo["window"]) >= 86400
    assert 0 < slo["availability"]["target"] < 1
    assert isinstance(slo["availability"]["target"], float)
    assert 0 < slo["latency"]["quantile"] < 1
    assert 0 < seconds(slo["latency"]["threshold"]) <= 600
    histogram = slo["latency"]["histogram"]
    assert histogram is None or re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", histogram)
    assert not (histogram or "").endswith("_bucket"), "the base name, without _bucket"
    assert (
        isinstance(slo["throughput"]["min_rps"], int | float) and slo["throughput"]["min_rps"] > 0
    )


def test_the_slo_file_holds_the_documented_defaults() -> None:
    defaults = slos()["defaults"]
    assert defaults["window"] == "30d"
    assert defaults["availability"] == {"target": 0.999}
    assert defaults["latency"] == {"quantile": 0.99, "threshold": "2s", "histogram": None}
    assert defaults["throughput"] == {"min_rps": 100}
    # the error budget arithmetic of docs/slo.md: 0.1 % of 30 days is 43.2 minutes
    minutes = (1 - defaults["availability"]["target"]) * seconds(defaults["window"]) / 60
    assert minutes == pytest.approx(43.2)


def test_every_slo_key_is_documented() -> None:
    doc = DOC.read_text(encoding="utf-8")
    for section, keys in SLO_SECTIONS.items():
        for key in keys:
            assert f"`{section}.{key}`" in doc, f"{section}.{key}"
    assert "`window`" in doc
    for name in ALERTS:
        assert name in doc, name


@pytest.mark.parametrize(
    ("text", "expected"), [("30d", 2592000), ("1h30m", 5400), ("500ms", 0.5), ("2s", 2)]
)
def test_durations_parse_like_prometheus(text: str, expected: float) -> None:
    assert seconds(text) == expected


@pytest.mark.parametrize("text", ["", "30", "2 s", "1.5h", "30D", "h", None])
def test_malformed_durations_are_refused(text: Any) -> None:
    with pytest.raises(ValueError):
        seconds(text)
