"""Logging in and out of the UI with a password (OpenID Connect: web/oidc.py), the stored
session either starts, and the CSRF token every form carries."""

from __future__ import annotations

import hmac
import math
import secrets
from datetime import timedelta
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from werkzeug.security import check_password_hash

from receiver.accounts import LoginLimits, end_sessions, login_failed, login_wait, open_session
from receiver.bootstrap import Container
from receiver.model.access import Identity, LoginLimit, Role, Via
from receiver.web.access import Access, allow
from receiver.web.auth import SESSION_TOKEN, current_identity

bp = Blueprint("login", __name__)
# a hash to compare against for unknown users, so timing does not tell which names exist
_DUMMY_HASH = "scrypt:32768:8:1$dummy$" + "0" * 128


def container() -> Container:
    return current_app.extensions["receiver"]


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf() -> None:
    sent = request.form.get("csrf_token", "")
    expected = session.get("csrf", "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(400, description="missing or invalid CSRF token; reload the page and try again")


@bp.route("/login", methods=["GET", "POST"])
@allow(Access.PUBLIC)
def login() -> ResponseReturnValue:
    target = safe_next(request.values.get("next"))
    if request.method != "POST":
        return login_page(target)
    check_csrf()
    c = container()
    ui = c.settings.ui
    if not ui.users:
        abort(400, description="password logins are not configured here")
    name = request.form.get("username", "")[:255]
    # refused before the password hash is computed: guessing costs the guesser, not the CPU
    wait = login_wait(c.engine, _limits(), name, request.remote_addr, c.clock)
    if wait is not None:
        minutes = math.ceil(wait / 60)
        error = f"Too many failed logins: try again in {minutes} minute{'s' if minutes > 1 else ''}"
        return login_page(target, error), 429, {"Retry-After": str(math.ceil(wait))}
    stored = ui.users.get(name)
    hashed = stored.get_secret_value() if stored else _DUMMY_HASH
    password_ok = _check(hashed, request.form.get("password", ""))
    if stored is None or not password_ok:
        login_failed(c.uow, _limits(), name, request.remote_addr, c.clock)
        return login_page(target, "Invalid username or password"), 401
    role = Role.VIEWER if name in ui.viewers else Role.RESPONDER
    start_session(Identity(name, role, Via.PASSWORD))
    return redirect(target)


def login_page(target: str, error: str | None = None) -> str:
    ui = container().settings.ui
    return render_template(
        "login.html", next=target, error=error, passwords=bool(ui.users), oidc=ui.oidc
    )


def start_session(identity: Identity) -> None:
    """Log ``identity`` in: a new stored session, and a fresh cookie that names only it."""
    c = container()
    lifetime = timedelta(hours=c.settings.ui.session_hours)
    agent = request.user_agent.string or None
    token = open_session(c.uow, identity, lifetime, c.clock, request.remote_addr, agent)
    session.clear()
    session.permanent = True
    session[SESSION_TOKEN] = token


def _limits() -> LoginLimits:
    limits = container().settings.ui.login_limits
    window = timedelta(minutes=limits.window_minutes)
    return LoginLimits(LoginLimit(limits.per_user, window), LoginLimit(limits.per_address, window))


def _check(hashed: str, password: str) -> bool:
    try:
        return check_password_hash(hashed, password)
    except ValueError:
        return False


def safe_next(target: str | None) -> str:
    """Only a path of this site: the login form must not send people elsewhere. Browsers drop
    tabs and newlines from URLs and read a backslash as a slash, so ``/<TAB>/evil.example`` or
    ``/<BACKSLASH>evil.example`` would be another host: anything but printable ASCII is
    refused."""
    default = url_for("ui.incidents")
    if not target or not all(0x20 < ord(ch) < 0x7F and ch != "\\" for ch in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    return target


@bp.post("/logout")
@allow(Access.PUBLIC)
def logout() -> ResponseReturnValue:
    """End every session of this person, on every replica (a copied cookie dies too)."""
    check_csrf()
    identity = current_identity(container())
    if identity is not None and identity.via is not Via.HEADER:
        end_sessions(container().uow, identity.name)
    session.clear()
    return redirect(url_for("login.login"))
