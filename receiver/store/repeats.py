"""The repeat path: a notification that only says again what is stored, in a handful of statements.

Alertmanager re-sends a group's notification every ``repeat_interval``, and each peer of an HA
pair sends its own copy, so most webhooks change nothing but counters. For those, the full
intake (``receiver.service.apply_notification``) would load the group, its episodes and
incident as ORM objects only to bump the same counters; this module does exactly those writes
with a few Core statements instead. ``tests/integration/test_intake_shortcuts.py`` holds the two
paths to the same result.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, exists, insert, select, update

from receiver.store.repositories import CoreRepository, add_receipt_row
from receiver.store.tables import (
    AlertEpisode,
    AlertGroup,
    Incident,
    IncidentReceipt,
    PayloadBody,
)

_groups = AlertGroup.__table__
_episodes = AlertEpisode.__table__
_incidents = Incident.__table__
_bodies = PayloadBody.__table__
_links = IncidentReceipt.__table__
g, e, i = _groups.c, _episodes.c, _incidents.c

# Built once: a statement object caches its compiled form, so each execution only binds.
LOCK_GROUP = (
    update(_groups)
    .where(g.receiver == bindparam("b_receiver"), g.group_key_sha256 == bindparam("b_sha256"))
    .values(last_seen_at=bindparam("b_now"))
    .returning(g.id)
)
EPISODES = select(
    e.id,
    e.incident_id,
    e.fingerprint,
    e.starts_at,
    e.status,
    e.annotations,
    exists().where(_bodies.c.sha256 == bindparam("body_sha256")).label("body_known"),
).where(
    # The group's index by (group_id, fingerprint) and no condition on starts_at: a storm
    # stores thousands of episodes with one startsAt (a rule's evaluation time), which the
    # planner's statistics do not know yet, so with `starts_at IN (...)` here Postgres took
    # the index on starts_at and read each of them on every repeat (docs/benchmarks.md).
    # Firing only: a repeat needs every alert's episode firing, and a series has few at once.
    e.group_id == bindparam("group_id"),
    e.fingerprint.in_(bindparam("fingerprints", expanding=True)),
    e.status == "firing",
)
COUNT_INCIDENTS = (
    update(_incidents)
    .where(i.id.in_(bindparam("ids", expanding=True)))
    .values(
        notification_count=i.notification_count + 1,
        duplicate_count=i.duplicate_count + 1,
        last_received_at=bindparam("b_now"),
    )
)
COUNT_EPISODES = (
    update(_episodes)
    .where(e.id.in_(bindparam("ids", expanding=True)), e.status == "firing")
    .values(last_received_at=bindparam("b_now"), seen_count=e.seen_count + 1)
)
SET_ANNOTATIONS = (
    update(_episodes).where(e.id == bindparam("b_id")).values(annotations=bindparam("b_doc"))
)
LINK = insert(_links)


class RepeatRaced(Exception):
    """The stored state changed under the repeat path: roll back and take the full intake."""


@dataclass(frozen=True)
class StoredEpisode:
    id: int
    incident_id: int
    fingerprint: str
    starts_at: datetime
    status: str
    annotations: dict[str, str]


class RepeatRepository(CoreRepository):
    def lock_group(self, receiver: str, group_key_sha256: str, now: datetime) -> int | None:
        """Touch the group's row (``last_seen_at``) and so lock it, as the full intake does
        first; its id, or None for a group never seen."""
        params = {"b_receiver": receiver, "b_sha256": group_key_sha256, "b_now": now}
        return self._conn.execute(LOCK_GROUP, params).scalar_one_or_none()

    def episodes(
        self, group_id: int, pairs: set[tuple[str, datetime]], body_sha256: str
    ) -> tuple[dict[tuple[str, datetime], StoredEpisode], bool]:
        """The stored firing episodes with these (fingerprint, startsAt) identities, and
        whether the body is already stored."""
        params = {
            "group_id": group_id,
            "fingerprints": sorted({fp for fp, _ in pairs}),
            "body_sha256": body_sha256,
        }
        rows = self._conn.execute(EPISODES, params).all()
        found = {
            (r.fingerprint, r.starts_at): StoredEpisode(
                r.id, r.incident_id, r.fingerprint, r.starts_at, r.status, r.annotations
            )
            for r in rows
            if (r.fingerprint, r.starts_at) in pairs
        }
        return found, bool(rows and rows[0].body_known)

    def count_repeat(
        self, episodes: list[StoredEpisode], annotations: dict[int, dict[str, str]], now: datetime
    ) -> None:
        """Count one more notification on the episodes and their incidents; new annotations
        replace the stored ones. Raises RepeatRaced if an episode is no longer firing (the
        group lock rules that out; the caller rolls back and takes the full path)."""
        # incidents before episodes: the order the ORM flushes in (no lock-order inversion)
        incident_ids = sorted({ep.incident_id for ep in episodes})
        self._conn.execute(COUNT_INCIDENTS, {"ids": incident_ids, "b_now": now})
        ids = [ep.id for ep in episodes]
        counted = self._conn.execute(COUNT_EPISODES, {"ids": ids, "b_now": now}).rowcount
        if counted != len(episodes):
            raise RepeatRaced(f"{len(episodes) - counted} episode(s) changed status")
        for episode_id, doc in sorted(annotations.items()):
            self._conn.execute(SET_ANNOTATIONS, {"b_id": episode_id, "b_doc": doc})

    def add_receipt(
        self, body: bytes | None, body_sha256: str, values: dict[str, Any], incident_ids: list[int]
    ) -> int:
        """Store the receipt (and the body when ``body`` is given: not stored yet) and link it
        to the incidents it touched."""
        receipt_id = add_receipt_row(self._conn, body, body_sha256, values)
        links = [{"incident_id": n, "receipt_id": receipt_id} for n in incident_ids]
        self._conn.execute(LINK, links[0] if len(links) == 1 else links)
        return receipt_id
