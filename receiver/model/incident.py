"""The intake's decision: one notification and its group's stored state in, the changes out.

Pure: no I/O. ``decide`` walks the alerts (firing first, each identity once), classifies each
against its stored episode and places new episodes (join the open incident, reopen a flapping
series' incident, or open one); then resolves the open incident when nothing of it fires any
more and counts the notification on every incident it touched. See docs/semantics.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from receiver.model.alerts import AlertEvent, AlertStatus, Notification, most_severe
from receiver.model.dedup import (
    AlertOutcome,
    EpisodeView,
    FlapPolicy,
    IncidentView,
    Placement,
    classify_alert,
    group_fully_resolved,
    place_new_episode,
)
from receiver.model.incident_rows import IncidentRows, ResolveRunbook, ref_order
from receiver.model.incident_text import (
    MAX_SEVERITY,
    brief,
    clip,
)
from receiver.model.intake_state import (
    FIRING,
    EpisodeRow,
    GroupState,
    IntakePlan,
    evolve,
)
from receiver.model.titles import TitleTemplate


@dataclass(frozen=True)
class DecisionRules:
    """What the decision needs besides the state: flapping, runbooks, context."""

    flapping: FlapPolicy
    runbook_for: ResolveRunbook
    context_enabled: bool = False
    title: TitleTemplate | None = None  # intake.title_template


def ordered_alerts(n: Notification) -> list[AlertEvent]:
    """The alerts as the rules take them: firing first (a payload that resolves one alert and
    fires another keeps the group's incident open), each (fingerprint, startsAt) once."""
    seen: set[tuple[str, datetime]] = set()
    out = []
    for alert in sorted(n.alerts, key=lambda a: a.status is not AlertStatus.FIRING):
        if (alert.fingerprint, alert.starts_at) not in seen:
            seen.add((alert.fingerprint, alert.starts_at))
            out.append(alert)
    return out


def incidents_needed(n: Notification, state: GroupState) -> bool:
    """Whether deciding needs the group's incidents: not when every alert is an episode seen
    again that changes nothing but counters (the commonest webhook: a repeat)."""
    if n.truncated_alerts or group_fully_resolved(n.status, n.truncated_alerts):
        return True
    for alert in n.alerts:
        known = state.episodes.get((alert.fingerprint, alert.starts_at))
        if known is None or classify_alert(alert, _view(known)) is AlertOutcome.RESOLVED:
            return True
    return False


def open_firing_needed(n: Notification) -> bool:
    """Whether the open incident's firing episodes are needed: only a resolve can end them all
    (a newer episode that supersedes one joins the same incident)."""
    return any(a.status is AlertStatus.RESOLVED for a in n.alerts) or group_fully_resolved(
        n.status, n.truncated_alerts
    )


def decide(n: Notification, state: GroupState, now: datetime, rules: DecisionRules) -> IntakePlan:
    """The changes one notification (its heartbeats already taken out) makes to its group."""
    return _Decision(n, state, now, rules).run()


_VIEWS = {s.value: EpisodeView(s) for s in AlertStatus}  # frozen: one per status serves all


def _view(episode: EpisodeRow) -> EpisodeView:
    return _VIEWS[episode.status]


class _Decision(IncidentRows):
    """The rules, applied alert by alert to the working rows; only ``run`` is called."""

    def __init__(self, n: Notification, state: GroupState, now: datetime, rules: DecisionRules):
        super().__init__(n, state, now, rules.runbook_for, rules.context_enabled, rules.title)
        self.rules = rules

    def run(self) -> IntakePlan:
        for alert in ordered_alerts(self.n):
            key = (alert.fingerprint, alert.starts_at)
            episode = self.episodes.get(key)
            outcome = classify_alert(alert, _view(episode) if episode else None)
            self.counts[outcome] += 1
            if episode is not None:
                self._seen(episode, outcome, alert)
            elif outcome is AlertOutcome.RESOLVED_UNSEEN:
                self._unseen_resolved(alert)
            else:
                self._new_firing(alert)
        self._finish(group_fully_resolved(self.n.status, self.n.truncated_alerts))
        return self._plan()

    # -- one alert ----------------------------------------------------------------------------

    def _seen(self, episode: EpisodeRow, outcome: AlertOutcome, alert: AlertEvent) -> None:
        """A known episode appears again: count it; resolve it if that is the news."""
        self.touched.add(episode.incident_ref)
        if outcome is AlertOutcome.REPEAT and episode.annotations == alert.annotations:
            self.seen.add(episode.ref)  # the commonest case: only its counters change
            return
        seen = {"last_received_at": self.now, "seen_count": episode.seen_count + 1}
        if outcome is AlertOutcome.STALE_FIRING:
            seen["stale_firing_count"] = episode.stale_firing_count + 1
        elif outcome is AlertOutcome.REPEAT:
            seen["annotations"] = alert.annotations
        episode = evolve(episode, **seen)
        self._put(episode)
        if outcome is AlertOutcome.RESOLVED:
            self._end(episode, alert.ends_at or self.now, "resolved", "alert_resolved")

    def _unseen_resolved(self, alert: AlertEvent) -> None:
        """A resolve for an episode never seen firing goes on the open incident if any."""
        ref = self.open_ref or self.resolved_only
        if ref is None:
            ref = self.resolved_only = self._open(alert, firing=False)
        self._add_episode(alert, ref, firing=False)
        self._event(ref, "alert_resolved_unseen", alert.fingerprint, brief(alert))

    def _new_firing(self, alert: AlertEvent) -> None:
        """A new firing episode: end the series' older firing ones, then place it."""
        policy = self.rules.flapping
        series = (
            sorted(
                (e for (fp, _), e in self.episodes.items() if fp == alert.fingerprint),
                key=lambda e: e.starts_at,
            )
            if alert.fingerprint in self.fingerprints
            else []
        )
        for earlier in series:
            current = self.episodes[(earlier.fingerprint, earlier.starts_at)]
            if current.status == FIRING and current.starts_at < alert.starts_at:
                self._end(current, alert.starts_at, "superseded", "alert_superseded")
        starts = policy.starts_in_window([e.starts_at for e in series], alert.starts_at)
        latest = self.incidents[series[-1].incident_ref] if series else None
        open_view = None
        if self.open_ref is not None:
            o = self.incidents[self.open_ref]
            open_view = IncidentView(o.ref, True, o.flapping, o.resolved_at)
        latest_view = None
        if latest is not None:
            latest_view = IncidentView(
                latest.ref, latest.status == FIRING, latest.flapping, latest.resolved_at
            )
        placement = place_new_episode(open_view, latest_view, starts, alert.starts_at, policy)
        if placement is Placement.JOIN_OPEN:
            assert self.open_ref is not None
            ref = self.open_ref
            self._event(ref, "alert_added", alert.fingerprint, brief(alert))
        elif placement is Placement.REOPEN and latest is not None:
            ref = latest.ref
            if latest.status != FIRING:
                self.incidents[ref] = evolve(latest, status=FIRING, resolved_at=None)
                self._event(ref, "reopened", alert.fingerprint, brief(alert))
            else:
                self._event(ref, "alert_added", alert.fingerprint, brief(alert))
        else:
            ref = self._open(alert, firing=True)
        self.open_ref = ref
        self._add_episode(alert, ref, firing=True)
        incident = self.incidents[ref]
        severity = clip(alert.labels.get("severity"), MAX_SEVERITY)
        if severity != incident.severity:
            incident = evolve(incident, severity=most_severe([incident.severity, severity]))
        if starts > incident.flap_count:
            incident = evolve(incident, flap_count=starts)
        if policy.is_flapping(starts):
            if not incident.flapping:
                detail = {"starts_in_window": starts, "labels": alert.labels}
                self._event(ref, "flapping", alert.fingerprint, detail)
            incident = evolve(incident, flapping=True)
        self.incidents[ref] = incident

    # -- rows ---------------------------------------------------------------------------------

    # -- the end of the notification ----------------------------------------------------------

    def _finish(self, group_resolved: bool) -> None:
        """Resolve the open incident if nothing of it fires any more; count every touched."""
        ref = self.open_ref
        if ref is not None and ref in self.touched:
            firing = self._firing_of(ref)
            if firing is not None:
                if group_resolved:
                    for episode in firing:
                        self._end(episode, self.now, "group_resolved", "alert_resolved")
                    firing = []
                if not firing:
                    self._resolve(ref)
        primary = self.open_ref or self.resolved_only
        for touched in sorted(self.touched, key=ref_order):
            self._count(touched, touched == primary)

    def _firing_of(self, ref: int) -> list[EpisodeRow] | None:
        """The incident's firing episodes (stored ones in id order, then new ones), or None
        for a stored open incident whose firing episodes were not loaded: without a resolve in
        the notification, one of them is still firing (``open_firing_needed``)."""
        found: dict[tuple[str, datetime], EpisodeRow] = {}
        if ref == self.state.open_incident_id:
            if self.state.open_firing is None:
                assert not open_firing_needed(self.n), "open_firing must be loaded"
                return None
            found = {(e.fingerprint, e.starts_at): e for e in self.state.open_firing}
        for key, episode in self.episodes.items():
            if episode.incident_ref == ref or key in found:
                found[key] = episode
        firing = [e for e in found.values() if e.status == FIRING]
        return sorted(firing, key=lambda e: ref_order(e.ref))
