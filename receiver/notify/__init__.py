"""Notifiers: one small interface, one module per vendor, registered here in one place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from receiver.model.delivery import SendResult
from receiver.model.snapshot import IncidentSnapshot, TimelineEntry
from receiver.settings import PagerDutyReceiver, SlackReceiver


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
    slot: str | None = None  # the channel whose posting slot the worker took for this send


class Notifier(Protocol):
    kind: str

    def send(self, job: DeliveryJob) -> SendResult: ...

    def render(self, job: DeliveryJob) -> dict[str, Any]:
        """What ``send`` would send (for dry runs), without sending it."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SlotRequest:
    """The channel posting slot a send asks the delivery worker for before it runs."""

    channel: str
    # True: a new message, held back without the slot; False: a thread reply, which
    # waits for a later send without it
    needed: bool


@runtime_checkable
class PacedNotifier(Notifier, Protocol):
    """A notifier whose posts the worker paces per channel (``receiver.notify.pacing``)."""

    def slot_request(self, job: DeliveryJob) -> SlotRequest | None:
        """The slot this send may post in, if any; it may ask the vendor (a channel's ID),
        never the database."""
        ...


def build_notifier(name: str, settings: PagerDutyReceiver | SlackReceiver) -> Notifier:
    """The registry: receiver type -> notifier. Adding a vendor is one module and one line."""
    from receiver.notify.pagerduty import PagerDutyNotifier
    from receiver.notify.slack import SlackNotifier

    registry: dict[str, Callable[[Any], Notifier]] = {
        "pagerduty": lambda vendor: PagerDutyNotifier(name, vendor),
        "slack": lambda vendor: SlackNotifier(name, vendor),
    }
    return registry[settings.type](settings)


def redact(text: str, secrets: list[str]) -> str:
    """Remove every secret from a text bound for logs, storage or the API."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[REDACTED]")
    return text
