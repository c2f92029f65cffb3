"""The incident history UI: server-rendered pages, its own login, CSRF on every form.

Everything an alert carries is untrusted: Jinja autoescapes it, and only http(s) URLs become
links. The webhook credentials do not open the UI, and the UI session does not open the webhook.
"""

from __future__ import annotations

import hmac
import math
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlparse, urlsplit

from flask import (
    Blueprint,
    Flask,
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

from receiver.accounts import (
    LoginLimits,
    end_sessions,
    login_failed,
    login_wait,
    open_session,
)
from receiver.bootstrap import Container
from receiver.model.access import Identity, LoginLimit, Role, Via
from receiver.service import Actor, acknowledge_incident, add_incident_note
from receiver.web import charts
from receiver.web.access import Access, allow
from receiver.web.auth import SESSION_TOKEN, current_identity
from receiver.web.filters import STATUSES, parse_list_query

bp = Blueprint(
    "ui",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/ui-static",
)
MAX_NOTE = 4000
# a hash to compare against for unknown users, so timing does not tell which names exist
_DUMMY_HASH = "scrypt:32768:8:1$dummy$" + "0" * 128


def container() -> Container:
    return current_app.extensions["receiver"]


def init_app(app: Flask) -> None:
    """Register the UI when it is configured (users or a trusted proxy header)."""
    ui = container_of(app).settings.ui
    if not ui.enabled:
        return
    assert ui.secret_key is not None  # enforced by the configuration check
    app.secret_key = ui.secret_key.get_secret_value()
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=ui.cookie_secure,
        SESSION_COOKIE_NAME="receiver_session",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=ui.session_hours),
    )
    app.jinja_env.filters["http_url"] = http_url
    app.jinja_env.globals.update(sparkline=_sparkline, bars=charts.bars)  # macros see globals
    app.register_blueprint(bp)


def container_of(app: Flask) -> Container:
    return app.extensions["receiver"]


def http_url(value: Any) -> str | None:
    """The URL if it is http(s), else None: alert text never becomes a javascript: link."""
    if isinstance(value, str) and urlparse(value).scheme in ("http", "https"):
        return value
    return None


def current_user() -> Identity | None:
    return current_identity(container())


def actor() -> Actor:
    """The logged-in person as the timeline records them: who, how and from where."""
    identity = current_user()
    assert identity is not None  # the view's access check let them in
    return Actor(identity.name, f"ui:{identity.via.value}", request.remote_addr)


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf() -> None:
    sent = request.form.get("csrf_token", "")
    expected = session.get("csrf", "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(400, description="missing or invalid CSRF token; reload the page and try again")


@bp.app_context_processor
def _template_globals() -> dict[str, Any]:
    return {
        "csrf_token": csrf_token,
        "current_user": current_user,
    }


def _sparkline(series: list[dict[str, Any]] | None) -> charts.Sparkline | None:
    return charts.sparkline(series, container().context.series.range.total_seconds())


@bp.route("/login", methods=["GET", "POST"])
@allow(Access.PUBLIC)
def login() -> ResponseReturnValue:
    target = _safe_next(request.values.get("next"))
    if request.method != "POST":
        return _login_page(target)
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
        return _login_page(target, error), 429, {"Retry-After": str(math.ceil(wait))}
    stored = ui.users.get(name)
    hashed = stored.get_secret_value() if stored else _DUMMY_HASH
    password_ok = _check(hashed, request.form.get("password", ""))
    if stored is None or not password_ok:
        login_failed(c.uow, _limits(), name, request.remote_addr, c.clock)
        return _login_page(target, "Invalid username or password"), 401
    role = Role.VIEWER if name in ui.viewers else Role.RESPONDER
    start_session(Identity(name, role, Via.PASSWORD))
    return redirect(target)


def _login_page(target: str, error: str | None = None) -> str:
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


def _safe_next(target: str | None) -> str:
    """Only a path of this site: the login form must not send people elsewhere. Browsers drop
    tabs and newlines from URLs and read a backslash as a slash, so ``/\t/evil.example`` or
    ``/\\evil.example`` would be another host: anything but printable ASCII is refused."""
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
    identity = current_user()
    if identity is not None and identity.via is not Via.HEADER:
        end_sessions(container().uow, identity.name)
    session.clear()
    return redirect(url_for("ui.login"))


@bp.get("/")
@allow(Access.PUBLIC)
def index() -> ResponseReturnValue:
    return redirect(url_for("ui.incidents"))


@bp.get("/incidents")
@allow(Access.READ)
def incidents() -> ResponseReturnValue:
    query = parse_list_query(request.args, container().settings.ui.page_size)
    if query.errors:
        page: dict[str, Any] = {"incidents": [], "next_cursor": None, "counts": {}}
    else:
        page = container().queries.list_incidents(
            query.filter, limit=query.limit, cursor=query.cursor
        )
    args = {k: v for k, v in request.args.items(multi=True) if k != "cursor" and v}
    next_url = None
    if page["next_cursor"]:
        next_url = (
            url_for("ui.incidents")
            + "?"
            + urlencode([*args.items(), ("cursor", page["next_cursor"])])
        )
    return render_template(
        "incidents.html",
        page=page,
        errors=query.errors,
        args=request.args,
        statuses=STATUSES,
        next_url=next_url,
    )


@bp.get("/overview")
@allow(Access.READ)
def overview() -> ResponseReturnValue:
    c = container()
    now = c.clock()
    return render_template(
        "overview.html", overview=c.queries.overview(now), budgets=c.queries.slo_budgets(now)
    )


@bp.get("/incidents/<row_id:incident_id>")
@allow(Access.READ)
def incident(incident_id: int) -> ResponseReturnValue:
    detail = container().queries.get_incident(incident_id)
    if detail is None:
        abort(404, description=f"no incident {incident_id}")
    return render_template("incident.html", incident=detail)


@bp.post("/incidents/<row_id:incident_id>/ack")
@allow(Access.ACT)
def acknowledge(incident_id: int) -> ResponseReturnValue:
    check_csrf()
    c = container()
    if not acknowledge_incident(c.uow, incident_id, actor(), c.clock):
        abort(404, description=f"no incident {incident_id}")
    return redirect(url_for("ui.incident", incident_id=incident_id))


@bp.post("/incidents/<row_id:incident_id>/notes")
@allow(Access.ACT)
def add_note(incident_id: int) -> ResponseReturnValue:
    check_csrf()
    text = (request.form.get("text") or "").strip()
    if not text:
        abort(400, description="a note needs some text")
    c = container()
    if not add_incident_note(c.uow, incident_id, actor(), text[:MAX_NOTE], c.clock):
        abort(404, description=f"no incident {incident_id}")
    return redirect(url_for("ui.incident", incident_id=incident_id) + "#timeline")
