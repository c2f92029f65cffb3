"""The XID catalogue (``config/xids.yaml``): what an NVIDIA XID code means and what to do.

Read once at start, pure afterwards: ``XidCatalogue.load(path)`` validates every entry and
``lookup(code)`` answers from memory. Not yet used by the enrichment: a later change shows the
entry of an XID alert's code on its incident. ``xids_path`` in the settings names the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from receiver.enrich.files import FileProblems, read_list
from receiver.settings import dotted

__all__ = ["XID_CLASSES", "XidCatalogue", "XidCatalogueError", "XidClass", "XidEntry"]

# who or what needs attention first (config/xids.yaml explains each)
XidClass = Literal[
    "fault", "application", "driver", "interconnect", "thermal", "power", "follow-up"
]
XID_CLASSES: tuple[str, ...] = get_args(XidClass)
MAX_TEXT = 1000


class XidCatalogueError(FileProblems):
    """The XID catalogue is invalid; ``errors`` lists every problem, each naming its entry."""


class _EntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    xid: int = Field(gt=0)
    meaning: str = Field(min_length=1, max_length=MAX_TEXT)
    xid_class: XidClass = Field(alias="class")
    action: str = Field(min_length=1, max_length=MAX_TEXT)
    source: str = Field(min_length=1, max_length=MAX_TEXT)


@dataclass(frozen=True)
class XidEntry:
    """One XID code: its meaning, class, recommended action and where that comes from."""

    xid: int
    meaning: str
    xid_class: XidClass
    action: str
    source: str


@dataclass(frozen=True)
class XidCatalogue:
    """XID entries by code; empty when no file is configured."""

    entries: tuple[XidEntry, ...] = ()

    @classmethod
    def load(cls, path: str | Path | None) -> XidCatalogue:
        """Read ``xids:`` from a YAML file (None: an empty catalogue); XidCatalogueError if bad."""
        if path is None:
            return cls()
        try:
            raw = read_list(path, "xids")
        except FileProblems as exc:
            raise XidCatalogueError(exc.errors) from None
        entries: list[XidEntry] = []
        errors: list[str] = []
        first_at: dict[int, int] = {}
        for i, item in enumerate(raw):
            where = f"{path}: xids[{i}]{_code_of(item)}"
            try:
                parsed = _EntryIn.model_validate(item)
            except ValidationError as exc:
                errors += [
                    f"{where}.{dotted(e['loc']) or '(entry)'}: {e['msg']}" for e in exc.errors()
                ]
                continue
            if parsed.xid in first_at:
                errors.append(f"{where}: xid {parsed.xid} is already xids[{first_at[parsed.xid]}]")
                continue
            first_at[parsed.xid] = i
            entries.append(
                XidEntry(
                    parsed.xid,
                    parsed.meaning.strip(),
                    parsed.xid_class,
                    parsed.action.strip(),
                    parsed.source.strip(),
                )
            )
        if errors:
            raise XidCatalogueError(errors)
        return cls(tuple(entries))

    def lookup(self, code: int) -> XidEntry | None:
        """The entry of an XID code, or None when the catalogue does not know it."""
        return next((e for e in self.entries if e.xid == code), None)


def _code_of(item: Any) -> str:
    """`` (xid 48)`` to name an entry by its code in errors, when it has an integer one."""
    code = item.get("xid") if isinstance(item, dict) else None
    return f" (xid {code})" if isinstance(code, int) and not isinstance(code, bool) else ""
