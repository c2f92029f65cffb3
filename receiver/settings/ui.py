"""Settings of the incident UI: who logs in (local users, a trusted proxy header, OpenID
Connect), which role each gets, how long a session lasts and how many wrong passwords a
login may take."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, field_validator

from receiver.settings.base import _Section


class LoginLimitSettings(_Section):
    """Failed password logins allowed per window, per user and per client address, counted
    by every replica together; beyond them, 429 with Retry-After until the window ends."""

    per_user: int = Field(10, ge=1)
    per_address: int = Field(30, ge=1)
    window_minutes: float = Field(15, gt=0)


class OidcSettings(_Section):
    """Login through an OpenID Connect identity provider (authorization code flow with PKCE)."""

    # the issuer: its /.well-known/openid-configuration is read at the first login
    issuer: str = Field(pattern=r"^https?://")
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    scopes: str = "openid email profile"
    # the ID token or userinfo claims that name the person and list their groups
    username_claim: str = "preferred_username"
    groups_claim: str = "groups"
    label: str = "Log in with single sign-on"  # the button on the login page
    ca_bundle: str | None = None  # trust this CA for the provider (a private PKI)
    timeout_seconds: float = Field(5, gt=0, le=60)


class UISettings(_Section):
    """The incident history UI: its own users, never the webhook credentials."""

    # username -> password hash (werkzeug.security.generate_password_hash), e.g. from a file
    users: dict[str, SecretStr] = Field(default_factory=dict)
    # local users who may only read (the others also acknowledge, silence and add notes)
    viewers: list[str] = Field(default_factory=list)
    secret_key: SecretStr | None = None  # signs session cookies; same on every replica
    # with a reverse proxy that authenticates people: the header naming the user, and
    # optionally one listing their groups (comma-separated), mapped to roles as below
    trusted_user_header: str | None = None
    trusted_groups_header: str | None = None
    oidc: OidcSettings | None = None
    # identity-provider groups (OIDC, or the trusted groups header) that give each role;
    # anybody in neither is refused
    responder_groups: list[str] = Field(default_factory=list)
    viewer_groups: list[str] = Field(default_factory=list)
    session_hours: float = Field(12, gt=0, le=24 * 31)  # a login lasts this long at most
    login_limits: LoginLimitSettings = Field(default_factory=LoginLimitSettings)
    cookie_secure: bool = True
    page_size: int = Field(25, ge=1, le=200)

    @field_validator("viewers", "responder_groups", "viewer_groups", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):  # RECEIVER_UI__VIEWER_GROUPS=sre,ml-platform
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @property
    def enabled(self) -> bool:
        return bool(self.users) or self.trusted_user_header is not None or self.oidc is not None

    @property
    def maps_groups(self) -> bool:
        """Whether identities come with groups that decide their role."""
        return self.oidc is not None or self.trusted_groups_header is not None

    def problems(self) -> list[str]:
        """What no field validator alone can see."""
        errors = []
        if self.enabled and self.secret_key is None:
            errors.append(
                "ui.secret_key: required when UI users, a trusted header or OIDC are configured"
            )
        if self.maps_groups and not (self.responder_groups or self.viewer_groups):
            errors.append(
                "ui.responder_groups: name the identity-provider groups that may act (and "
                "ui.viewer_groups those that may read); without them nobody gets in"
            )
        if self.trusted_user_header and (self.users or self.oidc):
            errors.append(
                "ui.trusted_user_header: the proxy decides who is logged in; it cannot be "
                "combined with ui.users or ui.oidc"
            )
        return errors
