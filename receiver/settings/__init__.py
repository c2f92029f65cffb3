"""Configuration: sections (``sections``, ``receivers``), the whole (``root``), loading
(``load``: YAML, ``RECEIVER_*`` environment overrides, ``*_file`` secrets)."""

from receiver.settings.load import ConfigError, dotted, load_settings
from receiver.settings.receivers import (
    MatcherTexts,
    PagerDutyReceiver,
    Receiver,
    RouteSettings,
    SlackReceiver,
)
from receiver.settings.root import Settings
from receiver.settings.sections import (
    AlertmanagerSettings,
    AuthSettings,
    BasicAuthSettings,
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
from receiver.settings.ui import LoginLimitSettings, OidcSettings, UISettings

__all__ = [
    "AlertmanagerSettings",
    "AuthSettings",
    "BasicAuthSettings",
    "ConfigError",
    "DatabaseSettings",
    "DeliverySettings",
    "FlappingSettings",
    "IntakeSettings",
    "ListenSettings",
    "LoginLimitSettings",
    "MatcherTexts",
    "MetricsSettings",
    "OidcSettings",
    "PagerDutyReceiver",
    "PrometheusSettings",
    "Receiver",
    "RetentionSettings",
    "RouteSettings",
    "Settings",
    "SlackReceiver",
    "UISettings",
    "WatchdogSettings",
    "dotted",
    "load_settings",
]
