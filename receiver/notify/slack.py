"""Slack Web API with a bot token (``slack_sdk.WebClient``): one message per incident.

Retry table (https://api.slack.com/docs/rate-limits, https://api.slack.com/methods/chat.update):
HTTP 429 / ``ratelimited``: retry after Retry-After; 5xx and network: retry; ``message_not_found``
or ``cant_update_message`` on update: post a fresh message; other errors (invalid_auth,
channel_not_found, invalid_blocks, ...): give up.

The channel is used by ID (``receiver.notify.slack_channels``: a name is resolved once), for
posts, for the lookup and as the pacing key. A post whose outcome is unknown (its worker died
or its settle failed before the outbox recorded it, it timed out, Slack answered 5xx) is in
doubt: the next try first looks for it in the channel's history by the key in its metadata,
updates it in place when found and posts once when not. A lookup that fails, for any reason,
is retried and never followed by a blind post; the outbox keeps such a delivery while its
incident fires (docs/delivery.md).

Posts are paced to one per interval per channel by the delivery worker, not here: before a
send it asks ``slot_request`` which channel's slot the send may post in, takes the slot if it
is free (``receiver.notify.pacing``, shared by every worker through the database) and names it
in ``DeliveryJob.slot``; after it, it keeps the channel held as ``SendResult.hold_channel``
says. This notifier only talks HTTP. A new message without the slot is not posted: the worker
holds it back for its turn; a post in doubt that the lookup does not find, sent without a slot
(it was taken), is handed back at once, to ask for the slot at its next claim.
"""

from __future__ import annotations

import math
import ssl
from dataclasses import dataclass, replace
from typing import Any, cast

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from receiver.model.delivery import Outcome, SendResult
from receiver.notify import DeliveryJob, SlotRequest, redact
from receiver.notify.slack_blocks import change_lines, incident_blocks, incident_text
from receiver.notify.slack_channels import (
    NAME_SCOPES,
    ChannelDirectory,
    ChannelNotFound,
    HistoryTooLong,
    find_posted,
)
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
SLOT_WANTED = "waiting for the channel's slot"  # must post, but the worker had no slot for it


@dataclass
class _Try:
    """How far one send got: its step, the channel's ID once known, and whether a post of
    this delivery may be in Slack unseen (``in_doubt``)."""

    in_doubt: bool
    step: str = "resolve"  # resolve | lookup | post | update | reply
    channel: str | None = None


class SlackNotifier:
    kind = "slack"

    def __init__(self, name: str, settings: SlackReceiver):
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
        self.channels = ChannelDirectory(self.client, settings.channel)

    def close(self) -> None:
        """Nothing to close: WebClient opens a connection per call."""

    def render(self, job: DeliveryJob) -> dict[str, Any]:
        return {
            "channel": job.external.get("channel") or self.channels.known or self.settings.channel,
            "text": incident_text(job.incident),
            "blocks": incident_blocks(job.incident, job.incident_url),
        }

    def slot_request(self, job: DeliveryJob) -> SlotRequest | None:
        """The channel slot this send may post in: needed for a new message, wanted for a
        thread reply of timeline changes and for a post in doubt (looked for first: found, it
        is updated in place). A channel name is resolved here the first time; if that fails,
        the send meets the failure again and reports it."""
        channel = job.external.get("channel") or self._channel_id()
        if channel is None:
            return None
        if "ts" not in job.external:
            return SlotRequest(channel, needed=not _in_doubt(job))
        return SlotRequest(channel, needed=False) if change_lines(job.new_events) else None

    def _channel_id(self) -> str | None:
        try:
            return self.channels.id()
        except (ChannelNotFound, SlackApiError, OSError):
            return None  # the send resolves it again and reports why it cannot

    def send(self, job: DeliveryJob) -> SendResult:
        """Post or update the incident's message; a retry says whether it is in doubt."""
        attempt = _Try(in_doubt=_in_doubt(job))
        try:
            result = self._send(job, attempt)
        except ChannelNotFound as exc:  # nothing was or can be posted there
            result = SendResult(Outcome.GIVE_UP, str(exc))
        except HistoryTooLong as exc:
            result = SendResult(Outcome.RETRY, str(exc))
        except SlackApiError as exc:
            result = self._failure(exc, attempt)
        except OSError as exc:  # urllib: connection refused, timeout, TLS
            result = SendResult(Outcome.RETRY, f"network error: {type(exc).__name__}")
        if result.outcome is Outcome.RETRY and attempt.in_doubt:
            return replace(result, in_doubt=True)
        return result

    def _send(self, job: DeliveryJob, attempt: _Try) -> SendResult:
        # a post's ts and channel are kept together: with a ts there is its channel
        ts, channel = job.external.get("ts"), cast(str, job.external.get("channel"))
        if ts is None:
            channel = self._channel(attempt)
            if attempt.in_doubt:  # an earlier try may have posted it: look before posting
                attempt.step = "lookup"
                ts = find_posted(self.client, channel, job.idempotency_key, job.incident.opened_at)
                attempt.in_doubt = ts is not None  # found: in doubt until it is recorded
            if ts is None and job.slot != channel:  # ask the worker for the slot first
                return SendResult(Outcome.RETRY, SLOT_WANTED, retry_after=0.0, attempted=False)
            if ts is None:
                return self._post(job, channel, attempt)
        attempt.step, attempt.channel = "update", channel
        blocks = incident_blocks(job.incident, job.incident_url)
        try:
            self.client.chat_update(
                channel=channel, ts=ts, text=incident_text(job.incident), blocks=blocks
            )
        except SlackApiError as exc:
            if exc.response.get("error") in REPOST_ERRORS:
                return self._post(job, self._channel(attempt), attempt)
            raise
        told, replied = self._reply(channel, ts, job, attempt)
        return SendResult(
            Outcome.OK,
            "updated",
            200,
            external={"channel": channel, "ts": ts},
            told_changes=told,
            hold_channel=channel if replied else None,
        )

    def _channel(self, attempt: _Try) -> str:
        """The configured channel's ID (resolved once)."""
        attempt.step = "resolve"
        attempt.channel = self.channels.id()
        return attempt.channel

    def _post(self, job: DeliveryJob, channel: str, attempt: _Try) -> SendResult:
        attempt.step, attempt.in_doubt = "post", True  # until Slack answers
        response = self.client.chat_postMessage(
            channel=channel,
            text=incident_text(job.incident),
            blocks=incident_blocks(job.incident, job.incident_url),
            metadata={
                "event_type": METADATA_TYPE,
                "event_payload": {"incident": job.incident.id, "key": job.idempotency_key},
            },
        )
        attempt.in_doubt = False
        external = {"channel": response["channel"], "ts": response["ts"]}
        # the worker keeps the slot for the interval from Slack's answer
        return SendResult(Outcome.OK, "posted", 200, external=external, hold_channel=channel)

    def _reply(self, channel: str, ts: str, job: DeliveryJob, attempt: _Try) -> tuple[bool, bool]:
        """Timeline changes since the last send as one thread reply, in the channel's slot:
        whether they are told (without the slot: with a later send), and whether it posted."""
        lines = change_lines(job.new_events)
        if not lines:
            return True, False
        if job.slot != channel:
            return False, False
        attempt.step = "reply"
        self.client.chat_postMessage(channel=channel, thread_ts=ts, text="\n".join(lines)[:3000])
        return True, True

    def _failure(self, exc: SlackApiError, attempt: _Try) -> SendResult:
        """Retry, or give up, by the error and the step it happened at."""
        response = exc.response
        status = getattr(response, "status_code", None)
        error = response.get("error") if hasattr(response, "get") else None
        needed = response.get("needed") if hasattr(response, "get") else None
        excerpt = redact(str(getattr(response, "data", "")), [self._token])[:500]
        retry_after = _seconds(response.headers.get("Retry-After") if response.headers else None)
        reason = f"slack: {error or status}" + (f" (needed: {needed})" if needed else "")
        if attempt.step == "resolve":
            reason += f" resolving channel {self.settings.channel!r}"
            if error in ("missing_scope", "invalid_types"):
                reason += f" (needs {NAME_SCOPES}; or configure its ID)"
        limited = status == 429 or error == "ratelimited"
        if attempt.step == "post" and limited:
            attempt.in_doubt = False  # refused: nothing was posted
        looking = attempt.in_doubt and attempt.step in ("resolve", "lookup")  # any reason
        if looking or limited or error in RETRY_ERRORS or (status or 0) >= 500:
            held = None  # a 429 to a post, update or reply: the channel waits, not one post
            if limited and attempt.step in ("post", "update", "reply"):
                held = attempt.channel
            return SendResult(
                Outcome.RETRY, reason, status, retry_after, excerpt, hold_channel=held
            )
        return SendResult(Outcome.GIVE_UP, reason, status, excerpt=excerpt)


def _in_doubt(job: DeliveryJob) -> bool:
    """Whether an earlier try may have posted the message unseen (no ``ts`` to show for it)."""
    return job.reclaimed and "ts" not in job.external


def _seconds(value: Any) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None
