"""The end-to-end stack, started once for the whole package (scenarios use distinct models and
GPUs, so they do not see each other's alerts), on a Postgres database of its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.stack import Stack, running_stack
from tests.e2e.timeline import api
from tests.support.alertmanager import require_alertmanager
from tests.support.databases import template_copy
from tests.support.prometheus import require_prometheus


@pytest.fixture(scope="package")
def e2e_database(pg_template: str) -> Iterator[str]:
    """A migrated Postgres database for the package's stack, dropped afterwards."""
    with template_copy(pg_template, "e2e") as url:
        yield url


@pytest.fixture(scope="package")
def stack(e2e_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Triton pods, Prometheus, two clustered Alertmanagers, the receiver and its worker."""
    require_prometheus()
    require_alertmanager()
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
