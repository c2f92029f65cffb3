"""Rejected webhook requests, recorded from plain values: the newest few kept for operators."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from receiver.store.tables import RejectedRequest
from receiver.store.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class Rejection:
    """A webhook request the intake refused, and why."""

    received_at: datetime
    status_code: int
    reason: str  # the error code answered (invalid_payload, payload_too_large, ...)
    errors: list[dict[str, str]]  # each offending field with its message
    receiver: str | None  # from the path, as given
    remote_addr: str | None
    content_type: str | None
    body_size: int | None  # as the client declared it
    body: bytes | None  # its first bytes, when kept


def record_rejection(uow: UnitOfWork, rejection: Rejection, keep: int) -> None:
    """Add the rejection to ``uow``'s transaction, keeping only the newest ``keep`` rows."""
    row = RejectedRequest(
        received_at=rejection.received_at,
        status_code=rejection.status_code,
        reason=rejection.reason,
        errors=rejection.errors,
        receiver=rejection.receiver,
        remote_addr=rejection.remote_addr,
        content_type=rejection.content_type,
        body_size=rejection.body_size,
        body=rejection.body,
    )
    uow.rejected.add(row, keep=keep)
