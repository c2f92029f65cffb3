"""The end-to-end stack, started once for the whole package on each version (``am0.25``,
``am0.33``: tests/support/versions.py; scenarios use distinct models and GPUs, so they do not see
each other's alerts), each on a Postgres database of its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.stack import Stack, running_stack
from tests.e2e.timeline import api
from tests.support.databases import template_copy
from tests.support.versions import VERSIONS, Versions


@pytest.fixture(scope="package", params=VERSIONS, ids=str)
def versions(request: pytest.FixtureRequest) -> Versions:
    """The Prometheus and Alertmanager versions the stack runs."""
    return request.param


@pytest.fixture(scope="package")
def e2e_database(pg_template: str, versions: Versions) -> Iterator[str]:
    """A migrated Postgres database for the version's stack, dropped afterwards."""
    with template_copy(pg_template, "e2e") as url:
        yield url


@pytest.fixture(scope="package")
def stack(
    versions: Versions, e2e_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """Triton pods, Prometheus, two clustered Alertmanagers, the receiver and its worker."""
    prometheus = versions.require("prometheus")
    alertmanager = versions.require("alertmanager")
    tmp_dir = tmp_path_factory.mktemp(f"e2e-{versions.id}")
    with running_stack(tmp_dir, e2e_database, prometheus, alertmanager) as running:
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
