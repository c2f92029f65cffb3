"""Contract tests of the OpenID Connect stand-in: the code flow driven with ``requests`` (no
redirect followed), the ID token verified with Authlib's claims classes against the JWKS."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyIdError,
    JoseError,
)
from joserfc.jwk import KeySet

from tests.standins.conftest import OIDC_CLIENT
from tests.standins.oidc import OIDCStandIn
from tests.standins.oidc_tokens import Client
from tests.support.clock import ManualClock

CALLBACK = OIDC_CLIENT.redirect_uris[0]
SCOPE = "openid email profile"
ALICE = {"sub": "u-1001", "email": "alice@example.com", "name": "Alice Ops"}


def pkce(verifier: str | None = None) -> tuple[str, str]:
    """A code_verifier and its S256 code_challenge, computed here independently (RFC 7636)."""
    verifier = verifier or secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def metadata(idp: OIDCStandIn) -> dict[str, Any]:
    answer = requests.get(idp.metadata_url, timeout=5)
    assert answer.status_code == 200
    return answer.json()


def authorize(idp: OIDCStandIn, challenge: str, **params: str | None) -> requests.Response:
    """The browser's visit to the authorization endpoint, the redirect not followed (a None
    parameter is left out)."""
    query = {
        "response_type": "code",
        "client_id": OIDC_CLIENT.client_id,
        "redirect_uri": CALLBACK,
        "scope": SCOPE,
        "state": "st-1",
        "nonce": "n-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **params,
    }
    url = metadata(idp)["authorization_endpoint"]
    return requests.get(url, params=query, allow_redirects=False, timeout=5)


def redirected(answer: requests.Response, to: str = CALLBACK) -> dict[str, str]:
    """The parameters of a 302 back to ``to``."""
    assert answer.status_code == 302, answer.text
    location = urlsplit(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == to
    return {k: v for k, [v] in parse_qs(location.query).items()}


def exchange(
    idp: OIDCStandIn,
    code: str,
    verifier: str | None,
    basic: bool = True,
    secret: str = OIDC_CLIENT.client_secret,
    **form: str,
) -> requests.Response:
    """The relying party's token request, authenticated by client_secret_basic or _post."""
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, **form}
    if verifier is not None:
        body["code_verifier"] = verifier
    auth = (OIDC_CLIENT.client_id, secret) if basic else None
    if not basic:
        body.update(client_id=OIDC_CLIENT.client_id, client_secret=secret)
    url = metadata(idp)["token_endpoint"]
    return requests.post(url, data=body, auth=auth, timeout=5)


def log_in(idp: OIDCStandIn) -> dict[str, Any]:
    """The whole flow for ALICE in group triton-oncall; the token response."""
    idp.login_as(**ALICE, groups=["triton-oncall"])
    verifier, challenge = pkce()
    code = redirected(authorize(idp, challenge))["code"]
    answer = exchange(idp, code, verifier)
    assert answer.status_code == 200, answer.text
    return answer.json()


def verified(idp: OIDCStandIn, tokens: dict[str, Any], nonce: str = "n-1") -> CodeIDToken:
    """The ID token checked as a relying party must (OIDC Core 3.1.3.7), with the JWKS."""
    keys = KeySet.import_key_set(requests.get(metadata(idp)["jwks_uri"], timeout=5).json())
    token = jwt.decode(tokens["id_token"], keys, algorithms=["RS256"])
    options = {
        "iss": {"essential": True, "value": idp.issuer},
        "aud": {"essential": True, "value": OIDC_CLIENT.client_id},
    }
    params = {
        "nonce": nonce,
        "client_id": OIDC_CLIENT.client_id,
        "access_token": tokens["access_token"],
    }
    claims = CodeIDToken(token.claims, token.header, options, params)
    claims.validate()
    return claims


def test_discovery_names_every_endpoint_under_its_own_issuer(oidc_standin):
    meta = metadata(oidc_standin)
    base = oidc_standin.base_url
    assert meta["issuer"] == base and oidc_standin.metadata_url.startswith(base + "/.well-known/")
    paths = {
        "authorization_endpoint": "/authorize",
        "token_endpoint": "/token",
        "jwks_uri": "/jwks",
    }
    paths.update(userinfo_endpoint="/userinfo", end_session_endpoint="/logout")
    assert {name: meta[name] for name in paths} == {n: base + p for n, p in paths.items()}
    assert meta["response_types_supported"] == ["code"]
    assert meta["id_token_signing_alg_values_supported"] == ["RS256"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    methods = ["client_secret_basic", "client_secret_post"]
    assert meta["token_endpoint_auth_methods_supported"] == methods
    assert {"openid", "email", "profile"} <= set(meta["scopes_supported"])
    assert {"sub", "email", "groups"} <= set(meta["claims_supported"])
    assert meta["subject_types_supported"] == ["public"]


def test_the_code_flow_gives_an_id_token_that_verifies_against_the_jwks(oidc_standin):
    oidc_standin.login_as(**ALICE, groups=["triton-oncall", "gpu-admins"])
    verifier, challenge = pkce()
    back = redirected(authorize(oidc_standin, challenge, state="st-42", nonce="n-42"))
    assert back["state"] == "st-42" and set(back) == {"code", "state"}
    answer = exchange(oidc_standin, back["code"], verifier)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Cache-Control"] == "no-store"
    tokens = answer.json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 300
    claims = verified(oidc_standin, tokens, nonce="n-42")
    assert claims.header["kid"] == oidc_standin.keys.signing_kid
    assert (claims["sub"], claims["email"], claims["name"]) == tuple(ALICE.values())
    assert claims["preferred_username"] == "u-1001" and claims["nonce"] == "n-42"
    assert claims["groups"] == ["triton-oncall", "gpu-admins"]
    assert claims["exp"] - claims["iat"] == 300 and claims["auth_time"] <= claims["iat"]
    info = requests.get(
        metadata(oidc_standin)["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=5,
    )
    assert info.status_code == 200
    assert info.json() == {k: v for k, v in claims.items() if k in info.json()}
    assert set(info.json()) >= {"sub", "email", "name", "preferred_username", "groups"}


@pytest.mark.parametrize("basic", [True, False], ids=["client_secret_basic", "client_secret_post"])
def test_either_client_authentication_method_is_accepted(oidc_standin, basic):
    oidc_standin.login_as("u-1")
    verifier, challenge = pkce()
    code = redirected(authorize(oidc_standin, challenge))["code"]
    assert exchange(oidc_standin, code, verifier, basic=basic).status_code == 200
    [token_request] = [r for r in oidc_standin.requests if r["path"] == "/token"]
    assert ("Authorization" in token_request["headers"]) is basic
    assert ("client_secret" in token_request["form"]) is not basic


def test_the_groups_claim_name_and_scope_are_configurable(oidc_standin):
    oidc_standin.settings.groups_claim = "roles"
    oidc_standin.settings.groups_scope = "groups"
    claims = verified(oidc_standin, log_in(oidc_standin))
    assert "roles" not in claims and "groups" not in claims  # the scope was not asked for
    verifier, challenge = pkce()
    code = redirected(authorize(oidc_standin, challenge, scope="openid groups"))["code"]
    claims = verified(oidc_standin, exchange(oidc_standin, code, verifier).json())
    assert claims["roles"] == ["triton-oncall"] and "email" not in claims
    assert "roles" in metadata(oidc_standin)["claims_supported"]


@pytest.mark.parametrize(
    "params",
    [
        {"client_id": "stranger"},
        {"redirect_uri": "http://evil.example/login/oidc/callback"},
        {"redirect_uri": CALLBACK + "/"},
        {"redirect_uri": CALLBACK + "?next=/"},
        {"redirect_uri": ""},
    ],
    ids=["unknown-client", "other-host", "trailing-slash", "extra-query", "empty"],
)
def test_an_unknown_client_or_redirect_uri_is_an_error_page_not_a_redirect(oidc_standin, params):
    oidc_standin.login_as("u-1")
    answer = authorize(oidc_standin, pkce()[1], **params)
    assert answer.status_code == 400 and "Location" not in answer.headers
    assert answer.headers["Content-Type"].startswith("text/")


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"scope": "email profile"}, "invalid_scope"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
        ({"code_challenge": "not-a-sha256"}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
    ],
    ids=["no-openid", "implicit", "no-pkce", "malformed-pkce", "plain-pkce"],
)
def test_a_bad_request_goes_back_to_the_redirect_uri_with_its_error(oidc_standin, params, error):
    oidc_standin.login_as("u-1")
    back = redirected(authorize(oidc_standin, pkce()[1], **params))
    assert (back["error"], back["state"]) == (error, "st-1") and "code" not in back


def test_a_refusal_or_no_chosen_user_comes_back_as_an_error(oidc_standin):
    assert redirected(authorize(oidc_standin, pkce()[1]))["error"] == "login_required"
    oidc_standin.login_as("u-1")
    oidc_standin.deny()
    back = redirected(authorize(oidc_standin, pkce()[1]))
    assert (back["error"], back["state"]) == ("access_denied", "st-1")
    oidc_standin.login_as("u-1")
    assert "code" in redirected(authorize(oidc_standin, pkce()[1]))


def test_a_code_works_once_and_its_reuse_revokes_what_it_gave(oidc_standin):
    oidc_standin.login_as("u-1")
    verifier, challenge = pkce()
    code = redirected(authorize(oidc_standin, challenge))["code"]
    tokens = exchange(oidc_standin, code, verifier).json()
    again = exchange(oidc_standin, code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    info = requests.get(oidc_standin.base_url + "/userinfo", headers=bearer, timeout=5)
    assert info.status_code == 401 and 'error="invalid_token"' in info.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    ("verifier", "sent"),
    [
        ("v" * 43, None),
        ("v" * 43, "w" * 43),
        ("v" * 42, "v" * 42),
        ("v" * 42 + "+", "v" * 42 + "+"),
    ],
    ids=["none", "wrong", "too-short", "not-unreserved"],
)
def test_a_wrong_or_malformed_code_verifier_is_invalid_grant(oidc_standin, verifier, sent):
    oidc_standin.login_as("u-1")
    code = redirected(authorize(oidc_standin, pkce(verifier)[1]))["code"]
    answer = exchange(oidc_standin, code, sent)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


def test_pkce_may_be_optional_for_a_client_but_then_no_verifier_is_taken(oidc_standin):
    oidc_standin.add_client(Client(OIDC_CLIENT.client_id, "s", (CALLBACK,), require_pkce=False))
    oidc_standin.login_as("u-1")
    no_pkce = {"code_challenge": None, "code_challenge_method": None}
    code = redirected(authorize(oidc_standin, "", **no_pkce))["code"]
    assert exchange(oidc_standin, code, None, secret="s").status_code == 200
    code = redirected(authorize(oidc_standin, "", **no_pkce))["code"]
    answer = exchange(oidc_standin, code, pkce()[0], secret="s")
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


def test_the_redirect_uri_and_the_client_must_match_the_authorization(oidc_standin):
    oidc_standin.add_client(Client("other", "other-secret", (CALLBACK,)))
    oidc_standin.login_as("u-1")
    verifier, challenge = pkce()
    code = redirected(authorize(oidc_standin, challenge, client_id="other"))["code"]
    answer = exchange(oidc_standin, code, verifier)  # as receiver-ui
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    code = redirected(authorize(oidc_standin, challenge))["code"]
    answer = exchange(oidc_standin, code, verifier, redirect_uri=CALLBACK + "/")
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("basic", [True, False], ids=["client_secret_basic", "client_secret_post"])
def test_a_wrong_secret_is_invalid_client_with_401(oidc_standin, basic):
    oidc_standin.login_as("u-1")
    verifier, challenge = pkce()
    code = redirected(authorize(oidc_standin, challenge))["code"]
    answer = exchange(oidc_standin, code, verifier, basic=basic, secret="guess")
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"
    assert answer.headers["WWW-Authenticate"].startswith("Basic")
    assert "guess" not in answer.text
    assert exchange(oidc_standin, code, verifier, basic=basic).status_code == 200


def test_a_client_may_be_held_to_one_authentication_method(oidc_standin):
    only_post = ("client_secret_post",)
    client = Client(OIDC_CLIENT.client_id, "s", (CALLBACK,), token_endpoint_auth_methods=only_post)
    oidc_standin.add_client(client)
    oidc_standin.login_as("u-1")
    verifier, challenge = pkce()
    code = redirected(authorize(oidc_standin, challenge))["code"]
    answer = exchange(oidc_standin, code, verifier, secret="s")
    assert answer.status_code == 401 and "client_secret_basic" in answer.json()["error_description"]


def test_a_basic_secret_is_accepted_form_encoded_as_rfc_6749_says():
    client = Client("rp", "a+b:c/d%e", (CALLBACK,))
    with OIDCStandIn(clients=[client]) as idp:
        idp.login_as("u-1")
        verifier, challenge = pkce()
        code = redirected(authorize(idp, challenge, client_id="rp"))["code"]
        body = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
        body["code_verifier"] = verifier
        auth = ("rp", "a%2Bb%3Ac%2Fd%25e")
        answer = requests.post(idp.base_url + "/token", data=body, auth=auth, timeout=5)
        assert answer.status_code == 200, answer.text
    assert idp.errors == []


def test_a_code_expires_and_an_access_token_too():
    clock = ManualClock()
    with OIDCStandIn(clients=[OIDC_CLIENT], code_lifetime=30, clock=clock) as idp:
        idp.login_as("u-1")
        verifier, challenge = pkce()
        late = redirected(authorize(idp, challenge))["code"]
        clock.advance(29.9)
        tokens = exchange(idp, redirected(authorize(idp, challenge))["code"], verifier).json()
        clock.advance(0.1)
        answer = exchange(idp, late, verifier)
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
        assert "expired" in answer.json()["error_description"]
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert requests.get(idp.base_url + "/userinfo", headers=bearer, timeout=5).ok
        clock.advance(300)
        info = requests.get(idp.base_url + "/userinfo", headers=bearer, timeout=5)
        assert info.status_code == 401 and info.json()["error"] == "invalid_token"
    assert idp.errors == []


def test_the_token_endpoint_refuses_a_malformed_request(oidc_standin):
    oidc_standin.login_as("u-1")
    url = oidc_standin.base_url + "/token"
    auth = (OIDC_CLIENT.client_id, OIDC_CLIENT.client_secret)
    as_json = requests.post(url, json={"grant_type": "authorization_code"}, auth=auth, timeout=5)
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"
    password = requests.post(url, data={"grant_type": "password"}, auth=auth, timeout=5)
    assert password.json()["error"] == "unsupported_grant_type"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    twice = requests.post(url, data="code=a&code=b", auth=auth, headers=form, timeout=5)
    assert twice.status_code == 400 and twice.json()["error"] == "invalid_request"
    both = {"grant_type": "authorization_code", "client_secret": OIDC_CLIENT.client_secret}
    both_ways = requests.post(url, data=both, auth=auth, timeout=5)
    assert both_ways.status_code == 400 and both_ways.json()["error"] == "invalid_request"
    anonymous = requests.post(url, data={"grant_type": "authorization_code"}, timeout=5)
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client"
    assert requests.get(url, timeout=5).status_code == 405


def test_rotation_publishes_the_new_key_beside_the_old_until_it_is_retired(oidc_standin):
    before = log_in(oidc_standin)
    old = oidc_standin.keys.signing_kid
    new = oidc_standin.rotate_key()
    kids = [
        k["kid"] for k in requests.get(oidc_standin.base_url + "/jwks", timeout=5).json()["keys"]
    ]
    assert kids == [old, new]
    after = log_in(oidc_standin)
    assert verified(oidc_standin, after).header["kid"] == new
    assert verified(oidc_standin, before).header["kid"] == old
    oidc_standin.retire_key(old)
    with pytest.raises(JoseError):
        verified(oidc_standin, before)


@pytest.mark.parametrize(
    ("setting", "value", "rejection"),
    [
        ("skew", -3600, ExpiredTokenError),
        ("skew", 3600, InvalidClaimError),  # issued in the future
        ("issuer", "http://127.0.0.1:1", InvalidClaimError),
        ("audience", "someone-else", InvalidClaimError),
        ("nonce", "replayed", InvalidClaimError),
        ("unknown_key", "published-kid", BadSignatureError),
        ("unknown_key", "new-kid", InvalidKeyIdError),
    ],
)
def test_each_misissue_mode_makes_a_token_a_relying_party_must_reject(
    oidc_standin, setting, value, rejection
):
    setattr(oidc_standin.settings, setting, value)
    tokens = log_in(oidc_standin)
    with pytest.raises(rejection):
        verified(oidc_standin, tokens)


def test_logout_redirects_only_to_a_registered_uri_with_the_state(oidc_standin):
    hint = log_in(oidc_standin)["id_token"]
    url = metadata(oidc_standin)["end_session_endpoint"]
    back = OIDC_CLIENT.post_logout_redirect_uris[0]
    params = {"id_token_hint": hint, "post_logout_redirect_uri": back, "state": "bye"}
    answer = requests.get(url, params=params, allow_redirects=False, timeout=5)
    assert redirected(answer, to=back) == {"state": "bye"}
    elsewhere = {**params, "post_logout_redirect_uri": "http://evil.example/"}
    answer = requests.get(url, params=elsewhere, allow_redirects=False, timeout=5)
    assert answer.status_code == 400 and "Location" not in answer.headers
    forged = {**params, "id_token_hint": hint[:-4] + "AAAA"}
    assert requests.get(url, params=forged, allow_redirects=False, timeout=5).status_code == 400
    [logout] = oidc_standin.logouts
    assert logout == {
        "client_id": OIDC_CLIENT.client_id,
        "sub": "u-1001",
        "post_logout_redirect_uri": back,
    }


def test_a_planned_failure_answers_the_error_then_serving_resumes(oidc_standin):
    oidc_standin.fail(503, times=1, paths=["/token"])
    oidc_standin.login_as("u-1")
    verifier, challenge = pkce()
    code = redirected(authorize(oidc_standin, challenge))["code"]
    failed = exchange(oidc_standin, code, verifier)
    assert failed.status_code == 503 and failed.json()["error"] == "temporarily_unavailable"
    assert exchange(oidc_standin, code, verifier).status_code == 200  # the code was not spent
