"""The shipped GPU-health and LLM-serving rules, checked and unit-tested by promtool.

config/prometheus/gpu-health.yml passes `promtool check rules` and its unit tests
(tests/promtool/gpu-health.test.yml) on both promtool versions (2.42 and 3.5:
tests/support/versions.py); every alert carries what the receiver and on-call engineers rely on,
with a runbook URL the catalogue (config/runbooks.yaml) knows; every rule file is listed where
the docs say how to load the shipped rules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from receiver.enrich.runbooks import RunbookCatalogue
from tests.support.prometheus_tools import alert_rules, promtool
from tests.support.versions import Versions, on_each_version

ROOT = Path(__file__).parents[2]
RULES = ROOT / "config" / "prometheus" / "gpu-health.yml"
RULE_TESTS = ROOT / "tests" / "promtool" / "gpu-health.test.yml"
RUNBOOKS = ROOT / "config" / "runbooks.yaml"
ALERTS = alert_rules(RULES)
# the labels each alert keeps from its series: the GPU as dcgm-exporter names it, or the model
GPU_LABELS = ("gpu", "UUID", "Hostname")
MODEL_LABELS = ("model",)


def rule_count() -> int:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return sum(len(group["rules"]) for group in groups)


@on_each_version
def test_the_gpu_rules_pass_promtool_check(versions: Versions) -> None:
    result = promtool("check", "rules", RULES, on=versions)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {rule_count()} rules found" in result.stdout


@on_each_version
def test_the_gpu_rules_fire_when_they_should_and_only_then(versions: Versions) -> None:
    result = promtool("test", "rules", RULE_TESTS, on=versions)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_unit_tested() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
    tested = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])}
    assert tested == {rule["alert"] for rule in ALERTS}


@pytest.mark.parametrize("alert", ALERTS, ids=lambda rule: rule["alert"])
def test_every_alert_has_a_severity_summary_description_and_runbook(alert: dict[str, Any]) -> None:
    assert alert["labels"]["severity"] in {"critical", "warning", "info"}
    assert alert["labels"]["team"] == "inference"
    for key in ("summary", "description", "runbook_url"):
        assert alert["annotations"][key].strip(), key
    assert "{{ $value" in alert["annotations"]["description"]
    described = alert["annotations"]["summary"] + alert["annotations"]["description"]
    kept = GPU_LABELS if alert["alert"].startswith("GPU") else MODEL_LABELS
    for label in kept:
        assert f"{{{{ $labels.{label} }}}}" in described, label


@pytest.mark.parametrize("alert", ALERTS, ids=lambda rule: rule["alert"])
def test_every_runbook_url_is_the_one_the_catalogue_knows(alert: dict[str, Any]) -> None:
    url = alert["annotations"]["runbook_url"]
    assert url.startswith("https://")
    runbook = RunbookCatalogue.load(RUNBOOKS).resolve({"alertname": alert["alert"]}, {})
    assert runbook.entry is not None, f"{alert['alert']}: no entry in {RUNBOOKS}"
    assert runbook.url == url, "the catalogue's URL and the annotation differ"
    assert runbook.guidance


def test_the_gpu_alerts_do_not_aggregate_away_the_gpu_labels() -> None:
    for alert in ALERTS:
        if alert["alert"].startswith("GPU"):
            assert " by (" not in alert["expr"] and "without" not in alert["expr"], alert["alert"]


def test_the_xid_alert_never_compares_the_last_xid_gauge_alone() -> None:
    (xid,) = [a for a in ALERTS if a["alert"] == "GPUXidError"]
    assert "changes(DCGM_FI_DEV_XID_ERRORS[" in xid["expr"]


def test_the_docs_load_every_shipped_rule_file() -> None:
    slo = (ROOT / "docs" / "slo.md").read_text(encoding="utf-8")
    monitoring = (ROOT / "docs" / "monitoring.md").read_text(encoding="utf-8")
    assert "  - gpu-health.yml" in slo  # the rule_files example
    assert "config/prometheus/gpu-health.yml" in monitoring
