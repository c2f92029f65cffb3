"""Fixtures: a PagerDuty Events API v2 stand-in and a Slack Web API stand-in, one per test.

Both run on the real monotonic clock, so code under test that honours ``Retry-After`` works;
build a stand-in with ``clock=ManualClock()`` to step time by hand instead.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.standins.pagerduty import PagerDutyStandIn
from tests.standins.slack import SlackStandIn

SLACK_TOKEN = "xoxb-test"
SLACK_CHANNELS = {"#triton-alerts": "C0TRITON1"}


@pytest.fixture
def pagerduty_standin() -> Iterator[PagerDutyStandIn]:
    """PagerDuty's Events API v2 over HTTPS; trust it with ``client_ssl_context()``."""
    with PagerDutyStandIn() as standin:
        yield standin
    assert standin.errors == [], "the stand-in failed while handling a request"


@pytest.fixture
def slack_standin() -> Iterator[SlackStandIn]:
    """Slack's Web API for token ``xoxb-test``; ``#triton-alerts`` is ``C0TRITON1``."""
    with SlackStandIn(token=SLACK_TOKEN, channels=SLACK_CHANNELS) as standin:
        yield standin
    assert standin.errors == [], "the stand-in failed while handling a request"
