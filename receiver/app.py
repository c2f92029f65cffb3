"""Flask application factory."""

from __future__ import annotations

import logging

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from receiver.bootstrap import Container, bootstrap
from receiver.settings import Settings, load_settings
from receiver.store import migrate
from receiver.web import access, api, errors, filters, observe, security, ui

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, container: Container | None = None) -> Flask:
    """Build the web application; configuration errors surface here, before serving."""
    if container is None:
        container = bootstrap(settings or load_settings())
    app = Flask(__name__)
    app.extensions["receiver"] = container
    # one byte over the limit, so the intake can tell a chunked body that exceeds it
    app.config["MAX_CONTENT_LENGTH"] = container.settings.intake.max_body_bytes + 1
    app.config["RECEIVER_HEAD_REVISION"] = migrate.head_revision()
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.url_map.converters["row_id"] = filters.RowId  # before any route uses it
    if hops := container.settings.listen.proxy_hops:
        # trust exactly that many proxies' X-Forwarded-* headers (werkzeug's own middleware)
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    observe.init_app(app)
    errors.init_app(app)
    security.init_app(app)
    app.register_blueprint(api.bp)
    ui.init_app(app)
    access.init_app(app)  # last: every view is registered by now
    auth = container.settings.auth
    if not auth.configured and auth.allow_unauthenticated:
        log.warning(
            "webhook authentication is DISABLED (auth.allow_unauthenticated: true): "
            "anyone who can reach this address can post alerts"
        )
    return app
