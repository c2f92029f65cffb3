"""The event recorder's recording (tests/fixtures/alertmanager-0.33.1-events) as the tests post
it: each recorded event to ``POST /api/v1/event-recorder``, each notification to the webhook."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.api import AUTH, post_webhook

PATH = "/api/v1/event-recorder"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "alertmanager-0.33.1-events"
RECORDED: list[dict[str, Any]] = json.loads((FIXTURES / "requests.json").read_text())


def post_event(client: Any, body: bytes | str, **headers: str) -> Any:
    """POST one event (or a JSON list of them) with the test token."""
    return client.post(
        PATH, data=body, content_type="application/json", headers={**AUTH, **headers}
    )


def replay(client: Any, keep: Any = lambda _request: True) -> None:
    """Every recorded request ``keep`` takes, in order: notifications to the intake, events
    to the event recorder's endpoint."""
    for r in RECORDED:
        if not keep(r):
            continue
        if r["path"] == "/events":
            response = post_event(client, r["body_raw"])
        else:
            response = post_webhook(client, r["body_raw"], "hook")
        assert response.status_code == 200, response.get_data(as_text=True)


def recorded_event(kind: str, containing: str = "") -> dict[str, Any]:
    """The first recorded event of ``kind`` whose body contains ``containing``, parsed."""
    for r in RECORDED:
        if r["path"] == "/events" and f'"{kind}"' in r["body_raw"] and containing in r["body_raw"]:
            return json.loads(r["body_raw"])
    raise LookupError(f"no recorded {kind} event containing {containing!r}")
