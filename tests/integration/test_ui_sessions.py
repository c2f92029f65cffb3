"""UI sessions are stored, revocable and short-lived; password guessing is limited per user and
per client address by every replica together; the login sends people only to this site."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from receiver.app import create_app
from receiver.bootstrap import bootstrap
from tests.support.api import post_webhook
from tests.support.payloads import FIXTURES
from tests.support.ui_session import PASSWORD, csrf, login

COOKIE = "receiver_session"
Build = Callable[..., Flask]


@pytest.fixture
def build(make_settings: Any, clock: Any) -> Iterator[Build]:
    """Apps on one database (replicas), with the given UI users and settings."""
    containers = []

    def make(users: tuple[str, ...] = ("alice", "bob"), **ui: Any) -> Flask:
        overrides = {
            "ui.users": {name: generate_password_hash(PASSWORD) for name in users},
            "ui.secret_key": "s" * 32,
            "ui.cookie_secure": False,
            "ui.login_limits.per_user": 3,
            "ui.login_limits.per_address": 5,
            "ui.login_limits.window_minutes": 15,
            **{f"ui.{k}": v for k, v in ui.items()},
        }
        container = bootstrap(make_settings(overrides), clock=clock)
        containers.append(container)
        return create_app(container=container)

    yield make
    for container in containers:
        container.engine.dispose()


def logged_in(app: Flask, user: str = "alice", address: str = "10.0.0.1") -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    assert login(client, username=user).status_code == 302
    assert client.get("/incidents").status_code == 200
    return client


def copy_of(app: Flask, client: FlaskClient) -> FlaskClient:
    """Another client holding the same session cookie (a stolen or copied cookie)."""
    thief = app.test_client()
    thief.set_cookie(COOKIE, client.get_cookie(COOKIE).value)
    return thief


def is_logged_out(client: FlaskClient) -> bool:
    answer = client.get("/incidents")
    return answer.status_code == 302 and answer.location.startswith("/login")


def log_out(client: FlaskClient) -> None:
    token = csrf(client.get("/incidents").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302


def test_a_copied_cookie_is_worthless_after_logout(build: Build) -> None:
    app = build()
    alice = logged_in(app)
    thief = copy_of(app, alice)
    assert not is_logged_out(thief)  # the copy works while the session lasts
    log_out(alice)
    assert is_logged_out(alice) and is_logged_out(thief)


def test_logout_ends_every_session_of_that_user_on_every_replica(build: Build) -> None:
    one, two = build(), build()
    laptop, phone = logged_in(one), logged_in(two)
    bob = logged_in(two, "bob")
    log_out(laptop)
    assert is_logged_out(phone)
    assert not is_logged_out(bob)


def test_a_user_removed_from_the_configuration_is_logged_out_at_once(build: Build) -> None:
    before = build(users=("alice", "bob"))
    alice = logged_in(before)
    after = build(users=("bob",))  # the same database, alice's line gone from ui.users
    assert is_logged_out(copy_of(after, alice))


def test_a_session_ends_after_its_lifetime(build: Build, clock: Any) -> None:
    app = build(session_hours=2)
    alice = logged_in(app)
    clock.advance(hours=1, minutes=59)
    assert not is_logged_out(alice)
    clock.advance(minutes=2)
    assert is_logged_out(alice)
    cookie = app.test_client()
    login(cookie)
    assert cookie.get_cookie(COOKIE).expires is not None  # the browser forgets it too


def guess(client: FlaskClient, user: str = "alice", password: str = "wrong") -> Any:
    return login(client, password=password, username=user)


def test_wrong_passwords_are_limited_per_user_across_replicas(build: Build, clock: Any) -> None:
    one, two = build(), build()
    first, second = one.test_client(), two.test_client()
    first.environ_base["REMOTE_ADDR"] = "10.0.0.1"
    second.environ_base["REMOTE_ADDR"] = "10.0.0.2"
    assert guess(first).status_code == 401
    assert guess(second).status_code == 401
    assert guess(first).status_code == 401
    refused = guess(second)  # the fourth guess, on the other replica, from another address
    assert refused.status_code == 429
    assert 14 * 60 < int(refused.headers["Retry-After"]) <= 15 * 60
    assert "Too many failed logins" in refused.get_data(as_text=True)
    assert guess(first, password=PASSWORD).status_code == 429  # not even the right one
    assert logged_in(one, "bob", "10.0.0.3")  # another user is not locked out
    clock.advance(minutes=15)
    assert guess(first, password=PASSWORD).status_code == 302


def test_wrong_passwords_are_limited_per_client_address(build: Build) -> None:
    client = build(users=("alice", "bob", "carol")).test_client()
    client.environ_base["REMOTE_ADDR"] = "10.9.9.9"
    for user in ("alice", "bob", "carol", "mallory", "eve"):  # a spray, under each user limit
        assert guess(client, user).status_code == 401
    assert guess(client, "trent").status_code == 429
    assert guess(client, "carol", PASSWORD).status_code == 429


def test_a_successful_login_forgives_the_users_failures(build: Build) -> None:
    client = build().test_client()
    assert guess(client).status_code == 401
    assert guess(client).status_code == 401
    assert guess(client, password=PASSWORD).status_code == 302
    assert guess(client).status_code == 401
    assert guess(client).status_code == 401  # counting from zero again: 2 of 3


@pytest.mark.parametrize(
    "target",
    [
        "/\t/evil.example/",
        "/\n/evil.example/",
        "/\\evil.example/",
        "/%0A/x\r\nSet-Cookie: a=b",
        "//evil.example/",
        "https://evil.example/",
        "/ /evil.example",
    ],
)
def test_the_login_sends_people_only_to_this_site(build: Build, target: str) -> None:
    client = build().test_client()
    token = csrf(client.get("/login").get_data(as_text=True))
    data = {"username": "alice", "password": PASSWORD, "csrf_token": token, "next": target}
    answer = client.post("/login", data=data)
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/incidents"


def test_the_login_keeps_a_local_target_with_its_query(build: Build) -> None:
    client = build().test_client()
    token = csrf(client.get("/login").get_data(as_text=True))
    target = "/incidents?status=firing&label=model%3D%22llama%22"
    data = {"username": "alice", "password": PASSWORD, "csrf_token": token, "next": target}
    assert client.post("/login", data=data).headers["Location"] == target


def store_an_incident(app: Flask) -> None:
    body = json.loads((FIXTURES / "single-repeat-resolve" / "001.json").read_text())["body_raw"]
    assert post_webhook(app.test_client(), body).status_code == 200


def test_every_action_records_who_how_and_from_where(build: Build) -> None:
    app = build()
    store_an_incident(app)
    alice = logged_in(app, address="192.0.2.7")
    token = csrf(alice.get("/incidents/1").get_data(as_text=True))
    assert alice.post("/incidents/1/ack", data={"csrf_token": token}).status_code == 302
    note = {"csrf_token": token, "text": "looking"}
    assert alice.post("/incidents/1/notes", data=note).status_code == 302
    timeline = alice.get("/api/v1/incidents/1").get_json()["timeline"]
    acted = [e["detail"] for e in timeline if e["kind"] in ("acknowledged", "note")]
    assert acted == [
        {"user": "alice", "via": "ui:password", "from": "192.0.2.7"},
        {"user": "alice", "via": "ui:password", "from": "192.0.2.7", "text": "looking"},
    ]


def test_a_viewer_reads_but_is_offered_no_actions(build: Build) -> None:
    app = build(viewers=["bob"])
    store_an_incident(app)
    bob = logged_in(app, "bob")
    page = bob.get("/incidents/1").get_data(as_text=True)
    assert "Acknowledge" not in page and 'id="note"' not in page
    assert "bob (viewer)" in page
    token = csrf(page)
    answer = bob.post("/incidents/1/ack", data={"csrf_token": token})
    assert answer.status_code == 403
    assert bob.get("/api/v1/incidents/1").get_json()["acknowledged_at"] is None


def test_behind_a_proxy_the_limits_count_the_address_the_proxy_saw(make_settings, clock) -> None:
    settings = make_settings(
        {
            "ui.users": {"alice": generate_password_hash(PASSWORD)},
            "ui.secret_key": "s" * 32,
            "ui.login_limits.per_address": 2,
            "listen.proxy_hops": 1,
        }
    )
    container = bootstrap(settings, clock=clock)
    client = create_app(container=container).test_client()
    client.environ_base["REMOTE_ADDR"] = "10.0.0.254"  # the proxy, for everybody
    spoofed = {"X-Forwarded-For": "198.51.100.1, 203.0.113.5"}  # the proxy appended the last
    for user in ("bob", "carol"):
        token = csrf(client.get("/login").get_data(as_text=True))
        data = {"username": user, "password": "x", "csrf_token": token}
        assert client.post("/login", data=data, headers=spoofed).status_code == 401
    token = csrf(client.get("/login").get_data(as_text=True))
    data = {"username": "dave", "password": "x", "csrf_token": token}
    assert client.post("/login", data=data, headers=spoofed).status_code == 429
    other = {"X-Forwarded-For": "203.0.113.9"}  # another person behind the same proxy
    assert client.post("/login", data=data, headers=other).status_code == 401
    container.engine.dispose()
