"""Service level objectives per model (``config/slos.yaml``): the parameters SLO context items use.

An alert naming a ``model`` gets its model's objective (or the defaults) as context parameters:
``slo_window`` (``30d``), ``slo_error_budget`` (1 - target, e.g. ``0.001``), ``slo_target``,
``slo_budget_minutes`` (the budget as minutes of total outage in the window: 43.2 for 99.9 % over
30 days) and ``slo_burn_window`` (the window of the current burn rate, ``1h``). The context items
marked ``slo: true`` in ``context.yaml`` use them; without SLOs or a model they are left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from receiver.enrich.files import FileProblems, read_model

_DURATION = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_SECONDS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1)


class SloConfigError(Exception):
    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


def duration_seconds(text: str) -> int:
    """A Prometheus duration (``30d``, ``1h30m``) in seconds; ValueError if it is not one."""
    match = _DURATION.match(text)
    if not text or match is None:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(n or 0) * unit for n, unit in zip(match.groups(), _SECONDS, strict=True))


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")  # latency, throughput: read by people and rules


class _Availability(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: float = Field(gt=0, lt=1)


class _Objectives(_Lenient):
    availability: _Availability | None = None


class _Defaults(_Objectives):
    window: str = "30d"
    burn_window: str = "1h"


class _FileIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    defaults: _Defaults = Field(default_factory=_Defaults)
    models: dict[str, _Objectives] = Field(default_factory=dict)


@dataclass(frozen=True)
class SloCatalogue:
    """Availability objectives by model; empty when no file is configured."""

    default_target: float | None = None
    targets: dict[str, float] = field(default_factory=dict)
    window: str = "30d"
    burn_window: str = "1h"

    @classmethod
    def load(cls, path: str | Path | None) -> SloCatalogue:
        if path is None:
            return cls()
        try:
            parsed = read_model(path, _FileIn)
            for name in ("window", "burn_window"):
                duration_seconds(getattr(parsed.defaults, name))
        except FileProblems as exc:
            raise SloConfigError(exc.errors) from None
        except ValueError as exc:
            raise SloConfigError([f"{path}: defaults: {exc}"]) from None
        default = parsed.defaults.availability
        targets = {m: o.availability.target for m, o in parsed.models.items() if o.availability}
        return cls(
            default.target if default else None,
            targets,
            parsed.defaults.window,
            parsed.defaults.burn_window,
        )

    def params_for(self, labels: dict[str, str]) -> dict[str, str]:
        """The SLO parameters of the alert's model; empty without a model or an objective."""
        model = labels.get("model")
        target = self.targets.get(model, self.default_target) if model else None
        if target is None:
            return {}
        budget = 1 - target
        minutes = budget * duration_seconds(self.window) / 60
        return {
            "slo_window": self.window,
            "slo_burn_window": self.burn_window,
            "slo_target": f"{target:g}",
            "slo_error_budget": f"{budget:.10g}",
            "slo_budget_minutes": f"{minutes:.10g}",
        }


def describe(params: dict[str, Any]) -> str:
    """``99.9 % over 30d`` for a title."""
    return f"{float(params['slo_target']) * 100:g} % over {params['slo_window']}"
