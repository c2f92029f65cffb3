"""Webhook authentication: Bearer and Basic as Alertmanager's http_config sends them."""

import base64

import pytest

from receiver.settings import AuthSettings
from receiver.web.auth import challenge, is_authorized

TOKEN = "tok-current-0123456789"
NEXT_TOKEN = "tok-next-9876543210"
USER, PASSWORD = "alertmanager", "pa:ss w0rd"  # a colon inside the password is allowed

BEARER = AuthSettings(bearer_tokens=[TOKEN])
ROTATING = AuthSettings(bearer_tokens=[TOKEN, NEXT_TOKEN])
BASIC = AuthSettings(basic_auth={"username": USER, "password": PASSWORD})
BOTH = AuthSettings(bearer_tokens=[TOKEN], basic_auth={"username": USER, "password": PASSWORD})
NOTHING = AuthSettings()
OPEN = AuthSettings(allow_unauthenticated=True)


def basic(text):
    return "Basic " + base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("header", "allowed"),
    [
        (f"Bearer {TOKEN}", True),
        (f"bearer {TOKEN}", True),
        (f"BEARER {TOKEN}", True),
        (f"Bearer   {TOKEN}  ", True),
        (f"Bearer {TOKEN}x", False),
        (f"Bearer {TOKEN[:-1]}", False),
        (f"Bearer {TOKEN.upper()}", False),
        ("Bearer wrong", False),
        (f"Token {TOKEN}", False),
        (f"Basic {TOKEN}", False),
        (TOKEN, False),
        (f"Bearer{TOKEN}", False),
        ("Bearer", False),
        ("Bearer ", False),
        ("", False),
        (None, False),
    ],
)
def test_a_bearer_token_must_match_exactly(header, allowed):
    assert is_authorized(BEARER, header) is allowed


@pytest.mark.parametrize("token", [TOKEN, NEXT_TOKEN])
def test_every_configured_token_is_accepted_during_rotation(token):
    assert is_authorized(ROTATING, f"Bearer {token}") is True


def test_a_token_that_is_not_configured_is_refused_during_rotation():
    assert is_authorized(ROTATING, "Bearer tok-retired-0000") is False
    assert is_authorized(ROTATING, f"Bearer {TOKEN},{NEXT_TOKEN}") is False


@pytest.mark.parametrize(
    ("header", "allowed"),
    [
        (basic(f"{USER}:{PASSWORD}"), True),
        ("basic " + basic(f"{USER}:{PASSWORD}")[6:], True),
        (basic(f"{USER}:wrong"), False),
        (basic(f"{USER}:{PASSWORD}x"), False),
        (basic(f"{USER}:"), False),
        (basic(f"someone:{PASSWORD}"), False),
        (basic(f":{PASSWORD}"), False),
        (basic(f"{USER}{PASSWORD}"), False),  # no colon at all
        (basic(USER), False),
        ("Basic not*base64!", False),
        ("Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()[:-2], False),
        ("Basic " + base64.b64encode(b"\xff\xfe:\xfd").decode(), False),  # not UTF-8
        (f"Bearer {PASSWORD}", False),
        ("Basic", False),
        (None, False),
    ],
)
def test_basic_auth_needs_the_right_user_and_password(header, allowed):
    assert is_authorized(BASIC, header) is allowed


def test_with_both_schemes_configured_either_one_is_accepted():
    assert is_authorized(BOTH, f"Bearer {TOKEN}") is True
    assert is_authorized(BOTH, basic(f"{USER}:{PASSWORD}")) is True
    assert is_authorized(BOTH, f"Bearer {PASSWORD}") is False
    assert is_authorized(BOTH, basic(f"{USER}:{TOKEN}")) is False


def test_a_bearer_header_is_refused_when_only_basic_auth_is_configured():
    assert is_authorized(BASIC, f"Bearer {PASSWORD}") is False


@pytest.mark.parametrize("header", [None, "", f"Bearer {TOKEN}", basic(f"{USER}:{PASSWORD}")])
def test_with_nothing_configured_requests_are_refused(header):
    assert is_authorized(NOTHING, header) is False


@pytest.mark.parametrize("header", [None, "", "Bearer anything", "garbage"])
def test_with_nothing_configured_allow_unauthenticated_lets_every_request_in(header):
    assert is_authorized(OPEN, header) is True


@pytest.mark.parametrize(
    ("header", "allowed"),
    [(None, False), ("", False), ("Bearer wrong", False), (f"Bearer {TOKEN}", True)],
)
def test_configured_credentials_are_required_even_with_allow_unauthenticated(header, allowed):
    auth = AuthSettings(allow_unauthenticated=True, bearer_tokens=[TOKEN])
    assert is_authorized(auth, header) is allowed


def test_configured_basic_auth_is_required_even_with_allow_unauthenticated():
    auth = AuthSettings(
        allow_unauthenticated=True, basic_auth={"username": USER, "password": PASSWORD}
    )
    assert is_authorized(auth, None) is False
    assert is_authorized(auth, basic(f"{USER}:{PASSWORD}")) is True


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        (BEARER, 'Bearer realm="receiver"'),
        (BASIC, 'Basic realm="receiver"'),
        (BOTH, 'Bearer realm="receiver", Basic realm="receiver"'),
        (NOTHING, 'Bearer realm="receiver"'),
    ],
    ids=["bearer", "basic", "both", "nothing"],
)
def test_the_challenge_names_every_configured_scheme(auth, expected):
    assert challenge(auth) == expected


def test_the_challenge_never_reveals_a_credential():
    assert TOKEN not in challenge(BOTH)
    assert PASSWORD not in challenge(BOTH)
