"""Fixtures: PagerDuty Events API v2, Slack Web API and OpenID Connect stand-ins, one per test.

They run on the real monotonic clock, so code under test that honours ``Retry-After`` works;
build a stand-in with ``clock=ManualClock()`` to step time by hand instead.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.standins.oidc import OIDCStandIn
from tests.standins.oidc_tokens import Client
from tests.standins.pagerduty import PagerDutyStandIn
from tests.standins.slack import SlackStandIn

SLACK_TOKEN = "xoxb-test"
SLACK_CHANNELS = {"#triton-alerts": "C0TRITON1"}
OIDC_CLIENT = Client(
    client_id="receiver-ui",
    client_secret="oidc-client-secret",
    redirect_uris=("http://localhost/login/oidc/callback",),  # Flask's test client is localhost
    post_logout_redirect_uris=("http://localhost/login",),
)


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


@pytest.fixture
def oidc_standin() -> Iterator[OIDCStandIn]:
    """An OpenID Provider knowing ``OIDC_CLIENT``; pick the user with ``login_as()`` first.

    A receiver under gunicorn has its own port: register its redirect URI with
    ``add_client(dataclasses.replace(OIDC_CLIENT, redirect_uris=(...,)))``.
    """
    with OIDCStandIn(clients=[OIDC_CLIENT]) as standin:
        yield standin
    assert standin.errors == [], "the stand-in failed while handling a request"
