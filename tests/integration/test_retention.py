"""Raw payloads are kept for the retention period, then pruned by the worker."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from receiver.replay import AppTarget, load_items, replay
from receiver.store.tables import Incident, PayloadBody, WebhookReceipt
from receiver.worker import run_worker
from tests.support.api import AUTH
from tests.support.payloads import FIXTURES


def count(engine, table) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def test_the_worker_prunes_payloads_past_retention_and_keeps_incidents(app, client, container):
    # 0.25's folder as sample traffic: retention, not the scenario, is under test
    items = load_items([FIXTURES / "single-repeat-resolve"], warn=lambda _m: None)
    replay(items, AppTarget(app, AUTH))
    receipts = count(container.engine, WebhookReceipt)
    assert receipts == 6
    # repeats from one node are byte-identical: fewer bodies than receipts
    assert 0 < count(container.engine, PayloadBody) < receipts
    retention = timedelta(days=container.settings.intake.raw_retention_days)
    old = container.clock() - retention - timedelta(seconds=1)
    with Session(container.engine) as session, session.begin():
        first_three = select(WebhookReceipt.id).order_by(WebhookReceipt.id).limit(3)
        ids = list(session.scalars(first_three))
        session.execute(
            update(WebhookReceipt).where(WebhookReceipt.id.in_(ids)).values(received_at=old)
        )

    stop = threading.Event()
    stop.set()  # one pass, then return
    run_worker(container, stop)

    assert count(container.engine, WebhookReceipt) == 3
    assert client.get(f"/api/v1/payloads/{ids[0]}").status_code == 404
    kept = client.get("/api/v1/incidents").get_json()["incidents"][0]
    detail = client.get(f"/api/v1/incidents/{kept['id']}").get_json()
    assert [p["receipt"] for p in detail["payloads"]] == [i + 3 for i in ids]
    for payload in detail["payloads"]:
        assert client.get(payload["href"]).status_code == 200
    assert count(container.engine, Incident) == 1
    with Session(container.engine) as session:
        used = set(session.scalars(select(WebhookReceipt.body_sha256)))
        stored = set(session.scalars(select(PayloadBody.sha256)))
    assert stored == used  # no orphaned bodies, none missing
