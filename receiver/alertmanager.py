"""A client of Alertmanager's API v2: which alerts does the cluster still hold active?"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests

from receiver.http import upstream_session
from receiver.settings import AlertmanagerSettings

# every alert that has not resolved, whether it is notified, silenced, inhibited or still new
ACTIVE = {"active": "true", "silenced": "true", "inhibited": "true", "unprocessed": "true"}


class AlertmanagerUnavailable(Exception):
    """No configured Alertmanager answered: nothing can be concluded about any alert."""


@dataclass
class ActiveAlerts:
    """The fingerprints the answering Alertmanagers hold active, and who did not answer."""

    fingerprints: set[str] = field(default_factory=set)
    answered: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # "host: reason"


class AlertmanagerClient:
    def __init__(self, settings: AlertmanagerSettings):
        self.urls = [u.rstrip("/") for u in settings.urls]
        self.timeout = settings.timeout_seconds
        self.session = upstream_session(settings)

    def close(self) -> None:
        self.session.close()

    def active(self) -> ActiveAlerts:
        """The union over the cluster (peers share alerts); raise if no Alertmanager answers."""
        found = ActiveAlerts()
        for url in self.urls:
            host = urlsplit(url).netloc  # never the credentials: they are not in the URL
            try:
                found.fingerprints |= self._fingerprints(url)
                found.answered.append(host)
            except AlertmanagerUnavailable as exc:
                found.failed.append(f"{host}: {exc}")
        if not found.answered:
            raise AlertmanagerUnavailable("; ".join(found.failed) or "no Alertmanager configured")
        return found

    def _fingerprints(self, url: str) -> set[str]:
        try:
            response = self.session.get(f"{url}/api/v2/alerts", params=ACTIVE, timeout=self.timeout)
        except requests.Timeout:
            raise AlertmanagerUnavailable(f"timed out after {self.timeout:g} s") from None
        except requests.RequestException as exc:
            raise AlertmanagerUnavailable(f"unreachable ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise AlertmanagerUnavailable(f"HTTP {response.status_code}")
        try:
            alerts = response.json()
            return {a["fingerprint"] for a in alerts if isinstance(a["fingerprint"], str)}
        except (ValueError, TypeError, KeyError):
            raise AlertmanagerUnavailable("malformed answer (not a list of alerts)") from None
