"""Label matchers as Alertmanager writes them: ``name="v"``, ``!=``, ``=~``, ``!~`` (anchored)."""

from __future__ import annotations

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
            value = _unquote(value[1:-1], text)
        elif '"' in value:
            raise ValueError(f"badly quoted value in matcher {text!r}: unbalanced double quote")
        compiled = None
        if op in (MatchOp.RE, MatchOp.NRE):
            try:
                compiled = re.compile(_anchor(value))
            except re.error as exc:
                raise ValueError(f"invalid regex in matcher {text!r}: {exc}") from None
        return cls(name, MatchOp(op), value, compiled)

    @property
    def anchored(self) -> str:
        """The regex anchored at both ends, for Python and a database ``~``/REGEXP alike."""
        return _anchor(self.value)

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
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op.value}"{escaped}"'


def _anchor(regex: str) -> str:
    # \A and \Z, unlike ^ and $, never match around a trailing newline (Python and Postgres)
    return f"\\A(?:{regex})\\Z"


def _unquote(inner: str, text: str) -> str:
    """Undo Alertmanager's escapes in a quoted value: \\" \\\\ and \\n; other backslashes stay."""
    trailing = len(inner) - len(inner.rstrip("\\"))
    if trailing % 2:
        raise ValueError(f"badly quoted value in matcher {text!r}: unterminated quote")
    out: list[str] = []
    i = 0
    while i < len(inner):
        char = inner[i]
        if char == '"':
            raise ValueError(f"badly quoted value in matcher {text!r}: unescaped double quote")
        if char == "\\" and i + 1 < len(inner) and inner[i + 1] in '"\\n':
            out.append("\n" if inner[i + 1] == "n" else inner[i + 1])
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)
