"""The end-to-end stack, started once for the whole package (scenarios use distinct models and
GPUs, so they do not see each other's alerts), on a Postgres database of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.stack import Stack, running_stack
from tests.e2e.timeline import api
from tests.support.alertmanager import alertmanager_binary
from tests.support.databases import admin, admin_url
from tests.support.prometheus import prometheus_binary
from tests.support.skips import need


@pytest.fixture(scope="package")
def e2e_database(pg_template: str) -> Iterator[str]:
    """A migrated Postgres database for the package's stack, dropped afterwards."""
    name = f"{pg_template}_e2e_{uuid.uuid4().hex[:8]}"
    admin(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    yield admin_url(name)
    admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="package")
def stack(e2e_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Triton pods, Prometheus, two clustered Alertmanagers, the receiver and its worker."""
    if prometheus_binary() is None:
        need("Prometheus", "no prometheus binary (apt-get install prometheus)")
    if alertmanager_binary() is None:
        need("Alertmanager", "no alertmanager binary (apt-get install prometheus-alertmanager)")
    with running_stack(tmp_path_factory.mktemp("e2e"), e2e_database) as running:
        yield running
    assert running.pagerduty.errors == [], "the PagerDuty stand-in failed handling a request"
    assert running.slack.errors == [], "the Slack stand-in failed handling a request"


@pytest.fixture(autouse=True)
def nothing_left_open(request: pytest.FixtureRequest) -> Iterator[None]:
    """A scenario starts with the stack running and leaves no incident open (the Watchdog is a
    heartbeat, never an incident)."""
    if "stack" not in request.fixturenames:
        yield
        return
    running: Stack = request.getfixturevalue("stack")
    assert running.dead() == [], f"{running.dead()} exited{running.output()}"
    yield
    firing = api(running, "/api/v1/incidents", status="firing")["incidents"]
    assert firing == [], firing
