"""The worker step that gives pending episodes their GPU and queue context snapshot."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from receiver.enrich.prometheus import ContextEvaluator, EpisodeQuery
from receiver.store.unit_of_work import UnitOfWork

BATCH = 50
CLAIM_TIMEOUT = timedelta(minutes=2)  # a claim older than this belonged to a dead worker


class ContextEnricher:
    """Claim pending episodes, query Prometheus outside any transaction, store the snapshots."""

    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        evaluator: ContextEvaluator,
        clock: Callable[[], datetime],
    ):
        self.uow_factory, self.evaluator, self.clock = uow_factory, evaluator, clock

    def run_once(self, limit: int = BATCH) -> int:
        """Enrich up to ``limit`` episodes; return how many."""
        now = self.clock()
        with self.uow_factory() as uow:
            claimed = [
                (e.id, EpisodeQuery(dict(e.labels), e.starts_at))
                for e in uow.episodes.claim_for_context(limit, now, now - CLAIM_TIMEOUT)
            ]
            uow.commit()
        if not claimed:
            return 0
        snapshots = self.evaluator.evaluate([query for _, query in claimed])
        with self.uow_factory() as uow:
            for (episode_id, _), items in zip(claimed, snapshots, strict=True):
                uow.episodes.save_context(episode_id, items)
            uow.commit()
        return len(claimed)

    def drain(self) -> int:
        """Enrich until nothing is pending; return the total."""
        total = 0
        while count := self.run_once():
            total += count
        return total
