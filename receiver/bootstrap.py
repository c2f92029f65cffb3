"""Composition root: the only place that picks concrete classes. Used by app, CLI and tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from receiver.metrics import Metrics
from receiver.model.dedup import FlapPolicy
from receiver.settings import Settings
from receiver.store.db import make_engine
from receiver.store.queries import IncidentQueries
from receiver.store.unit_of_work import UnitOfWork


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Container:
    """Everything a request or command needs, built once per process."""

    settings: Settings
    engine: Engine
    clock: Callable[[], datetime] = utc_now
    metrics: Metrics = field(default_factory=Metrics)

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.engine)

    @property
    def queries(self) -> IncidentQueries:
        return IncidentQueries(self.engine)

    @property
    def flap_policy(self) -> FlapPolicy:
        f = self.settings.flapping
        return FlapPolicy(
            threshold=f.threshold,
            window=timedelta(minutes=f.window_minutes),
            hold_down=timedelta(minutes=f.hold_down_minutes),
        )


def bootstrap(
    settings: Settings,
    clock: Callable[[], datetime] = utc_now,
    engine: Engine | None = None,
) -> Container:
    """Build the container; nothing connects to the database until first use."""
    return Container(
        settings=settings,
        engine=engine if engine is not None else make_engine(settings.database_url),
        clock=clock,
    )
