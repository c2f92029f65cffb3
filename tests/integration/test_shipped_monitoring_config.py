"""The shipped monitoring config: Prometheus rules and Alertmanager routes, checked by their tools.

promtool checks and unit-tests config/prometheus/triton-alerts.yml; amtool checks
config/alertmanager/alertmanager.yml and resolves its routes for every alert of the rules file;
each on both versions (promtool 2.42 and 3.5, amtool 0.25 and 0.33: tests/support/versions.py).
amtool 0.25 checks the copy its users make: without the lines of newer keys (webhook timeout).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from receiver.enrich.runbooks import RunbookCatalogue
from receiver.settings.sections import DatabaseSettings
from tests.e2e.fast_rules import fast_rules
from tests.support.prometheus_tools import (
    NEWER_WEBHOOK_KEYS,
    alert_rules,
    amtool,
    for_alertmanager,
    promtool,
    seconds,
)
from tests.support.versions import DEBIAN_12, NEWEST, Versions, on_each_version

ROOT = Path(__file__).parents[2]
RULES = ROOT / "config" / "prometheus" / "triton-alerts.yml"
GPU_RULES = ROOT / "config" / "prometheus" / "gpu-health.yml"
RULE_TESTS = ROOT / "tests" / "promtool" / "triton-alerts.test.yml"
ALERTMANAGER = ROOT / "config" / "alertmanager" / "alertmanager.yml"
RUNBOOKS = ROOT / "config" / "runbooks.yaml"
WEBHOOK_URL = "http://127.0.0.1:9099/api/v1/alertmanager"
WATCHDOG = "Watchdog"
GUNICORN_TIMEOUT_SECONDS = 30  # gunicorn's default worker timeout (docs/operations.md)

# The labels each alert carries besides its rule labels (checked by the promtool unit tests),
# with example values: what Alertmanager can group by.
CARRIED: dict[str, dict[str, str]] = {
    "TritonHighErrorRate": {"model": "llama2_7b"},
    "TritonHighLatency": {"model": "llama2_7b"},
    "TritonGPUMemoryHigh": {"gpu_uuid": "GPU-0", "instance": "10.0.0.5:8002", "job": "triton"},
    "TritonFewHealthyPods": {},
    WATCHDOG: {},
}
# gpu-health.yml: the GPU alerts keep dcgm-exporter's labels; the serving ones their model
DCGM = {"UUID": "GPU-5d1c", "gpu": "0", "Hostname": "gpu-node-7", "modelName": "NVIDIA H100",
        "device": "nvidia0", "instance": "10.0.0.7:9400", "job": "dcgm"}  # fmt: skip
for _rule in alert_rules(GPU_RULES):
    _name = _rule["alert"]
    CARRIED[_name] = DCGM if _name.startswith("GPU") else {"model": "llama2_7b"}
if "LLMKVCacheSaturated" in CARRIED:
    CARRIED["LLMKVCacheSaturated"] = {"model": "llama2_7b", "instance": "10.0.0.5:8002"}


def alertmanager_config() -> dict[str, Any]:
    return yaml.safe_load(ALERTMANAGER.read_text(encoding="utf-8"))


def config_for(versions: Versions, directory: Path) -> Path:
    """The shipped config as that version's users run it: a copy without the newer keys for an
    older Alertmanager, the shipped file itself otherwise."""
    text = ALERTMANAGER.read_text(encoding="utf-8")
    adapted = for_alertmanager(text, versions.version("amtool") or "0")
    if adapted == text:
        return ALERTMANAGER
    copy = directory / "alertmanager.yml"
    copy.write_text(adapted, encoding="utf-8")
    return copy


def webhook_receiver(config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The name and webhook config of the receiver posting to this receiver's webhook URL."""
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            if hook["url"].rstrip("/") == WEBHOOK_URL:
                return receiver["name"], hook
    raise AssertionError(f"no receiver posts to {WEBHOOK_URL}")


def matched_routes(
    alertname: str, labels: dict[str, str], directory: Path, on: Versions = DEBIAN_12
) -> list[tuple[str, str]]:
    """(route matchers or 'default-route', receiver) of every route the labels reach."""
    name, _ = webhook_receiver(alertmanager_config())
    args = [f"{k}={v}" for k, v in {"alertname": alertname, **labels}.items()]
    config = config_for(on, directory)
    result = amtool(
        "config", "routes", "test", f"--config.file={config}", "--tree",
        f"--verify.receivers={name}", *args, on=on,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return re.findall(r"(default-route|\{.*\})\s+receiver: (\S+)$", result.stdout, re.MULTILINE)


def route_for(leaf: str) -> dict[str, Any]:
    """The route amtool names `leaf`, with the settings it inherits from the root filled in."""
    root = alertmanager_config()["route"]
    if leaf == "default-route":
        return root
    for child in root.get("routes", []):
        if "{" + ",".join(child.get("matchers", [])) + "}" == leaf.replace(", ", ","):
            return {**{k: v for k, v in root.items() if k != "routes"}, **child}
    raise AssertionError(f"no route {leaf} in {ALERTMANAGER}")


ALERTS = [rule["alert"] for rule in alert_rules(RULES)]
GPU_ALERTS = [rule["alert"] for rule in alert_rules(GPU_RULES)]


@on_each_version
def test_the_shipped_rules_pass_promtool_check(versions: Versions) -> None:
    result = promtool("check", "rules", RULES, on=versions)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


@on_each_version
def test_the_rules_fire_at_the_expected_times_with_the_expected_labels(versions: Versions) -> None:
    result = promtool("test", "rules", RULE_TESTS, on=versions)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_rules_file_has_the_alerts_others_depend_on() -> None:
    assert sorted(ALERTS + GPU_ALERTS) == sorted(CARRIED)


@pytest.mark.parametrize("alert", alert_rules(RULES), ids=lambda rule: rule["alert"])
def test_every_alert_has_a_severity_summary_description_and_runbook(alert: dict[str, Any]) -> None:
    assert alert["labels"]["severity"] in {"critical", "warning", "info", "none"}
    for key in ("summary", "description", "runbook_url"):
        assert alert["annotations"][key].strip(), key
    assert alert["annotations"]["runbook_url"].startswith("https://")
    if alert["alert"] != WATCHDOG:
        assert alert["labels"]["team"] == "inference"
        description = alert["annotations"]["description"]
        assert "{{ $value" in description
        for label in set(CARRIED[alert["alert"]]) - {"job"}:
            assert f"{{{{ $labels.{label} }}}}" in description, label


@pytest.mark.parametrize("alertname", [a for a in ALERTS if a != WATCHDOG])
def test_every_alert_but_the_watchdog_has_a_runbook_catalogue_entry(alertname: str) -> None:
    runbook = RunbookCatalogue.load(RUNBOOKS).resolve({"alertname": alertname}, {})
    assert runbook.entry is not None, f"{alertname}: no entry in {RUNBOOKS}"
    assert runbook.url is not None and runbook.url.startswith("https://")
    assert runbook.guidance


@on_each_version
def test_amtool_accepts_the_shipped_alertmanager_config(versions: Versions, tmp_path: Path) -> None:
    # The bearer credentials_file is read per notification, so it need not exist to check.
    result = amtool("check-config", config_for(versions, tmp_path), on=versions)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_alertmanager_0_25_refuses_only_the_newer_lines_the_config_says_to_delete(
    tmp_path: Path,
) -> None:
    refused = amtool("check-config", ALERTMANAGER, on=DEBIAN_12)
    assert refused.returncode != 0
    assert "field timeout not found" in refused.stdout + refused.stderr
    shipped = ALERTMANAGER.read_text(encoding="utf-8").splitlines()
    copy = config_for(DEBIAN_12, tmp_path).read_text(encoding="utf-8").splitlines()
    assert len(shipped) - len(copy) == len(NEWER_WEBHOOK_KEYS)  # one line per key
    assert set(copy) < set(shipped)


def test_the_webhook_timeout_outlasts_the_receivers_slowest_answer() -> None:
    _, hook = webhook_receiver(alertmanager_config())
    database = DatabaseSettings()
    # a pooled connection, then a statement's answer or the client's deadline a second later
    slowest = database.pool_timeout_seconds + database.statement_timeout_seconds + 1
    timeout = seconds(hook["timeout"])
    assert slowest < timeout < GUNICORN_TIMEOUT_SECONDS
    assert timeout < seconds(alertmanager_config()["route"]["group_interval"])


def test_the_webhook_sends_resolved_alerts_with_a_bearer_token_file_and_caps_alerts() -> None:
    _, hook = webhook_receiver(alertmanager_config())
    assert hook["send_resolved"] is True
    assert 0 < hook["max_alerts"] <= 1000
    authorization = hook["http_config"]["authorization"]
    assert authorization["type"] == "Bearer"
    assert authorization["credentials_file"].startswith("/")


@on_each_version
@pytest.mark.parametrize(
    "alert", alert_rules(RULES) + alert_rules(GPU_RULES), ids=lambda rule: rule["alert"]
)
def test_each_alert_reaches_the_webhook_grouped_by_labels_it_carries(
    alert: dict[str, Any], versions: Versions, tmp_path: Path
) -> None:
    name, carried = alert["alert"], CARRIED[alert["alert"]]
    routes = matched_routes(name, {**alert["labels"], **carried}, tmp_path, on=versions)
    assert len(routes) == 1, routes
    route = route_for(routes[0][0])
    group_by = set(route["group_by"])
    # a label the alert lacks groups unrelated alerts together (all values empty)
    assert group_by - {"alertname"} <= set(carried), (name, group_by)
    assert "alertname" in group_by
    if "model" in carried:
        assert "model" in group_by  # one incident per model
    if name == "TritonGPUMemoryHigh":
        assert "instance" in group_by and "gpu_uuid" not in group_by  # GPUs of a node together
    if carried is DCGM:
        assert "Hostname" in group_by and "UUID" not in group_by  # GPUs of a node together
    is_watchdog_route = routes[0][0] == '{alertname="Watchdog"}'
    assert is_watchdog_route == (name == WATCHDOG)


def test_the_watchdog_is_sent_every_few_minutes_on_its_own_route(tmp_path: Path) -> None:
    (leaf, _), *_ = matched_routes(WATCHDOG, {"severity": "none"}, tmp_path)
    route = route_for(leaf)
    assert route is not alertmanager_config()["route"]
    assert seconds(route["repeat_interval"]) <= 300
    assert seconds(route["group_interval"]) <= seconds(route["repeat_interval"])
    assert not route.get("continue", False)


def test_alertnames_in_the_alertmanager_config_exist_in_the_rules_file() -> None:
    text = ALERTMANAGER.read_text(encoding="utf-8")
    named = {n for m in re.findall(r'alertname=~?"([^"]+)"', text) for n in m.split("|")}
    assert named, "no alertname matchers found"
    assert named <= set(ALERTS + GPU_ALERTS)


@on_each_version
def test_the_fast_variant_shortens_windows_and_holds_and_passes_promtool(
    tmp_path: Path, versions: Versions
) -> None:
    fast = fast_rules(RULES, tmp_path / "fast.yml", window="10s", for_="2s")
    result = promtool("check", "rules", fast, on=versions)
    assert result.returncode == 0, result.stdout + result.stderr
    shipped = {rule["alert"]: rule for rule in alert_rules(RULES)}
    shortened = 0
    for rule in alert_rules(fast):
        original = shipped.pop(rule["alert"])
        if rule["alert"] == WATCHDOG:
            assert rule == original
            continue
        windows = re.findall(r"\[([^\]]+)\]", rule["expr"])
        assert set(windows) <= {"10s"}, (rule["alert"], windows)
        shortened += len(windows)
        assert rule["for"] == "2s"
        expected = re.sub(r"\[[^\]]+\]", "[10s]", original["expr"])
        assert (rule["labels"], rule["expr"]) == (original["labels"], expected)
    assert not shipped, f"missing from the fast variant: {sorted(shipped)}"
    assert shortened > 0


def test_the_fast_variant_refuses_a_duration_prometheus_would_not_parse(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="10 seconds"):
        fast_rules(RULES, tmp_path / "fast.yml", window="10 seconds")
    assert not (tmp_path / "fast.yml").exists()


EVENT_RECORDER = ROOT / "config" / "alertmanager" / "event-recorder.yml"


def with_event_recorder(tmp_path: Path, versions: Versions) -> Path:
    """That version's alertmanager.yml (config_for) with event-recorder.yml's section merged in,
    as docs/monitoring.md says."""
    config = yaml.safe_load(config_for(versions, tmp_path).read_text(encoding="utf-8"))
    merged = {**config, **yaml.safe_load(EVENT_RECORDER.read_text(encoding="utf-8"))}
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(merged, sort_keys=False), encoding="utf-8")
    return path


def test_amtool_033_accepts_the_config_with_the_event_recorder(tmp_path: Path) -> None:
    result = amtool("check-config", with_event_recorder(tmp_path, NEWEST), on=NEWEST)
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_025_rejects_the_event_recorder_so_it_ships_apart(tmp_path: Path) -> None:
    result = amtool("check-config", with_event_recorder(tmp_path, DEBIAN_12), on=DEBIAN_12)
    assert result.returncode != 0
    assert "field event_recorder not found" in result.stdout + result.stderr
    assert "timeout" not in result.stdout + result.stderr  # that key is stripped for 0.25


def test_the_event_recorder_posts_to_the_receiver_with_the_webhooks_token() -> None:
    [output] = yaml.safe_load(EVENT_RECORDER.read_text())["event_recorder"]["webhook_outputs"]
    _, hook = webhook_receiver(alertmanager_config())
    assert output["url"] == WEBHOOK_URL.replace("/alertmanager", "/event-recorder")
    assert output["http_config"]["authorization"] == hook["http_config"]["authorization"]
