"""The receiver answers 503 while its database is locked; Alertmanager retries until it is back.

The test holds an EXCLUSIVE lock on ``webhook_receipts`` (reads still work, every intake's
insert waits); gunicorn's sessions have a 500 ms lock_timeout, so each notification gets
``503 storage_unavailable`` and both Alertmanagers retry it with backoff.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from tests.e2e.stack import Stack
from tests.e2e.timeline import (
    alert_states,
    delivered,
    eventually,
    healthy_model,
    incidents_of,
    pd_actions,
    pd_pages,
    receipts_from,
    slack_messages,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
ALERT = "TritonHighLatency"
MODEL = "e2e-outage-mistral"
FAILED = "alertmanager_notification_requests_failed_total"
# how Alertmanager logs a 503 answer (the receiver's JSON body quoted in its logfmt line); 0.25
# names the webhook URL first, 0.33 does not (it may hold secrets)
REFUSED = re.compile(
    r'unexpected status code 503: (?:(\S+): )?\{\\"error\\":\\"storage_unavailable'
)
RETRIES = 3  # failed webhook attempts each Alertmanager makes while the database is locked


@contextmanager
def intake_locked(database_url: str) -> Iterator[None]:
    """Hold an EXCLUSIVE lock on webhook_receipts (every intake stores a receipt) meanwhile."""
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        conn.execute("LOCK TABLE webhook_receipts IN EXCLUSIVE MODE")
        try:
            yield
        finally:
            conn.rollback()


def failed_requests(stack: Stack) -> list[float]:
    """Failed webhook requests so far, per Alertmanager."""
    return [
        stack.alertmanagers.metric(n, FAILED, integration="webhook")
        for n in range(stack.alertmanagers.size)
    ]


def active_in_alertmanagers(stack: Stack) -> bool:
    matcher = [f'alertname="{ALERT}"', f'model="{MODEL}"']
    return all(
        [a["status"]["state"] for a in stack.alertmanagers.alerts(n, filter=matcher)] == ["active"]
        for n in range(stack.alertmanagers.size)
    )


def test_notifications_refused_with_503_are_retried_into_one_incident_and_one_page(
    stack: Stack,
) -> None:
    healthy_model(stack, MODEL, compute_us_per_request=40_000)

    with intake_locked(stack.database_url):
        stack.pod_a.set_model(MODEL, compute_us_per_request=900_000)  # 900 ms per request
        eventually(
            stack, "the alert active in both Alertmanagers", lambda: active_in_alertmanagers(stack)
        )
        before = failed_requests(stack)
        eventually(
            stack,
            f"{RETRIES} failed webhook attempts per Alertmanager",
            lambda: all(
                now - then >= RETRIES
                for now, then in zip(failed_requests(stack), before, strict=True)
            ),
        )
        assert incidents_of(stack, ALERT, model=MODEL) == []  # nothing stored while refusing
    for n in range(stack.alertmanagers.size):  # what each Alertmanager was told, and retried
        urls = REFUSED.findall(stack.alertmanagers.output(n))
        assert urls, stack.alertmanagers.output(n)[-3000:]
        assert set(urls) <= {"", f"{stack.receiver.url}/api/v1/alertmanager"}, urls

    [opened] = eventually(
        stack, "the incident, once stored", lambda: incidents_of(stack, ALERT, model=MODEL)
    )
    paged = delivered(stack, opened["id"])
    assert (opened["status"], opened["severity"]) == ("firing", "warning")
    assert pd_actions(stack, paged) == ["trigger"]
    assert len(pd_pages(stack, paged)) == 1
    assert len(slack_messages(stack, [opened["id"]])) == 1

    stack.pod_a.set_model(MODEL, compute_us_per_request=40_000)
    eventually(
        stack,
        "the alert resolved in Prometheus",
        lambda: alert_states(stack, ALERT, model=MODEL) == [],
    )
    done = delivered(stack, opened["id"], "resolved")
    assert [i["id"] for i in incidents_of(stack, ALERT, model=MODEL)] == [opened["id"]]
    assert pd_actions(stack, done) == ["trigger", "resolve"]
    [message] = slack_messages(stack, [opened["id"]])
    assert message["text"].startswith("[RESOLVED]")
    assert receipts_from(done) == set(stack.alertmanagers.urls)
