"""HTTP sessions for the APIs the worker asks (Prometheus, Alertmanager): credentials and TLS."""

from __future__ import annotations

from typing import Protocol

import requests
from pydantic import SecretStr

from receiver.settings import BasicAuthSettings


class UpstreamSettings(Protocol):
    bearer_token: SecretStr | None
    basic_auth: BasicAuthSettings | None
    ca_bundle: str | None
    tls_skip_verify: bool


def upstream_session(settings: UpstreamSettings) -> requests.Session:
    """A session that sends the configured bearer token or basic auth and trusts the CA bundle."""
    session = requests.Session()
    if settings.bearer_token is not None:
        token = settings.bearer_token.get_secret_value()
        session.headers["Authorization"] = f"Bearer {token}"
    elif settings.basic_auth is not None:
        basic = settings.basic_auth
        session.auth = (basic.username, basic.password.get_secret_value())
    session.verify = False if settings.tls_skip_verify else (settings.ca_bundle or True)
    return session
