"""Fixtures: the UI app and a logged-in client; a Triton simulator and a real Prometheus; the
delivery bench (``make_env``) and the command line in process (``cli``).

``triton_sim`` (function scope) is a simulator of its own; ``prometheus`` (module scope) scrapes
``scraped_sim`` (module scope, shared by the module's tests: give each test its own model and GPU
names). Without a prometheus binary, tests using ``prometheus`` skip, or fail when CI=true.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from receiver.app import create_app
from receiver.bootstrap import bootstrap
from receiver.replay import AppTarget, load_items, replay
from tests.sim.triton import TritonSimulator
from tests.support.api import AUTH
from tests.support.cli import Run, invoke, without_receiver_variables
from tests.support.envs import EnvFactory
from tests.support.payloads import FIXTURE_SETS
from tests.support.prometheus import PrometheusServer, require_prometheus
from tests.support.servers import disposing_engines
from tests.support.ui_session import PASSWORD, login


@pytest.fixture
def triton_sim() -> Iterator[TritonSimulator]:
    """A simulator serving on its own free port for one test; nothing scrapes it."""
    with TritonSimulator() as sim:
        yield sim


@pytest.fixture(scope="module")
def scraped_sim() -> Iterator[TritonSimulator]:
    """The simulator ``prometheus`` scrapes (its ``target`` is the ``instance`` label)."""
    with TritonSimulator() as sim:
        yield sim


@pytest.fixture(scope="module")
def prometheus(
    scraped_sim: TritonSimulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    """A ready Prometheus scraping ``scraped_sim`` every second as job ``triton``."""
    binary = require_prometheus()
    tmp_dir: Path = tmp_path_factory.mktemp("prometheus")
    with PrometheusServer([scraped_sim.target], tmp_dir=tmp_dir, binary=binary) as server:
        yield server


@pytest.fixture
def fixture_set() -> str:
    """The recorded set ``ui_app`` is seeded from: 0.25, unless the test parametrizes
    ``fixture_set`` over ``FIXTURE_SETS`` (the tests that check what the recordings make do;
    for the others the seed is only data to click through)."""
    return "0.25"


@pytest.fixture
def ui_app(make_settings: Any, clock: Any, fixture_set: str) -> Iterator[Flask]:
    """An app with the UI on (user alice, 5 rows a page), seeded with every request of a
    recorded set (``fixture_set``)."""
    settings = make_settings(
        {
            "ui.users": {"alice": generate_password_hash(PASSWORD)},
            "ui.secret_key": "s" * 32,
            "ui.cookie_secure": False,
            "ui.page_size": 5,
        }
    )
    container = bootstrap(settings, clock=clock)
    app = create_app(container=container)
    items = load_items([FIXTURE_SETS[fixture_set] / "all"], warn=lambda _m: None)
    replay(items, AppTarget(app, AUTH))
    yield app
    container.engine.dispose()


@pytest.fixture
def browser(ui_app: Flask) -> FlaskClient:
    """A test client of ``ui_app`` logged in as alice."""
    client = ui_app.test_client()
    assert login(client).status_code == 302
    return client


@pytest.fixture
def make_env(make_settings: Any, clock: Any) -> Iterator[EnvFactory]:
    """Delivery benches (stand-ins, app, worker) on this test's database, closed afterwards."""
    with EnvFactory(make_settings, clock) as factory:
        yield factory


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    """Run ``receiver <args>`` in process with no RECEIVER_* variable but the given ones."""
    without_receiver_variables(monkeypatch)
    with disposing_engines():
        yield invoke
