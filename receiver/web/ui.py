"""The incident history UI: server-rendered pages (logins: web/login.py, web/oidc.py), CSRF on
every form.

Everything an alert carries is untrusted: Jinja autoescapes it, and only http(s) URLs become
links. The webhook credentials do not open the UI, and the UI session does not open the webhook.
"""

from __future__ import annotations

from datetime import timedelta
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
    url_for,
)
from flask.typing import ResponseReturnValue

from receiver.bootstrap import Container
from receiver.model.access import Identity
from receiver.model.errors import FilterTooCostly
from receiver.model.snapshot_json import incident_json
from receiver.service import Actor, acknowledge_incident, add_incident_note
from receiver.web import charts, login, oidc
from receiver.web.access import Access, allow
from receiver.web.auth import current_identity
from receiver.web.filters import STATUSES, parse_list_query
from receiver.web.login import check_csrf, csrf_token

bp = Blueprint(
    "ui",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/ui-static",
)
MAX_NOTE = 4000


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
    app.register_blueprint(login.bp)
    oidc.init_app(app, ui)


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


@bp.app_context_processor
def _template_globals() -> dict[str, Any]:
    return {
        "csrf_token": csrf_token,
        "current_user": current_user,
    }


def _sparkline(series: list[dict[str, Any]] | None) -> charts.Sparkline | None:
    return charts.sparkline(series, container().context.series.range.total_seconds())


@bp.get("/")
@allow(Access.PUBLIC)
def index() -> ResponseReturnValue:
    return redirect(url_for("ui.incidents"))


@bp.get("/incidents")
@allow(Access.READ)
def incidents() -> ResponseReturnValue:
    query = parse_list_query(request.args, container().settings.ui.page_size)
    page: dict[str, Any] = {"incidents": [], "next_cursor": None, "counts": {}}
    if not query.errors:
        try:
            page = container().queries.list_incidents(
                query.filter, limit=query.limit, cursor=query.cursor
            )
        except FilterTooCostly as exc:
            query.errors.append({"field": exc.field, "message": str(exc)})
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
    queries = c.queries
    return render_template(
        "overview.html",
        overview=queries.overview(now),
        budgets=queries.slo_budgets(now),
        unnotified=queries.unnotified(now),
    )


@bp.get("/incidents/<row_id:incident_id>")
@allow(Access.READ)
def incident(incident_id: int) -> ResponseReturnValue:
    queries = container().queries
    snapshot = queries.snapshot(incident_id)
    if snapshot is None:
        abort(404, description=f"no incident {incident_id}")
    detail = incident_json(snapshot)
    return render_template(
        "incident.html",
        incident=detail,
        mutes=queries.mutes(snapshot),
        groupings=queries.groupings(snapshot),
    )


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
