"""Receivers (PagerDuty services, Slack channels) and the routes that choose them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, SecretStr, field_validator

from receiver.model.matchers import parse_matchers
from receiver.settings.base import _Section

PagerDutySeverity = Literal["critical", "error", "warning", "info"]


def _default_severity_map() -> dict[str, PagerDutySeverity]:
    return {
        "critical": "critical",
        "page": "critical",
        "error": "error",
        "warning": "warning",
        "info": "info",
    }


class PagerDutyReceiver(_Section):
    """A PagerDuty service, reached through the Events API v2."""

    type: Literal["pagerduty"]
    routing_key: SecretStr
    base_url: str = Field("https://events.pagerduty.com", pattern=r"^https://")
    ca_bundle: str | None = None
    # group: sha256(groupKey), as Alertmanager's own integration, so switching over makes no
    # duplicate PagerDuty incidents; incident: one PagerDuty alert per incident of this receiver;
    # alert: one per alert series of the incident; episode: one per firing of each alert
    dedup_key: Literal["group", "incident", "alert", "episode"] = "group"
    severity_map: dict[str, PagerDutySeverity] = Field(default_factory=_default_severity_map)
    default_severity: Literal["critical", "error", "warning", "info"] = "error"
    timeout_seconds: float = Field(10, gt=0, le=60)

    @field_validator("routing_key")
    @classmethod
    def _key_length(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) != 32:
            raise ValueError("a PagerDuty routing key has 32 characters")
        return value


class SlackReceiver(_Section):
    """A Slack channel, reached with a bot token through the Web API."""

    type: Literal["slack"]
    token: SecretStr
    channel: str = Field(min_length=1)
    base_url: str = Field("https://slack.com/api/", pattern=r"^https?://")
    ca_bundle: str | None = None
    timeout_seconds: float = Field(10, gt=0, le=60)


Receiver = Annotated[PagerDutyReceiver | SlackReceiver, Field(discriminator="type")]


def _valid_matchers(values: list[str]) -> list[str]:
    for value in values:
        parse_matchers(value)  # ValueError names the problem
    return values


MatcherTexts = Annotated[list[str], AfterValidator(_valid_matchers)]
"""Label matchers in Alertmanager's syntax, checked when the configuration loads; as in
Alertmanager's ``matchers:``, an entry may hold several (``a="b", c=~"d"`` or ``{...}``)."""


class RouteSettings(_Section):
    """Alertmanager-style: all matchers must hold; ``continue`` goes on to the next route."""

    matchers: MatcherTexts = Field(default_factory=list)
    receivers: list[str] = Field(min_length=1)
    continue_: bool = Field(False, alias="continue")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
