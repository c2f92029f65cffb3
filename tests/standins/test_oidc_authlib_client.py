"""Authlib's Flask client, which the receiver's login will use, against the OIDC stand-in.

A tiny Flask app stands for the relying party: Flask's test client is the browser's session,
``requests`` plays the browser's visit to the identity provider (the redirect not followed).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import certifi
import pytest
import requests
from authlib.integrations.flask_client import OAuth
from flask import Flask, jsonify, url_for
from flask.testing import FlaskClient
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyIdError,
    MissingClaimError,
)

from tests.standins.conftest import OIDC_CLIENT
from tests.standins.oidc import OIDCStandIn


def relying_party(
    idp: OIDCStandIn, claims_options: dict[str, Any] | None = None, **session: Any
) -> Flask:
    """A Flask app logging in with Authlib: discovery, PKCE S256, nonce, client_secret_basic;
    ``session`` sets attributes of its requests sessions (``verify``, ``trust_env``)."""
    app = Flask(__name__)
    app.config.update(TESTING=True, SECRET_KEY="test-only")  # TESTING: view errors propagate
    oauth = OAuth(app)
    oauth.register(
        "idp",
        client_id=OIDC_CLIENT.client_id,
        client_secret=OIDC_CLIENT.client_secret,
        server_metadata_url=idp.metadata_url,
        client_kwargs={
            "scope": "openid email profile",
            "code_challenge_method": "S256",
            **session,
        },
    )

    @app.get("/login")
    def login() -> Any:
        return oauth.idp.authorize_redirect(url_for("callback", _external=True))

    @app.get("/login/oidc/callback")
    def callback() -> Any:
        token = oauth.idp.authorize_access_token(claims_options=claims_options)
        return jsonify(claims=dict(token["userinfo"]), userinfo=dict(oauth.idp.userinfo()))

    return app


@pytest.fixture
def browser(oidc_standin: OIDCStandIn) -> Iterator[FlaskClient]:
    with relying_party(oidc_standin).test_client() as client:
        yield client


def visit_idp(browser: FlaskClient, ca_file: str | None = None) -> str:
    """Follow the app's redirect to the provider; the callback path and query it sends back to."""
    start = browser.get("/login")
    assert start.status_code == 302
    url = start.headers["Location"]
    answer = requests.get(url, allow_redirects=False, timeout=5, verify=ca_file or True)
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["Location"])
    return f"{back.path}?{back.query}"


def test_authlib_logs_in_with_pkce_and_a_nonce_and_reads_the_groups(oidc_standin, browser):
    oidc_standin.login_as("u-7", email="bo@example.com", name="Bo", groups=["triton-viewers"])
    answer = browser.get(visit_idp(browser))
    assert answer.status_code == 200, answer.text
    claims, userinfo = answer.json["claims"], answer.json["userinfo"]
    assert (claims["sub"], claims["email"], claims["groups"]) == (
        "u-7",
        "bo@example.com",
        ["triton-viewers"],
    )
    assert claims["iss"] == oidc_standin.issuer and claims["aud"] == OIDC_CLIENT.client_id
    assert userinfo["groups"] == ["triton-viewers"] and userinfo["name"] == "Bo"
    authorization = next(r for r in oidc_standin.requests if r["path"] == "/authorize")
    assert authorization["query"]["code_challenge_method"] == "S256"
    assert claims["nonce"] == authorization["query"]["nonce"]
    assert (
        "Authorization"
        in next(r for r in oidc_standin.requests if r["path"] == "/token")["headers"]
    )


def test_authlib_logs_in_over_tls_trusting_the_standins_ca_only_without_trust_env(monkeypatch):
    """requests lets REQUESTS_CA_BUNDLE override a session's ``verify`` (psf/requests#3829):
    a CA bundle setting handed to Authlib needs ``trust_env=False`` (or a per-request verify)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    with OIDCStandIn(clients=[OIDC_CLIENT], tls=True) as idp:
        assert idp.issuer.startswith("https://") and idp.ca_file is not None
        idp.login_as("u-7", groups=["triton-viewers"])
        lax = relying_party(idp, verify=idp.ca_file).test_client()
        with lax, pytest.raises(requests.exceptions.SSLError):
            lax.get("/login")  # its discovery request trusts the environment's CAs instead
        strict = relying_party(idp, verify=idp.ca_file, trust_env=False)
        with strict.test_client() as browser:
            answer = browser.get(visit_idp(browser, idp.ca_file))
        assert answer.status_code == 200 and answer.json["claims"]["iss"] == idp.issuer
        ca_file = idp.ca_file
    assert idp.errors == [] and not os.path.exists(ca_file)


def test_authlib_refetches_the_jwks_after_a_rotation(oidc_standin, browser):
    oidc_standin.login_as("u-7")
    assert browser.get(visit_idp(browser)).status_code == 200
    oidc_standin.rotate_key()
    assert browser.get(visit_idp(browser)).status_code == 200
    assert [r["path"] for r in oidc_standin.requests].count("/jwks") == 2


@pytest.mark.parametrize(
    ("setting", "value", "rejection", "says"),
    [
        ("skew", -3600, ExpiredTokenError, "expired"),  # past Authlib's default leeway, 120 s
        ("skew", 3600, InvalidClaimError, "issued in the future"),
        ("issuer", "http://127.0.0.1:1", InvalidClaimError, "'iss'"),
        ("nonce", "replayed", InvalidClaimError, "'nonce'"),
        ("unknown_key", "published-kid", BadSignatureError, None),
        ("unknown_key", "new-kid", InvalidKeyIdError, "No key for kid"),  # after a refetch
        ("audience", "someone-else", MissingClaimError, "'azp'"),
    ],
)
def test_authlib_refuses_each_misissued_id_token(
    oidc_standin, browser, setting, value, rejection, says
):
    oidc_standin.login_as("u-7")
    setattr(oidc_standin.settings, setting, value)
    with pytest.raises(rejection, match=says):
        browser.get(visit_idp(browser))
    if value == "new-kid":
        assert [r["path"] for r in oidc_standin.requests].count("/jwks") == 2


def test_authlib_takes_a_foreign_audience_with_our_azp_unless_told_to_check_aud(oidc_standin):
    """OIDC Core 3.1.3.7 (3): aud must contain the client_id. Authlib 1.9 checks azp instead,
    so the receiver must pass ``claims_options`` with ``aud`` (and then ``iss``) itself."""
    oidc_standin.login_as("u-7")
    oidc_standin.settings.audience = "someone-else"
    oidc_standin.settings.azp = OIDC_CLIENT.client_id
    with relying_party(oidc_standin).test_client() as lax:
        assert lax.get(visit_idp(lax)).json["claims"]["aud"] == "someone-else"
    options = {
        "iss": {"essential": True, "value": oidc_standin.issuer},
        "aud": {"essential": True, "value": OIDC_CLIENT.client_id},
    }
    strict = relying_party(oidc_standin, options).test_client()
    with strict, pytest.raises(InvalidClaimError, match="aud"):
        strict.get(visit_idp(strict))
