"""The OpenID Connect stand-in's refusals: RFC 6749 error answers, the checks of an
authentication request (OIDC Core 3.1.2.1, RFC 7636 4.3) and client authentication (RFC 6749
2.3.1: client_secret_basic or client_secret_post, one per request)."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

from tests.standins import Answer
from tests.standins.oidc_tokens import PKCE_CHALLENGE, Client

FORM = "application/x-www-form-urlencoded"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # RFC 6749 5.1
Params = dict[str, str]


def request_problem(params: Params, client: Client) -> tuple[str, str] | None:
    """Why the authentication request is refused (an RFC 6749 4.1.2.1 error), or None."""
    if "response_type" not in params:
        return "invalid_request", "response_type is required"
    if params["response_type"] != "code":
        return "unsupported_response_type", "only response_type=code is supported"
    if "openid" not in params.get("scope", "").split():
        return "invalid_scope", "the scope must contain openid"
    challenge, method = params.get("code_challenge"), params.get("code_challenge_method")
    if challenge is None and (client.require_pkce or method is not None):
        return "invalid_request", "code_challenge (S256) is required"
    if challenge is not None and method != "S256":
        return "invalid_request", "code_challenge_method must be S256"
    if challenge is not None and not PKCE_CHALLENGE.fullmatch(challenge):
        return "invalid_request", "code_challenge is not a base64url SHA-256"
    return None


def authenticated_client(
    clients: Mapping[str, Client], params: Params, headers: Any
) -> Client | Answer:
    """The client, by client_secret_basic (RFC 6749 2.3.1) or client_secret_post."""
    authorization = headers.get("Authorization", "")
    if authorization[:6].lower() == "basic ":
        if "client_secret" in params:
            return oauth_error("invalid_request", "use one client authentication method")
        method, candidates = "client_secret_basic", _basic(authorization[6:])
    elif "client_secret" in params:
        method = "client_secret_post"
        candidates = [(params.get("client_id", ""), params["client_secret"])]
    else:
        return invalid_client("client authentication is required")
    client = next(filter(None, (_client(clients, *pair) for pair in candidates)), None)
    if client is None:
        return invalid_client("unknown client or wrong secret")
    if params.get("client_id", client.client_id) != client.client_id:
        return invalid_client("client_id differs from the authenticated client")
    if method not in client.token_endpoint_auth_methods:
        return invalid_client(f"{method} is not allowed for this client")
    return client


def _client(clients: Mapping[str, Client], client_id: str, secret: str) -> Client | None:
    """The registered client with this id and secret, or None."""
    client = clients.get(client_id)
    known = client.client_secret.encode() if client else b""
    return client if client and hmac.compare_digest(secret.encode(), known) else None


def redirect(uri: str, params: Params, state: Params) -> Answer:
    """A 302 to ``uri`` with the parameters added to its query (RFC 6749 4.1.2)."""
    split = urlsplit(uri)
    query = [*parse_qsl(split.query, keep_blank_values=True), *params.items(), *state.items()]
    location = urlunsplit(split._replace(query=urlencode(query)))
    return 302, "Redirecting.", {"Location": location}


def oauth_error(error: str, description: str, status: int = 400) -> Answer:
    """An RFC 6749 5.2 error response."""
    return status, {"error": error, "error_description": description}, NO_STORE


def invalid_client(description: str) -> Answer:
    """401 with the scheme the client may use (RFC 6749 5.2)."""
    status, body, headers = oauth_error("invalid_client", description, 401)
    return status, body, {**headers, "WWW-Authenticate": 'Basic realm="oidc-standin"'}


def _basic(credentials: str) -> list[tuple[str, str]]:
    """(client_id, secret) from HTTP Basic as sent, then form-decoded: RFC 6749 2.3.1 encodes
    both first, but Authlib and requests send them raw."""
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return []
    client_id, _, secret = decoded.partition(":")
    return [(client_id, secret), (unquote_plus(client_id), unquote_plus(secret))]
