"""Slack channels by ID: a configured name resolved once, and the lookup of a post in doubt.

Slack's methods differ on what names a channel: chat.postMessage takes "an encoded ID or
channel name", but conversations.history and chat.update take the ID only
(https://docs.slack.dev/reference/methods/conversations.history: "Conversation ID to fetch
history for"; a name is ``channel_not_found``). So the notifier works with the ID throughout:
for posts, for the history lookup and as the pacing key, whichever way the channel was written.

- A name (``#alerts`` or ``alerts``) is looked up in conversations.list
  (https://docs.slack.dev/reference/methods/conversations.list: bot scopes ``channels:read`` for
  public channels, ``groups:read`` for private ones, which it lists only when the bot is in
  them; ``types``, ``exclude_archived``, ``limit`` under 1000, pages by
  ``response_metadata.next_cursor``, empty on the last page:
  https://docs.slack.dev/apis/web-api/pagination), once per notifier: an ID stays valid when
  the channel is renamed. An ID (``C0123ABCD``) is used as is, with no call.
- A post in doubt is looked for by its metadata in conversations.history (``channels:history``
  or ``groups:history``; only channels the bot is in; metadata only with
  ``include_all_metadata``), newest first, back to a little before its incident opened (no post
  of the incident is older), a page at a time by ``response_metadata.next_cursor``.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient

CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{8,}$")  # C0123ABCD, G0123ABCDEF: names are lowercase
NAME_SCOPES = "channels:read and groups:read"
LIST_PAGE, LIST_PAGES = 500, 100  # 50,000 channels at most: beyond that, configure the ID
HISTORY_PAGE, HISTORY_PAGES = 200, 10  # 2,000 messages since the incident opened
CLOCK_MARGIN = timedelta(minutes=10)  # Slack's ts against the receiver's clock


class ChannelNotFound(Exception):
    """A configured channel name that conversations.list does not list: nothing can be posted
    there (it does not exist, is archived, or is private without the bot in it)."""


class HistoryTooLong(Exception):
    """The lookup read its limit of messages without reaching the incident's opening."""


def is_channel_id(channel: str) -> bool:
    return bool(CHANNEL_ID.match(channel))


class ChannelDirectory:
    """The configured channel's ID, looked up by name the first time it is asked for."""

    def __init__(self, client: WebClient, channel: str):
        self.client, self.configured = client, channel
        self._id = channel if is_channel_id(channel) else None

    @property
    def known(self) -> str | None:
        """The ID if it is known without a call."""
        return self._id

    def id(self) -> str:
        """The channel ID (SlackApiError or OSError if Slack could not say; ChannelNotFound)."""
        if self._id is None:
            self._id = self._lookup(self.configured.removeprefix("#").lower())
        return self._id

    def _lookup(self, name: str) -> str:
        cursor = None
        for _ in range(LIST_PAGES):
            page = self.client.conversations_list(
                types="public_channel,private_channel",
                exclude_archived=True,
                limit=LIST_PAGE,
                cursor=cursor,
            )
            for channel in page.get("channels") or []:
                if str(channel.get("name", "")).lower() == name:
                    return str(channel["id"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                raise ChannelNotFound(
                    f"slack: no channel named {self.configured!r} the bot can see (it needs "
                    f"{NAME_SCOPES}, and to be in a private channel); configure its ID instead"
                )
        raise ChannelNotFound(
            f"slack: {LIST_PAGES * LIST_PAGE} channels listed without {self.configured!r}; "
            "configure its ID instead"
        )


def find_posted(client: WebClient, channel_id: str, key: str, since: datetime | None) -> str | None:
    """The ts of the top-level message whose metadata carries ``key``, posted after
    ``since`` (less a margin for the clocks), or None when there is none."""
    oldest = f"{(since - CLOCK_MARGIN).timestamp():.6f}" if since is not None else None
    cursor = None
    for _ in range(HISTORY_PAGES):
        page = client.conversations_history(
            channel=channel_id,
            include_all_metadata=True,
            limit=HISTORY_PAGE,
            oldest=oldest,
            cursor=cursor,
        )
        for message in page.get("messages") or []:
            if _key(message) == key:
                return str(message["ts"])
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not page.get("has_more") or not cursor:
            return None
    raise HistoryTooLong(
        f"slack: more than {HISTORY_PAGES * HISTORY_PAGE} messages in the channel since the "
        "incident opened; cannot tell whether it was posted"
    )


def _key(message: dict[str, Any]) -> Any:
    payload = (message.get("metadata") or {}).get("event_payload") or {}
    return payload.get("key")
