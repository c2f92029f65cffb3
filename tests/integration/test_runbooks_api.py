"""Runbooks through the intake: precedence, templating, the missing flag, and the CLI report."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from receiver.app import create_app
from receiver.bootstrap import bootstrap
from receiver.cli import main
from tests.support.api import post_webhook
from tests.support.payloads import FIXTURES, alert, webhook

SHIPPED_RUNBOOKS = Path(__file__).parents[2] / "config" / "runbooks.yaml"


@pytest.fixture
def client(make_settings, clock):
    container = bootstrap(make_settings({"runbooks_path": str(SHIPPED_RUNBOOKS)}), clock=clock)
    yield create_app(container=container).test_client()
    container.engine.dispose()


def runbook_webhook(
    alertname: str, group: str, annotations: dict[str, str] | None = None, **labels: str
) -> str:
    """A webhook of group ``group`` with one firing alert, no annotations unless given."""
    entry = alert(alertname, starts=20, annotations=annotations or {}, **labels)
    return json.dumps(webhook(entry, receiver="rb", group_key=group))


def incident_of(client, body: str) -> dict[str, Any]:
    answer = post_webhook(client, body, "rb")
    assert answer.status_code == 200, answer.get_json()
    return client.get(f"/api/v1/incidents/{answer.get_json()['incidents'][0]}").get_json()


def test_the_alerts_own_runbook_url_wins_and_the_catalogue_adds_guidance(client):
    body = json.loads((FIXTURES / "all" / "001.json").read_text())["body_raw"]
    answer = post_webhook(client, body, "triton-critical").get_json()
    detail = client.get(f"/api/v1/incidents/{answer['incidents'][0]}").get_json()

    assert detail["runbook_url"] == "https://runbooks.example.com/triton/high-error-rate"
    runbook = detail["alerts"][0]["episodes"][0]["runbook"]
    assert runbook["source"] == "annotation"
    assert "mistral_7b" in detail["guidance"]  # the catalogue's guidance, filled from labels
    assert detail["runbook_missing"] is False


def test_without_an_annotation_the_catalogue_url_is_filled_from_labels(client):
    detail = incident_of(client, runbook_webhook("TritonHighLatency", "g1", model="llama 2/7b"))

    assert detail["runbook_url"] == (
        "https://runbooks.example.com/triton/high-latency?model=llama%202%2F7b"
    )
    assert detail["alerts"][0]["episodes"][0]["runbook"]["source"] == "catalogue"
    assert "queue time" in detail["guidance"].lower()


def test_a_non_http_runbook_annotation_is_not_used_as_a_link(client):
    annotations = {"runbook_url": "javascript:alert(1)"}
    detail = incident_of(client, runbook_webhook("TritonGPUMemoryHigh", "g2", annotations))

    assert detail["runbook_url"] == "https://runbooks.example.com/triton/gpu-oom-risk"
    assert "batch size" in detail["guidance"]


def test_an_alert_with_no_runbook_is_flagged_counted_and_reported(client, make_settings):
    detail = incident_of(client, runbook_webhook("DiskAlmostFull", "g3", mount="/data"))
    incident_of(client, runbook_webhook("DiskAlmostFull", "g4", mount="/logs"))
    incident_of(client, runbook_webhook("TritonNoHealthyPods", "g5"))

    assert detail["runbook_missing"] is True and detail["runbook_url"] is None
    listed = client.get("/api/v1/incidents").get_json()["incidents"]
    assert {i["alertname"]: i["runbook_missing"] for i in listed} == {
        "DiskAlmostFull": True,
        "TritonNoHealthyPods": False,
    }
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'receiver_runbook_missing_total{alertname="DiskAlmostFull"} 2.0' in metrics
    assert 'alertname="TritonNoHealthyPods"' not in metrics

    env = {"RECEIVER_DATABASE_URL": make_settings().database_url}
    report = CliRunner().invoke(main, ["runbooks", "missing", "--days", "36500"], env=env)
    assert report.exit_code == 1, report.output
    lines = report.output.splitlines()
    assert lines[1].split()[:3] == ["DiskAlmostFull", "2", "2"]
    assert len(lines) == 2


def test_the_report_only_looks_back_the_given_number_of_days(client, make_settings, clock):
    clock.now = datetime.now(UTC) - timedelta(days=3)  # received three days ago
    incident_of(client, runbook_webhook("DiskAlmostFull", "g6"))
    env = {"RECEIVER_DATABASE_URL": make_settings().database_url}
    report = CliRunner().invoke(main, ["runbooks", "missing", "--days", "1"], env=env)

    assert report.exit_code == 0, report.output
    assert "every alert seen in the last 1 days had a runbook" in report.output
