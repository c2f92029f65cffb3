"""Slack channels given by name: resolved to their ID once per notifier (conversations.list,
following its cursor), the ID used for posts, for the crash lookup and as the pacing key (one
key per channel however it was written); a name Slack does not list, or a token that cannot
list channels, gives up with the reason and the scopes to grant. On SQLite and Postgres."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from receiver.store.tables import ChannelPacing, NotificationThread
from tests.support.envs import CHANNEL_ID, SLACK_TOKEN
from tests.support.payloads import alert, group_body

MANY = {f"#team-{n:02d}": f"C0TEAM{n:04d}" for n in range(7)}


def warnings(env, *models: str) -> None:
    """One new incident per model, each a warning: Slack only."""
    for model in models:
        env.post(group_body(alert("TritonHighLatency", model=model), key=model))


def pacing_keys(env) -> list[str]:
    with Session(env.container.engine) as session:
        return list(session.scalars(select(ChannelPacing.channel)))


def stored_channels(env) -> set[str]:
    """The channel every stored Slack thread (channel, ts) names."""
    with Session(env.container.engine) as session:
        return {e["channel"] for e in session.scalars(select(NotificationThread.external))}


def test_a_name_is_resolved_once_and_its_id_posts_and_paces(make_env):
    env = make_env({"delivery.slack_min_interval_seconds": 1}, channel="#triton-alerts")
    for model in "abc":
        warnings(env, model)
        env.drain()
        env.advance(1)

    assert env.slack.methods() == ["conversations.list"] + ["chat.postMessage"] * 3
    [listed] = [c for c in env.slack.calls if c["method"] == "conversations.list"]
    assert listed["params"] == {
        "types": "public_channel,private_channel",
        "exclude_archived": "1",
        "limit": "500",
    }
    posted = [c["json"]["channel"] for c in env.slack.calls if c["method"] == "chat.postMessage"]
    assert posted == [CHANNEL_ID] * 3
    assert pacing_keys(env) == [CHANNEL_ID]
    assert stored_channels(env) == {CHANNEL_ID}


def two_spellings(pd, slack) -> dict:
    """Receivers ``slack`` (by name) and ``by_id`` (by ID) on one channel, both for warnings."""
    by_id = {"type": "slack", "token": SLACK_TOKEN, "channel": CHANNEL_ID}
    return {
        "receivers.by_id": {**by_id, "base_url": slack.base_url},
        "routes": [{"matchers": ['severity="warning"'], "receivers": ["slack", "by_id"]}],
        "delivery.slack_min_interval_seconds": 1,
    }


def test_one_channel_written_two_ways_is_paced_as_one(make_env):
    env = make_env(two_spellings, channel="#triton-alerts", slack_rate_limit=True)
    warnings(env, "a")

    env.drain()

    posts = [c for c in env.slack.calls if c["method"] == "chat.postMessage"]
    assert [c["status"] for c in posts] == [200]  # the other held back, not refused with a 429
    assert sorted(d.state for d in env.deliveries()) == ["pending", "sent"]
    env.advance(1)
    env.drain()
    assert [c["status"] for c in env.slack.calls if c["method"] == "chat.postMessage"] == [200] * 2
    assert pacing_keys(env) == [CHANNEL_ID]


@pytest.mark.parametrize("channel", ["#team-05", "team-05"])
def test_a_name_on_a_later_page_of_a_private_channel_is_found(make_env, channel):
    options = {"channels": MANY, "private": ["#team-05"], "page_max": 2}
    env = make_env(channel=channel, slack_options=options)
    warnings(env, "a")

    env.drain()

    lists = [c for c in env.slack.calls if c["method"] == "conversations.list"]
    assert len(lists) == 3 and "cursor" not in lists[0]["params"]
    assert all(c["params"]["cursor"] for c in lists[1:])
    assert len(env.slack.messages("C0TEAM0005")) == 1
    assert [d.state for d in env.deliveries()] == ["sent"]


ELSEWHERE = {"#triton-alerts": CHANNEL_ID}
NOT_HERE = {**ELSEWHERE, "#no-such-channel": "C0NOSUCH01"}


@pytest.mark.parametrize(
    ("options", "why"),
    [
        ({"channels": ELSEWHERE}, "no channel named '#no-such-channel'"),
        ({"channels": NOT_HERE, "archived": ["#no-such-channel"]}, "no channel named"),
        (
            {
                "channels": NOT_HERE,
                "private": ["#no-such-channel"],
                "outside": ["#no-such-channel"],
            },
            "no channel named",
        ),
        (
            {"channels": NOT_HERE, "scopes": ["chat:write", "channels:history"]},
            "missing_scope (needed: channels:read)",
        ),
    ],
)
def test_a_name_that_cannot_be_resolved_gives_up_with_the_reason_and_the_scopes(
    make_env, options, why
):
    env = make_env(channel="#no-such-channel", slack_options=options)
    warnings(env, "a")

    env.drain()

    [delivery] = env.deliveries()
    assert delivery.state == "dead"
    assert why in delivery.last_error
    assert "channels:read and groups:read" in delivery.last_error
    assert "chat.postMessage" not in env.slack.methods()


def test_a_slack_outage_past_max_age_keeps_a_firing_incidents_post_in_doubt(make_env):
    env = make_env({"delivery.max_age_minutes": 1})
    env.slack.fail("service_unavailable", status=503, seconds=600)  # a 503 may have posted
    env.worker.rand = lambda: 1.0  # no jitter: retries at most 300 s apart
    warnings(env, "a")
    env.drain()
    for _ in range(95):
        env.advance(10)
        env.drain()
        assert [d.state for d in env.deliveries()] in (["pending"], ["sent"])
    assert [d.state for d in env.deliveries()] == ["sent"]
    assert env.slack.methods()[-2:] == ["conversations.history", "chat.postMessage"]
    assert len(env.slack.messages(CHANNEL_ID)) == 1
