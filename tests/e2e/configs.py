"""The shipped configuration, made fast and pointed at the test processes.

``alertmanager_config`` rewrites ``config/alertmanager/alertmanager.yml``: its webhook URL and
credentials file, and every route's timings; for an older Alertmanager it drops the lines the
file tells their users to delete. ``receiver_config`` writes the receiver's YAML:
context from the stack's Prometheus, every incident to the PagerDuty and Slack stand-ins.
Nothing else of the shipped files changes: grouping, inhibition and routing are under test.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from tests.standins.pagerduty import PagerDutyStandIn
from tests.standins.slack import SlackStandIn
from tests.support.prometheus_tools import for_alertmanager
from tests.support.servers import REPO_ROOT

SHIPPED_ALERTMANAGER = REPO_ROOT / "config" / "alertmanager" / "alertmanager.yml"
SHIPPED_RULES = REPO_ROOT / "config" / "prometheus" / "triton-alerts.yml"
ROUTING_KEY = "e2e0routing0key00000000000000000"
SLACK_TOKEN = "xoxb-e2e-test"
SLACK_CHANNEL = "C0E2ETEST"
FLAP_HOLD_DOWN_SECONDS = 15.0  # longer than a re-firing takes to arrive (~6 s)

# group_wait, group_interval, repeat_interval of every route (minutes and hours become seconds)
# a firing alert Alertmanager no longer holds resolves after this (the worker checks every 1 s);
# longer than a real resolve takes to arrive, so only a lost one is resolved by the receiver
STALE_GRACE_SECONDS = 10
# the Watchdog arrives every repeat_interval (10 s): missing after twice that
WATCHDOG_MISSING_SECONDS = 20
FAST_TIMINGS = {"group_wait": "1s", "group_interval": "2s", "repeat_interval": "10s"}


def alertmanager_config(
    receiver_url: str, credentials_file: Path, version: str, source: Path = SHIPPED_ALERTMANAGER
) -> dict[str, Any]:
    """The shipped config for Alertmanager ``version`` with the webhook at ``receiver_url`` and
    every route's timings fast."""
    text = for_alertmanager(source.read_text(encoding="utf-8"), version)
    config = copy.deepcopy(yaml.safe_load(text))
    webhooks = [w for r in config["receivers"] for w in r.get("webhook_configs", [])]
    assert webhooks, f"{source}: no webhook receiver to point at the test receiver"
    for webhook in webhooks:
        path = webhook["url"].split("/api/v1/alertmanager", 1)[1]
        webhook["url"] = f"{receiver_url}/api/v1/alertmanager{path}"
        webhook["http_config"]["authorization"]["credentials_file"] = str(credentials_file)
    _speed_up(config["route"], top=True)
    return config


def _speed_up(route: dict[str, Any], top: bool) -> None:
    """Shorten the timings set on this route (all three at the top) and on its children."""
    for key, fast in FAST_TIMINGS.items():
        if top or key in route:
            route[key] = "0s" if route.get(key) == "0s" else fast
    for child in route.get("routes", []):
        _speed_up(child, top=False)


def receiver_config(
    path: Path,
    prometheus_url: str,
    pagerduty: PagerDutyStandIn,
    slack: SlackStandIn,
    alertmanager_urls: list[str],
) -> Path:
    """Write the receiver's config: every incident to both stand-ins, fast delivery, short
    flapping hold-down, fast reconciliation with the Alertmanagers and a watched Watchdog; the
    database and webhook token come from the environment."""
    config = {
        "runbooks_path": str(REPO_ROOT / "config" / "runbooks.yaml"),
        "context_path": str(REPO_ROOT / "config" / "context.yaml"),
        "prometheus": {"url": prometheus_url, "timeout_seconds": 2, "budget_seconds": 5},
        "receivers": {
            "pagerduty": {
                "type": "pagerduty",
                "routing_key": ROUTING_KEY,
                "base_url": pagerduty.base_url,
                "ca_bundle": pagerduty.ca_file,
                "dedup_key": "group",
                "timeout_seconds": 5,
            },
            "slack": {
                "type": "slack",
                "token": SLACK_TOKEN,
                "channel": SLACK_CHANNEL,
                "base_url": slack.base_url,
                "timeout_seconds": 5,
            },
        },
        "default_receivers": ["pagerduty", "slack"],
        "flapping": {
            "threshold": 3,
            "window_minutes": 30,
            "hold_down_minutes": FLAP_HOLD_DOWN_SECONDS / 60,
        },
        "delivery": {
            "coalesce_seconds": 0.5,
            "backoff_initial_seconds": 0.5,
            "backoff_max_seconds": 2,
            "slack_min_interval_seconds": 1,
        },
        "alertmanager": {
            "urls": alertmanager_urls,
            "reconcile_interval_seconds": 1,
            "stale_grace_minutes": STALE_GRACE_SECONDS / 60,
            "min_age_seconds": 2,
        },
        "watchdog": {"missing_after_minutes": WATCHDOG_MISSING_SECONDS / 60},
        "log_level": "INFO",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path
