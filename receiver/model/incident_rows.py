"""The working copies of one intake decision: the rows as they will be written.

``IncidentRows`` keeps what the rules (``receiver.model.incident``) have changed so far, the
timeline events and label index entries they add, and at the end turns it all into the
``IntakePlan`` the store writes. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from receiver.model.alerts import AlertEvent, Notification, Runbook
from receiver.model.dedup import AlertOutcome
from receiver.model.incident_text import (
    brief,
    clip,
    indexable,
    opening_row,
    route_only_labels,
    search_text,
)
from receiver.model.intake_state import (
    FIRING,
    RESOLVED,
    EpisodeRow,
    GroupState,
    IncidentRow,
    IntakePlan,
    NewEpisode,
    TimelineEvent,
    evolve,
)
from receiver.model.titles import TitleTemplate

ResolveRunbook = Callable[[dict[str, str], dict[str, str]], Runbook]


class IncidentRows:
    """The incidents and episodes one notification touches, as they stand now."""

    def __init__(
        self,
        n: Notification,
        state: GroupState,
        now: datetime,
        runbook_for: ResolveRunbook,
        context_enabled: bool,
        title: TitleTemplate | None = None,
    ):
        self.n, self.state, self.now = n, state, now
        self.runbook_for, self.context_enabled = runbook_for, context_enabled
        self.title = title
        self.incidents: dict[int, IncidentRow] = dict(state.incidents or {})
        self.episodes: dict[tuple[str, datetime], EpisodeRow] = dict(state.episodes)
        self.fingerprints = {fingerprint for fingerprint, _ in self.episodes}  # of the episodes
        self.new: dict[int, NewEpisode] = {}  # episode ref: its insert-only columns
        self.seen: set[int] = set()  # stored episodes seen again, nothing else changed
        self.modified: dict[int, tuple[str, datetime]] = {}  # stored episodes changed
        self.open_ref = state.open_incident_id
        self.resolved_only: int | None = None  # the incident a resolve of nothing seen opened
        self.counts = {o: 0 for o in AlertOutcome}
        self.touched: set[int] = set()
        self.changed: set[int] = set()
        self.opened: set[int] = set()
        self.resolved: set[int] = set()
        self.events: list[TimelineEvent] = []
        self.labels: dict[tuple[int, str, str], None] = {}
        self.missing: list[str] = []
        self.new_incident_refs: list[int] = []

    def _open(self, alert: AlertEvent, firing: bool) -> int:
        ref = -1 - len(self.new_incident_refs)
        self.new_incident_refs.append(ref)
        self.incidents[ref] = opening_row(ref, self.n, alert, self.now, firing, self.title)
        if self.n.route_labels:  # the alerts' own labels are indexed with their episodes
            for name, value in indexable(route_only_labels(self.n)):
                self.labels[(ref, name, value)] = None
        if firing:
            self.opened.add(ref)
        kind = "opened" if firing else "opened_by_resolve"
        self._event(ref, kind, alert.fingerprint, brief(alert))
        return ref

    def _add_episode(self, alert: AlertEvent, ref: int, firing: bool) -> None:
        runbook = self.runbook_for(alert.labels, alert.annotations)
        row = EpisodeRow(
            ref=-1 - len(self.new),
            incident_ref=ref,
            fingerprint=alert.fingerprint,
            starts_at=alert.starts_at,
            status=FIRING if firing else RESOLVED,
            ends_at=None if firing else (alert.ends_at or self.now),
            resolution=None if firing else "resolved",
            annotations=alert.annotations,
            last_received_at=self.now,
        )
        self.new[row.ref] = NewEpisode(
            row=row,
            fingerprint_derived=alert.fingerprint_derived,
            seen_firing=firing,
            alertname=clip(alert.alertname, 255) or "",
            labels=alert.labels,
            generator_url=alert.generator_url,
            first_received_at=self.now,
            runbook_url=runbook.url,
            runbook_source=runbook.source,
            guidance=runbook.guidance,
            context_state="pending" if self.context_enabled else "none",
        )
        self._put(row)
        incident = self.incidents[ref]
        if runbook.missing:
            self.missing.append(alert.alertname)
        # the alerts of a group share most labels: the ones this incident has had already
        # are in its search text and label index
        fresh = {k: v for k, v in alert.labels.items() if (ref, k, v) not in self.labels}
        extra = [v for v in fresh.values() if v.lower() not in incident.search_text]
        self.incidents[ref] = evolve(
            incident,
            runbook_url=incident.runbook_url or runbook.url,
            guidance=incident.guidance or runbook.guidance,
            runbook_missing=incident.runbook_missing or runbook.missing,
            opened_at=min(incident.opened_at, alert.starts_at),
            search_text=search_text([incident.search_text, *extra])
            if extra
            else incident.search_text,
        )
        for name, value in indexable(fresh):
            self.labels[(ref, name, value)] = None
        self.touched.add(ref)
        self.changed.add(ref)

    def _put(self, episode: EpisodeRow) -> None:
        """Keep the episode's new values (with its sighting counted, if it was only seen)."""
        if episode.ref in self.seen:
            self.seen.discard(episode.ref)
            count = {"last_received_at": self.now, "seen_count": episode.seen_count + 1}
            episode = evolve(episode, **count)
        key = (episode.fingerprint, episode.starts_at)
        self.episodes[key] = episode
        self.fingerprints.add(episode.fingerprint)
        if episode.ref > 0:
            self.modified[episode.ref] = key

    def _end(self, episode: EpisodeRow, at: datetime, resolution: str, kind: str) -> None:
        self._put(evolve(episode, status=RESOLVED, ends_at=at, resolution=resolution))
        self._event(episode.incident_ref, kind, episode.fingerprint, {"resolution": resolution})
        self.touched.add(episode.incident_ref)
        self.changed.add(episode.incident_ref)

    def _event(self, ref: int, kind: str, fingerprint: str | None, detail: dict[str, Any]) -> None:
        if self.n.notification_reason:  # why Alertmanager sent it (0.32+), for the timeline
            detail = {**detail, "notification_reason": self.n.notification_reason}
        self.events.append(TimelineEvent(ref, kind, fingerprint, detail))

    def _resolve(self, ref: int) -> None:
        """Resolved when its last episode ended (the latest end of all its episodes)."""
        ends = [e.ends_at for e in self.episodes.values() if e.incident_ref == ref and e.ends_at]
        if ref == self.state.open_incident_id and self.state.open_latest_end:
            ends.append(self.state.open_latest_end)
        incident = self.incidents[ref]
        resolved_at = max(ends) if ends else self.now
        self.incidents[ref] = evolve(incident, status=RESOLVED, resolved_at=resolved_at)
        self._event(ref, "resolved", None, {})
        self.resolved.add(ref)
        self.open_ref = None

    def _count(self, ref: int, primary: bool) -> None:
        """One more notification on the incident; a duplicate if it changed nothing in it."""
        incident = self.incidents.get(ref)
        if incident is None:  # not loaded: only its counters change (``incidents_needed``)
            assert ref not in self.changed and not self.n.truncated_alerts
            return
        incident = evolve(
            incident,
            notification_count=incident.notification_count + 1,
            last_received_at=self.now,
            duplicate_count=incident.duplicate_count + (ref not in self.changed),
        )
        if self.n.truncated_alerts and not incident.truncated and primary:
            incident = evolve(incident, truncated=True)
            detail = {"truncated_alerts": self.n.truncated_alerts}
            self._event(ref, "truncated", None, detail)
        if ref < 0:
            mine = [e for e in self.episodes.values() if e.incident_ref == ref]
            incident = evolve(
                incident,
                alert_count=len({e.fingerprint for e in mine}),
                episode_count=len(mine),
            )
        self.incidents[ref] = incident

    def _plan(self) -> IntakePlan:
        stored = self.state.incidents or {}
        touched = sorted(self.touched, key=ref_order)
        changed, counted = [], []
        for ref in (r for r in touched if r > 0):
            row = self.incidents.get(ref)
            before = stored.get(ref)
            if row is None or (before is not None and row == _counted(before, self.now)):
                counted.append(ref)
            else:
                changed.append(row)
        changed_episodes = [self.episodes[self.modified[ref]] for ref in sorted(self.modified)]
        new_episodes = [_with_row(n, self.episodes) for n in self.new.values()]
        gained = {n.row.incident_ref for n in self.new.values()}
        return IntakePlan(
            counts=self.counts,
            touched=tuple(touched),
            new_incidents=tuple(self.incidents[r] for r in self.new_incident_refs),
            changed_incidents=tuple(changed),
            counted_incidents=tuple(counted),
            recount=tuple(r for r in touched if r > 0 and r in gained),
            new_episodes=tuple(new_episodes),
            changed_episodes=tuple(changed_episodes),
            seen_episodes=tuple(sorted(self.seen)),
            events=tuple(self.events),
            labels=tuple(self.labels),
            changes={r: c for r in touched if (c := self._change(r))},
            missing_runbooks=tuple(self.missing),
        )

    def _change(self, ref: int) -> str | None:
        if ref in self.opened:
            return "opened"
        if ref in self.resolved:
            return "resolved"
        return "changed" if ref in self.changed else None


def ref_order(ref: int) -> tuple[bool, int]:
    """Stored rows by id, then new ones in the order made (-1, -2, ...)."""
    return (ref < 0, abs(ref))


def _counted(incident: IncidentRow, now: datetime) -> IncidentRow:
    """The incident with one more duplicate notification counted and nothing else."""
    return evolve(
        incident,
        notification_count=incident.notification_count + 1,
        duplicate_count=incident.duplicate_count + 1,
        last_received_at=now,
    )


def _with_row(new: NewEpisode, episodes: dict[tuple[str, datetime], EpisodeRow]) -> NewEpisode:
    """The new episode with its row as it stands now (resolved or counted again since)."""
    row = episodes[(new.row.fingerprint, new.row.starts_at)]
    return new if row is new.row else evolve(new, row=row)
