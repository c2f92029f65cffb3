"""The intake's reads: a notification's group locked, and its stored state as values.

Each statement is built once (a statement object caches its compiled form, so each execution
only binds). Every intake starts by locking its group's row, so intakes of one group run one
after another and what is loaded here stays true until the commit; the writes that follow
(``receiver.store.intake_writes``) lock rows in one fixed order after it.
"""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, exists, func, or_, select, update
from sqlalchemy.orm import aliased

from receiver.model.alerts import Notification
from receiver.model.intake_state import EpisodeRow, GroupState, IncidentRow
from receiver.model.outbox_plan import ReceiverOutbox
from receiver.store.repositories import CoreRepository, insert_or_ignore
from receiver.store.tables import AlertEpisode, AlertGroup, Delivery, Incident, PayloadBody

_groups, _episodes, _incidents = AlertGroup.__table__, AlertEpisode.__table__, Incident.__table__
_deliveries = Delivery.__table__
g, e, i, d = _groups.c, _episodes.c, _incidents.c, _deliveries.c

LOCK_GROUP = (
    update(_groups)
    .where(g.receiver == bindparam("b_receiver"), g.group_key_sha256 == bindparam("b_sha256"))
    .values(last_seen_at=bindparam("b_now"))
    .returning(g.id)
)
_EPISODE_COLUMNS = (
    e.id,
    e.incident_id,
    e.fingerprint,
    e.starts_at,
    e.status,
    e.ends_at,
    e.resolution,
    e.annotations,
    e.last_received_at,
    e.seen_count,
    e.stale_firing_count,
)
_later = aliased(_episodes)
# The episodes the rules need for the notification's series: those starting within the flap
# window of its earliest alert (its own identities among them), any firing, and each series'
# latest. The conditions on
# starts_at sit in an OR with status, which no index serves alone, so the planner goes by the
# group's unique index (group_id, fingerprint, ...) even when a storm has stored thousands of
# episodes with one startsAt that its statistics do not know yet (docs/benchmarks.md).
EPISODES = select(
    *_EPISODE_COLUMNS,
    exists().where(PayloadBody.__table__.c.sha256 == bindparam("body_sha256")).label("known"),
).where(
    e.group_id == bindparam("group_id"),
    e.fingerprint.in_(bindparam("fingerprints", expanding=True)),
    or_(
        # coalesce(x, x): not a plain column, so Postgres does not probe the index for the
        # actual range of starts_at when planning (under an update-heavy repeat load, the
        # probe read hundreds of pages of dead rows per repeat and halved the throughput)
        func.coalesce(e.starts_at, e.starts_at) >= bindparam("since"),
        e.status == "firing",
        e.starts_at
        == select(func.max(_later.c.starts_at))
        .where(_later.c.group_id == e.group_id, _later.c.fingerprint == e.fingerprint)
        .scalar_subquery(),
    ),
)
_INCIDENT_COLUMNS = [c for c in _incidents.c if c.name in IncidentRow.__dataclass_fields__]
INCIDENTS = select(i.id, i.open_group_id, *_INCIDENT_COLUMNS).where(
    or_(
        i.open_group_id == bindparam("group_id"),
        i.id.in_(bindparam("ids", expanding=True)),
    )
)
OPEN_FIRING = (
    select(*_EPISODE_COLUMNS)
    .where(e.incident_id == bindparam("incident_id"), e.status == "firing")
    .order_by(e.id)
)
OPEN_LATEST_END = select(func.max(e.ends_at)).where(e.incident_id == bindparam("incident_id"))
_newest = select(func.max(d.id)).group_by(d.incident_id, d.receiver)
OUTBOX = (
    select(d.id, d.incident_id, d.receiver, d.kind, d.action, d.state, d.seq)
    .where(
        d.incident_id.in_(bindparam("ids", expanding=True)),
        or_(
            d.state == "pending",
            d.id.in_(_newest.where(d.incident_id.in_(bindparam("ids", expanding=True)))),
            d.id.in_(
                _newest.where(
                    d.incident_id.in_(bindparam("ids", expanding=True)), d.state != "cancelled"
                )
            ),
        ),
    )
    .order_by(d.id)
)


_EPISODE_FIELDS = [f.name for f in fields(EpisodeRow)]
assert [c.name for c in _EPISODE_COLUMNS[2:]] == _EPISODE_FIELDS[2:], "one order for both"


def _episode(row: Any) -> EpisodeRow:
    """A loaded episode, built without the frozen dataclass' per-field ``__setattr__`` (4 us
    an episode, this 1: a 10-alert repeat loads 10; docs/benchmarks.md)."""
    episode = object.__new__(EpisodeRow)
    episode.__dict__.update(zip(_EPISODE_FIELDS, row, strict=False))  # row may end in "known"
    return episode


class IntakeReads(CoreRepository):
    def lock_group(self, n: Notification, now: datetime) -> tuple[int, bool]:
        """Lock the group's row (``last_seen_at`` set: a row lock on Postgres, the database's
        write lock on SQLite), creating it if new: its id, and whether it was created."""
        params = {"b_receiver": n.receiver, "b_sha256": n.group_key_sha256, "b_now": now}
        while True:  # a group created or deleted (retention) meanwhile: look again
            found = self._conn.execute(LOCK_GROUP, params).scalar_one_or_none()
            if found is not None:
                return found, False
            create = insert_or_ignore(
                self._conn.dialect.name, _groups, ("receiver", "group_key_sha256"), "id"
            )
            row = {
                "receiver": n.receiver,
                "group_key": n.group_key,
                "group_key_sha256": n.group_key_sha256,
                "group_key_derived": n.group_key_derived,
                "group_labels": n.group_labels,
                "first_seen_at": now,
                "last_seen_at": now,
            }
            created = self._conn.execute(create, row).scalar_one_or_none()
            if created is not None:
                return created, True

    def group_state(
        self, n: Notification, group_id: int, created: bool, since: datetime, body_sha256: str
    ) -> GroupState:
        """The stored episodes of the notification's series, and whether its body is stored
        (as far as that read tells: otherwise the body's insert ignores a copy stored)."""
        if created or not n.alerts:
            return GroupState(group_id, created=created)
        params = {
            "group_id": group_id,
            "fingerprints": sorted({a.fingerprint for a in n.alerts}),
            "since": since,
            "body_sha256": body_sha256,
        }
        rows = self._conn.execute(EPISODES, params).all()
        episodes = {(r.fingerprint, r.starts_at): _episode(r) for r in rows}
        return GroupState(group_id, body_known=bool(rows and rows[0].known), episodes=episodes)

    def with_incidents(self, state: GroupState, open_firing: bool) -> GroupState:
        """The state with the group's open incident and its episodes' incidents; with the open
        incident's firing episodes and latest end when ``open_firing``."""
        if state.created:
            return replace(state, incidents={})
        ids = sorted({ep.incident_ref for ep in state.episodes.values()})
        rows = self._conn.execute(INCIDENTS, {"group_id": state.group_id, "ids": ids}).all()
        incidents = {
            r.id: IncidentRow(ref=r.id, **{c.name: r._mapping[c.name] for c in _INCIDENT_COLUMNS})
            for r in rows
        }
        open_id = next((r.id for r in rows if r.open_group_id == state.group_id), None)
        state = replace(state, incidents=incidents, open_incident_id=open_id)
        if not open_firing or open_id is None:
            return state
        firing = self._conn.execute(OPEN_FIRING, {"incident_id": open_id}).all()
        latest = self._conn.execute(OPEN_LATEST_END, {"incident_id": open_id}).scalar()
        return replace(state, open_firing=tuple(map(_episode, firing)), open_latest_end=latest)

    def outbox(self, incident_ids: list[int]) -> dict[int, dict[str, ReceiverOutbox]]:
        """Per incident and receiver: its kind, last seq and action, and what is pending."""
        rows = self._conn.execute(OUTBOX, {"ids": incident_ids}).all()
        found: dict[int, dict[str, ReceiverOutbox]] = {}
        for r in rows:  # ascending ids: the last row of a receiver is its newest
            mine = found.setdefault(r.incident_id, {})
            before = mine.get(r.receiver) or ReceiverOutbox(r.kind, 0, None, {})
            pending = dict(before.pending)
            if r.state == "pending":
                pending[r.action] = (*pending.get(r.action, ()), r.id)
            last_action = r.action if r.state != "cancelled" else before.last_action
            mine[r.receiver] = ReceiverOutbox(
                before.kind, max(before.last_seq, r.seq), last_action, pending
            )
        return found
