"""Domain errors; ``receiver.web.errors`` maps each to one HTTP status in one place."""

from __future__ import annotations


class ReceiverError(Exception):
    """Base class of errors the receiver reports to its callers."""


class InvalidPayload(ReceiverError):
    """The body is not an Alertmanager webhook; ``errors`` lists each offending field."""

    def __init__(self, errors: list[dict[str, str]]):
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


class StorageUnavailable(ReceiverError):
    """The database could not durably store the notification; the sender should retry."""


class FilterTooCostly(ReceiverError):
    """A filter would cost more than the receiver allows one request (a regex matcher on a
    label with too many distinct values); ``field`` names the query parameter to narrow."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
