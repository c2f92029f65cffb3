"""A Slack Web API stand-in: chat.postMessage, chat.update, conversations.history, over HTTP.

The contract follows Slack's API docs for those methods, for rate limits and for Block Kit, as
summarised in /work/shared/API-FACTS.md:

- ``{base_url}{method}``; arguments from the query string, a form body or a JSON body (slack_sdk
  sends chat.* as JSON and, despite ``http_verb="GET"``, conversations.history as a form POST).
- ``Authorization: Bearer <token>``: none -> ``not_authed``, another -> ``invalid_auth``.
- Answers are HTTP 200 ``{"ok": true, ...}`` or ``{"ok": false, "error": code}``; rate limiting
  is HTTP 429 with ``Retry-After`` (seconds) and ``"ratelimited"``: chat.postMessage allows
  about one message per second per channel, replies included (clock: injectable, monotonic).
- Block Kit: at most 50 blocks, section text 3000 and field text 2000 characters, header text
  150; else ``invalid_blocks`` with ``response_metadata.messages``. Text over 40000 characters
  is ``msg_too_long``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.standins import Answer, Clock, Fault, RequestHandler, StandIn, names

API = "/api/"
BOT = {"user": "U0STANDIN", "bot_id": "B0STANDIN"}
MAX_BLOCKS, MAX_FIELDS, MAX_TEXT = 50, 10, 40000
TEXT_LIMITS = {"section": 3000, "header": 150, "field": 2000}
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
RATE_WINDOW = 1.0  # seconds per message per channel


class SlackError(Exception):
    """An ``ok: false`` answer."""

    def __init__(self, error: str, messages: list[str] | None = None, status: int = 200) -> None:
        super().__init__(error)
        self.error, self.messages, self.status = error, messages, status

    def answer(self) -> Answer:
        body: dict[str, Any] = {"ok": False, "error": self.error}
        if self.messages:
            body["response_metadata"] = {"messages": self.messages}
        return self.status, body, {"Retry-After": "1"} if self.status == 429 else {}


def block_errors(blocks: list[Any]) -> list[str]:
    """Block Kit limit violations, worded like Slack's ``response_metadata.messages``."""
    if len(blocks) > MAX_BLOCKS:
        return [f"[ERROR] no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]"]
    errors = []
    for i, block in enumerate(blocks):
        where = f"/blocks/{i}"
        if not (isinstance(block, dict) and isinstance(block.get("type"), str)):
            errors.append(f"[ERROR] missing required field: type [json-pointer:{where}]")
        elif block["type"] == "header":
            errors += _text_errors(block.get("text"), f"{where}/text", "header", required=True)
        elif block["type"] == "section":
            fields = block.get("fields", [])
            if "text" not in block and not fields:
                errors.append(f"[ERROR] must provide either text or fields [json-pointer:{where}]")
            errors += _text_errors(block.get("text"), f"{where}/text", "section")
            if not isinstance(fields, list) or len(fields) > MAX_FIELDS:
                errors.append(f"[ERROR] no more than {MAX_FIELDS} fields [json-pointer:{where}]")
                fields = []
            for j, item in enumerate(fields):
                errors += _text_errors(item, f"{where}/fields/{j}", "field", required=True)
    return errors


def _text_errors(obj: Any, where: str, kind: str, required: bool = False) -> list[str]:
    if obj is None and not required:
        return []
    types = ("plain_text",) if kind == "header" else ("plain_text", "mrkdwn")
    text = obj.get("text") if isinstance(obj, dict) else None
    if not (isinstance(text, str) and obj.get("type") in types):
        return [f"[ERROR] must be a {' or '.join(types)} text object [json-pointer:{where}]"]
    limit = TEXT_LIMITS[kind]
    if not 0 < len(text) <= limit:
        return [f"[ERROR] must be 1..{limit} characters [json-pointer:{where}/text]"]
    return []


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
    """Slack's Web API on ``http://127.0.0.1:PORT/api/``; use as a context manager."""

    def __init__(
        self,
        token: str = "xoxb-test",
        channels: Mapping[str, str] | None = None,
        missing_channels: Collection[str] = (),
        rate_limit: bool = True,
        clock: Clock = time.monotonic,
    ) -> None:
        self.token, self.rate_limit = token, rate_limit
        self._ids = {name.lstrip("#"): cid for name, cid in (channels or {}).items()}
        self._missing = {name.lstrip("#") for name in missing_channels}
        self._messages: dict[str, list[Message]] = {}
        self._by_ts: dict[tuple[str, str], Message] = {}
        self._last_post: dict[str, float] = {}
        self._last_micros = 0
        super().__init__(clock)
        self.base_url = f"http://127.0.0.1:{self.port}{API}"

    @property
    def calls(self) -> list[dict[str, Any]]:
        """Every call in order: at, method, http_method, content_type, params (query and form),
        json (a JSON body), authorization, status, fault ("fail", "hang"), response."""
        return self.records()

    def channel_id(self, name: str) -> str:
        """The ID a channel name maps to, made up on first use (SlackError for missing ones)."""
        with self._lock:
            return self._channel(name, names_ok=True)

    def messages(self, channel_id: str) -> list[dict[str, Any]]:
        """Top-level messages of a channel in post order, with their current content."""
        with self._lock:
            return [m.view() for m in self._messages.get(channel_id, [])]

    def replies(self, channel_id: str, parent_ts: str) -> list[dict[str, Any]]:
        """Replies in the thread of ``parent_ts``, in post order."""
        with self._lock:
            parent = self._by_ts.get((channel_id, parent_ts))
            return [] if parent is None else [m.view() for m in parent.replies]

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
                return 200, serve({**record["params"], **(record["json"] or {})}), {}
        except SlackError as exc:
            return exc.answer()

    def injected(self, fault: Fault) -> Answer:
        """A ``fail()`` answer: ``{"ok": false, "error": ...}`` or, without error, plain text."""
        headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
        status = fault.status or 500
        if fault.error is None:
            return status, "upstream connect error or disconnect/reset before headers", headers
        return status, {"ok": False, "error": fault.error}, headers

    def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        """chat.postMessage: channel name or ID, text/blocks/metadata, thread_ts; 1/s/channel."""
        channel = self._channel(args.get("channel"), names_ok=True)
        now = self.clock()
        last = self._last_post.get(channel)
        if self.rate_limit and last is not None and now - last < RATE_WINDOW:
            raise SlackError("ratelimited", status=429)
        content = _content(args)
        if not (content.get("text") or content.get("blocks")):
            raise SlackError("no_text")
        parent = None
        if thread_ts := args.get("thread_ts"):
            parent = self._by_ts.get((channel, str(thread_ts)))
            if parent is None or parent.thread_ts is not None:
                raise SlackError("thread_not_found")
        message = Message(channel, self._next_ts(), thread_ts=parent and parent.ts, **content)
        self._by_ts[(channel, message.ts)] = message
        if parent is None:
            self._messages.setdefault(channel, []).append(message)
        else:
            parent.replies.append(message)
        self._last_post[channel] = now
        return {"ok": True, "channel": channel, "ts": message.ts, "message": message.payload()}

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        """chat.update: channel ID and ts; given fields replace, omitted ones are kept."""
        channel = self._channel(args.get("channel"), names_ok=False)
        message = self._by_ts.get((channel, str(args.get("ts"))))
        if message is None:
            raise SlackError("message_not_found")
        content = _content(args)
        if not content:
            raise SlackError("no_text")
        for name, value in content.items():  # blocks=[] removes the blocks
            setattr(message, name, value)
        message.updates.append({"at": self.clock(), "ts": self._next_ts(), **content})
        answer = {"ok": True, "channel": channel, "ts": message.ts, "text": message.text}
        return {**answer, "message": message.payload()}

    def _history(self, args: dict[str, Any]) -> dict[str, Any]:
        """conversations.history: top-level messages newest first; metadata only on request."""
        channel = self._channel(args.get("channel"), names_ok=False)
        oldest = _ts(args.get("oldest"), "0", "invalid_ts_oldest")
        latest = _ts(args.get("latest"), "Infinity", "invalid_ts_latest")
        edges = (oldest, latest) if _flag(args.get("inclusive")) else ()
        try:
            limit = min(max(int(args.get("limit") or 100), 1), 999)
        except ValueError:
            raise SlackError("invalid_limit") from None
        stamps = [(Decimal(m.ts), m) for m in reversed(self._messages.get(channel, []))]
        found = [m for t, m in stamps if oldest < t < latest or t in edges]
        with_metadata = _flag(args.get("include_all_metadata"))
        messages = [m.payload(with_metadata) for m in found[:limit]]
        return {"ok": True, "messages": messages, "has_more": len(found) > limit, "pin_count": 0}

    def _channel(self, value: Any, names_ok: bool) -> str:
        """An ID as is; a name (``#x`` or ``x``) -> its ID, when the method takes names."""
        if isinstance(value, str) and value in self._ids.values():
            return value
        name = value.lstrip("#") if isinstance(value, str) else ""
        if not names_ok or not name or name in self._missing or CHANNEL_ID.match(value):
            raise SlackError("channel_not_found")
        if name not in self._ids:
            stem = re.sub(r"[^A-Z0-9]", "", name.upper())[:6]
            number = len(self._ids) + 1
            while f"C0{stem}{number}" in self._ids.values():
                number += 1
            self._ids[name] = f"C0{stem}{number}"
        return self._ids[name]

    def _next_ts(self) -> str:
        """Epoch seconds with six decimals, strictly increasing like Slack's message ts."""
        self._last_micros = max(int(time.time() * 1_000_000), self._last_micros + 100)
        return f"{self._last_micros // 1_000_000}.{self._last_micros % 1_000_000:06d}"


def _content(args: dict[str, Any]) -> dict[str, Any]:
    """The text, blocks and metadata given, validated; JSON strings (form bodies) decoded."""
    content: dict[str, Any] = {}
    if "text" in args:
        if not isinstance(args["text"], str):
            raise SlackError("invalid_arguments")
        if len(args["text"]) > MAX_TEXT:
            raise SlackError("msg_too_long")
        content["text"] = args["text"]
    if "blocks" in args:
        blocks = _decoded(args["blocks"], "invalid_blocks_format")
        if not isinstance(blocks, list):
            raise SlackError("invalid_blocks_format")
        if errors := block_errors(blocks):
            raise SlackError("invalid_blocks", errors)
        content["blocks"] = blocks
    if "metadata" in args:
        metadata = _decoded(args["metadata"], "invalid_metadata_format")
        if not (
            isinstance(metadata, dict)
            and isinstance(metadata.get("event_type"), str)
            and isinstance(metadata.get("event_payload"), dict)
        ):
            raise SlackError("invalid_metadata_format")
        content["metadata"] = metadata
    return content


def _decoded(value: Any, error: str) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise SlackError(error) from None


def _ts(value: Any, default: str, error: str) -> Decimal:
    try:
        stamp = Decimal(str(value) if value not in (None, "") else default)
    except InvalidOperation:
        raise SlackError(error) from None
    if stamp.is_nan():
        raise SlackError(error)
    return stamp


def _flag(value: Any) -> bool:
    return value in (True, 1, "1", "true")
