"""The dead man's switch: when the always-firing Watchdog stops arriving, open an incident.

Alertmanager sends the Watchdog alert every ``repeat_interval``; the intake only records its
arrival (a heartbeat, never an incident). When none has arrived for ``missing_after_minutes``
(counted from this process's start if none ever did), the worker opens an incident of its own,
routed like any other alert, and resolves it once the Watchdog arrives again. Both are stored
as payloads the receiver writes itself, so dedup makes repeated checks and several workers
harmless: the incident's start is the moment the Watchdog became overdue, the same every time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from receiver.model.alerts import sha256_hex
from receiver.service import IntakeRules, apply_conclusion, rfc3339
from receiver.settings import WatchdogSettings
from receiver.store.unit_of_work import UnitOfWorkFactory

RECEIVER = "receiver-watchdog"


class Watchdog:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        rules: IntakeRules,
        settings: WatchdogSettings,
        clock: Callable[[], datetime],
    ):
        self.uow_factory, self.rules, self.clock = uow_factory, rules, clock
        self.settings = settings
        self.started_at = clock()
        self.limit = timedelta(minutes=settings.missing_after_minutes)
        self.group_key = f"{{}}:{{watchdog={settings.alertname!r}}}"

    def check(self) -> str:
        """Open or resolve the incident as needed: 'ok', 'missing', 'opened' or 'resolved'."""
        now = self.clock()
        with self.uow_factory() as uow:
            beat = uow.heartbeats.get(self.settings.alertname)
            last = beat.last_seen_at if beat else None
            overdue = (last or self.started_at) + self.limit
            group = uow.groups.find(RECEIVER, sha256_hex(self.group_key))
            firing = uow.stale.firing_of_group(group.id) if group else []
            if now >= overdue and not firing:
                payload = self._payload(overdue, last, ended=None)
            elif now < overdue and firing:
                # the Watchdog is back: the pipeline recovered when it arrived
                payload = self._payload(firing[0].starts_at, last, ended=last or now)
            else:
                return "missing" if firing else "ok"
            apply_conclusion(uow, payload, now, self.rules, "watchdog")
            uow.commit()
        return "opened" if firing == [] else "resolved"

    def _payload(
        self, starts: datetime, last: datetime | None, ended: datetime | None
    ) -> dict[str, object]:
        name = self.settings.alertname
        since = f"since {rfc3339(last)}" if last else "since the worker started"
        minutes = f"{self.limit.total_seconds() / 60:g}"
        return {
            "version": "4",
            "receiver": RECEIVER,
            "groupKey": self.group_key,
            "status": "resolved" if ended else "firing",
            "groupLabels": {"watchdog": name},
            "truncatedAlerts": 0,
            "alerts": [
                {
                    "status": "resolved" if ended else "firing",
                    "labels": {**self.settings.labels, "watchdog": name},
                    "annotations": {
                        "summary": f"No {name} alert for over {minutes} min: alerting may be down",
                        "description": (
                            f"The always-firing {name} alert has not arrived {since}. "
                            "Prometheus, Alertmanager or the path from them to this receiver "
                            "may be broken: alerts may not be reaching anyone."
                        ),
                    },
                    "startsAt": rfc3339(starts),
                    "endsAt": rfc3339(ended) if ended else "0001-01-01T00:00:00Z",
                }
            ],
        }
