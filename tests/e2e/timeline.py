"""Reading the pipeline while it runs: polling with deadlines, the receiver's read API, and what
the PagerDuty and Slack stand-ins received for one incident."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from tests.e2e.configs import FLAP_HOLD_DOWN_SECONDS, SLACK_CHANNEL
from tests.e2e.stack import Stack
from tests.support.api import read_json

T = TypeVar("T")
DEADLINE = 45.0
POLL = 0.2
GIB = 1024**3


def eventually(
    stack: Stack,
    what: str,
    probe: Callable[[], T],
    timeout: float = DEADLINE,
    show: Callable[[], Any] | None = None,
) -> T:
    """Poll ``probe`` until it returns something truthy and return that; fail at the deadline
    (or as soon as a process of the stack dies) with the last value (or what ``show`` returns
    then) and the processes' logs."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = probe()
        if last:
            return last
        if dead := stack.dead():
            pytest.fail(f"{dead} died while waiting for {what}{stack.output()}", pytrace=False)
        if time.monotonic() > deadline:
            last = show() if show is not None else last
            pytest.fail(
                f"not within {timeout:g} s: {what}\nlast: {last!r}{stack.output()}", pytrace=False
            )
        time.sleep(POLL)


def api(stack: Stack, path: str, **params: Any) -> Any:
    """GET a JSON document of the receiver's read API."""
    return read_json(stack.receiver.url, path, **params)


def incidents_of(stack: Stack, alertname: str, **labels: str) -> list[dict[str, Any]]:
    """Incidents of ``alertname`` with an alert carrying every given label, oldest first."""
    matchers = [f'{name}="{value}"' for name, value in labels.items()]
    found = api(stack, "/api/v1/incidents", alertname=alertname, label=matchers)["incidents"]
    return sorted(found, key=lambda i: (i["opened_at"], i["id"]))


def incident(stack: Stack, incident_id: int) -> dict[str, Any]:
    """One incident in detail: alerts and episodes, context, timeline, payloads, deliveries."""
    return api(stack, f"/api/v1/incidents/{incident_id}")


def settled(detail: dict[str, Any]) -> bool:
    """Every delivery of the incident was sent or cancelled (none pending, sending or dead)."""
    states = {d["state"] for d in detail["deliveries"]}
    return "sent" in states and states <= {"sent", "cancelled"}


def delivered(stack: Stack, incident_id: int, status: str | None = None) -> dict[str, Any]:
    """Wait until every delivery of the incident was sent (and it has ``status``); its detail."""

    def probe() -> dict[str, Any] | None:
        detail = incident(stack, incident_id)
        return detail if settled(detail) and status in (None, detail["status"]) else None

    def show() -> Any:
        detail = incident(stack, incident_id)
        fields = ("receiver", "action", "state", "due_at", "last_error", "attempts")
        deliveries = [{k: d[k] for k in fields} for d in detail["deliveries"]]
        return {"status": detail["status"], "deliveries": deliveries}

    what = f"every delivery of incident {incident_id} sent" + (f", it {status}" if status else "")
    return eventually(stack, what, probe, timeout=DEADLINE + FLAP_HOLD_DOWN_SECONDS, show=show)


def dedup_key(detail: dict[str, Any]) -> str:
    """The PagerDuty dedup key of the incident's group (``dedup_key: group``)."""
    return hashlib.sha256(detail["group"]["group_key"].encode()).hexdigest()


def pd_actions(stack: Stack, detail: dict[str, Any]) -> list[str]:
    """The event actions PagerDuty accepted for the incident's group, in order."""
    key = dedup_key(detail)
    return [e["event_action"] for e in stack.pagerduty.events if e["dedup_key"] == key]


def pd_pages(stack: Stack, detail: dict[str, Any]) -> list[dict[str, Any]]:
    """The PagerDuty alerts (each one page) opened for the incident's group."""
    key = dedup_key(detail)
    return [a for a in stack.pagerduty.alerts() if a["dedup_key"] == key]


def slack_messages(stack: Stack, incident_ids: list[int]) -> list[dict[str, Any]]:
    """Top-level Slack messages posted for these incidents (threads not counted)."""
    return [
        m
        for m in stack.slack.messages(SLACK_CHANNEL)
        if ((m["metadata"] or {}).get("event_payload") or {}).get("incident") in incident_ids
    ]


def alert_states(stack: Stack, alertname: str, **labels: str) -> list[str]:
    """States of the matching alerts in Prometheus's ``ALERTS`` series right now."""
    selector = ",".join(f'{k}="{v}"' for k, v in {"alertname": alertname, **labels}.items())
    return sorted(m["alertstate"] for m, _ in stack.prometheus.query(f"ALERTS{{{selector}}}"))


def receipts_from(detail: dict[str, Any]) -> set[str]:
    """The Alertmanagers (externalURL) whose notifications the incident holds."""
    return {p["external_url"] for p in detail["payloads"]}


def context_items(detail: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The incident's context snapshot items by key."""
    return {item["key"]: item for item in detail["context"]["items"]}


def healthy_model(stack: Stack, model: str, **rates: float) -> None:
    """Serve steady traffic for ``model`` on pod A and wait until Prometheus has its rates."""
    values = {"success_per_s": 20.0, "compute_us_per_request": 40_000.0, **rates}
    stack.pod_a.set_model(model, **values)
    query = f'rate(nv_inference_request_success{{model="{model}"}}[10s]) > 0'
    eventually(
        stack, f"a request rate for {model} in Prometheus", lambda: stack.prometheus.query(query)
    )


def gpu_memory(stack: Stack, uuid: str, share: float, pod: str = "a") -> None:
    """Set a GPU's used memory to ``share`` of 80 GiB on pod ``a`` or ``b``."""
    sim = stack.pod_a if pod == "a" else stack.pod_b
    sim.set_gpu(
        uuid, utilization=0.5, memory_used_bytes=share * 80 * GIB, memory_total_bytes=80 * GIB
    )


def episodes_of(stack: Stack, alertname: str, **labels: str) -> list[dict[str, Any]]:
    """Every episode of the matching alerts across their incidents, by start; each with its
    ``incident`` id and its alert's ``labels``."""
    found = []
    for summary in incidents_of(stack, alertname, **labels):
        for series in incident(stack, summary["id"])["alerts"]:
            if labels.items() <= series["labels"].items():
                for episode in series["episodes"]:
                    found.append({**episode, "incident": summary["id"], "labels": series["labels"]})
    return sorted(found, key=lambda e: e["starts_at"])


def sent_actions(detail: dict[str, Any], receiver: str) -> list[str]:
    """The actions (trigger, update, resolve) the receiver sent to ``receiver``, in order."""
    mine = [d for d in detail["deliveries"] if d["receiver"] == receiver]
    return [d["action"] for d in mine if d["state"] == "sent"]
