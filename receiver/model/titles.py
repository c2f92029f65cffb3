"""Incident titles from a template (``intake.title_template``), filled from the first alert.

A template is text with placeholders in braces; ``{{`` and ``}}`` are literal braces:

- ``{summary}``: the ``summary`` annotation (common to the notification, else the alert's),
  else the alertname: the title an incident gets without a template;
- ``{alertname}``, ``{severity}``;
- ``{label:NAME}``: a label of the alert, else of the route (Alertmanager 0.34 ``routeLabels``);
- ``{route:NAME}``: a label of the route only;
- ``{annotation:NAME}``: an annotation (common, else the alert's).

``NAME`` is any label name, UTF-8 included, up to the closing brace. A value that is missing is
empty; runs of spaces left by it collapse, and a title that comes out empty is the default one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from receiver.model.alerts import AlertEvent, Notification

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_KINDS = ("label", "route", "annotation")
_PLAIN = ("summary", "alertname", "severity")
Part = str | tuple[str, str]  # literal text, or (kind, name) of a placeholder


@dataclass(frozen=True)
class TitleTemplate:
    """A parsed title template; ``render`` fills it for the alert that opens an incident."""

    text: str
    parts: tuple[Part, ...]

    @classmethod
    def parse(cls, text: str) -> TitleTemplate:
        """The template, or ValueError naming the placeholder or brace that is wrong."""
        parts: list[Part] = []
        at = 0
        for m in _TOKEN.finditer(text):
            parts.append(text[at : m.start()])
            at = m.end()
            token = m.group(0)
            if token in ("{{", "}}"):
                parts.append(token[0])
            elif m.group(1) is None:
                raise ValueError(f"unmatched {token!r} at character {m.start() + 1}")
            else:
                parts.append(_placeholder(m.group(1)))
        parts.append(text[at:])
        return cls(text, tuple(p for p in parts if p != ""))

    def render(self, n: Notification, alert: AlertEvent, default: str) -> str:
        """The title for ``alert`` of ``n``; ``default`` when the filled text is empty."""
        values = {
            "summary": default,
            "alertname": alert.alertname,
            "severity": alert.labels.get("severity", ""),
        }
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            kind, name = part
            if kind == "label":
                out.append(alert.labels.get(name) or n.route_labels.get(name, ""))
            elif kind == "route":
                out.append(n.route_labels.get(name, ""))
            elif kind == "annotation":
                out.append(n.common_annotations.get(name) or alert.annotations.get(name, ""))
            else:
                out.append(values[kind])
        return " ".join("".join(out).split()) or default


def _placeholder(body: str) -> tuple[str, str]:
    kind, colon, name = body.partition(":")
    if not colon and kind in _PLAIN:
        return kind, ""
    if colon and kind in _KINDS and name:
        return kind, name
    known = ", ".join([*(f"{{{p}}}" for p in _PLAIN), *(f"{{{k}:NAME}}" for k in _KINDS)])
    raise ValueError(f"unknown placeholder {{{body}}}: use {known}")
