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
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

ENV_PREFIX = "RECEIVER_"
FILE_SUFFIX = "_file"
# RECEIVER_* variables that are not settings: read by the commands and the tests themselves
RESERVED_ENV = {"CONFIG", "MIGRATIONS_DIR", "REPLAY_TOKEN"}
RESERVED_ENV_PREFIX = "TEST_"  # RECEIVER_TEST_*: test-suite knobs
PATH_KEYS = ("runbooks_path", "context_path")


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
    budget_seconds: float = Field(1.5, gt=0, le=60)
    cache_seconds: float = Field(30, ge=0)
    bearer_token: SecretStr | None = None
    basic_auth: BasicAuthSettings | None = None
    ca_bundle: str | None = None
    tls_skip_verify: bool = False


class Settings(_Section):
    database_url: str = Field("sqlite:///var/receiver.db", repr=False)  # may hold a password
    listen: ListenSettings = Field(default_factory=ListenSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    intake: IntakeSettings = Field(default_factory=IntakeSettings)
    flapping: FlappingSettings = Field(default_factory=FlappingSettings)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    runbooks_path: str | None = None
    context_path: str | None = None
    log_level: str = "INFO"
    public_url: str | None = None

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return upper

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
    raw = _resolve_files(raw, "", errors, unreadable)
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        # a secret whose file could not be read is reported once, not again as "missing"
        found = [e for e in exc.errors() if ".".join(map(str, e["loc"])) not in unreadable]
        raise ConfigError(errors + [_format_error(e) for e in found]) from None
    if errors:
        raise ConfigError(errors)
    if require_auth and (problems := settings.check_auth()):
        raise ConfigError(problems)
    return settings


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
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
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
            out[target] = content.strip()
        else:
            out[key] = _resolve_files(value, path, errors, unreadable)
    return out


def _format_error(error: Mapping[str, Any]) -> str:
    loc = ".".join(str(p) for p in error["loc"]) or "(top level)"
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown setting"
    return f"{loc}: {message}"
