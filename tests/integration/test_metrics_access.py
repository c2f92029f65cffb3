"""The receiver's own metrics name alertnames and receivers: they can require the webhook
credentials, or be served on an address of their own by gunicorn's master."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from receiver.app import create_app
from receiver.bootstrap import bootstrap
from receiver.metrics import MULTIPROC_ENV
from tests.support.api import AUTH
from tests.support.databases import migrated_sqlite
from tests.support.servers import free_port, receiver_env, started, wait_ready


def test_metrics_can_require_the_webhook_credentials(make_settings: Any, clock: Any) -> None:
    container = bootstrap(make_settings({"metrics.require_webhook_auth": True}), clock=clock)
    client = create_app(container=container).test_client()
    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert "WWW-Authenticate" in refused.headers
    scraped = client.get("/metrics", headers=AUTH)
    assert scraped.status_code == 200
    assert unauthorized_count(scraped.get_data(as_text=True)) == 0  # a scrape is no webhook
    container.engine.dispose()


def unauthorized_count(text: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "receiver_webhooks_total" and sample.labels["result"] == (
                "unauthorized"
            ):
                return sample.value
    return 0.0


@pytest.mark.slow
def test_metrics_on_their_own_address_add_up_every_worker(tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    env = receiver_env(
        migrated_sqlite(tmp_path / "receiver.db"),
        extra={
            "RECEIVER_METRICS__PORT": str(metrics_port),
            MULTIPROC_ENV: str(tmp_path / "metrics"),
        },
    )
    command = [
        sys.executable, "-m", "gunicorn",
        "--config", "python:receiver.gunicorn_conf",
        "--bind", f"127.0.0.1:{port}",
        "--workers", "2",
        "--worker-class", "asgi",
        "--no-control-socket",
        "receiver.asgi:app",
    ]  # fmt: skip
    url, metrics_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}"
    with started(command, env) as process:
        wait_ready(process, url)
        for _ in range(5):
            assert requests.post(url + "/api/v1/alertmanager", timeout=5).status_code == 401
        assert requests.get(url + "/metrics", timeout=5).status_code == 404
        scraped = requests.get(metrics_url + "/metrics", timeout=5)
        assert scraped.status_code == 200
        assert unauthorized_count(scraped.text) == 5
        assert "receiver_outbox_oldest_due_seconds" in scraped.text  # the store gauges too
        assert requests.get(metrics_url + "/api/v1/incidents", timeout=5).status_code == 404
