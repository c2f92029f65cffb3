"""Alertmanager's matcher syntax, read as its default "fallback" mode reads it (0.27+).

Two grammars: the classic one (``pkg/labels``, later ``matcher/oldparse``): a classic name, an
operator and the rest as the value, optionally double-quoted, with only ``\\"``, ``\\\\`` and
``\\n`` unescaped; and the UTF-8 one (``matcher/parse``): tokens, any UTF-8 name or value either
bare (no reserved character) or double-quoted with Go's escapes, in an optional ``{...}``.
Fallback mode takes the classic reading when the classic parser accepts the text, the UTF-8
reading otherwise. The parsers build each matcher through ``build`` so that a regex Alertmanager
would refuse fails that parser's reading, as it does there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple, TypeVar

from receiver.model.go_strings import go_unquote

M = TypeVar("M")
Build = Callable[[str, str, str, str], M]
"""(name, operator, value, the matcher's text) to a matcher; ValueError for a refused regex."""

CLASSIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_GO_REGEXP_SPACE = "\t\n\f\r "  # \s in Go's regexp (RE2): ASCII only, no \v
_CLASSIC = re.compile(r"\A[\t\n\f\r ]*([a-zA-Z_:][a-zA-Z0-9_:]*)[\t\n\f\r ]*(=~|=|!=|!~)")
# unicode.IsSpace in Go; Python's str.isspace also counts U+001C..U+001F
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
_GO_SPACE += "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
_RESERVED = frozenset("{}!=~,\\\"'`" + _GO_SPACE)
HINT = "a matcher is name=value, name!=value, name=~regex or name!~regex"


class ClassicFormatError(ValueError):
    """The classic parser did not recognise the text's shape (its "bad matcher format")."""


def _syntax_error(text: str, problem: str) -> ValueError:
    return ValueError(f"not a label matcher: {text!r}: {problem} ({HINT})")


# The classic parser


def classic_matcher(text: str, build: Build[M]) -> M:
    """One matcher as ``pkg/labels.ParseMatcher`` reads it."""
    head = _CLASSIC.match(text)
    if head is None:
        raise ClassicFormatError(f"not a label matcher: {text!r} ({HINT})")
    raw = text[head.end() :].strip(_GO_REGEXP_SPACE)
    return build(head[1], head[2], _classic_value(raw, text), text)


def _classic_value(raw: str, text: str) -> str:
    quoted = raw.startswith('"')
    body = raw[1:] if quoted else raw
    out: list[str] = []
    escaped = closed = False
    for i, char in enumerate(body):
        if escaped:
            escaped = False
            out.append("\n" if char == "n" else char if char in '"\\' else "\\" + char)
        elif char == "\\" and i < len(body) - 1:
            escaped = True
        elif char == '"':
            if not quoted or i < len(body) - 1:
                raise ValueError(f"badly quoted value in matcher {text!r}: unescaped double quote")
            closed = True
        else:
            out.append(char)  # a backslash at the very end stays one
    if quoted and not closed:
        raise ValueError(f"badly quoted value in matcher {text!r}: no closing double quote")
    return "".join(out)


def classic_matchers(text: str, build: Build[M]) -> list[M]:
    """A list as ``pkg/labels.ParseMatchers`` reads it: braces trimmed, split on commas."""
    body = text.removeprefix("{").removesuffix("}")
    pieces: list[str] = []
    current: list[str] = []
    inside = escaped = False
    for char in body:
        # as Alertmanager's loop: a comma leaves the escape flag as it was
        if char == ",":
            if not inside:
                pieces.append("".join(current))
                current = []
                continue
        elif char == '"':
            if escaped:
                escaped = False
            else:
                inside = not inside
        elif char == "\\":
            escaped = not escaped
        else:
            escaped = False
        current.append(char)
    last = "".join(current).strip(_GO_SPACE)  # strings.TrimSpace
    if last:
        pieces.append(last)
    return [classic_matcher(piece, build) for piece in pieces]


# The UTF-8 parser


class Token(NamedTuple):
    kind: str  # "{", "}", ",", an operator, "quoted", "unquoted", or "" at the end
    text: str
    start: int  # in characters, as Alertmanager's columns
    end: int


def tokens(text: str) -> list[Token | ValueError]:
    """The UTF-8 lexer's tokens; a lexing error ends the list, as the lexer stops there."""
    out: list[Token | ValueError] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in "{},":
            out.append(Token(char, char, i, i + 1))
            i += 1
        elif char == "=":
            op = "=~" if text[i + 1 : i + 2] == "~" else "="
            out.append(Token(op, op, i, i + len(op)))
            i += len(op)
        elif char == "!":
            if text[i + 1 : i + 2] not in ("=", "~"):
                where = "end of input" if i + 1 >= n else repr(text[i + 1])
                problem = f"{where} at character {i + 2}: expected != or !~"
                out.append(_syntax_error(text, problem))
                return out
            out.append(Token(text[i : i + 2], text[i : i + 2], i, i + 2))
            i += 2
        elif char == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                problem = f"no closing double quote for the one at character {i + 1}"
                out.append(_syntax_error(text, problem))
                return out
            out.append(Token("quoted", text[i : j + 1], i, j + 1))
            i = j + 1
        elif char in _GO_SPACE:
            i += 1
        elif char in _RESERVED:
            problem = f"{char!r} at character {i + 1} must be inside double quotes"
            out.append(_syntax_error(text, problem))
            return out
        else:
            j = i
            while j < n and text[j] not in _RESERVED:
                j += 1
            out.append(Token("unquoted", text[i:j], i, j))
            i = j
    out.append(Token("", "", n, n))
    return out


class _Stream:
    def __init__(self, text: str):
        self.text = text
        self.items = tokens(text)
        self.at = 0

    def peek(self) -> Token:
        item = self.items[self.at]
        if isinstance(item, ValueError):
            raise item
        return item

    def take(self, kinds: tuple[str, ...], what: str) -> Token:
        token = self.peek()
        if token.kind not in kinds:
            raise self.error(token, what)
        self.at += 1
        return token

    def error(self, token: Token, what: str) -> ValueError:
        found = "end of input" if not token.kind else f"unexpected {token.text!r}"
        return _syntax_error(self.text, f"{found} at character {token.start + 1}: expected {what}")

    def unquote(self, token: Token) -> str:
        if token.kind != "quoted":
            return token.text
        try:
            return go_unquote(token.text)
        except ValueError as exc:
            problem = f"bad quoted string at character {token.start + 1}: {exc}"
            raise _syntax_error(self.text, problem) from None


_OPERATORS = ("=", "!=", "=~", "!~")
_STRINGS = ("quoted", "unquoted")


def utf8_matchers(text: str, build: Build[M]) -> list[M]:
    """A list as ``matcher/parse.Matchers`` reads it (Alertmanager's UTF-8 parser)."""
    stream = _Stream(text)
    braced = stream.peek().kind == "{"
    if braced:
        stream.at += 1
    out: list[M] = []
    while stream.peek().kind not in ("", "}"):
        name = stream.take(_STRINGS, "a label name")
        label = stream.unquote(name)  # before the operator, as Alertmanager reports it
        op = stream.take(_OPERATORS, "an operator such as =, !=, =~ or !~")
        value = stream.take(_STRINGS, "a label value")
        source = text[name.start : value.end]
        out.append(build(label, op.kind, stream.unquote(value), source))
        after = stream.peek()
        if after.kind == ",":
            stream.at += 1
            if stream.peek().kind not in ("", "}", *_STRINGS):
                raise stream.error(stream.peek(), "a matcher or a close brace after the comma")
        elif after.kind not in ("", "}"):
            raise stream.error(after, "a comma or a close brace")
    end = stream.peek()
    if braced:
        stream.take(("}",), "a close brace")
    elif end.kind == "}":
        raise _syntax_error(text, f"'}}' at character {end.start + 1} closes no open brace")
    stream.take(("",), "the end of the input")
    return out


# Fallback mode, Alertmanager's default


def _check_encoding(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"not a label matcher: {text!r} is not valid UTF-8") from None


def fallback_matchers(text: str, build: Build[M]) -> list[M]:
    """Zero or more matchers, as ``matcher/compat`` reads a list in fallback mode."""
    _check_encoding(text)
    try:
        return classic_matchers(text, build)
    except ValueError as exc:
        classic = exc
    try:
        return utf8_matchers(text, build)
    except ValueError as utf8:
        # the classic parser's reason when it got as far as the value, else the positioned one
        raise (utf8 if isinstance(classic, ClassicFormatError) else classic) from None


def fallback_matcher(text: str, build: Build[M]) -> M:
    """Exactly one matcher, as ``matcher/compat`` reads a single one in fallback mode."""
    _check_encoding(text)
    if text.startswith("{") or text.endswith("}"):
        raise _syntax_error(text, "braces hold a list of matchers; one matcher goes here")
    try:
        return classic_matcher(text, build)
    except ValueError as exc:
        classic = exc
    try:
        found = utf8_matchers(text, build)
    except ValueError as utf8:
        raise (utf8 if isinstance(classic, ClassicFormatError) else classic) from None
    if len(found) == 1:
        return found[0]
    if not isinstance(classic, ClassicFormatError):
        raise classic
    raise _syntax_error(text, f"expected one matcher, found {len(found) or 'none'}")
