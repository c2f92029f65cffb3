"""Who may call what: every view declares its access, and one check runs before any view, for
every method (GET, HEAD, OPTIONS, POST, ...), so no method of a route is more open than another.

A view without a declared access makes the application refuse to start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

from flask import Flask, abort, current_app, redirect, request, url_for

from receiver.model.access import Identity
from receiver.web.auth import challenge, current_identity, is_authorized
from receiver.web.errors import ApiError

log = logging.getLogger(__name__)
View = TypeVar("View", bound=Callable[..., Any])
ATTRIBUTE = "receiver_access"


class Access(StrEnum):
    PUBLIC = "public"  # probes, the login pages and the UI's own script and stylesheet
    WEBHOOK = "webhook"  # Alertmanager's credentials (auth.*)
    READ = "read"  # a UI login of any role; open when no UI is configured (keep it private)
    ACT = "act"  # a UI login with the responder role
    METRICS = "metrics"  # as metrics.* says


# endpoints Flask makes itself, without a view of ours to carry the declaration
BUILT_IN = {"static": Access.PUBLIC, "ui.static": Access.PUBLIC}


def allow(access: Access) -> Callable[[View], View]:
    """Declare who may call a view (any method of its route)."""

    def declare(view: View) -> View:
        setattr(view, ATTRIBUTE, access)
        return view

    return declare


def access_of(app: Flask, endpoint: str) -> Access | None:
    view = app.view_functions.get(endpoint)
    return getattr(view, ATTRIBUTE, None) or BUILT_IN.get(endpoint)


def init_app(app: Flask) -> None:
    """Check every request; refuse to start if any view has no declared access."""
    undeclared = sorted(e for e in app.view_functions if access_of(app, e) is None)
    if undeclared:
        raise RuntimeError(f"views without a declared access: {', '.join(undeclared)}")

    @app.before_request
    def _check() -> Any:
        if request.endpoint is None:  # no route: 404 or 405 follows, and no view runs
            return None
        access = access_of(app, request.endpoint)
        assert access is not None
        return _CHECKS[access]()


def _container() -> Any:
    return current_app.extensions["receiver"]


def _webhook(counted: bool = True) -> None:
    """The webhook credentials, or 401 (counted as a refused webhook unless ``counted`` is
    off: a scrape is no webhook)."""
    c = _container()
    if is_authorized(c.settings.auth, request.headers.get("Authorization")):
        return
    if counted:  # no receiver label: an unauthenticated sender must not mint metric series
        c.metrics.webhooks.labels("unauthorized", "").inc()
    log.warning("refused %s %s from %s: no valid credentials", request.method, request.path,
                request.remote_addr)  # fmt: skip
    raise ApiError(
        401,
        "unauthorized",
        "missing or invalid credentials (Bearer token or Basic auth)",
        headers={"WWW-Authenticate": challenge(c.settings.auth)},
    )


def _read() -> Any:
    if not _container().settings.ui.enabled:
        return None  # no UI, no logins: the read API is for a private network only
    if _identity() is None:
        return _log_in_first()
    return None


def _act() -> Any:
    identity = _identity()
    if identity is None:
        return _log_in_first()
    if not identity.can_act:
        message = f"{identity.name} may read incidents but not act on them (role viewer)"
        if _is_api():
            raise ApiError(403, "forbidden", message)
        abort(403, description=message)
    return None


def _metrics() -> None:
    settings = _container().settings.metrics
    if settings.port is not None:
        abort(404, description=f"metrics are served on their own address (port {settings.port})")
    if settings.require_webhook_auth:
        _webhook(counted=False)


def _identity() -> Identity | None:
    return current_identity(_container())


def _is_api() -> bool:
    return request.path.startswith("/api/")


def _log_in_first() -> Any:
    if _is_api():
        raise ApiError(401, "unauthorized", "log in to the incident UI to read incidents")
    return redirect(url_for("login.login", next=request.full_path.rstrip("?")))


_CHECKS: dict[Access, Callable[[], Any]] = {
    Access.PUBLIC: lambda: None,
    Access.WEBHOOK: _webhook,
    Access.READ: _read,
    Access.ACT: _act,
    Access.METRICS: _metrics,
}
