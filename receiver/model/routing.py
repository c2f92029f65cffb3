"""Routing: which receivers an incident's labels reach, as Alertmanager routes read.

Routes are tried in order; a route whose matchers all hold adds its receivers and, unless it
says ``continue``, ends the walk. When no route matched, the default receivers take it.
"""

from __future__ import annotations

from dataclasses import dataclass

from receiver.model.matchers import Matcher


@dataclass(frozen=True)
class Route:
    matchers: tuple[Matcher, ...]
    receivers: tuple[str, ...]
    continue_: bool = False

    def matches(self, labels: dict[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)


@dataclass(frozen=True)
class Router:
    routes: tuple[Route, ...] = ()
    default: tuple[str, ...] = ()

    def receivers_for(self, labels: dict[str, str]) -> list[str]:
        """The receivers reached, in route order, each once."""
        reached: list[str] = []
        matched = False
        for route in self.routes:
            if not route.matches(labels):
                continue
            matched = True
            reached += [r for r in route.receivers if r not in reached]
            if not route.continue_:
                break
        if not matched:
            reached += [r for r in self.default if r not in reached]
        return reached
