"""Fixtures for metrics tests: a Triton metrics simulator and a real Prometheus scraping one.

``triton_sim`` (function scope) is a simulator of its own; ``prometheus`` (module scope) scrapes
``scraped_sim`` (module scope, shared by the module's tests: give each test its own model and GPU
names). Without a prometheus binary, tests using ``prometheus`` skip, or fail when CI=true.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import need
from tests.integration.prometheus import PrometheusServer, prometheus_binary
from tests.sim.triton import TritonSimulator


def require_prometheus() -> str:
    """The prometheus binary's path; skip (fail in CI) without one."""
    binary = prometheus_binary()
    if binary is None:
        need("Prometheus", "no prometheus binary (apt-get install prometheus)")
    assert binary is not None
    return binary


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
