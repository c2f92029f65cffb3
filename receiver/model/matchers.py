"""Label matchers as Alertmanager writes them: ``name="v"``, ``!=``, ``=~``, ``!~`` (anchored)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum

_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.DOTALL)


class MatchOp(StrEnum):
    EQ = "="
    NE = "!="
    RE = "=~"
    NRE = "!~"


@dataclass(frozen=True)
class Matcher:
    """One label matcher. Regexes match the whole value, as in Alertmanager."""

    name: str
    op: MatchOp
    value: str
    _compiled: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """Parse ``name<op>value``; the value may be double-quoted. Raise ValueError if invalid."""
        match = _MATCHER.match(text)
        if not match:
            raise ValueError(f"not a label matcher: {text!r} (expected name=value, !=, =~ or !~)")
        name, op, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            try:
                value = json.loads(value)
            except ValueError:
                raise ValueError(f"badly quoted value in matcher {text!r}") from None
        compiled = None
        if op in (MatchOp.RE, MatchOp.NRE):
            try:
                compiled = re.compile(f"^(?:{value})$")
            except re.error as exc:
                raise ValueError(f"invalid regex in matcher {text!r}: {exc}") from None
        return cls(name, MatchOp(op), value, compiled)

    @property
    def anchored(self) -> str:
        """The regex anchored for a database ``~``/REGEXP operator."""
        return f"^(?:{self.value})$"

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether a label set satisfies this matcher (a missing label has the empty value)."""
        value = labels.get(self.name, "")
        if self.op is MatchOp.EQ:
            return value == self.value
        if self.op is MatchOp.NE:
            return value != self.value
        assert self._compiled is not None
        found = self._compiled.match(value) is not None
        return found if self.op is MatchOp.RE else not found

    def __str__(self) -> str:
        return f"{self.name}{self.op.value}{json.dumps(self.value)}"
