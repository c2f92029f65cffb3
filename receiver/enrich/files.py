"""Reading a YAML configuration file into a pydantic model, every problem named with its place."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from receiver.settings import dotted

M = TypeVar("M", bound=BaseModel)


class FileProblems(Exception):
    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


def read_model(path: str | Path, model: type[M]) -> M:
    """The file validated as ``model``; FileProblems lists each error as ``path: where: what``."""
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        return model.model_validate(doc)
    except OSError as exc:
        raise FileProblems([f"{path}: cannot read: {exc.strerror}"]) from None
    except yaml.YAMLError as exc:
        raise FileProblems([f"{path}: not valid YAML: {exc}"]) from None
    except ValidationError as exc:
        raise FileProblems(
            [f"{path}: {(dotted(e['loc']) or '(file)')}: {e['msg']}" for e in exc.errors()]
        ) from None
