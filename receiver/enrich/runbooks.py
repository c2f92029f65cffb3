"""Runbooks: the alert's ``runbook_url`` annotation first, then the catalogue (first match wins).

Catalogue entries match by alertname and/or label matchers; their URL is a template whose
``{label}`` placeholders are filled with the alert's URL-quoted label values. Pure: no I/O once
loaded, so it runs inside the intake transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from receiver.enrich.files import FileProblems, read_list
from receiver.model.alerts import Runbook
from receiver.model.matchers import Matcher, parse_matchers
from receiver.settings import MatcherTexts, dotted

__all__ = ["CatalogueError", "Runbook", "RunbookCatalogue"]
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_HTTP_URL = re.compile(r"^https?://[^\s]+$", re.IGNORECASE)
MAX_GUIDANCE = 2000


class CatalogueError(FileProblems):
    """The catalogue file is invalid; ``errors`` lists every problem."""


class _EntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    alertname: str | None = None
    matchers: MatcherTexts = Field(default_factory=list)
    url: str | None = Field(None, pattern=r"^https?://")
    guidance: str | None = Field(None, max_length=MAX_GUIDANCE)


@dataclass(frozen=True)
class CatalogueEntry:
    name: str
    url: str | None
    guidance: str | None
    alertname: str | None = None
    matchers: tuple[Matcher, ...] = field(default_factory=tuple)

    def matches(self, labels: dict[str, str]) -> bool:
        if self.alertname is not None and labels.get("alertname") != self.alertname:
            return False
        return all(m.matches(labels) for m in self.matchers)


@dataclass(frozen=True)
class RunbookCatalogue:
    entries: tuple[CatalogueEntry, ...] = ()

    @classmethod
    def load(cls, path: str | Path | None) -> RunbookCatalogue:
        """Read ``runbooks:`` from a YAML file (None: an empty catalogue)."""
        if path is None:
            return cls()
        try:
            raw = read_list(path, "runbooks")
        except FileProblems as exc:
            raise CatalogueError(exc.errors) from None
        entries, errors = [], []
        for i, item in enumerate(raw):
            try:
                parsed = _EntryIn.model_validate(item)
            except ValidationError as exc:
                errors += [
                    f"{path}: runbooks[{i}].{(dotted(e['loc']) or '(entry)')}: {e['msg']}"
                    for e in exc.errors()
                ]
                continue
            entries.append(
                CatalogueEntry(
                    name=parsed.name,
                    url=parsed.url,
                    guidance=parsed.guidance,
                    alertname=parsed.alertname,
                    matchers=tuple(m for text in parsed.matchers for m in parse_matchers(text)),
                )
            )
        if errors:
            raise CatalogueError(errors)
        return cls(tuple(entries))

    def resolve(self, labels: dict[str, str], annotations: dict[str, str]) -> Runbook:
        """The runbook for an alert: annotation URL first, catalogue URL and guidance next."""
        entry = next((e for e in self.entries if e.matches(labels)), None)
        guidance = render_text(entry.guidance.strip(), labels) if entry and entry.guidance else None
        annotated = (annotations.get("runbook_url") or "").strip()
        name = entry.name if entry else None
        if _HTTP_URL.match(annotated):
            return Runbook(annotated, guidance, "annotation", name)
        if entry is not None and entry.url:
            return Runbook(render_url(entry.url, labels), guidance, "catalogue", name)
        return Runbook(None, guidance, None, name)


def render_url(template: str, labels: dict[str, str]) -> str:
    """Fill ``{label}`` placeholders with URL-quoted label values (missing labels: empty)."""
    return _PLACEHOLDER.sub(lambda m: quote(labels.get(m.group(1), ""), safe=""), template)


def render_text(template: str, labels: dict[str, str]) -> str:
    """Fill ``{label}`` placeholders in guidance text with the label values as they are."""
    return _PLACEHOLDER.sub(lambda m: labels.get(m.group(1), ""), template)
