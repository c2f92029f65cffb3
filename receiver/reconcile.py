"""Reconcile open incidents with Alertmanager: resolve what it lost the resolve of.

Alertmanager can drop a resolve (the alert resolved while silenced or inhibited, a notification
that failed for longer than its retries, a restart without storage). Each pass asks every
configured Alertmanager for the alerts it still holds active for the receivers of the firing
episodes (its ``receiver`` filter: the rest of Alertmanager's alerts are never fetched). A
firing episode that none of them reports becomes *stale* (a timeline entry says since when); if
it comes back the mark is cleared; once stale for ``stale_grace_minutes`` it is resolved by a
payload the receiver writes itself, so the incident, its timeline and its deliveries change
exactly as for a real resolve.
Nothing is concluded when no Alertmanager answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from receiver import watchdog
from receiver.alertmanager import AlertmanagerClient, AlertmanagerUnavailable
from receiver.service import IntakeRules, apply_conclusion, rfc3339
from receiver.settings import AlertmanagerSettings
from receiver.store.tables import AlertEpisode, AlertGroup
from receiver.store.unit_of_work import UnitOfWorkFactory

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    """What one pass saw and did."""

    checked: int = 0
    marked_stale: list[int] = field(default_factory=list)  # episode ids
    cleared: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    incidents: list[int] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)  # Alertmanagers that did not answer


class Reconciler:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        client: AlertmanagerClient,
        rules: IntakeRules,
        settings: AlertmanagerSettings,
        clock: Callable[[], datetime],
    ):
        self.uow_factory, self.client, self.rules, self.clock = uow_factory, client, rules, clock
        self.grace = timedelta(minutes=settings.stale_grace_minutes)
        self.min_age = timedelta(seconds=settings.min_age_seconds)

    def run_once(self) -> ReconcileReport:
        """One pass; raise AlertmanagerUnavailable when no Alertmanager answered."""
        with self.uow_factory() as uow:  # not held open while Alertmanager is asked
            receivers = uow.stale.firing_receivers(received_before=self.clock() - self.min_age)
        receivers.discard(watchdog.RECEIVER)  # the receiver's own: Alertmanager never knew
        active = self.client.active(receivers)
        now = self.clock()
        report = ReconcileReport(unavailable=active.failed)
        where = ", ".join(active.answered)
        with self.uow_factory() as uow:
            firing = [  # a receiver first seen since it was asked about waits for the next pass
                (e, g)
                for e, g in uow.stale.firing(received_before=now - self.min_age)
                if g.receiver in receivers
            ]
            report.checked = len(firing)
            for episode, _group in firing:
                present = episode.fingerprint in active.fingerprints
                if present and episode.absent_since is not None:
                    detail = {"reason": f"Alertmanager ({where}) reports it active again"}
                    if uow.stale.mark(episode, False, now, detail):
                        report.cleared.append(episode.id)
                elif not present and episode.absent_since is None:
                    detail = {
                        "reason": f"Alertmanager ({where}) no longer reports it active",
                        "resolve_at": rfc3339(now + self.grace),
                    }
                    if uow.stale.mark(episode, True, now, detail):
                        report.marked_stale.append(episode.id)
            uow.commit()
        cutoff = now - self.grace
        absent = {e.id: e.absent_since for e, _ in firing if e.id not in report.cleared}
        absent.update(dict.fromkeys(report.marked_stale, now))
        due = {g.id: g for e, g in firing if (since := absent.get(e.id)) and since <= cutoff}
        for group in due.values():
            self._resolve_due(group, now, report)
        _log(report)
        return report

    def _resolve_due(self, group: AlertGroup, now: datetime, report: ReconcileReport) -> None:
        """Resolve the group's episodes stale for longer than the grace, in one transaction."""
        with self.uow_factory() as uow:
            uow.groups.lock(group.id)  # another worker may be doing the same: decide under lock
            episodes = uow.stale.due(group.id, absent_before=now - self.grace)
            if not episodes:
                return
            everything = len(episodes) == len(uow.stale.firing_of_group(group.id))
            for incident_id in sorted({e.incident_id for e in episodes}):  # why, before what
                uow.incidents.add_event(
                    uow.incidents.get(incident_id),
                    now,
                    "reconciled",
                    {
                        "reason": f"Alertmanager had not reported it for {self.grace} "
                        "(a lost resolve): resolved by the receiver",
                        "fingerprints": [e.fingerprint for e in episodes],
                    },
                )
            result = apply_conclusion(
                uow, _resolve_payload(group, episodes, everything), now, self.rules, "reconcile"
            )
            uow.commit()
        report.resolved += [e.id for e in episodes]
        report.incidents = sorted({*report.incidents, *result.incident_ids})


def _resolve_payload(
    group: AlertGroup, episodes: list[AlertEpisode], everything: bool
) -> dict[str, object]:
    """A v4 webhook body resolving these episodes as of when Alertmanager stopped holding them."""
    return {
        "version": "4",
        "receiver": group.receiver,
        "groupKey": group.group_key,
        "status": "resolved" if everything else "firing",
        "groupLabels": group.group_labels,
        "truncatedAlerts": 0,
        "alerts": [
            {
                "status": "resolved",
                "labels": e.labels,
                "annotations": e.annotations,
                "startsAt": rfc3339(e.starts_at),
                "endsAt": rfc3339(e.absent_since or e.last_received_at),
                "generatorURL": e.generator_url or "",
                "fingerprint": e.fingerprint,
            }
            for e in episodes
        ],
    }


def _log(report: ReconcileReport) -> None:
    if report.marked_stale or report.cleared or report.resolved:
        log.info(
            "reconcile: %d firing alert(s) checked, %d newly stale, %d back, %d resolved "
            "(incidents %s)",
            report.checked,
            len(report.marked_stale),
            len(report.cleared),
            len(report.resolved),
            report.incidents,
        )
    if report.unavailable:
        log.warning("reconcile: Alertmanager not answering: %s", "; ".join(report.unavailable))


__all__ = ["AlertmanagerUnavailable", "ReconcileReport", "Reconciler"]
