"""Contract tests of the Slack stand-in's workspace, driven by slack_sdk: conversations.list
(cursor pages, types, archived, private channels), conversations.history (IDs only, cursor
pages, membership), and the scopes each method needs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from tests.standins.slack import SlackStandIn

TOKEN = "xoxb-test"
CHANNELS = {
    "#general": "C0GENERAL1",
    "#triton-alerts": "C0TRITON1",
    "#old-alerts": "C0OLDALERT",
    "#oncall": "G0ONCALL01",
    "#secret": "G0SECRET01",
    "#random": "C0RANDOM01",
}
PRIVATE = ("#oncall", "#secret")


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    options: dict[str, Any] = {"private": PRIVATE, "archived": ["#old-alerts"]}
    options.update(outside=["#secret", "#random"], page_max=2, rate_limit=False)
    with SlackStandIn(TOKEN, CHANNELS, **options) as standin:
        yield standin
    assert standin.errors == []


def client(standin: SlackStandIn) -> WebClient:
    return WebClient(token=TOKEN, base_url=standin.base_url)


def refused(call: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(SlackApiError) as info:
        call(**kwargs)
    return dict(info.value.response.data)


def every_page(web: WebClient, **kwargs: Any) -> list[list[str]]:
    """The channel names of each page, following next_cursor to the empty one."""
    pages, cursor = [], None
    while True:
        page = web.conversations_list(cursor=cursor, **kwargs)
        pages.append([c["name"] for c in page["channels"]])
        cursor = page["response_metadata"]["next_cursor"]
        if not cursor:
            return pages


def test_conversations_list_pages_by_cursor_and_lists_what_the_bot_may_see(slack):
    web = client(slack)
    assert every_page(web) == [["general", "triton-alerts"], ["old-alerts", "random"]]
    both = every_page(web, types="public_channel,private_channel", exclude_archived=True)
    assert both == [["general", "triton-alerts"], ["oncall", "random"]]  # not #secret: not in it
    [first] = web.conversations_list(limit=1)["channels"]
    assert (first["id"], first["name"], first["is_private"], first["is_member"]) == (
        "C0GENERAL1",
        "general",
        False,
        True,
    )
    call = slack.calls[-1]
    assert call["http_method"] == "POST" and call["params"] == {"limit": "1"}


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"cursor": "bm90LWEtY3Vyc29y"}, "invalid_cursor"),
        ({"limit": 1000}, "invalid_limit"),
        ({"types": "public_channel,channels"}, "invalid_types"),
    ],
)
def test_conversations_list_refuses_bad_arguments(slack, kwargs, error):
    assert refused(client(slack).conversations_list, **kwargs)["error"] == error


def test_scopes_missing_are_named_in_the_answer(slack):
    web = client(slack)
    slack.scopes.discard("groups:read")
    types = "public_channel,private_channel"
    assert refused(web.conversations_list, types=types)["error"] == "invalid_types"
    slack.scopes.discard("channels:read")
    answer = refused(web.conversations_list, types=types)
    assert (answer["error"], answer["needed"]) == ("missing_scope", "channels:read")
    assert answer["provided"] == "channels:history,chat:write,groups:history"
    slack.scopes.discard("groups:history")
    answer = refused(web.conversations_history, channel="G0ONCALL01")
    assert (answer["error"], answer["needed"]) == ("missing_scope", "groups:history")
    slack.scopes.discard("chat:write")
    answer = refused(web.chat_postMessage, channel="#general", text="x")
    assert (answer["error"], answer["needed"]) == ("missing_scope", "chat:write")


@pytest.mark.parametrize(
    ("channel", "error"),
    [
        ("#triton-alerts", "channel_not_found"),  # a name: history takes IDs only
        ("triton-alerts", "channel_not_found"),
        ("C0RANDOM01", "not_in_channel"),  # public, the bot not in it
        ("G0SECRET01", "channel_not_found"),  # private, the bot not in it: hidden
        ("C0NOSUCH01", "channel_not_found"),
    ],
)
def test_history_needs_the_id_of_a_channel_the_bot_is_in(slack, channel, error):
    assert refused(client(slack).conversations_history, channel=channel)["error"] == error


@pytest.mark.parametrize(
    ("channel", "error"),
    [
        ("#old-alerts", "is_archived"),
        ("#random", "not_in_channel"),
        ("#secret", "channel_not_found"),
    ],
)
def test_a_post_needs_a_channel_the_bot_is_in_and_not_archived(slack, channel, error):
    assert refused(client(slack).chat_postMessage, channel=channel, text="x")["error"] == error


def test_history_pages_by_cursor_and_a_new_post_does_not_shift_the_pages(slack):
    web = client(slack)
    for text in ("one", "two", "three"):
        web.chat_postMessage(channel="C0TRITON1", text=text)
    first = web.conversations_history(channel="C0TRITON1", limit=2)
    assert [m["text"] for m in first["messages"]] == ["three", "two"] and first["has_more"]
    web.chat_postMessage(channel="C0TRITON1", text="four")
    cursor = first["response_metadata"]["next_cursor"]
    rest = web.conversations_history(channel="C0TRITON1", limit=2, cursor=cursor)
    assert [m["text"] for m in rest["messages"]] == ["one"] and rest["has_more"] is False
    assert "response_metadata" not in rest.data
    assert refused(web.conversations_history, channel="C0TRITON1", cursor="eA==") == {
        "ok": False,
        "error": "invalid_cursor",
    }


def test_a_post_takes_a_channel_the_bot_joined_and_after_runs_once_once_served(slack):
    web = client(slack)
    slack.workspace.set_member("C0RANDOM01", True)
    seen: list[int] = []
    slack.after("chat.postMessage", lambda: seen.append(len(slack.messages("C0RANDOM01"))))
    web.chat_postMessage(channel="#random", text="x")
    web.chat_postMessage(channel="#random", text="y")
    assert seen == [1]  # after it was served, once
    assert [m["text"] for m in slack.messages("C0RANDOM01")] == ["x", "y"]
