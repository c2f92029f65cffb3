"""PagerDuty Events API v2 through the ``pagerduty`` package (the successor of ``pdpyras``).

Retry table (https://developer.pagerduty.com/docs/events-api-v2/overview/#response-codes-retry-logic):
202 accepted; 400 invalid event: give up; 429 throttled: retry later; 5xx and network: retry.
The client's own retries are switched off so the outbox owns every retry.
"""

from __future__ import annotations

import json
import logging
import ssl
from dataclasses import replace
from typing import Any

import pagerduty

from receiver.model.alerts import sha256_hex
from receiver.model.delivery import Outcome, SendResult
from receiver.model.snapshot import AlertSeries, Episode, IncidentSnapshot
from receiver.notify import DeliveryJob, redact
from receiver.settings import PagerDutyReceiver

MAX_SUMMARY = 1024
MAX_EVENT_BYTES = 512_000
MAX_EXCERPT = 500


class PagerDutyNotifier:
    kind = "pagerduty"

    def __init__(self, name: str, settings: PagerDutyReceiver):
        self.name, self.settings = name, settings
        self._key = settings.routing_key.get_secret_value()
        verify: Any = True
        if settings.ca_bundle:  # httpx2 wants a context, not a path
            verify = ssl.create_default_context(cafile=settings.ca_bundle)
        self.client = pagerduty.EventsApiV2Client(
            self._key, base_url=settings.base_url, verify=verify
        )
        # The client retries 429 without limit and 5xx several times, sleeping in this thread.
        # Give every status a finite retry count and a total budget below one attempt, so it
        # hands the first answer back and the outbox owns every retry (with Retry-After).
        self.client.retry = {status: 1 for status in (429, 500, 502, 503, 504)}
        self.client.max_http_attempts = -1
        # ...which the client logs as an ERROR on every 429/5xx; the outbox records those itself
        self.client.log.setLevel(logging.CRITICAL)  # type: ignore[union-attr]  # set in __init__
        self.client.max_network_attempts = 0
        self.client.timeout = settings.timeout_seconds  # type: ignore[assignment]  # HTTPX: a float

    def close(self) -> None:
        self.client.close()

    def dedup_key(self, incident: IncidentSnapshot) -> str:
        """``group``: sha256(groupKey) as Alertmanager's integration; ``incident``: per incident."""
        group_key = incident.group.group_key
        if self.settings.dedup_key == "group":
            return sha256_hex(group_key)
        return sha256_hex(f"{group_key}\n{incident.id}")

    def events(self, job: DeliveryJob) -> list[dict[str, Any]]:
        """The events of one delivery: one per incident, or one per alert / alert episode."""
        if self.settings.dedup_key in ("group", "incident"):
            return [self.event(job)]
        group_key = job.incident.group.group_key
        events = []
        for alert in job.incident.alerts:
            episodes = alert.episodes
            if self.settings.dedup_key == "alert":
                episodes = episodes[-1:]  # one PagerDuty alert per alert series
            for episode in episodes:
                identity = f"{group_key}\n{alert.fingerprint}"
                if self.settings.dedup_key == "episode":
                    identity += f"\n{episode.starts_at.isoformat()}"
                key = sha256_hex(identity)
                if job.action == "resolve" or episode.status != "firing":
                    events.append({"event_action": "resolve", "dedup_key": key})
                else:
                    events.append(self._alert_event(job, alert, episode, key))
        return events

    def send(self, job: DeliveryJob) -> SendResult:
        """Send every event of the delivery; PagerDuty dedup keys make a re-send harmless."""
        result = SendResult(Outcome.OK, "nothing to send")
        for event in self.events(job):
            result = self._send_event(event)
            if result.outcome is not Outcome.OK:
                return result
        per_alert = self.settings.dedup_key in ("alert", "episode")
        return replace(result, external={}) if per_alert else result

    def _alert_event(
        self, job: DeliveryJob, alert: AlertSeries, episode: Episode, key: str
    ) -> dict[str, Any]:
        """A trigger for one alert of the incident (``alert``/``episode`` strategies)."""
        incident = job.incident
        single = replace(
            incident,
            alerts=(alert,),
            labels=alert.labels,
            title=(episode.annotations or {}).get("summary") or incident.title,
            severity=alert.labels.get("severity") or incident.severity,
        )
        event = self.event(replace(job, incident=single))
        event["dedup_key"] = key
        event["payload"]["timestamp"] = episode.starts_at.isoformat()
        return event

    def _send_event(self, event: dict[str, Any]) -> SendResult:
        try:
            response = self.client.post("/v2/enqueue", json=event)
        except pagerduty.Error as exc:
            cause = type(exc.__cause__ or exc).__name__
            return SendResult(Outcome.RETRY, f"network error: {cause}")
        excerpt = redact(response.text, [self._key])[:MAX_EXCERPT]  # redact, then cut
        status = response.status_code
        if status == 202:
            return SendResult(
                Outcome.OK,
                "accepted",
                status,
                excerpt=excerpt,
                external={"dedup_key": event["dedup_key"]},
            )
        if status == 429 or status >= 500:
            retry_after = _seconds(response.headers.get("Retry-After"))
            return SendResult(Outcome.RETRY, f"HTTP {status}", status, retry_after, excerpt)
        reason = redact(f"HTTP {status}: {_errors(response)}", [self._key])
        return SendResult(Outcome.GIVE_UP, reason, status, excerpt=excerpt)

    def render(self, job: DeliveryJob) -> dict[str, Any]:
        return {"events": self.events(job)}

    def event(self, job: DeliveryJob) -> dict[str, Any]:
        """The Events API v2 body for this delivery (routing key added by the client)."""
        incident = job.incident
        dedup_key = job.external.get("dedup_key") or self.dedup_key(incident)
        if job.action == "resolve":
            return {"event_action": "resolve", "dedup_key": dedup_key}
        labels = incident.labels
        severity = self.settings.severity_map.get(
            (incident.severity or "").lower(), self.settings.default_severity
        )
        event: dict[str, Any] = {
            "event_action": "trigger",
            "dedup_key": dedup_key,
            "payload": {
                "summary": _summary(incident),
                "source": labels.get("instance") or labels.get("job") or incident.receiver,
                "severity": severity,
                "timestamp": incident.opened_at.isoformat(),
                "component": labels.get("model") or labels.get("gpu_uuid") or "triton",
                "group": labels.get("job") or labels.get("service") or incident.receiver,
                "class": incident.alertname,
                "custom_details": _details(incident),
            },
            "client": "receiver",
            "links": _links(incident, job.incident_url),
        }
        if job.incident_url:
            event["client_url"] = job.incident_url
        return _clamp(event)


def _summary(incident: IncidentSnapshot) -> str:
    firing = incident.firing_episodes
    prefix = f"[{firing} firing] " if firing > 1 else ""
    return (prefix + incident.title)[:MAX_SUMMARY]


def _details(incident: IncidentSnapshot) -> dict[str, Any]:
    context = {
        i.title: (
            ", ".join(v.display for v in i.values)
            if i.status == "ok"
            else f"unavailable: {i.reason}"
        )
        for i in incident.context.items
    }
    counts = incident.counts
    return {
        "status": incident.status,
        "labels": incident.labels,
        "annotations": incident.annotations,
        "counts": {
            "notifications": counts.notifications,
            "duplicates": counts.duplicates,
            "alerts": counts.alerts,
            "episodes": counts.episodes,
        },
        "flapping": incident.flapping,
        "runbook": incident.runbook_url,
        "guidance": incident.guidance,
        "context": context,
        "alerts": [
            {"labels": a.labels, "status": a.episodes[-1].status} for a in incident.alerts[:50]
        ],
    }


def _links(incident: IncidentSnapshot, incident_url: str | None) -> list[dict[str, str]]:
    links = []
    if incident.runbook_url:
        links.append({"href": incident.runbook_url, "text": "Runbook"})
    graph = next(
        (e.generator_url for a in incident.alerts for e in a.episodes if e.generator_url),
        None,
    )
    if graph and graph.startswith(("http://", "https://")):
        links.append({"href": graph, "text": "Prometheus graph"})
    if incident_url:
        links.append({"href": incident_url, "text": "Incident in receiver"})
    return links


def _clamp(event: dict[str, Any]) -> dict[str, Any]:
    """Keep the event under PagerDuty's size limit: drop the bulkiest details first."""
    details = event["payload"]["custom_details"]
    for key in ("alerts", "annotations", "context"):
        if len(json.dumps(event)) <= MAX_EVENT_BYTES - 1000:
            break
        details[key] = "(omitted: event too large)"
    return event


def _errors(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return "no JSON body"
    errors = body.get("errors") if isinstance(body, dict) else None
    return "; ".join(map(str, errors))[:300] if errors else str(body)[:300]


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
