"""Database errors in the receiver's terms, so that the layers above import no SQLAlchemy.

``storage_errors()`` wraps one transaction: a write that raced another (a unique constraint
hit first by another worker or replica) and a pooled connection the server dropped become
``WriteRaced`` (worth one more try, which sees the other's rows or takes a fresh connection);
a value the database refuses becomes ``InvalidPayload``; anything else, and a deadline that
passed (it would pass again), becomes ``StorageUnavailable``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError

from receiver.model.errors import InvalidPayload, StorageUnavailable
from receiver.store.deadlines import timed_out
from receiver.store.health import describe

log = logging.getLogger(__name__)


class WriteRaced(Exception):
    """A transaction lost a race or its connection; ``reason`` names no stored value."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@contextmanager
def storage_errors(retry: bool = True) -> Iterator[None]:
    """Translate the database errors raised inside (see the module's docstring); with
    ``retry`` False, a race is ``StorageUnavailable`` too (for callers that do not retry)."""
    try:
        yield
    except IntegrityError as exc:
        if not retry:
            raise StorageUnavailable(describe(exc)) from exc
        raise WriteRaced(describe(exc)) from exc
    except DataError as exc:
        # a value the database refuses (validation should have caught it): not transient
        log.error("a value could not be stored: %s", describe(exc))
        message = f"a value cannot be stored ({describe(exc)})"
        raise InvalidPayload([{"field": "(body)", "message": message}]) from exc
    except DBAPIError as exc:
        if retry and exc.connection_invalidated and not timed_out(exc):
            # the pool has let the dropped connection go: a retry takes a fresh one
            raise WriteRaced(f"connection lost: {describe(exc)}") from exc
        raise StorageUnavailable(describe(exc)) from exc
    except SQLAlchemyError as exc:
        raise StorageUnavailable(describe(exc)) from exc
