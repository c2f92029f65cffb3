"""Every method of every route is authenticated as its access says, walked from the URL map:
anonymous, with the webhook token, as a viewer and as a responder. A HEAD or an OPTIONS
request is no more open than its GET (a HEAD once skipped the UI login on the read API)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from werkzeug.routing import IntegerConverter, Rule
from werkzeug.security import generate_password_hash

from receiver.app import create_app
from receiver.bootstrap import bootstrap
from receiver.web import access as access_checks
from receiver.web.access import Access, access_of, allow
from tests.support.api import AUTH
from tests.support.ui_session import PASSWORD, login

EVERY_METHOD = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")


@pytest.fixture
def guarded(make_settings: Any, clock: Any) -> Iterator[Flask]:
    """The UI with a responder (alice), a viewer (victor) and OIDC; metrics behind the
    token."""
    settings = make_settings(
        {
            "ui.users": {
                "alice": generate_password_hash(PASSWORD),
                "victor": generate_password_hash(PASSWORD),
            },
            "ui.viewers": ["victor"],
            "ui.secret_key": "s" * 32,
            "ui.cookie_secure": False,
            "metrics.require_webhook_auth": True,
            "ui.oidc": {  # never reached: the walk only knocks on the login routes
                "issuer": "http://127.0.0.1:9",
                "client_id": "receiver-ui",
                "client_secret": "x",
            },
            "ui.responder_groups": ["oncall"],
        }
    )
    container = bootstrap(settings, clock=clock)
    yield create_app(container=container)
    container.engine.dispose()


def routes(app: Flask) -> list[tuple[str, Rule, Access]]:
    """(concrete URL, rule, access) of every rule, placeholders filled in."""
    out = []
    for rule in app.url_map.iter_rules():
        values = {
            name: 1 if isinstance(conv, IntegerConverter) else "x"
            for name, conv in rule._converters.items()
        }
        url = rule.build(values, append_unknown=False)[1]
        access = access_of(app, rule.endpoint)
        assert access is not None, rule.endpoint
        out.append((url, rule, access))
    return out


def refused(answer: Any, access: Access) -> bool:
    """Whether an answer is a refusal: 401, 403, or the UI's redirect to its login."""
    if answer.status_code in (401, 403):
        return True
    location = answer.headers.get("Location", "")
    return answer.status_code == 302 and "/login" in location and access is not Access.PUBLIC


def walk(app: Flask, client: Any, headers: dict[str, str]) -> dict[tuple[str, str], Any]:
    answers = {}
    for url, rule, access in routes(app):
        for method in EVERY_METHOD:
            if method not in rule.methods:
                continue
            answer = client.open(url, method=method, headers=headers)
            answers[(rule.endpoint, method)] = (answer, access)
    return answers


def test_every_route_refuses_anonymous_callers_unless_public(guarded: Flask) -> None:
    answers = walk(guarded, guarded.test_client(), {})
    assert len(answers) > 20  # the walk saw the routes (and HEAD, OPTIONS of each)
    for (endpoint, method), (answer, access) in answers.items():
        if access is Access.PUBLIC:
            assert not refused(answer, access), (endpoint, method, answer.status_code)
        else:
            assert refused(answer, access), (endpoint, method, answer.status_code)


def test_the_webhook_token_opens_the_webhook_and_metrics_only(guarded: Flask) -> None:
    answers = walk(guarded, guarded.test_client(), AUTH)
    for (endpoint, method), (answer, access) in answers.items():
        if access in (Access.WEBHOOK, Access.METRICS, Access.PUBLIC):
            assert not refused(answer, access), (endpoint, method, answer.status_code)
        else:  # reading incidents and acting need a person's login
            assert refused(answer, access), (endpoint, method, answer.status_code)


@pytest.mark.parametrize(("user", "acts"), [("alice", True), ("victor", False)])
def test_a_login_reads_and_only_a_responder_acts(guarded: Flask, user: str, acts: bool) -> None:
    client = guarded.test_client()
    assert login(client, username=user).status_code == 302
    answers = walk(guarded, client, {})
    for (endpoint, method), (answer, access) in answers.items():
        if endpoint == "login.logout":
            continue  # it would end the session the rest of the walk uses
        if access is Access.READ or (access is Access.ACT and acts):
            assert not refused(answer, access), (endpoint, method, answer.status_code)
        elif access is Access.ACT:
            assert answer.status_code == 403, (endpoint, method, answer.status_code)
        elif access in (Access.WEBHOOK, Access.METRICS):
            assert answer.status_code == 401, (endpoint, method)  # a UI login is no token


def test_head_on_the_read_api_tells_nothing_without_a_login(guarded: Flask) -> None:
    client = guarded.test_client()
    hit = client.head("/api/v1/incidents?q=a")
    miss = client.head("/api/v1/incidents?q=zzzz-not-there")
    assert hit.status_code == miss.status_code == 401
    assert hit.headers["Content-Length"] == miss.headers["Content-Length"]


def test_a_view_without_a_declared_access_stops_the_app_from_starting() -> None:
    app = Flask("undeclared")
    app.add_url_rule("/declared", "declared", allow(Access.PUBLIC)(lambda: "ok"))
    app.add_url_rule("/forgotten", "forgotten", lambda: "open")
    with pytest.raises(RuntimeError, match="views without a declared access: forgotten"):
        access_checks.init_app(app)
