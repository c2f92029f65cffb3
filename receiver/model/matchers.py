"""Label matchers as Alertmanager writes them: ``name="v"``, ``!=``, ``=~``, ``!~``.

The text is read as Alertmanager's default (fallback) mode reads it: see ``matcher_syntax``.

Regexes are RE2, as in Alertmanager (Go's regexp implements RE2's syntax), and anchored the way
Alertmanager anchors them, ``^(?:v)$``: in RE2 ``$`` is the end of the text only, never before a
trailing newline (Python's ``$`` would be). RE2 matches in time linear in the value and has no
backreferences or lookaround, so no pattern can backtrack.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import re2

from receiver.model.go_strings import go_quote
from receiver.model.matcher_syntax import CLASSIC_NAME, fallback_matcher, fallback_matchers

MAX_REGEX_LENGTH = 1000
"""The longest regex a matcher may hold, in characters. A person's matcher, even a list of
forty model names, stays well below it; the cost of compiling a pattern and of each match grows
with its size, and a filter in a URL runs it against every distinct value of a label."""

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.never_capture = True  # a yes/no answer: RE2 can always use its DFA
_RE2_OPTIONS.log_errors = False  # the ValueError names the problem; no stderr line
# RE2's memory budget per pattern (its default, stated): a pattern whose program outgrows it,
# such as \pL{1000}, is refused as "pattern too large"; the DFA's cache lives within it too
_RE2_OPTIONS.max_mem = 8 << 20


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
    _compiled: Any = field(default=None, compare=False, repr=False)  # an RE2 regexp

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """Exactly one matcher, read as Alertmanager's API reads a filter (no ``{...}``: a text
        that starts with ``{`` or ends with ``}`` is refused); ValueError if invalid."""
        return fallback_matcher(text, _build)

    @property
    def anchored(self) -> str:
        """The regex as Alertmanager compiles it (RE2 syntax): anchored at both ends."""
        return _anchor(self.value)

    @property
    def is_regex(self) -> bool:
        return self.op in (MatchOp.RE, MatchOp.NRE)

    def regex_matches(self, value: str) -> bool:
        """Whether this matcher's regex matches the whole value (RE2); for =~ and !~ only."""
        assert self._compiled is not None
        # bytes in, as the pattern: half the wrapper's time per value, for str it maps offsets
        return self._compiled.search(value.encode("utf-8", "surrogatepass")) is not None

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether a label set satisfies this matcher (a missing label has the empty value)."""
        value = labels.get(self.name, "")
        if self.op is MatchOp.EQ:
            return value == self.value
        if self.op is MatchOp.NE:
            return value != self.value
        found = self.regex_matches(value)
        return found if self.op is MatchOp.RE else not found

    def __str__(self) -> str:
        """Text Alertmanager (0.27+) reads back as this matcher: a classic name bare and the
        value with the classic escapes; any other name, and then the value, Go-quoted."""
        if CLASSIC_NAME.fullmatch(self.name):
            escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
            return f'{self.name}{self.op.value}"{escaped}"'
        return f"{go_quote(self.name)}{self.op.value}{go_quote(self.value)}"


def parse_matchers(text: str) -> list[Matcher]:
    """Zero or more matchers (one, ``a=b, c=~d``, ``{...}``), read as Alertmanager reads a list.

    Classic (``name=value``, classic name, value optionally quoted) and UTF-8 forms
    (``"service.name"="x"``, Go escapes in quotes) are both taken; ValueError if invalid."""
    return fallback_matchers(text, _build)


def _build(name: str, op: str, value: str, text: str) -> Matcher:
    compiled = _compile(name, value, text) if op in (MatchOp.RE, MatchOp.NRE) else None
    return Matcher(name, MatchOp(op), value, compiled)


def _anchor(regex: str) -> str:
    # Alertmanager's own wrapping (pkg/labels/matcher.go)
    return f"^(?:{regex})$"


def _compile(name: str, regex: str, text: str) -> Any:
    """The anchored RE2 regexp; ValueError naming the matcher if too long or not RE2."""
    if len(regex) > MAX_REGEX_LENGTH:
        raise ValueError(
            f"regex too long in the matcher on label {name!r}: {len(regex)} characters,"
            f" at most {MAX_REGEX_LENGTH}"
        )
    if _has_any_byte_escape(regex):
        # RE2 in C++ takes \C (any byte), Go's regexp and so Alertmanager do not
        raise ValueError(f"invalid regex in matcher {text!r}: \\C is not supported")
    try:
        return re2.compile(_anchor(regex).encode(), _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        hint = "RE2 syntax, as in Alertmanager: no backreferences or lookaround"
        raise ValueError(f"invalid regex in matcher {text!r}: {reason} ({hint})") from None


def _has_any_byte_escape(regex: str) -> bool:
    """Whether the regex holds ``\\C`` outside a ``\\Q...\\E`` literal."""
    i = 0
    while i < len(regex) - 1:
        if regex[i] != "\\":
            i += 1
        elif regex[i + 1] == "C":
            return True
        elif regex[i + 1] == "Q":
            end = regex.find("\\E", i + 2)
            i = len(regex) if end < 0 else end + 2
        else:
            i += 2
    return False
