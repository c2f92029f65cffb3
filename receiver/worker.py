"""The background worker: context for new episodes, then due deliveries, then retention.

Context comes first so a page usually carries it; a delivery never waits for context longer
than one pass (the context budget bounds it).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError

from receiver.bootstrap import Container, build_delivery_worker, build_enricher

log = logging.getLogger(__name__)


def prune_raw_payloads(container: Container) -> int:
    """Delete raw payloads older than ``intake.raw_retention_days``; return receipts deleted."""
    days = container.settings.intake.raw_retention_days
    with container.uow() as uow:
        deleted = uow.receipts.prune(container.clock() - timedelta(days=days))
        uow.commit()
    return deleted


def run_worker(
    container: Container,
    stop: threading.Event,
    poll_seconds: float = 0.5,
    prune_every_seconds: float = 3600,
) -> None:
    """Work now and every ``poll_seconds`` until ``stop`` is set; survive database outages.

    A pass always happens first (``stop`` already set means exactly one pass).
    """
    enricher = build_enricher(container)
    deliverer = build_delivery_worker(container)
    next_prune = time.monotonic()
    try:
        while True:
            try:
                if enricher is not None:
                    enricher.drain()
                if deliverer is not None:
                    deliverer.drain()
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + prune_every_seconds
                    if deleted := prune_raw_payloads(container):
                        log.info("pruned %d raw payload(s) past retention", deleted)
            except SQLAlchemyError as exc:
                log.warning("worker pass skipped, database unavailable: %s", type(exc).__name__)
            if stop.wait(poll_seconds):
                return
    finally:
        if enricher is not None:
            enricher.evaluator.close()
        if deliverer is not None:
            deliverer.close()
