"""Who may do what in the UI, and how many wrong passwords a login may take (pure values)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class Role(StrEnum):
    VIEWER = "viewer"  # reads incidents
    RESPONDER = "responder"  # also acknowledges, silences and adds notes


class Via(StrEnum):
    """How a person got in: it is recorded with every action they take."""

    PASSWORD = "password"  # a local user of ui.users
    HEADER = "header"  # a reverse proxy's trusted header
    OIDC = "oidc"  # an OpenID Connect identity provider


@dataclass(frozen=True)
class Identity:
    """The person behind a UI request."""

    name: str
    role: Role
    via: Via

    @property
    def can_act(self) -> bool:
        return self.role is Role.RESPONDER


def role_for_groups(
    groups: Iterable[str], responder_groups: Iterable[str], viewer_groups: Iterable[str]
) -> Role | None:
    """The role an identity provider's groups give: responder wins; None means no access."""
    held = set(groups)
    if held & set(responder_groups):
        return Role.RESPONDER
    if held & set(viewer_groups):
        return Role.VIEWER
    return None


@dataclass(frozen=True)
class LoginLimit:
    """At most ``attempts`` failed logins per key (a user, a client address) in a fixed window
    that starts with the key's first failure; then refused until the window ends."""

    attempts: int
    window: timedelta

    def wait(self, failures: int, window_started_at: datetime, now: datetime) -> float | None:
        """Seconds until the key may try again, or None when it may try now."""
        ends = window_started_at + self.window
        if failures < self.attempts or now >= ends:
            return None
        return max(1.0, (ends - now).total_seconds())
