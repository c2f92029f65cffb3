"""Logging in to the UI through an OpenID Connect provider (the stand-in of tests/standins/oidc.py
on 127.0.0.1): groups map to roles, every ID token the receiver should not trust is refused,
and an unreachable provider is a 503, not a 500.

Flask's test client is the browser's session with the receiver; ``requests`` plays the
browser's visit to the provider (its redirect back is then followed by hand).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import certifi
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from receiver.app import create_app
from receiver.bootstrap import bootstrap
from tests.standins.conftest import OIDC_CLIENT
from tests.standins.oidc import OIDCStandIn
from tests.support.api import post_webhook
from tests.support.payloads import FIXTURES
from tests.support.ui_session import csrf


@pytest.fixture
def idp() -> Iterator[OIDCStandIn]:
    with OIDCStandIn(clients=[OIDC_CLIENT]) as standin:
        yield standin


@pytest.fixture
def app(idp: OIDCStandIn, make_settings: Any, clock: Any) -> Iterator[Flask]:
    settings = make_settings(
        {
            "ui.secret_key": "s" * 32,
            "ui.cookie_secure": False,
            "ui.oidc": {
                "issuer": idp.issuer,
                "client_id": OIDC_CLIENT.client_id,
                "client_secret": OIDC_CLIENT.client_secret,
            },
            "ui.responder_groups": ["triton-oncall"],
            "ui.viewer_groups": ["ml-platform"],
        }
    )
    container = bootstrap(settings, clock=clock)
    built = create_app(container=container)
    body = json.loads((FIXTURES / "single-repeat-resolve" / "001.json").read_text())["body_raw"]
    assert post_webhook(built.test_client(), body).status_code == 200
    yield built
    container.engine.dispose()


def log_in(app: Flask, target: str = "/incidents/1") -> tuple[FlaskClient, Any]:
    """Start at a page, press the login button, visit the provider, come back: (browser, the
    receiver's answer to the callback)."""
    browser = app.test_client()
    first = browser.get(target)
    assert first.status_code == 302
    page = browser.get(first.headers["Location"]).get_data(as_text=True)
    assert 'id="login-oidc"' in page and 'id="login"' not in page  # no password form
    sent = browser.post(
        "/login/oidc", data={"csrf_token": csrf(page), "next": target}, follow_redirects=False
    )
    assert sent.status_code == 302, sent.get_data(as_text=True)
    at_idp = requests.get(sent.headers["Location"], allow_redirects=False, timeout=5)
    assert at_idp.status_code == 302, at_idp.text
    back = urlsplit(at_idp.headers["Location"])
    return browser, browser.get(f"{back.path}?{back.query}")


def test_a_responder_group_logs_in_and_acts(app: Flask, idp: OIDCStandIn) -> None:
    idp.login_as("u-1", preferred_username="dana", groups=["triton-oncall", "staff"])
    browser, back = log_in(app)
    assert back.status_code == 302 and back.headers["Location"] == "/incidents/1"
    page = browser.get("/incidents/1").get_data(as_text=True)
    assert "dana" in page and "Acknowledge" in page
    assert browser.post("/incidents/1/ack", data={"csrf_token": csrf(page)}).status_code == 302
    timeline = browser.get("/api/v1/incidents/1").get_json()["timeline"]
    acked = next(e for e in timeline if e["kind"] == "acknowledged")
    assert acked["detail"]["user"] == "dana" and acked["detail"]["via"] == "ui:oidc"
    authorize = next(r for r in idp.requests if r["path"] == "/authorize")
    assert authorize["query"]["code_challenge_method"] == "S256"


def test_a_viewer_group_reads_but_cannot_act(app: Flask, idp: OIDCStandIn) -> None:
    idp.login_as("u-2", preferred_username="eli", groups=["ml-platform"])
    browser, back = log_in(app)
    assert back.status_code == 302
    page = browser.get("/incidents/1").get_data(as_text=True)
    assert "eli (viewer)" in page and "Acknowledge" not in page
    assert browser.post("/incidents/1/ack", data={"csrf_token": csrf(page)}).status_code == 403


def test_nobody_outside_the_mapped_groups_gets_in(app: Flask, idp: OIDCStandIn) -> None:
    idp.login_as("u-3", preferred_username="fay", groups=["marketing"])
    browser, back = log_in(app)
    assert back.status_code == 403
    assert "none of your groups has access" in back.get_data(as_text=True)
    assert browser.get("/incidents").status_code == 302  # still logged out


@pytest.mark.parametrize(
    "untrusted",
    [
        {"audience": "someone-else"},
        {"audience": "someone-else", "azp": OIDC_CLIENT.client_id},  # Authlib's gap, closed
        {"issuer": "http://127.0.0.1:1/evil"},
        {"skew": -3600},  # expired an hour ago
        {"unknown_key": "new-kid"},
        {"unknown_key": "published-kid"},
        {"nonce": "replayed"},
    ],
)
def test_an_id_token_the_receiver_should_not_trust_is_refused(
    app: Flask, idp: OIDCStandIn, untrusted: dict[str, Any]
) -> None:
    idp.login_as("u-4", preferred_username="gus", groups=["triton-oncall"])
    for name, value in untrusted.items():
        setattr(idp.settings, name, value)
    browser, back = log_in(app)
    assert back.status_code == 401, back.get_data(as_text=True)
    assert browser.get("/incidents").status_code == 302


def test_a_refusal_at_the_provider_is_shown_and_logs_nobody_in(
    app: Flask, idp: OIDCStandIn
) -> None:
    idp.deny()
    browser, back = log_in(app)
    assert back.status_code == 401
    assert "log in again" in back.get_data(as_text=True)
    assert browser.get("/incidents").status_code == 302


def test_an_unreachable_provider_is_a_503(app: Flask, idp: OIDCStandIn) -> None:
    idp.fail(503)
    browser = app.test_client()
    page = browser.get("/login").get_data(as_text=True)
    answer = browser.post("/login/oidc", data={"csrf_token": csrf(page)})
    assert answer.status_code == 503
    assert "does not answer" in answer.get_data(as_text=True)


def test_logout_ends_an_oidc_session_everywhere(app: Flask, idp: OIDCStandIn) -> None:
    idp.login_as("u-5", preferred_username="hal", groups=["triton-oncall"])
    browser, _ = log_in(app)
    copy = app.test_client()
    copy.set_cookie("receiver_session", browser.get_cookie("receiver_session").value)
    page = browser.get("/incidents").get_data(as_text=True)
    assert browser.post("/logout", data={"csrf_token": csrf(page)}).status_code == 302
    assert copy.get("/incidents").status_code == 302


def test_a_provider_behind_a_private_ca_is_trusted_through_ca_bundle(
    make_settings: Any, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())  # must not override the setting
    with OIDCStandIn(clients=[OIDC_CLIENT], tls=True) as idp:
        settings = make_settings(
            {
                "ui.secret_key": "s" * 32,
                "ui.cookie_secure": False,
                "ui.oidc": {
                    "issuer": idp.issuer,
                    "client_id": OIDC_CLIENT.client_id,
                    "client_secret": OIDC_CLIENT.client_secret,
                    "ca_bundle": idp.ca_file,
                },
                "ui.responder_groups": ["triton-oncall"],
            }
        )
        container = bootstrap(settings, clock=clock)
        idp.login_as("u-6", preferred_username="ivy", groups=["triton-oncall"])
        browser = create_app(container=container).test_client()
        page = browser.get("/login").get_data(as_text=True)
        sent = browser.post("/login/oidc", data={"csrf_token": csrf(page)})
        assert sent.status_code == 302, sent.get_data(as_text=True)
        at_idp = requests.get(
            sent.headers["Location"], allow_redirects=False, timeout=5, verify=idp.ca_file
        )
        back = urlsplit(at_idp.headers["Location"])
        assert browser.get(f"{back.path}?{back.query}").status_code == 302
        assert browser.get("/incidents").status_code == 200
        container.engine.dispose()
