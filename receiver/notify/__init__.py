"""Notifiers: one small interface, one module per vendor, registered here in one place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from receiver.model.delivery import SendResult
from receiver.model.snapshot import IncidentSnapshot, TimelineEntry
from receiver.settings import PagerDutyReceiver, SlackReceiver

if TYPE_CHECKING:
    from receiver.notify.pacing import Pacer


@dataclass(frozen=True)
class DeliveryJob:
    """Everything a notifier needs to send one delivery, read from the database beforehand."""

    delivery_id: int
    idempotency_key: str
    action: str  # trigger | update | resolve
    incident: IncidentSnapshot  # as the batch's read found it (with context and runbook)
    external: dict[str, Any] = field(default_factory=dict)  # what earlier sends remembered
    new_events: tuple[TimelineEntry, ...] = ()  # timeline since the last send
    # an earlier send may have arrived unseen (a claim died mid-send, or a try ended in
    # doubt): look for it before sending again
    reclaimed: bool = False
    incident_url: str | None = None
    as_of: datetime | None = None  # when its batch was claimed: pacing decides as of then
    last_error: str | None = None  # how its previous try ended (None: the first)


class Notifier(Protocol):
    kind: str

    def send(self, job: DeliveryJob) -> SendResult: ...

    def render(self, job: DeliveryJob) -> dict[str, Any]:
        """What ``send`` would send (for dry runs), without sending it."""
        ...

    def close(self) -> None: ...


def build_notifier(
    name: str, settings: PagerDutyReceiver | SlackReceiver, pacer: Pacer
) -> Notifier:
    """The registry: receiver type -> notifier. Adding a vendor is one module and one line.
    ``pacer``: the Slack channels' posting slots, shared by every Slack receiver."""
    from receiver.notify.pagerduty import PagerDutyNotifier
    from receiver.notify.slack import SlackNotifier

    registry: dict[str, Callable[[Any], Notifier]] = {
        "pagerduty": lambda vendor: PagerDutyNotifier(name, vendor),
        "slack": lambda vendor: SlackNotifier(name, vendor, pacer),
    }
    return registry[settings.type](settings)


def redact(text: str, secrets: list[str]) -> str:
    """Remove every secret from a text bound for logs, storage or the API."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[REDACTED]")
    return text
