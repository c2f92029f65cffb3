"""A client of Alertmanager's API v2: which alerts does the cluster still hold active for some
receivers?"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests

from receiver.http import upstream_session
from receiver.settings import AlertmanagerSettings

# every alert that has not resolved, whether it is notified, silenced, inhibited or still new
ACTIVE = {"active": "true", "silenced": "true", "inhibited": "true", "unprocessed": "true"}
# an empty character class: no receiver name matches (asked when there is nothing to check, so
# an Alertmanager that does not answer is still noticed)
NO_RECEIVER = r"[^\x00-\x{10FFFF}]"


def receiver_regex(names: Iterable[str]) -> str:
    """Alertmanager's ``receiver`` parameter for exactly these names. Alertmanager compiles it
    with Go's regexp as ``^(?:...)$`` and keeps the alerts whose current routes reach a receiver
    it matches. re.escape puts a backslash only before ASCII punctuation and whitespace, which
    Go reads as the character itself."""
    escaped = sorted(re.escape(name) for name in set(names))
    return "|".join(escaped) if escaped else NO_RECEIVER


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

    def active(self, receivers: Iterable[str]) -> ActiveAlerts:
        """The alerts held for these receivers, the union over the cluster (peers share alerts);
        raise if no Alertmanager answers."""
        found = ActiveAlerts()
        params = {**ACTIVE, "receiver": receiver_regex(receivers)}
        for url in self.urls:
            host = urlsplit(url).netloc  # never the credentials: they are not in the URL
            try:
                found.fingerprints |= self._fingerprints(url, params)
                found.answered.append(host)
            except AlertmanagerUnavailable as exc:
                found.failed.append(f"{host}: {exc}")
        if not found.answered:
            raise AlertmanagerUnavailable("; ".join(found.failed) or "no Alertmanager configured")
        return found

    def _fingerprints(self, url: str, params: dict[str, str]) -> set[str]:
        try:
            response = self.session.get(f"{url}/api/v2/alerts", params=params, timeout=self.timeout)
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
