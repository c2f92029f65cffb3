"""Webhook authentication as Alertmanager's ``http_config`` sends it: Bearer or Basic."""

from __future__ import annotations

import base64
import binascii
import hmac

from flask import request, session

from receiver.settings import AuthSettings, UISettings


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def is_authorized(auth: AuthSettings, header: str | None) -> bool:
    """Check an ``Authorization`` header in constant time per configured credential.

    With no credentials configured, only an explicit ``allow_unauthenticated`` lets requests in;
    once any credential is configured it is required.
    """
    if not auth.configured:
        return auth.allow_unauthenticated
    if not header or " " not in header:
        return False
    scheme, _, value = header.partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "bearer":
        # compare against every token so timing does not tell which one (or how many) matched
        results = [_same(value, t.get_secret_value()) for t in auth.bearer_tokens]
        return any(results)
    if scheme == "basic" and auth.basic_auth is not None:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, sep, password = decoded.partition(":")
        user_ok = _same(user, auth.basic_auth.username)
        password_ok = _same(password, auth.basic_auth.password.get_secret_value())
        return bool(sep) and user_ok and password_ok
    return False


def challenge(auth: AuthSettings) -> str:
    """The ``WWW-Authenticate`` header value for a 401."""
    schemes = []
    if auth.bearer_tokens:
        schemes.append('Bearer realm="receiver"')
    if auth.basic_auth is not None:
        schemes.append('Basic realm="receiver"')
    return ", ".join(schemes) or 'Bearer realm="receiver"'


def ui_user(ui: UISettings) -> str | None:
    """The person using the UI: the trusted proxy header when configured, else the session."""
    if ui.trusted_user_header:
        return request.headers.get(ui.trusted_user_header) or None
    return session.get("user")
