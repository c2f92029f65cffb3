"""What the Slack stand-in checks of a message, and how it refuses a call.

- An ``ok: false`` answer (``SlackError``); ``missing_scope`` carries ``needed`` and
  ``provided``, as Slack's answers do (e.g. ``{"ok": false, "error": "missing_scope",
  "needed": "chat:write:bot", "provided": "incoming-webhook,files:write"}`` quoted in
  https://github.com/apache/superset/pull/15904; the response types of
  https://docs.slack.dev/tools/node-slack-sdk/reference/web-api/type-aliases/ConversationsListResponse
  list both fields).
- Block Kit: at most 50 blocks, section text 3000 and field text 2000 characters, header text
  150; else ``invalid_blocks`` with ``response_metadata.messages``. Text over 40000 characters
  is ``msg_too_long``.
"""

from __future__ import annotations

import json
from typing import Any

from tests.standins import Answer

MAX_BLOCKS, MAX_FIELDS, MAX_TEXT = 50, 10, 40000
TEXT_LIMITS = {"section": 3000, "header": 150, "field": 2000}


class SlackError(Exception):
    """An ``ok: false`` answer."""

    def __init__(
        self,
        error: str,
        messages: list[str] | None = None,
        status: int = 200,
        needed: str | None = None,
        provided: str | None = None,
    ) -> None:
        super().__init__(error)
        self.error, self.messages, self.status = error, messages, status
        self.needed, self.provided = needed, provided

    def answer(self) -> Answer:
        body: dict[str, Any] = {"ok": False, "error": self.error}
        if self.needed is not None:
            body.update(needed=self.needed, provided=self.provided or "")
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


def content(args: dict[str, Any]) -> dict[str, Any]:
    """The text, blocks and metadata given, validated; JSON strings (form bodies) decoded."""
    found: dict[str, Any] = {}
    if "text" in args:
        if not isinstance(args["text"], str):
            raise SlackError("invalid_arguments")
        if len(args["text"]) > MAX_TEXT:
            raise SlackError("msg_too_long")
        found["text"] = args["text"]
    if "blocks" in args:
        blocks = _decoded(args["blocks"], "invalid_blocks_format")
        if not isinstance(blocks, list):
            raise SlackError("invalid_blocks_format")
        if errors := block_errors(blocks):
            raise SlackError("invalid_blocks", errors)
        found["blocks"] = blocks
    if "metadata" in args:
        metadata = _decoded(args["metadata"], "invalid_metadata_format")
        if not (
            isinstance(metadata, dict)
            and isinstance(metadata.get("event_type"), str)
            and isinstance(metadata.get("event_payload"), dict)
        ):
            raise SlackError("invalid_metadata_format")
        found["metadata"] = metadata
    return found


def _decoded(value: Any, error: str) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise SlackError(error) from None


def flag(value: Any) -> bool:
    """A boolean argument as Slack reads it from JSON or a form (``true``, ``1``)."""
    return value in (True, 1, "1", "true")
