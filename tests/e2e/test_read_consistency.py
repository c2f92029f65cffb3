"""An incident read while HA duplicates of its notification arrive is one consistent snapshot.

Found by the HA scenario: ``GET /api/v1/incidents/<id>`` reads the incident row and then, in
later statements, its payloads; under READ COMMITTED a notification committed in between showed in
``payloads`` but not yet in ``counts``. The reads now share one REPEATABLE READ snapshot on
Postgres. Here the receiver's gunicorn gets the same notification again and again (as from HA
peers and re-sends) while two readers read the detail.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import requests

from tests.e2e.stack import Stack
from tests.e2e.timeline import delivered
from tests.support.api import AUTH
from tests.support.payloads import alert, webhook

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
RECEIVER = "e2e-read-consistency"
POSTS = 300  # at most; the readers stop the writer at the first torn read


def notify(stack: Stack, body: dict[str, Any]) -> dict[str, Any]:
    answer = requests.post(
        f"{stack.receiver.url}/api/v1/alertmanager/{RECEIVER}", json=body, headers=AUTH, timeout=10
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def torn(detail: dict[str, Any]) -> str | None:
    """How the document contradicts itself, if it does."""
    counts, payloads = detail["counts"], len(detail["payloads"])
    if counts["notifications"] != payloads:
        return f"counts.notifications={counts['notifications']} but {payloads} payloads"
    return None


def test_an_incident_read_while_duplicates_arrive_is_one_consistent_snapshot(
    stack: Stack,
) -> None:
    firing = webhook(alert("E2EReadConsistency", severity="info", probe="torn"), receiver=RECEIVER)
    [incident_id] = notify(stack, firing)["incidents"]
    found: list[str] = []
    stop = threading.Event()

    def read() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                url = f"{stack.receiver.url}/api/v1/incidents/{incident_id}"
                if problem := torn(session.get(url, timeout=10).json()):
                    found.append(problem)
                    stop.set()

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        for _ in range(POSTS):
            if stop.is_set():
                break
            # a repeat (or, once reconciliation resolved the alert Alertmanager never held, a late
            # re-send): never a new incident
            answer = notify(stack, firing)
            assert answer["new"] == 0 and answer["incidents"] == [incident_id], answer
    finally:
        stop.set()
        for reader in readers:
            reader.join(timeout=30)
    resolved = webhook(
        alert("E2EReadConsistency", "resolved", severity="info", probe="torn"), receiver=RECEIVER
    )
    notify(stack, resolved)
    final = delivered(stack, incident_id, "resolved")

    assert torn(final) is None  # at rest the document agrees with itself
    assert found == [], found[:3]
