"""The whole configuration: every section, and the checks that span sections."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator

from receiver.settings.base import _Section
from receiver.settings.receivers import Receiver, RouteSettings
from receiver.settings.sections import (
    AlertmanagerSettings,
    AuthSettings,
    DatabaseSettings,
    DeliverySettings,
    FlappingSettings,
    IntakeSettings,
    ListenSettings,
    MetricsSettings,
    PrometheusSettings,
    RetentionSettings,
    WatchdogSettings,
)
from receiver.settings.ui import UISettings


class Settings(_Section):
    database_url: str = Field("sqlite:///var/receiver.db", repr=False)  # may hold a password
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    listen: ListenSettings = Field(default_factory=ListenSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    intake: IntakeSettings = Field(default_factory=IntakeSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    flapping: FlappingSettings = Field(default_factory=FlappingSettings)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    alertmanager: AlertmanagerSettings = Field(default_factory=AlertmanagerSettings)
    watchdog: WatchdogSettings = Field(default_factory=WatchdogSettings)
    runbooks_path: str | None = None
    context_path: str | None = None
    slos_path: str | None = None  # per-model SLOs: the context shows each model's error budget
    xids_path: str | None = None  # the XID catalogue (config/xids.yaml); read by nothing yet
    receivers: dict[str, Receiver] = Field(default_factory=dict)
    routes: list[RouteSettings] = Field(default_factory=list)
    default_receivers: list[str] = Field(default_factory=list)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    ui: UISettings = Field(default_factory=UISettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"  # json: one object per line, with trace ids
    public_url: str | None = None

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return upper

    def secret_values(self) -> tuple[str, ...]:
        """Every configured secret, for redacting text bound for storage, the API or logs."""
        found: list[str] = []

        def walk(value: Any) -> None:
            if isinstance(value, SecretStr):
                found.append(value.get_secret_value())
            elif isinstance(value, BaseModel):
                for name in type(value).model_fields:
                    walk(getattr(value, name))
            elif isinstance(value, dict):
                for item in value.values():
                    walk(item)
            elif isinstance(value, list):
                for item in value:
                    walk(item)

        walk(self)
        return tuple(sorted({s for s in found if len(s) >= 4}, key=len, reverse=True))

    def check_ui(self) -> list[str]:
        return self.ui.problems()

    def check_routes(self) -> list[str]:
        """Routes and the default may only name configured receivers."""
        errors = []
        for i, route in enumerate(self.routes):
            errors += [
                f"routes.{i}.receivers: unknown receiver {name!r}"
                for name in route.receivers
                if name not in self.receivers
            ]
        errors += [
            f"default_receivers: unknown receiver {name!r}"
            for name in self.default_receivers
            if name not in self.receivers
        ]
        return errors

    def check_auth(self) -> list[str]:
        """Errors about authentication that no field validator alone can see."""
        if self.auth.allow_unauthenticated or self.auth.configured:
            return []
        return [
            "auth: no bearer token or basic auth configured; set auth.bearer_tokens(_file), "
            "auth.basic_auth, or auth.allow_unauthenticated: true explicitly"
        ]
