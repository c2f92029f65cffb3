"""Slack Web API with a bot token (``slack_sdk.WebClient``): one message per incident.

Retry table (https://api.slack.com/docs/rate-limits, https://api.slack.com/methods/chat.update):
HTTP 429 / ``ratelimited``: retry after Retry-After; 5xx and network: retry; ``message_not_found``
or ``cant_update_message`` on update: post a fresh message; other errors (invalid_auth,
channel_not_found, invalid_blocks, ...): give up. Posts are paced to one per second per channel
by holding deliveries back in the worker, never by sleeping (``receiver.notify.pacing``: shared
by every worker process through the database). Held posts queue behind each other, for every
worker together: each new one falls due an interval after the last one queued, so each is
claimed again when its turn comes, not at every slot before it.
"""

from __future__ import annotations

import math
import ssl
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from receiver.model.delivery import Outcome, SendResult
from receiver.notify import DeliveryJob, redact
from receiver.notify.pacing import Pacer
from receiver.notify.slack_blocks import change_lines, incident_blocks, incident_text
from receiver.settings import SlackReceiver

REPOST_ERRORS = {"message_not_found", "cant_update_message", "edit_window_closed"}
RETRY_ERRORS = {
    "ratelimited",
    "service_unavailable",
    "fatal_error",
    "internal_error",
    "request_timeout",
}
METADATA_TYPE = "receiver_incident"
PACED = "paced"  # a post held back for its channel's turn


class SlackNotifier:
    kind = "slack"

    def __init__(self, name: str, settings: SlackReceiver, pacer: Pacer):
        self.name, self.settings = name, settings
        self._token = settings.token.get_secret_value()
        context = (
            ssl.create_default_context(cafile=settings.ca_bundle) if settings.ca_bundle else None
        )
        self.client = WebClient(
            token=self._token,
            base_url=settings.base_url,
            timeout=max(1, math.ceil(settings.timeout_seconds)),  # whole seconds only
            ssl=context,
        )
        self.pacer = pacer

    def close(self) -> None:
        """Nothing to close: WebClient opens a connection per call."""

    def render(self, job: DeliveryJob) -> dict[str, Any]:
        return {
            "channel": job.external.get("channel") or self.settings.channel,
            "text": incident_text(job.incident),
            "blocks": incident_blocks(job.incident, job.incident_url),
        }

    def send(self, job: DeliveryJob) -> SendResult:
        if "ts" not in job.external:  # a new message: chat.postMessage is paced per channel
            wait = self.pacer.reserve(self.settings.channel, job.as_of)
            if wait > 0:
                return SendResult(
                    Outcome.RETRY, PACED, retry_after=self._turn(wait, job), attempted=False
                )
        try:
            return self._send(job)
        except SlackApiError as exc:
            return self._failure(exc)
        except OSError as exc:  # urllib: connection refused, timeout, TLS
            return SendResult(Outcome.RETRY, f"network error: {type(exc).__name__}")

    def _send(self, job: DeliveryJob) -> SendResult:
        ts, channel = job.external.get("ts"), job.external.get("channel")
        if ts is None and job.reclaimed:
            ts, channel = self._find_posted(job)  # a dead worker may have posted already
        if ts is None:
            return self._post(job)
        blocks = incident_blocks(job.incident, job.incident_url)
        try:
            self.client.chat_update(
                channel=channel, ts=ts, text=incident_text(job.incident), blocks=blocks
            )
        except SlackApiError as exc:
            if exc.response.get("error") in REPOST_ERRORS:
                return self._post(job)
            raise
        told = self._reply(channel, ts, job)
        external = {"channel": channel, "ts": ts}
        return SendResult(Outcome.OK, "updated", 200, external=external, told_changes=told)

    def _post(self, job: DeliveryJob) -> SendResult:
        response = self.client.chat_postMessage(
            channel=self.settings.channel,
            text=incident_text(job.incident),
            blocks=incident_blocks(job.incident, job.incident_url),
            metadata={
                "event_type": METADATA_TYPE,
                "event_payload": {"incident": job.incident["id"], "key": job.idempotency_key},
            },
        )
        channel, ts = response["channel"], response["ts"]
        self._paced()
        return SendResult(Outcome.OK, "posted", 200, external={"channel": channel, "ts": ts})

    def _turn(self, wait: float, job: DeliveryJob) -> float:
        """Seconds until a held post's turn (the slot frees in ``wait``). Held for the first
        time, it queues behind the posts already held for the channel, by every worker, so it
        is claimed again when its turn comes, not at every slot before it. Held again at its
        turn (a 429 held the channel meanwhile), it goes first, when the slot frees: the claim
        takes the oldest due first, so posts still go out in order."""
        if job.as_of is None or job.last_error == PACED:
            return wait
        return self.pacer.queue(self.settings.channel, job.as_of, wait)

    def _reply(self, channel: str, ts: str, job: DeliveryJob) -> bool:
        """Timeline changes since the last send as one thread reply; False if held by pacing."""
        lines = change_lines(job.new_events)
        if not lines:
            return True
        if self.pacer.reserve(self.settings.channel, job.as_of) > 0:
            return False  # told with the next update instead
        self.client.chat_postMessage(channel=channel, thread_ts=ts, text="\n".join(lines)[:3000])
        self._paced()
        return True

    def _find_posted(self, job: DeliveryJob) -> tuple[str | None, str | None]:
        """Look for a message this delivery already posted (by its metadata) before a crash.

        conversations.history takes a channel ID: configure ``channel`` as an ID (C...) for
        this check to work against Slack itself.
        """
        channel = self.settings.channel
        history = self.client.conversations_history(
            channel=channel, include_all_metadata=True, limit=100
        )
        for message in history.get("messages", []):
            payload = (message.get("metadata") or {}).get("event_payload") or {}
            if payload.get("key") == job.idempotency_key:
                return message["ts"], channel
        return None, None

    def _paced(self) -> None:
        """The interval counts from Slack's answer: keep the channel's slot until then."""
        self.pacer.hold(self.settings.channel)

    def _failure(self, exc: SlackApiError) -> SendResult:
        response = exc.response
        status = getattr(response, "status_code", None)
        error = response.get("error") if hasattr(response, "get") else None
        excerpt = redact(str(getattr(response, "data", "")), [self._token])[:500]
        if status == 429 or error in RETRY_ERRORS or (status or 0) >= 500:
            retry_after = _seconds(
                response.headers.get("Retry-After") if response.headers else None
            )
            if status == 429 or error == "ratelimited":  # the channel waits, not this post only
                self.pacer.hold(self.settings.channel, retry_after)
            return SendResult(
                Outcome.RETRY, f"slack: {error or status}", status, retry_after, excerpt
            )
        return SendResult(Outcome.GIVE_UP, f"slack: {error or status}", status, excerpt=excerpt)


def _seconds(value: Any) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None
