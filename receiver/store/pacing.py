"""The posting slots of Slack channels, shared through the database by every worker process."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import case, or_, select, update
from sqlalchemy.orm import Session

from receiver.store.repositories import _insert, changed_rows
from receiver.store.tables import ChannelPacing

MAX_HOLD = timedelta(minutes=5)  # longer than any pacing interval or Retry-After we honour
_pacing = ChannelPacing.__table__
c = _pacing.c


class PacingRepository:
    def __init__(self, session: Session):
        self.session = session

    def reserve(self, channel: str, now: datetime, until: datetime) -> datetime | None:
        """Take the channel's slot if it is free at ``now``, keeping it until ``until``: None
        when taken, else the time it frees up. Concurrent callers take it at most once. A slot
        held further ahead than any hold sets (``MAX_HOLD``: a clock that went back) counts as
        free, so a channel is never held for longer than that."""
        free = or_(c.next_post_at <= now, c.next_post_at > now + MAX_HOLD)
        taken = changed_rows(
            self.session,
            update(_pacing).where(c.channel == channel, free).values(next_post_at=until),
        )
        if taken:
            return None
        first = self.session.execute(
            _insert(self.session, _pacing)
            .values(channel=channel, next_post_at=until)
            .on_conflict_do_nothing(index_elements=["channel"])
            .returning(c.channel)  # a row back: inserted (rowcount is -1 here on psycopg)
        ).first()
        if first is not None:
            return None
        free_at = self.session.scalar(select(c.next_post_at).where(c.channel == channel))
        return free_at if free_at is not None and free_at > now else now

    def hold(self, channel: str, until: datetime) -> None:
        """Keep the channel's slot taken until at least ``until`` (callers keep it within
        ``MAX_HOLD`` of now)."""
        later = case((c.next_post_at < until, until), else_=c.next_post_at)
        held = changed_rows(
            self.session, update(_pacing).where(c.channel == channel).values(next_post_at=later)
        )
        if not held:
            self.session.execute(
                _insert(self.session, _pacing)
                .values(channel=channel, next_post_at=until)
                .on_conflict_do_nothing(index_elements=["channel"])
            )

    def queue(
        self, channel: str, free_at: datetime, interval: timedelta, now: datetime
    ) -> datetime:
        """The turn of a post held back for the channel, whose slot frees at ``free_at``: one
        interval after the turn given to the last post held back, or ``free_at`` if that is
        later; remembered for the next. The row is locked first (Postgres; SQLite's write
        transaction serialises anyway), so two workers never give out the same turn. A last
        turn over ``MAX_HOLD`` ahead (a clock that went back) is forgotten."""
        last = self.session.scalar(
            select(c.queued_until).where(c.channel == channel).with_for_update()
        )
        turn = free_at
        if last is not None and last <= now + MAX_HOLD:
            turn = max(turn, last + interval)
        self.session.execute(update(_pacing).where(c.channel == channel).values(queued_until=turn))
        return turn
