"""Login through an OpenID Connect provider, with Authlib's Flask client: the authorization
code flow with PKCE (S256). Authlib checks the state, exchanges the code and verifies the ID
token: its signature against the provider's JWKS, expiry and nonce, and, because we ask it to
(it does not by default), the issuer and the audience. The groups claim (from the ID token,
else the userinfo endpoint) decides the role.
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client.errors import MismatchingStateError
from authlib.integrations.flask_client import OAuth
from flask import Blueprint, Flask, current_app, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from joserfc.errors import JoseError

from receiver.model.access import Identity, Via, role_for_groups
from receiver.settings import OidcSettings, UISettings
from receiver.web.access import Access, allow
from receiver.web.login import check_csrf, login_page, safe_next, start_session

log = logging.getLogger(__name__)
bp = Blueprint("oidc", __name__)
NEXT = "oidc_next"  # where to go after the provider sends the person back


def init_app(app: Flask, ui: UISettings) -> None:
    """Register the provider and the two routes, when ``ui.oidc`` is configured."""
    if ui.oidc is None:
        return
    settings = ui.oidc
    oauth = OAuth(app)
    client_kwargs: dict[str, Any] = {
        "scope": settings.scopes,
        "code_challenge_method": "S256",
        "default_timeout": settings.timeout_seconds,
    }
    if settings.ca_bundle:
        # requests lets REQUESTS_CA_BUNDLE override a session's verify (psf/requests#3829)
        client_kwargs.update(verify=settings.ca_bundle, trust_env=False)
    oauth.register(
        "idp",
        client_id=settings.client_id,
        client_secret=settings.client_secret.get_secret_value(),
        server_metadata_url=settings.issuer.rstrip("/") + "/.well-known/openid-configuration",
        client_kwargs=client_kwargs,
    )
    app.register_blueprint(bp)


def _provider() -> Any:
    return current_app.extensions["authlib.integrations.flask_client"].idp


def _settings() -> OidcSettings:
    ui = current_app.extensions["receiver"].settings.ui
    assert ui.oidc is not None
    return ui.oidc


def redirect_uri() -> str:
    """Where the provider sends people back: under ``public_url`` when it is set."""
    public = current_app.extensions["receiver"].settings.public_url
    if public:
        return public.rstrip("/") + url_for("oidc.callback")
    return url_for("oidc.callback", _external=True)


@bp.post("/login/oidc")
@allow(Access.PUBLIC)
def login() -> ResponseReturnValue:
    """Off to the provider (the login page's button posts here, with its CSRF token)."""
    check_csrf()
    session[NEXT] = safe_next(request.form.get("next"))
    try:
        return _provider().authorize_redirect(redirect_uri())
    except (requests.RequestException, ValueError) as exc:
        log.warning("identity provider unreachable: %s", type(exc).__name__)
        return _refused("The identity provider does not answer; try again later", 503)


@bp.get("/login/oidc/callback")
@allow(Access.PUBLIC)
def callback() -> ResponseReturnValue:
    """Back from the provider: verify, map the groups to a role, start a session."""
    settings = _settings()
    claims_options = {
        "iss": {"essential": True, "values": [settings.issuer]},
        "aud": {"essential": True, "value": settings.client_id},
    }
    try:
        token = _provider().authorize_access_token(claims_options=claims_options)
        claims = dict(token.get("userinfo") or {})
        if not claims:  # no ID token: nothing verified says who this is
            return _refused("The identity provider sent no ID token", 401)
        if settings.groups_claim not in claims:
            claims.update(_provider().userinfo(token=token))
    except MismatchingStateError:  # not the answer to a login this browser started
        return _refused("That login was not started here, or has expired; log in again", 400)
    except (AuthlibBaseError, JoseError) as exc:  # refused, bad state, an untrusted ID token
        log.warning("OpenID Connect login refused: %s", getattr(exc, "error", None) or exc)
        return _refused("The identity provider's answer was refused; log in again", 401)
    except (requests.RequestException, ValueError) as exc:
        log.warning("identity provider unreachable: %s", type(exc).__name__)
        return _refused("The identity provider does not answer; try again later", 503)
    name = str(claims.get(settings.username_claim) or claims.get("email") or claims["sub"])
    groups = claims.get(settings.groups_claim) or []
    if isinstance(groups, str):
        groups = [groups]
    ui = current_app.extensions["receiver"].settings.ui
    role = role_for_groups([str(g) for g in groups], ui.responder_groups, ui.viewer_groups)
    if role is None:
        return _refused(f"{name}: none of your groups has access to the incident UI", 403)
    target = safe_next(session.pop(NEXT, None))
    start_session(Identity(name[:255], role, Via.OIDC))
    return redirect(target)


def _refused(message: str, status: int) -> ResponseReturnValue:
    return login_page(url_for("ui.incidents"), message), status
