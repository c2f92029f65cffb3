"""The incident history UI: server-rendered pages, its own login, CSRF on every form.

Everything an alert carries is untrusted: Jinja autoescapes it, and only http(s) URLs become
links. The webhook credentials do not open the UI, and the UI session does not open the webhook.
"""

from __future__ import annotations

import hmac
import secrets
from functools import wraps
from typing import Any
from urllib.parse import urlencode, urlparse

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

from receiver.bootstrap import Container
from receiver.service import acknowledge_incident, add_incident_note
from receiver.web import charts
from receiver.web.auth import ui_user
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


def current_user() -> str | None:
    return ui_user(container().settings.ui)


def login_required(view: Any) -> Any:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        if current_user() is None:
            return redirect(url_for("ui.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapped


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
def login() -> ResponseReturnValue:
    target = _safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("login.html", next=target, error=None)
    check_csrf()
    users = container().settings.ui.users
    name = request.form.get("username", "")
    stored = users.get(name)
    hashed = stored.get_secret_value() if stored else _DUMMY_HASH
    password_ok = _check(hashed, request.form.get("password", ""))
    if stored is None or not password_ok:
        error = "Invalid username or password"
        return render_template("login.html", next=target, error=error), 401
    session.clear()
    session["user"] = name
    return redirect(target)


def _check(hashed: str, password: str) -> bool:
    try:
        return check_password_hash(hashed, password)
    except ValueError:
        return False


def _safe_next(target: str | None) -> str:
    """Only local paths: the login form must not redirect people elsewhere."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return url_for("ui.incidents")
    return target


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    check_csrf()
    session.clear()
    return redirect(url_for("ui.login"))


@bp.get("/")
def index() -> ResponseReturnValue:
    return redirect(url_for("ui.incidents"))


@bp.get("/incidents")
@login_required
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
@login_required
def overview() -> ResponseReturnValue:
    c = container()
    now = c.clock()
    return render_template(
        "overview.html", overview=c.queries.overview(now), budgets=c.queries.slo_budgets(now)
    )


@bp.get("/incidents/<int:incident_id>")
@login_required
def incident(incident_id: int) -> ResponseReturnValue:
    detail = container().queries.get_incident(incident_id)
    if detail is None:
        abort(404, description=f"no incident {incident_id}")
    return render_template("incident.html", incident=detail)


@bp.post("/incidents/<int:incident_id>/ack")
@login_required
def acknowledge(incident_id: int) -> ResponseReturnValue:
    check_csrf()
    c = container()
    if not acknowledge_incident(c.uow, incident_id, current_user() or "", c.clock):
        abort(404, description=f"no incident {incident_id}")
    return redirect(url_for("ui.incident", incident_id=incident_id))


@bp.post("/incidents/<int:incident_id>/notes")
@login_required
def add_note(incident_id: int) -> ResponseReturnValue:
    check_csrf()
    text = (request.form.get("text") or "").strip()
    if not text:
        abort(400, description="a note needs some text")
    c = container()
    if not add_incident_note(c.uow, incident_id, current_user() or "", text[:MAX_NOTE], c.clock):
        abort(404, description=f"no incident {incident_id}")
    return redirect(url_for("ui.incident", incident_id=incident_id) + "#timeline")
