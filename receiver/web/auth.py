"""Who is asking: Alertmanager's webhook credentials as its ``http_config`` sends them (Bearer
or Basic), and the person behind a UI request (a session, or a trusted proxy's headers)."""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import replace
from typing import Any

from flask import abort, g, request, session

from receiver.accounts import session_identity
from receiver.model.access import Identity, Role, Via, role_for_groups
from receiver.settings import AuthSettings, UISettings

SESSION_TOKEN = "sid"  # the session cookie's key holding the token of the stored session


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


def current_identity(container: Any) -> Identity | None:
    """The person behind this request (looked up once per request), or None."""
    if "identity" not in g:
        g.identity = _identify(container)
    return g.identity


def _identify(container: Any) -> Identity | None:
    ui: UISettings = container.settings.ui
    if not ui.enabled:
        return None
    if ui.trusted_user_header:
        return _from_proxy(ui)
    token = session.get(SESSION_TOKEN)
    if not isinstance(token, str):
        return None
    identity = session_identity(container.engine, token, container.clock)
    if identity is None:
        return None
    if identity.via is Via.PASSWORD:  # the configuration decides, now: a removed user is out
        if identity.name not in ui.users:
            return None
        role = Role.VIEWER if identity.name in ui.viewers else Role.RESPONDER
        return replace(identity, role=role)
    return identity if ui.oidc is not None else None


def _from_proxy(ui: UISettings) -> Identity | None:
    assert ui.trusted_user_header is not None
    name = (request.headers.get(ui.trusted_user_header) or "").strip()[:255]
    if not name:
        return None
    if not ui.trusted_groups_header:
        return Identity(name, Role.RESPONDER, Via.HEADER)
    groups = (request.headers.get(ui.trusted_groups_header) or "").split(",")
    role = role_for_groups((x.strip() for x in groups), ui.responder_groups, ui.viewer_groups)
    if role is None:
        abort(403, description=f"{name}: none of your groups has access to the incident UI")
    return Identity(name, role, Via.HEADER)
