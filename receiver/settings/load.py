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
from pydantic import ValidationError

from receiver.settings.root import Settings

ENV_PREFIX = "RECEIVER_"
FILE_SUFFIX = "_file"
# RECEIVER_* variables that are not settings: read by the commands and the tests themselves
RESERVED_ENV = {"CONFIG", "MIGRATIONS_DIR", "REPLAY_TOKEN"}
RESERVED_ENV_PREFIX = "TEST_"  # RECEIVER_TEST_*: test-suite knobs
PATH_KEYS = ("runbooks_path", "context_path", "slos_path", "xids_path")


class ConfigError(Exception):
    """The configuration is invalid; ``errors`` lists every problem as 'path: message'."""

    def __init__(self, errors: list[str]):
        super().__init__("invalid configuration:\n  " + "\n  ".join(errors))
        self.errors = errors


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
