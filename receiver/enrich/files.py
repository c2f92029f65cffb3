"""Reading a YAML configuration file into a pydantic model, or its top-level list of entries,
every problem named with its place."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from receiver.settings import dotted

M = TypeVar("M", bound=BaseModel)


class FileProblems(Exception):
    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


def read_yaml(path: str | Path) -> Any:
    """The file's YAML document (an empty file: ``{}``); FileProblems when unreadable or invalid."""
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise FileProblems([f"{path}: cannot read: {exc.strerror}"]) from None
    except yaml.YAMLError as exc:
        raise FileProblems([f"{path}: not valid YAML: {exc}"]) from None


def read_list(path: str | Path, key: str) -> list[Any]:
    """The file's top-level ``key:`` list (a catalogue's entries, each checked by the caller)."""
    doc = read_yaml(path)
    raw = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(raw, list):
        raise FileProblems([f"{path}: expected a top-level '{key}:' list"])
    return raw


def read_model(path: str | Path, model: type[M]) -> M:
    """The file validated as ``model``; FileProblems lists each error as ``path: where: what``."""
    doc = read_yaml(path)
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise FileProblems(
            [f"{path}: {(dotted(e['loc']) or '(file)')}: {e['msg']}" for e in exc.errors()]
        ) from None
