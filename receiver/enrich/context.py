"""Context query templates (``config/context.yaml``): PromQL filled from an alert's labels.

``{{name}}`` placeholders take the alert's label values, escaped for a PromQL string, or the
file's parameters (``window``). Each item lists query variants; the first whose placeholders
are all available is used, so "the named GPU, else every GPU of the instance" is two lines.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from receiver.enrich.files import FileProblems, read_model

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
# budget: the share of an SLO's error budget left (1 = untouched, < 0 = overspent); burn: a
# burn rate (1 = spending the budget exactly over the SLO window)
Unit = Literal["percent", "bytes", "ms", "req_per_s", "count", "budget", "burn", "none"]
Scale = Literal["auto", "ratio", "none"]


class ContextConfigError(Exception):
    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


class _ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str = Field(min_length=1)
    unit: Unit = "none"
    scale: Scale = "none"
    series: bool = False
    slo: bool = False
    queries: list[str] = Field(min_length=1)


class _SeriesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    range_minutes: int = Field(30, ge=1, le=24 * 60)
    step_seconds: int = Field(60, ge=1)


class _FileIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    params: dict[str, str] = Field(default_factory=dict)
    series: _SeriesIn = Field(default_factory=_SeriesIn)
    items: list[_ItemIn] = Field(default_factory=list)


def _fill(name: str, labels: dict[str, str], params: dict[str, str]) -> str:
    return params[name] if name in params else escape_promql(labels[name])


def escape_promql(value: str) -> str:
    """Escape a value for a double-quoted PromQL string."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@dataclass(frozen=True)
class ContextSpec:
    """One context item: what to query and how to show the answer."""

    key: str
    title: str
    queries: tuple[str, ...]
    unit: Unit = "none"
    scale: Scale = "none"
    series: bool = False  # also keep the series before the alert started, for a chart
    slo: bool = False  # uses the model's SLO parameters: left out when the alert has none

    def render(self, labels: dict[str, str], params: dict[str, str]) -> str | None:
        """The first variant whose placeholders are all known, filled in; None if none is."""
        for template in self.queries:
            names = _PLACEHOLDER.findall(template)
            if all(n in params or labels.get(n) for n in names):
                return _PLACEHOLDER.sub(
                    lambda m: _fill(m.group(1), labels, params),
                    template,
                )
        return None

    def needed_labels(self, params: dict[str, str] | None = None) -> list[str]:
        """The alert labels the queries use (parameters such as ``window`` excluded)."""
        names = {n for q in self.queries for n in _PLACEHOLDER.findall(q)}
        return sorted(names - set(params or {}))

    def factor(self, values: list[float]) -> float:
        """The display scale for these raw values (``auto``: 0-1 ratios become percentages)."""
        if self.scale == "ratio" or (
            self.scale == "auto" and all(v <= 1.0 for v in values if math.isfinite(v))
        ):
            return 100.0
        return 1.0

    def present(self, values: list[float]) -> list[float]:
        """Scale raw values for display."""
        factor = self.factor(values)
        return [v * factor for v in values]


@dataclass(frozen=True)
class SeriesWindow:
    """How much history a chart shows before the alert started, and its resolution."""

    range: timedelta = timedelta(minutes=30)
    step: timedelta = timedelta(seconds=60)


@dataclass(frozen=True)
class ContextConfig:
    items: tuple[ContextSpec, ...] = ()
    params: tuple[tuple[str, str], ...] = ()
    series: SeriesWindow = SeriesWindow()

    @property
    def param_map(self) -> dict[str, str]:
        return dict(self.params)

    @classmethod
    def load(cls, path: str | Path | None) -> ContextConfig:
        """Read the context queries (None: no context items)."""
        if path is None:
            return cls()
        try:
            parsed = read_model(path, _FileIn)
        except FileProblems as exc:
            raise ContextConfigError(exc.errors) from None
        keys = [i.key for i in parsed.items]
        if duplicates := sorted({k for k in keys if keys.count(k) > 1}):
            raise ContextConfigError([f"{path}: duplicate item keys: {', '.join(duplicates)}"])
        specs = tuple(
            ContextSpec(i.key, i.title, tuple(i.queries), i.unit, i.scale, i.series, i.slo)
            for i in parsed.items
        )
        window = SeriesWindow(
            timedelta(minutes=parsed.series.range_minutes),
            timedelta(seconds=parsed.series.step_seconds),
        )
        return cls(specs, tuple(sorted(parsed.params.items())), window)


def format_value(value: float, unit: Unit) -> str:
    """A short human reading of one value."""
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    if unit == "percent":
        return f"{value:.1f} %"
    if unit == "bytes":
        return _bytes(value)
    if unit == "ms":
        return f"{value:.1f} ms" if value < 1000 else f"{value / 1000:.2f} s"
    if unit == "req_per_s":
        return f"{value:.2f} req/s"
    if unit == "burn":
        return f"{value:.2f}x"
    if unit == "budget":
        return f"{value * 100:.1f} % left"
    if unit == "count":
        return f"{value:.0f}" if value == int(value) else f"{value:.2f}"
    return f"{value:.4g}"


def _bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
