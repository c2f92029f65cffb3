"""The Slack stand-in's workspace: its channels (ID, name, public or private, archived, whether
the bot is in it), the bot token's scopes, and conversations.list over them.

What it follows of Slack's docs:

- conversations.list (https://docs.slack.dev/reference/methods/conversations.list): bot scopes
  ``channels:read``, ``groups:read`` (``im:read``, ``mpim:read``); ``types`` a comma list of
  ``public_channel``, ``private_channel``, ``mpim``, ``im`` (default ``public_channel``; a type
  "that could not be used based on ... the permission scopes granted" is ``invalid_types``),
  ``exclude_archived`` (default false), ``limit`` ("an integer under 1000", default 100; "fewer
  than the requested number of items may be returned, even if the end of the list hasn't been
  reached": ``page_max`` makes it so), ``cursor`` from ``response_metadata.next_cursor``, which
  is empty on the last page (https://docs.slack.dev/apis/web-api/pagination). Private channels
  are listed only to a member (``groups:read``: "private channels that your Slack app has been
  added to", https://docs.slack.dev/reference/scopes/groups:read).
- A method's channel: chat.postMessage takes "an encoded ID or channel name"
  (https://api.slack.com/methods/chat.postMessage), conversations.history and chat.update an ID
  only ("Conversation ID to fetch history for"; a name is ``channel_not_found``).
- Membership: posting to a public channel the bot is not in is ``not_in_channel``; so is reading
  its history (a bot token reads "any conversation the relevant bot is a member of",
  https://docs.slack.dev/reference/methods/conversations.history; the answer confirmed in
  https://github.com/slackapi/deno-slack-sdk/issues/128). A private channel the bot is not in
  does not exist for it: ``channel_not_found``. An archived channel refuses posts: ``is_archived``.
- Scopes: chat.postMessage and chat.update ``chat:write``; conversations.history
  ``channels:history`` (public) or ``groups:history`` (private); without one, ``missing_scope``
  with ``needed`` and ``provided``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from tests.standins.slack_content import SlackError, flag

CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
SCOPES = frozenset(
    {"chat:write", "channels:read", "groups:read", "channels:history", "groups:history"}
)
TYPE_SCOPES = {
    "public_channel": "channels:read",
    "private_channel": "groups:read",
    "mpim": "mpim:read",
    "im": "im:read",
}
LIST_LIMIT = 999  # "must be an integer under 1000"


@dataclass
class Channel:
    id: str
    name: str
    private: bool = False
    archived: bool = False
    member: bool = True

    @property
    def kind(self) -> str:
        """Its type as conversations.list's ``types`` names it."""
        return "private_channel" if self.private else "public_channel"

    def payload(self) -> dict[str, Any]:
        """The conversation object conversations.list returns (the fields that matter)."""
        return {
            "id": self.id,
            "name": self.name,
            "name_normalized": self.name,
            "is_channel": not self.private,
            "is_group": self.private,
            "is_im": False,
            "is_mpim": False,
            "is_private": self.private,
            "is_archived": self.archived,
            "is_member": self.member,
        }


class Workspace:
    """Channels by ID (in creation order) and the token's scopes (``scopes``: mutable)."""

    def __init__(
        self,
        channels: Mapping[str, str],
        missing: Collection[str] = (),
        private: Collection[str] = (),
        archived: Collection[str] = (),
        outside: Collection[str] = (),
        scopes: Collection[str] | None = None,
        page_max: int = LIST_LIMIT,
    ) -> None:
        self.scopes = set(SCOPES if scopes is None else scopes)
        self.page_max = page_max
        self._missing = {_bare(name) for name in missing}
        self._by_id: dict[str, Channel] = {}
        for name, cid in channels.items():
            bare = _bare(name)
            self._by_id[cid] = Channel(
                cid,
                bare,
                private=_named(bare, private),
                archived=_named(bare, archived),
                member=not _named(bare, outside),
            )

    def need(self, scope: str) -> None:
        """``missing_scope`` unless the token has ``scope``."""
        if scope not in self.scopes:
            raise SlackError("missing_scope", needed=scope, provided=",".join(sorted(self.scopes)))

    def channel_id(self, name: str) -> str:
        """The ID of a channel name (made up on first use, unless it is missing)."""
        return self._channel(name, names_ok=True).id

    def set_member(self, channel_id: str, member: bool) -> None:
        """The bot joins (True) or leaves (False) a channel."""
        self._by_id[channel_id].member = member

    def postable(self, value: Any) -> Channel:
        """The channel chat.postMessage posts to (an ID or a name)."""
        channel = self._visible(self._channel(value, names_ok=True))
        self.need("chat:write")
        if channel.archived:
            raise SlackError("is_archived")
        if not channel.member:
            raise SlackError("not_in_channel")
        return channel

    def updatable(self, value: Any) -> Channel:
        """The channel of chat.update (an ID)."""
        channel = self._visible(self._channel(value, names_ok=False))
        self.need("chat:write")
        return channel

    def readable(self, value: Any) -> Channel:
        """The channel whose history conversations.history reads (an ID)."""
        channel = self._visible(self._channel(value, names_ok=False))
        self.need("groups:history" if channel.private else "channels:history")
        if not channel.member:
            raise SlackError("not_in_channel")
        return channel

    def list_page(self, args: dict[str, Any]) -> dict[str, Any]:
        """conversations.list: one page of the channels the token may see."""
        types = self._types(args.get("types"))
        exclude_archived = flag(args.get("exclude_archived"))
        limit = _int(args.get("limit"), 100, 1, LIST_LIMIT, "invalid_limit")
        start = decode_cursor(args.get("cursor"))
        seen = [
            c
            for c in self._by_id.values()
            if c.kind in types
            and (c.member or not c.private)
            and not (exclude_archived and c.archived)
        ]
        end = start + min(limit, self.page_max)
        more = encode_cursor(end) if end < len(seen) else ""
        channels = [c.payload() for c in seen[start:end]]
        return {"ok": True, "channels": channels, "response_metadata": {"next_cursor": more}}

    def _types(self, value: Any) -> set[str]:
        """The requested types; all of them unpermitted is ``missing_scope``, some of them
        ``invalid_types``."""
        types = set(str(value or "public_channel").split(","))
        if not types <= TYPE_SCOPES.keys():
            raise SlackError("invalid_types")
        lacking = sorted(TYPE_SCOPES[t] for t in types if TYPE_SCOPES[t] not in self.scopes)
        if len(lacking) == len(types):
            self.need(lacking[0])
        if lacking:
            raise SlackError("invalid_types")
        return types

    def _visible(self, channel: Channel) -> Channel:
        if channel.private and not channel.member:
            raise SlackError("channel_not_found")
        return channel

    def _channel(self, value: Any, names_ok: bool) -> Channel:
        """An ID as is; a name (``#x`` or ``x``) -> its channel, when the method takes names."""
        if isinstance(value, str) and value in self._by_id:
            return self._by_id[value]
        name = _bare(value) if isinstance(value, str) else ""
        if not names_ok or not name or name in self._missing or CHANNEL_ID.match(value):
            raise SlackError("channel_not_found")
        for channel in self._by_id.values():
            if channel.name == name:
                return channel
        stem = re.sub(r"[^A-Z0-9]", "", name.upper())[:6]
        number = len(self._by_id) + 1
        while f"C0{stem}{number}" in self._by_id:
            number += 1
        channel = self._by_id[f"C0{stem}{number}"] = Channel(f"C0{stem}{number}", name)
        return channel


def encode_cursor(offset: int) -> str:
    """An opaque cursor, base64 like Slack's (``bmV4dF90czox...``)."""
    return base64.b64encode(f"next:{offset}".encode()).decode()


def decode_cursor(value: Any) -> int:
    """The offset a cursor points at (none: 0); ``invalid_cursor`` for anything else."""
    if value in (None, ""):
        return 0
    try:
        prefix, _, offset = base64.b64decode(str(value), validate=True).decode().partition(":")
        if prefix == "next" and offset.isdigit():
            return int(offset)
    except (binascii.Error, UnicodeDecodeError):
        pass
    raise SlackError("invalid_cursor")


def _int(value: Any, default: int, low: int, high: int, error: str) -> int:
    try:
        number = int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        raise SlackError(error) from None
    if not low <= number <= high:
        raise SlackError(error)
    return number


def _bare(name: str) -> str:
    return name.lstrip("#")


def _named(name: str, names: Collection[str]) -> bool:
    return name in {_bare(n) for n in names}
