"""The login stories: open a session, find it again, end every session of a person; refuse
password guessing before it costs a password hash.

Sessions live in the database (``ui_sessions``): the cookie carries a random token, the row its
SHA-256. So a logout or a removed user ends every session of that person on every replica, and
a copied cookie is worth nothing afterwards.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from receiver.model.access import Identity, LoginLimit, Role, Via
from receiver.model.errors import StorageUnavailable
from receiver.store.sessions import find_session, read_failures
from receiver.store.unit_of_work import UnitOfWorkFactory

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class LoginLimits:
    """How many failed password logins a user and a client address may have in a window."""

    per_user: LoginLimit
    per_address: LoginLimit

    def keys(self, username: str, address: str | None) -> list[tuple[str, LoginLimit]]:
        keys = [(f"user:{username}", self.per_user)]
        if address:
            keys.append((f"addr:{address}", self.per_address))
        return keys


@contextmanager
def _storage() -> Iterator[None]:
    try:
        yield
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        raise StorageUnavailable(type(orig).__name__) from exc


def login_wait(
    engine: Engine, limits: LoginLimits, username: str, address: str | None, clock: Clock
) -> float | None:
    """Seconds before this user or address may try a password again; None: try now."""
    keyed = limits.keys(username, address)
    with _storage():
        counted = read_failures(engine, [key for key, _ in keyed])
    now = clock()
    waits = [limit.wait(*counted[key], now) for key, limit in keyed if key in counted]
    found = [w for w in waits if w is not None]
    return max(found) if found else None


def login_failed(
    uow_factory: UnitOfWorkFactory,
    limits: LoginLimits,
    username: str,
    address: str | None,
    clock: Clock,
) -> None:
    """Count a wrong password against the user and the address."""
    keys = [key for key, _ in limits.keys(username, address)]
    with _storage(), uow_factory() as uow:
        uow.logins.fail(keys, clock(), limits.per_user.window)
        uow.commit()


def open_session(
    uow_factory: UnitOfWorkFactory,
    identity: Identity,
    lifetime: timedelta,
    clock: Clock,
    remote_addr: str | None,
    user_agent: str | None,
) -> str:
    """Store a new session for ``identity`` and return its token (for the cookie only)."""
    token = secrets.token_urlsafe(32)
    now = clock()
    with _storage(), uow_factory() as uow:
        uow.logins.add(
            _digest(token),
            identity.name,
            identity.role.value,
            identity.via.value,
            now,
            now + lifetime,
            remote_addr,
            user_agent,
        )
        if identity.via is Via.PASSWORD:
            uow.logins.forgive(f"user:{identity.name}")
        uow.commit()
    return token


def session_identity(engine: Engine, token: str, clock: Clock) -> Identity | None:
    """Who holds this session token, while it lasts; None for an unknown or ended one."""
    with _storage():
        row = find_session(engine, _digest(token), clock())
    if row is None:
        return None
    return Identity(row.username, Role(row.role), Via(row.via))


def end_sessions(uow_factory: UnitOfWorkFactory, username: str) -> int:
    """End every session of ``username`` on every replica (a logout does it)."""
    with _storage(), uow_factory() as uow:
        ended = uow.logins.end_all_of(username)
        uow.commit()
    return ended


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
