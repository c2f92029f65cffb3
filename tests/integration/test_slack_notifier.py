"""The Slack notifier on its own: built with no pacer and no database, it only talks HTTP.

The delivery worker paces (tests/integration/test_slack_pacing.py); here the notifier is given
the channel's slot or not (``DeliveryJob.slot``) and says which channel to hold after
(``SendResult.hold_channel``), against the Slack stand-in.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from pydantic import TypeAdapter

from receiver.model.delivery import Outcome
from receiver.notify import DeliveryJob, PacedNotifier, SlotRequest
from receiver.notify.slack import SLOT_WANTED, SlackNotifier
from receiver.settings import SlackReceiver
from tests.standins.slack import SlackStandIn
from tests.support.envs import CHANNEL_ID, CHANNELS, SLACK_TOKEN
from tests.support.snapshots import event, snapshot

INCIDENT = snapshot(id=7, title="TritonHighLatency on host-1")
ADDED = event("alert_added", "2026-11-28T00:22:00+00:00", summary="GPU 1")


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn(SLACK_TOKEN, CHANNELS, rate_limit=False) as standin:
        yield standin


def notifier(slack: SlackStandIn, channel: str = CHANNEL_ID) -> SlackNotifier:
    settings = TypeAdapter(SlackReceiver).validate_python(
        {"type": "slack", "token": SLACK_TOKEN, "channel": channel, "base_url": slack.base_url}
    )
    return SlackNotifier("slack", settings)  # no pacer, no unit of work: nothing to ask


def job(**fields: Any) -> DeliveryJob:
    return replace(DeliveryJob(1, "7:slack:trigger:1", "trigger", INCIDENT), **fields)


def test_a_new_message_needs_the_slot_and_holds_the_channel_after(slack):
    slack_notifier = notifier(slack)
    assert isinstance(slack_notifier, PacedNotifier)
    assert slack_notifier.slot_request(job()) == SlotRequest(CHANNEL_ID, needed=True)

    posted = slack_notifier.send(job(slot=CHANNEL_ID))

    assert posted.outcome is Outcome.OK and posted.hold_channel == CHANNEL_ID
    assert posted.external["channel"] == CHANNEL_ID
    assert [m["text"] for m in slack.messages(CHANNEL_ID)] == [
        "[FIRING] TritonHighLatency on host-1"
    ]


def test_a_post_in_doubt_not_found_without_its_slot_is_handed_back_unsent(slack):
    slack_notifier = notifier(slack, "#triton-alerts")
    doubt = job(reclaimed=True)
    assert slack_notifier.slot_request(doubt) == SlotRequest(CHANNEL_ID, needed=False)

    result = slack_notifier.send(doubt)

    assert (result.outcome, result.reason, result.attempted) == (Outcome.RETRY, SLOT_WANTED, False)
    assert result.retry_after == 0.0 and not result.in_doubt  # looked for: it is not there
    assert slack.methods() == ["conversations.list", "conversations.history"]


def test_an_update_tells_its_changes_in_the_thread_only_with_the_slot(slack):
    slack_notifier = notifier(slack)
    ts = slack_notifier.send(job(slot=CHANNEL_ID)).external["ts"]
    update = job(external={"channel": CHANNEL_ID, "ts": ts}, new_events=(ADDED,))
    assert slack_notifier.slot_request(update) == SlotRequest(CHANNEL_ID, needed=False)
    assert slack_notifier.slot_request(job(external=update.external)) is None  # nothing to tell

    without = slack_notifier.send(update)
    told = slack_notifier.send(replace(update, slot=CHANNEL_ID))

    assert (without.told_changes, without.hold_channel) == (False, None)
    assert (told.told_changes, told.hold_channel) == (True, CHANNEL_ID)
    [message] = slack.messages(CHANNEL_ID)
    assert len(message["updates"]) == 2 and message["reply_count"] == 1
    [reply] = slack.replies(CHANNEL_ID, ts)
    assert reply["text"] == "00:22:00 UTC: alert added GPU 1"


def test_a_429_names_the_channel_to_hold_for_its_retry_after(slack):
    slack.fail("ratelimited", times=1, retry_after=20)

    refused = notifier(slack).send(job(slot=CHANNEL_ID))

    assert (refused.outcome, refused.retry_after) == (Outcome.RETRY, 20.0)
    assert refused.hold_channel == CHANNEL_ID and not refused.in_doubt
    assert slack.messages(CHANNEL_ID) == []
