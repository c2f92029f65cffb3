"""The background worker: periodic maintenance now (raw payload retention); the outbox later."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError

from receiver.bootstrap import Container

log = logging.getLogger(__name__)


def prune_raw_payloads(container: Container) -> int:
    """Delete raw payloads older than ``intake.raw_retention_days``; return receipts deleted."""
    days = container.settings.intake.raw_retention_days
    with container.uow() as uow:
        deleted = uow.receipts.prune(container.clock() - timedelta(days=days))
        uow.commit()
    return deleted


def run_worker(container: Container, stop: threading.Event, interval_seconds: float) -> None:
    """Run maintenance now and every ``interval_seconds`` until ``stop`` is set.

    A run always happens first (``stop`` already set means exactly one). Database outages are
    logged and retried at the next interval.
    """
    while True:
        try:
            deleted = prune_raw_payloads(container)
            if deleted:
                log.info("pruned %d raw payload(s) past retention", deleted)
        except SQLAlchemyError as exc:
            log.warning("maintenance skipped, database unavailable: %s", type(exc).__name__)
        if stop.wait(interval_seconds):
            return
