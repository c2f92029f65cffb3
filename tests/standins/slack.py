"""A Slack Web API stand-in: chat.postMessage, chat.update, conversations.history and
conversations.list, over HTTP.

The contract follows Slack's API docs for those methods, for rate limits and for Block Kit, as
summarised in /work/shared/API-FACTS.md; the channels, scopes and conversations.list are in
``slack_workspace``, message checks in ``slack_content`` (each citing the docs it follows):

- ``{base_url}{method}``; arguments from the query string, a form body or a JSON body (slack_sdk
  sends chat.* as JSON and, despite ``http_verb="GET"``, conversations.* as a form POST).
- ``Authorization: Bearer <token>``: none -> ``not_authed``, another -> ``invalid_auth``.
- Answers are HTTP 200 ``{"ok": true, ...}`` or ``{"ok": false, "error": code}``; rate limiting
  is HTTP 429 with ``Retry-After`` (seconds) and ``"ratelimited"``: chat.postMessage allows
  about one message per second per channel, replies included (clock: injectable, monotonic).
- conversations.history (https://docs.slack.dev/reference/methods/conversations.history): a
  channel ID only; top-level messages newest first within ``oldest``/``latest``; ``limit``
  (default 100, at most 999), ``has_more`` and ``response_metadata.next_cursor`` for the next
  page; message ``metadata`` only with ``include_all_metadata=true``.
- Message ``ts``: epoch seconds with six decimals from ``epoch`` (default ``time.time``; give it
  the receiver's clock when that is not the real one), strictly increasing.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.standins import Answer, Clock, Fault, RequestHandler, StandIn, names
from tests.standins.slack_content import SlackError, block_errors, content, flag
from tests.standins.slack_workspace import LIST_LIMIT, Workspace

__all__ = ["SlackError", "SlackStandIn", "block_errors"]
API = "/api/"
BOT = {"user": "U0STANDIN", "bot_id": "B0STANDIN"}
RATE_WINDOW = 1.0  # seconds per message per channel


@dataclass
class Message:
    """A posted message with its current content, its edits and (for a parent) its replies."""

    channel: str
    ts: str
    text: str = ""
    blocks: list[Any] | None = None
    metadata: dict[str, Any] | None = None
    thread_ts: str | None = None
    updates: list[dict[str, Any]] = field(default_factory=list)
    replies: list[Message] = field(default_factory=list)

    def payload(self, with_metadata: bool = True) -> dict[str, Any]:
        """The message as Slack returns it (conversations.history, chat.postMessage)."""
        out: dict[str, Any] = {"type": "message", **BOT, "ts": self.ts, "text": self.text}
        if self.blocks:
            out["blocks"] = self.blocks
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        if self.replies:
            out.update(thread_ts=self.ts, reply_count=len(self.replies))
            out["latest_reply"] = self.replies[-1].ts
        if self.updates:
            out["edited"] = {"user": BOT["user"], "ts": self.updates[-1]["ts"]}
        if self.metadata and with_metadata:
            out["metadata"] = self.metadata
        return out

    def view(self) -> dict[str, Any]:
        """The stored state for tests: ts, text, blocks, metadata, thread_ts, updates, replies."""
        fields = ("ts", "text", "blocks", "metadata", "thread_ts")
        out = {name: getattr(self, name) for name in fields}
        return {**out, "updates": list(self.updates), "reply_count": len(self.replies)}


class SlackStandIn(StandIn):
    """Slack's Web API on ``http://127.0.0.1:PORT/api/``; use as a context manager.

    ``channels`` maps names to IDs (``#x`` or ``x``); names in ``private``, ``archived`` or
    ``outside`` (the bot is not in it) are so; ``scopes`` (default: every scope the receiver
    uses) is the token's, changeable through ``self.scopes``; ``page_max`` caps a page of
    conversations.list below the ``limit`` asked for.
    """

    def __init__(
        self,
        token: str = "xoxb-test",
        channels: Mapping[str, str] | None = None,
        missing_channels: Collection[str] = (),
        rate_limit: bool = True,
        clock: Clock = time.monotonic,
        *,
        private: Collection[str] = (),
        archived: Collection[str] = (),
        outside: Collection[str] = (),
        scopes: Collection[str] | None = None,
        page_max: int = LIST_LIMIT,
        epoch: Clock = time.time,
    ) -> None:
        self.token, self.rate_limit, self.epoch = token, rate_limit, epoch
        self.workspace = Workspace(
            channels or {}, missing_channels, private, archived, outside, scopes, page_max
        )
        self._messages: dict[str, list[Message]] = {}
        self._by_ts: dict[tuple[str, str], Message] = {}
        self._last_post: dict[str, float] = {}
        self._last_micros = 0
        self._after: dict[str, list[Callable[[], None]]] = {}
        super().__init__(clock)
        self.base_url = f"http://127.0.0.1:{self.port}{API}"

    @property
    def scopes(self) -> set[str]:
        """The token's scopes (add or remove some to change them from the next call)."""
        return self.workspace.scopes

    @property
    def calls(self) -> list[dict[str, Any]]:
        """Every call in order: at, method, http_method, content_type, params (query and form),
        json (a JSON body), authorization, status, fault ("fail", "hang"), response."""
        return self.records()

    def methods(self) -> list[str]:
        """The API method of every call, in order."""
        return [c["method"] for c in self.calls]

    def channel_id(self, name: str) -> str:
        """The ID a channel name maps to, made up on first use (SlackError for missing ones)."""
        with self._lock:
            return self.workspace.channel_id(name)

    def messages(self, channel_id: str) -> list[dict[str, Any]]:
        """Top-level messages of a channel in post order, with their current content."""
        with self._lock:
            return [m.view() for m in self._messages.get(channel_id, [])]

    def replies(self, channel_id: str, parent_ts: str) -> list[dict[str, Any]]:
        """Replies in the thread of ``parent_ts``, in post order."""
        with self._lock:
            parent = self._by_ts.get((channel_id, parent_ts))
            return [] if parent is None else [m.view() for m in parent.replies]

    def after(self, method: str, action: Callable[[], None]) -> None:
        """Run ``action`` once, after the next call of ``method`` is served and before it is
        answered (say, to stop a database while the caller waits for Slack)."""
        with self._lock:
            self._after.setdefault(method, []).append(action)

    def fail(
        self,
        error: str | None = "ratelimited",
        status: int | None = None,
        times: int | None = None,
        seconds: float | None = None,
        retry_after: int | None = None,
        methods: Collection[str] | None = None,
    ) -> None:
        """Answer ``error`` for the next ``times`` calls/``seconds`` (of ``methods``, if given).

        ``status`` defaults to 429 for "ratelimited" (Retry-After defaults to 1 s, as Slack always
        sends one), 200 for other errors and 500 with a non-JSON body when ``error`` is None.
        """
        if status is None:
            status = 429 if error == "ratelimited" else 200 if error else 500
        if status == 429 and retry_after is None:
            retry_after = 1
        fault = Fault(status, times, None, retry_after, None, error, names(methods))
        self.faults.add(fault, seconds)

    def describe(self, handler: RequestHandler, body: bytes) -> tuple[str, dict[str, Any]]:
        """Faults match the API method; the record keeps how the arguments were sent."""
        url = urlsplit(handler.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        kind = handler.headers.get_content_type()
        payload: Any = None
        if kind == "application/x-www-form-urlencoded":
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        elif kind == "application/json":
            try:
                payload = json.loads(body or b"{}")
            except ValueError:
                payload = body.decode("utf-8", "replace")
        method = url.path.removeprefix(API) if url.path.startswith(API) else url.path
        record = {"at": self.clock(), "method": method, "http_method": handler.command}
        record.update(content_type=kind, params=params, json=payload)
        record["authorization"] = handler.headers.get("Authorization")
        return method, record

    def serve(self, handler: RequestHandler, body: bytes, record: dict[str, Any]) -> Answer:
        """Route to the method; authenticate; turn SlackError into an ``ok: false`` answer."""
        serve = {
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "conversations.history": self._history,
            "conversations.list": self.workspace.list_page,
        }.get(record["method"])
        try:
            if serve is None:
                raise SlackError("unknown_method")
            if not record["authorization"]:
                raise SlackError("not_authed")
            if record["authorization"] != f"Bearer {self.token}":
                raise SlackError("invalid_auth")
            if not isinstance(record["json"], dict | None):  # not JSON, or not an object
                raise SlackError("invalid_json")
            with self._lock:
                answer: Answer = 200, serve({**record["params"], **(record["json"] or {})}), {}
        except SlackError as exc:
            answer = exc.answer()
        with self._lock:
            actions = self._after.pop(record["method"], [])
        for action in actions:
            action()
        return answer

    def injected(self, fault: Fault) -> Answer:
        """A ``fail()`` answer: ``{"ok": false, "error": ...}`` or, without error, plain text."""
        headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
        status = fault.status or 500
        if fault.error is None:
            return status, "upstream connect error or disconnect/reset before headers", headers
        return status, {"ok": False, "error": fault.error}, headers

    def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        """chat.postMessage: channel name or ID, text/blocks/metadata, thread_ts; 1/s/channel."""
        channel = self.workspace.postable(args.get("channel")).id
        now = self.clock()
        last = self._last_post.get(channel)
        if self.rate_limit and last is not None and now - last < RATE_WINDOW:
            raise SlackError("ratelimited", status=429)
        found = content(args)
        if not (found.get("text") or found.get("blocks")):
            raise SlackError("no_text")
        parent = None
        if thread_ts := args.get("thread_ts"):
            parent = self._by_ts.get((channel, str(thread_ts)))
            if parent is None or parent.thread_ts is not None:
                raise SlackError("thread_not_found")
        message = Message(channel, self._next_ts(), thread_ts=parent and parent.ts, **found)
        self._by_ts[(channel, message.ts)] = message
        if parent is None:
            self._messages.setdefault(channel, []).append(message)
        else:
            parent.replies.append(message)
        self._last_post[channel] = now
        return {"ok": True, "channel": channel, "ts": message.ts, "message": message.payload()}

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        """chat.update: channel ID and ts; given fields replace, omitted ones are kept."""
        channel = self.workspace.updatable(args.get("channel")).id
        message = self._by_ts.get((channel, str(args.get("ts"))))
        if message is None:
            raise SlackError("message_not_found")
        found = content(args)
        if not found:
            raise SlackError("no_text")
        for name, value in found.items():  # blocks=[] removes the blocks
            setattr(message, name, value)
        message.updates.append({"at": self.clock(), "ts": self._next_ts(), **found})
        answer = {"ok": True, "channel": channel, "ts": message.ts, "text": message.text}
        return {**answer, "message": message.payload()}

    def _history(self, args: dict[str, Any]) -> dict[str, Any]:
        """conversations.history: top-level messages newest first, a page at a time (cursor);
        metadata only on request."""
        channel = self.workspace.readable(args.get("channel")).id
        oldest = _ts(args.get("oldest"), "0", "invalid_ts_oldest")
        latest = _ts(args.get("latest"), "Infinity", "invalid_ts_latest")
        edges = (oldest, latest) if flag(args.get("inclusive")) else ()
        try:
            limit = min(max(int(args.get("limit") or 100), 1), 999)
        except ValueError:
            raise SlackError("invalid_limit") from None
        below = _history_cursor(args.get("cursor"))
        stamps = [(Decimal(m.ts), m) for m in reversed(self._messages.get(channel, []))]
        found = [m for t, m in stamps if (oldest < t < latest or t in edges) and t <= below]
        with_metadata = flag(args.get("include_all_metadata"))
        answer = {"ok": True, "messages": [m.payload(with_metadata) for m in found[:limit]]}
        answer.update(has_more=len(found) > limit, pin_count=0)
        if len(found) > limit:  # Slack's cursors name the next message: "next_ts:<ts>"
            cursor = f"next_ts:{found[limit].ts.replace('.', '')}".encode()
            answer["response_metadata"] = {"next_cursor": base64.b64encode(cursor).decode()}
        return answer

    def _next_ts(self) -> str:
        """Epoch seconds with six decimals, strictly increasing like Slack's message ts."""
        self._last_micros = max(int(self.epoch() * 1_000_000), self._last_micros + 100)
        return f"{self._last_micros // 1_000_000}.{self._last_micros % 1_000_000:06d}"


def _history_cursor(value: Any) -> Decimal:
    """The newest ts a history page may start at (no cursor: any); else ``invalid_cursor``."""
    if value in (None, ""):
        return Decimal("Infinity")
    try:
        prefix, _, micros = base64.b64decode(str(value), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise SlackError("invalid_cursor") from None
    if prefix != "next_ts" or not micros.isdigit():
        raise SlackError("invalid_cursor")
    return Decimal(micros) / 1_000_000


def _ts(value: Any, default: str, error: str) -> Decimal:
    try:
        stamp = Decimal(str(value) if value not in (None, "") else default)
    except InvalidOperation:
        raise SlackError(error) from None
    if stamp.is_nan():
        raise SlackError(error)
    return stamp
