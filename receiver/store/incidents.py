"""Applies the outcome of each alert to episodes, incidents and their timeline, in one session."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from receiver.enrich.runbooks import Runbook, RunbookCatalogue
from receiver.model.alerts import AlertEvent, AlertStatus, Notification, most_severe
from receiver.model.dedup import AlertOutcome, IncidentView
from receiver.store.tables import AlertEpisode, AlertGroup, Incident

if TYPE_CHECKING:
    from receiver.store.unit_of_work import UnitOfWork

MAX_TITLE = 500
MAX_SEVERITY = 32  # the column width; labels keep the whole value
MAX_SEARCH_TEXT = 8000


class IncidentWriter:
    """Everything one notification changes in its group, collected for one commit."""

    def __init__(
        self,
        uow: UnitOfWork,
        group: AlertGroup,
        n: Notification,
        receipt_id: int,
        now: datetime,
        runbooks: RunbookCatalogue,
        context_enabled: bool,
    ):
        self.uow, self.group, self.n, self.receipt_id, self.now = uow, group, n, receipt_id, now
        self.runbooks, self.context_enabled = runbooks, context_enabled
        self.missing_runbooks: list[str] = []
        self.open_incident: Incident | None = uow.incidents.open_for_group(group.id)
        self._resolved_only: Incident | None = None
        self.touched: set[int] = set()
        self._changed: set[int] = set()
        self.opened: set[int] = set()  # opened firing by this notification
        self.resolved: set[int] = set()  # resolved by this notification
        self._incidents: dict[int, Incident] = {}
        if self.open_incident is not None:
            self._incidents[self.open_incident.id] = self.open_incident

    def open_view(self) -> IncidentView | None:
        incident = self.open_incident
        if incident is None:
            return None
        return IncidentView(incident.id, True, incident.flapping, incident.resolved_at)

    def incident(self, incident_id: int) -> Incident:
        """The incident with this id, loaded once per notification."""
        if incident_id not in self._incidents:
            self._incidents[incident_id] = self.uow.incidents.get(incident_id)
        return self._incidents[incident_id]

    def record_seen(self, episode: AlertEpisode, outcome: AlertOutcome, alert: AlertEvent) -> None:
        """A known episode appears again: count it; resolve it if that is the news."""
        episode.last_received_at = self.now
        episode.seen_count += 1
        self.touched.add(episode.incident_id)
        if outcome is AlertOutcome.STALE_FIRING:
            episode.stale_firing_count += 1
        elif outcome is AlertOutcome.REPEAT:
            episode.annotations = alert.annotations
        elif outcome is AlertOutcome.RESOLVED:
            self._end(episode, alert.ends_at or self.now, "resolved", "alert_resolved")

    def supersede(self, episode: AlertEpisode, at: datetime) -> None:
        """A newer episode of the same series began: the old one ended (its resolve was lost)."""
        self._end(episode, at, "superseded", "alert_superseded")

    def add_unseen_resolved(self, alert: AlertEvent) -> AlertEpisode:
        """Record a resolve for an episode never seen firing, on the open incident if any."""
        incident = self.open_incident or self._resolved_only
        if incident is None:
            incident = self._resolved_only = self._open(alert, firing=False)
        episode = self._new_episode(alert, incident, firing=False)
        self._event(incident, "alert_resolved_unseen", alert.fingerprint, _brief(alert))
        return episode

    def add_firing(
        self, alert: AlertEvent, target: Incident | None, starts: int, flapping: bool
    ) -> AlertEpisode:
        """A new firing episode joins ``target`` (reopening it if resolved) or a new incident."""
        if target is None:
            incident = self._open(alert, firing=True)
        elif target.status != AlertStatus.FIRING:
            incident = target
            incident.status, incident.resolved_at = AlertStatus.FIRING.value, None
            incident.open_group_id = self.group.id
            self._event(incident, "reopened", alert.fingerprint, _brief(alert))
        else:
            incident = target
            self._event(incident, "alert_added", alert.fingerprint, _brief(alert))
        self.open_incident = incident
        episode = self._new_episode(alert, incident, firing=True)
        severity = _clip(alert.labels.get("severity"), MAX_SEVERITY)
        incident.severity = most_severe([incident.severity, severity])
        incident.flap_count = max(incident.flap_count, starts)
        if flapping:
            self._mark_flapping(incident, alert, starts)
        return episode

    def finish(self, group_resolved: bool) -> None:
        """Resolve the open incident if nothing fires any more; update counters of all touched."""
        incident = self.open_incident
        if incident is not None and incident.id in self.touched:
            self.uow.session.flush()  # type: ignore[union-attr]
            episodes = self.uow.episodes.of_incident(incident.id)
            firing = [e for e in episodes if e.status == AlertStatus.FIRING.value]
            if group_resolved:
                for episode in firing:
                    self._end(episode, self.now, "group_resolved", "alert_resolved")
                firing = []
            if not firing:
                self._resolve(incident, episodes)
        for incident_id in self.touched:
            self._count(self.incident(incident_id))

    # -- internals ----------------------------------------------------------------------------

    def _count(self, incident: Incident) -> None:
        incident.notification_count += 1
        incident.last_received_at = self.now
        if incident.id not in self._changed:
            incident.duplicate_count += 1
        if self.n.truncated_alerts and not incident.truncated and incident.id == self._primary():
            incident.truncated = True
            self._event(incident, "truncated", None, {"truncated_alerts": self.n.truncated_alerts})
        if incident.id in self._changed:
            self.uow.incidents.refresh_counts(incident)

    def _primary(self) -> int | None:
        incident = self.open_incident or self._resolved_only
        return incident.id if incident else None

    def _open(self, alert: AlertEvent, firing: bool) -> Incident:
        n = self.n
        title = n.common_annotations.get("summary") or alert.annotations.get("summary")
        title = (title or alert.alertname)[:MAX_TITLE]
        labels = n.common_labels or alert.labels
        incident = self.uow.incidents.add(
            Incident(
                group_id=self.group.id,
                open_group_id=self.group.id if firing else None,
                status=(AlertStatus.FIRING if firing else AlertStatus.RESOLVED).value,
                receiver=n.receiver,
                alertname=_clip(labels.get("alertname", alert.alertname), 255),
                severity=_clip(alert.labels.get("severity"), MAX_SEVERITY),
                title=title,
                labels=labels,
                annotations=n.common_annotations or alert.annotations,
                external_url=n.external_url,
                search_text=_search_text([title, n.receiver, *labels.values()]),
                opened_at=alert.starts_at,
                resolved_at=None if firing else (alert.ends_at or self.now),
                first_received_at=self.now,
                last_received_at=self.now,
                notification_count=0,
                duplicate_count=0,
                alert_count=0,
                episode_count=0,
                flapping=False,
                flap_count=0,
                truncated=False,
                opened_by_resolve=not firing,
                runbook_missing=False,
            )
        )
        self._incidents[incident.id] = incident
        if firing:
            self.opened.add(incident.id)
        kind = "opened" if firing else "opened_by_resolve"
        self._event(incident, kind, alert.fingerprint, _brief(alert))
        return incident

    def _new_episode(self, alert: AlertEvent, incident: Incident, firing: bool) -> AlertEpisode:
        runbook = self.runbooks.resolve(alert.labels, alert.annotations)
        self._note_runbook(incident, alert, runbook)
        episode = self.uow.episodes.add(
            AlertEpisode(
                group_id=self.group.id,
                incident_id=incident.id,
                fingerprint=alert.fingerprint,
                fingerprint_derived=alert.fingerprint_derived,
                status=(AlertStatus.FIRING if firing else AlertStatus.RESOLVED).value,
                resolution=None if firing else "resolved",
                seen_firing=firing,
                alertname=_clip(alert.alertname, 255),
                labels=alert.labels,
                annotations=alert.annotations,
                generator_url=alert.generator_url,
                starts_at=alert.starts_at,
                ends_at=None if firing else (alert.ends_at or self.now),
                first_received_at=self.now,
                last_received_at=self.now,
                seen_count=1,
                stale_firing_count=0,
                runbook_url=runbook.url,
                runbook_source=runbook.source,
                guidance=runbook.guidance,
                context_state="pending" if self.context_enabled else "none",
            )
        )
        self.uow.incidents.index_labels(incident.id, alert.labels)
        if incident.opened_at > alert.starts_at:
            incident.opened_at = alert.starts_at
        extra = [v for v in alert.labels.values() if v.lower() not in incident.search_text]
        if extra:
            incident.search_text = _search_text([incident.search_text, *extra])
        self.touched.add(incident.id)
        self._changed.add(incident.id)
        return episode

    def _note_runbook(self, incident: Incident, alert: AlertEvent, runbook: Runbook) -> None:
        """The incident shows the first runbook of its alerts and flags any alert without."""
        if incident.runbook_url is None and runbook.url:
            incident.runbook_url = runbook.url
        if incident.guidance is None and runbook.guidance:
            incident.guidance = runbook.guidance
        if runbook.missing:
            incident.runbook_missing = True
            self.missing_runbooks.append(alert.alertname)

    def _end(self, episode: AlertEpisode, at: datetime, resolution: str, kind: str) -> None:
        episode.status, episode.ends_at, episode.resolution = "resolved", at, resolution
        incident = self.incident(episode.incident_id)
        self._event(incident, kind, episode.fingerprint, {"resolution": resolution})
        self.touched.add(incident.id)
        self._changed.add(incident.id)

    def change_of(self, incident_id: int) -> str | None:
        """What this notification did to an incident: opened, resolved, changed or nothing."""
        if incident_id in self.opened:
            return "opened"
        if incident_id in self.resolved:
            return "resolved"
        return "changed" if incident_id in self._changed else None

    def _resolve(self, incident: Incident, episodes: list[AlertEpisode]) -> None:
        ends = [e.ends_at for e in episodes if e.ends_at]
        incident.status = AlertStatus.RESOLVED.value
        incident.open_group_id = None
        incident.resolved_at = max(ends) if ends else self.now
        self._event(incident, "resolved", None, {})
        self.resolved.add(incident.id)
        self.open_incident = None

    def _mark_flapping(self, incident: Incident, alert: AlertEvent, starts: int) -> None:
        if not incident.flapping:
            detail = {"starts_in_window": starts, "labels": alert.labels}
            self._event(incident, "flapping", alert.fingerprint, detail)
        incident.flapping = True

    def _event(
        self, incident: Incident, kind: str, fingerprint: str | None, detail: dict[str, Any]
    ) -> None:
        self.uow.incidents.add_event(
            incident, self.now, kind, detail, fingerprint=fingerprint, receipt_id=self.receipt_id
        )


def _brief(alert: AlertEvent) -> dict[str, object]:
    return {
        "alertname": alert.alertname,
        "starts_at": alert.starts_at.isoformat(),
        "summary": alert.annotations.get("summary"),
    }


def _clip(value: str | None, length: int) -> str | None:
    """Cut a value for an indexed column (the labels keep it whole)."""
    return value[:length] if value is not None else None


def _search_text(parts: list[str]) -> str:
    return " ".join(p.lower() for p in parts if p)[:MAX_SEARCH_TEXT]
