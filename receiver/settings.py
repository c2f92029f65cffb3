"""Configuration: one YAML file, ``RECEIVER_*`` environment overrides, ``*_FILE`` secrets.

Precedence, lowest first: built-in defaults, the YAML file, environment variables.
An environment variable ``RECEIVER_A__B`` sets key ``b`` of section ``a`` (double underscore
nests; names are lower-cased). Any key ending in ``_file``, in YAML or environment, is replaced
by the contents of that file under the key without the suffix (list-valued keys take one item
per non-empty line). Everything is validated at once and every error is reported.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

from receiver.model.matchers import Matcher

ENV_PREFIX = "RECEIVER_"
FILE_SUFFIX = "_file"
# RECEIVER_* variables that are not settings: read by the commands and the tests themselves
RESERVED_ENV = {"CONFIG", "MIGRATIONS_DIR", "REPLAY_TOKEN"}
RESERVED_ENV_PREFIX = "TEST_"  # RECEIVER_TEST_*: test-suite knobs
PATH_KEYS = ("runbooks_path", "context_path", "slos_path")


class ConfigError(Exception):
    """The configuration is invalid; ``errors`` lists every problem as 'path: message'."""

    def __init__(self, errors: list[str]):
        super().__init__("invalid configuration:\n  " + "\n  ".join(errors))
        self.errors = errors


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ListenSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(9099, ge=0, le=65535)
    workers: int = Field(2, ge=1, le=64)


class BasicAuthSettings(_Section):
    username: str = Field(min_length=1)
    password: SecretStr


class AuthSettings(_Section):
    allow_unauthenticated: bool = False
    bearer_tokens: list[SecretStr] = Field(default_factory=list)
    basic_auth: BasicAuthSettings | None = None

    @field_validator("bearer_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [t.strip() for t in value.replace("\n", ",").split(",") if t.strip()]
        if isinstance(value, list) and any(isinstance(t, str) and not t.strip() for t in value):
            raise ValueError("tokens must not be empty")
        return value

    @property
    def configured(self) -> bool:
        return bool(self.bearer_tokens) or self.basic_auth is not None


class IntakeSettings(_Section):
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    # beyond these a webhook is refused with 400 naming the field (and kept as rejected)
    max_alerts: int = Field(5000, ge=1)
    max_labels: int = Field(128, ge=1)
    max_label_value_length: int = Field(4096, ge=64)
    max_annotation_value_length: int = Field(65536, ge=64)
    rejected_keep: int = Field(1000, ge=0)
    rejected_body_bytes: int = Field(64 * 1024, ge=0)
    raw_retention_days: float = Field(30, gt=0)


class FlappingSettings(_Section):
    threshold: int = Field(3, ge=2)
    window_minutes: float = Field(30, gt=0)
    hold_down_minutes: float = Field(15, ge=0)


class PrometheusSettings(_Section):
    """Where the worker queries the GPU and queue context; no URL disables it."""

    url: str | None = Field(None, pattern=r"^https?://")
    timeout_seconds: float = Field(0.5, gt=0, le=30)

    @field_validator("url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    budget_seconds: float = Field(1.5, gt=0, le=60)
    cache_seconds: float = Field(30, ge=0)
    bearer_token: SecretStr | None = None
    basic_auth: BasicAuthSettings | None = None
    ca_bundle: str | None = None
    tls_skip_verify: bool = False


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
    severity_map: dict[str, Literal["critical", "error", "warning", "info"]] = Field(
        default_factory=lambda: {
            "critical": "critical",
            "page": "critical",
            "error": "error",
            "warning": "warning",
            "info": "info",
        }
    )
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
        Matcher.parse(value)  # ValueError names the problem
    return values


MatcherTexts = Annotated[list[str], AfterValidator(_valid_matchers)]
"""Label matchers in Alertmanager's syntax, checked when the configuration loads."""


class RouteSettings(_Section):
    """Alertmanager-style: all matchers must hold; ``continue`` goes on to the next route."""

    matchers: MatcherTexts = Field(default_factory=list)
    receivers: list[str] = Field(min_length=1)
    continue_: bool = Field(False, alias="continue")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class AlertmanagerSettings(_Section):
    """Alertmanager's API, asked which alerts are still active (lost resolves; see reconcile)."""

    # every Alertmanager of the cluster (an HA pair: both); none turns reconciliation off
    urls: list[Annotated[str, Field(pattern=r"^https?://")]] = Field(default_factory=list)
    timeout_seconds: float = Field(5, gt=0, le=60)
    reconcile_interval_seconds: float = Field(60, gt=0)
    # an alert Alertmanager no longer reports is "stale"; after this long it is resolved
    stale_grace_minutes: float = Field(10, ge=0)
    # alerts younger than this are not judged (Alertmanager may not have processed them yet)
    min_age_seconds: float = Field(120, ge=0)
    bearer_token: SecretStr | None = None
    basic_auth: BasicAuthSettings | None = None
    ca_bundle: str | None = None
    tls_skip_verify: bool = False

    @field_validator("urls", mode="before")
    @classmethod
    def _split_urls(cls, value: Any) -> Any:
        if isinstance(value, str):  # RECEIVER_ALERTMANAGER__URLS=http://am-0:9093,http://am-1:9093
            return [u.strip() for u in value.split(",") if u.strip()]
        return value


class WatchdogSettings(_Section):
    """The dead man's switch: Alertmanager's always-firing alert must keep arriving."""

    # alerts with this name never open incidents; they only prove the pipeline works ("" = off)
    alertname: str = "Watchdog"
    # open an incident when none has arrived for this long (0: never; Alertmanager re-sends it
    # every repeat_interval, so give it a few of those)
    missing_after_minutes: float = Field(0, ge=0)
    # the labels of the incident it opens (routed like any other alert)
    labels: dict[str, str] = Field(
        default_factory=lambda: {"alertname": "WatchdogMissing", "severity": "critical"}
    )

    @property
    def enabled(self) -> bool:
        return bool(self.alertname) and self.missing_after_minutes > 0


class DeliverySettings(_Section):
    """The outbox: retries with exponential backoff and jitter until ``max_age_minutes``."""

    max_age_minutes: float = Field(360, gt=0)
    backoff_initial_seconds: float = Field(2, gt=0)
    backoff_max_seconds: float = Field(300, gt=0)
    coalesce_seconds: float = Field(2, ge=0)
    slack_min_interval_seconds: float = Field(1.0, ge=0)
    # render and record every delivery without sending it (staging, or shadowing Alertmanager's
    # own integrations before switching over)
    dry_run: bool = False


class UISettings(_Section):
    """The incident history UI: its own users, never the webhook credentials."""

    # username -> password hash (werkzeug.security.generate_password_hash), e.g. from a file
    users: dict[str, SecretStr] = Field(default_factory=dict)
    secret_key: SecretStr | None = None  # signs session cookies; same on every replica
    # with a reverse proxy that authenticates people: the header naming the user
    trusted_user_header: str | None = None
    cookie_secure: bool = True
    page_size: int = Field(25, ge=1, le=200)

    @property
    def enabled(self) -> bool:
        return bool(self.users) or self.trusted_user_header is not None


class Settings(_Section):
    database_url: str = Field("sqlite:///var/receiver.db", repr=False)  # may hold a password
    listen: ListenSettings = Field(default_factory=ListenSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    intake: IntakeSettings = Field(default_factory=IntakeSettings)
    flapping: FlappingSettings = Field(default_factory=FlappingSettings)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    alertmanager: AlertmanagerSettings = Field(default_factory=AlertmanagerSettings)
    watchdog: WatchdogSettings = Field(default_factory=WatchdogSettings)
    runbooks_path: str | None = None
    context_path: str | None = None
    slos_path: str | None = None  # per-model SLOs: the context shows each model's error budget
    receivers: dict[str, Receiver] = Field(default_factory=dict)
    routes: list[RouteSettings] = Field(default_factory=list)
    default_receivers: list[str] = Field(default_factory=list)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    ui: UISettings = Field(default_factory=UISettings)
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
        if self.ui.enabled and self.ui.secret_key is None:
            return ["ui.secret_key: required when UI users or a trusted header are configured"]
        return []

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


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    require_auth: bool = True,
) -> Settings:
    """Load, merge and validate; raise ConfigError listing every problem.

    ``require_auth=False`` is for commands that never serve webhooks (migrations, replay).
    """
    environ = os.environ if environ is None else environ
    errors: list[str] = []
    raw: dict[str, Any] = {}
    if path is None:
        path = environ.get(ENV_PREFIX + "CONFIG")
    if path:
        raw = _read_yaml(Path(path), errors)
    _deep_merge(raw, _env_tree(environ))
    if overrides:
        _deep_merge(raw, _nest(overrides))
    if path:
        _relative_to(Path(path).parent, raw, PATH_KEYS)
    unreadable: set[str] = set()
    auth_given = _mentions_auth(raw.get("auth"))  # before unreadable *_file keys drop out
    raw = _resolve_files(raw, "", errors, unreadable)
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        # a secret whose file could not be read is reported once, not again as "missing"
        found = [e for e in exc.errors() if _loc(e["loc"]) not in unreadable]
        errors += [_format_error(e) for e in found]
        if require_auth and not auth_given:
            errors += Settings.model_construct().check_auth()
        raise ConfigError(errors) from None
    errors += settings.check_routes() + settings.check_ui()
    if require_auth:
        errors += settings.check_auth()
    if errors:
        raise ConfigError(errors)
    return settings


def _mentions_auth(auth: Any) -> bool:
    """Whether raw settings name any webhook credential or allow running without."""
    if not isinstance(auth, dict):
        return False
    keys = ("bearer_tokens", "bearer_tokens_file", "basic_auth", "allow_unauthenticated")
    return any(auth.get(k) for k in keys)


def _relative_to(base: Path, raw: dict[str, Any], keys: tuple[str, ...]) -> None:
    """Relative catalogue paths are relative to the configuration file."""
    for key in keys:
        value = raw.get(key)
        if isinstance(value, str) and value and not Path(value).is_absolute():
            raw[key] = str(base / value)


def _read_yaml(path: Path, errors: list[str]) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        errors.append(f"{path}: cannot read: {exc.strerror}")
        return {}
    except yaml.YAMLError as exc:
        # the parser's own message quotes the offending line, which may hold a secret
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        errors.append(f"{path}: not valid YAML{where}: {problem}")
        return {}
    if data is None:
        return {}
    if not isinstance(data, dict):
        errors.append(f"{path}: top level must be a mapping")
        return {}
    return data


def _env_tree(environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, value in environ.items():
        key = name[len(ENV_PREFIX) :]
        if not name.startswith(ENV_PREFIX) or key in RESERVED_ENV:
            continue
        if key.startswith(RESERVED_ENV_PREFIX):
            continue
        keys = name[len(ENV_PREFIX) :].lower().split("__")
        _set_path(tree, keys, _env_value(value))
    return tree


def _env_value(value: str) -> Any:
    stripped = value.strip()
    if stripped[:1] in "[{":
        try:
            return json.loads(stripped)
        except ValueError:
            return value
    return value


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        _set_path(tree, key.split("."), value)
    return tree


def _set_path(tree: dict[str, Any], keys: list[str], value: Any) -> None:
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            return
    node[keys[-1]] = value


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Merge ``extra`` over ``base``; a value replaces its ``_file`` form and the reverse."""
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
            continue
        twin = key[: -len(FILE_SUFFIX)] if key.endswith(FILE_SUFFIX) else key + FILE_SUFFIX
        base.pop(twin, None)
        base[key] = value


def _resolve_files(node: Any, where: str, errors: list[str], unreadable: set[str]) -> Any:
    """Replace every ``x_file: path`` by ``x: <file contents>``."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        path = f"{where}.{key}" if where else str(key)
        if isinstance(key, str) and key.endswith(FILE_SUFFIX) and isinstance(value, str):
            target = key[: -len(FILE_SUFFIX)]
            try:
                content = Path(value).read_text(encoding="utf-8")
            except OSError as exc:
                errors.append(f"{path}: cannot read secret file {value!r}: {exc.strerror}")
                unreadable.add(path[: -len(FILE_SUFFIX)])
                continue
            out[target] = _env_value(content.strip())  # JSON objects/lists as in env
        else:
            out[key] = _resolve_files(value, path, errors, unreadable)
    return out


def dotted(loc: tuple[Any, ...] | list[Any]) -> str:
    """A pydantic error location as a dotted path (``listen.port``)."""
    return ".".join(str(p) for p in loc)


def _loc(loc: tuple[Any, ...]) -> str:
    """A dotted path, without the receiver-type tag pydantic puts in tagged-union paths."""
    parts = list(loc)
    if len(parts) >= 3 and parts[0] == "receivers" and parts[2] in ("pagerduty", "slack"):
        del parts[2]
    return dotted(parts)


def _format_error(error: Mapping[str, Any]) -> str:
    loc = _loc(error["loc"]) or "(top level)"
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown setting"
    return f"{loc}: {message}"
