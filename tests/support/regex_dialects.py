"""Regexes on which Python's re, Postgres' ``~`` and RE2 (Go's regexp, so Alertmanager) disagree.

Each case: a pattern, a value, and whether Alertmanager's matcher ``label=~"pattern"`` holds
for it (RE2, anchored as ``^(?:pattern)$``). ``before`` says what the receiver answered when
regexes ran in Python's re (SQLite) and Postgres' ``~``, anchored as ``\\A(?:...)\\Z``: "error"
was a 400 (Python) or a 500 (Postgres). The routing unit tests and the list API tests on both
databases share the table.
"""

from __future__ import annotations

from typing import NamedTuple


class Case(NamedTuple):
    pattern: str
    value: str
    matches: bool
    before: str  # Python re / Postgres


CASES = [
    Case("a{,3}", "a{,3}", True, "python no, postgres yes"),  # {,n} is a literal in RE2
    Case("a{,3}", "aa", False, "python yes, postgres no"),
    Case(r"\d+", "٣٤", False, "python yes, postgres no"),  # \d is ASCII in RE2
    Case(r"\w+", "café", False, "python yes, postgres yes"),  # \w too
    Case(r"x\sy", "x\u00a0y", False, "python yes, postgres no"),  # \s too
    Case("[[:alpha:]]+", "abc", True, "python no, postgres yes"),  # POSIX classes
    Case("(?i)LLAMA.*", "Llama3_8b", True, "python error, postgres error"),
    Case(r"\p{Greek}+", "λόγος", True, "python error, postgres error"),
    Case(r"\pL+_7b", "llama_7b", True, "python error, postgres error"),
    Case("(?<m>llama).*", "llama3_8b", True, "python error, postgres error"),
    Case(r"\Qa.b\E", "a.b", True, "python error, postgres error"),
    Case(r"\Qa.b\E", "axb", False, "python error, postgres error"),
    Case(r"\x{41}\z", "A", True, "python error, postgres error"),
    Case("a.b", "a\nb", False, "python no, postgres yes"),  # . never matches a newline
    Case("llama", "llama\n", False, "python no, postgres no"),  # $ is the end of the text
    Case("llama$", "llama\n", False, "python no, postgres no"),
]

INVALID = [
    r"(a)\1",  # backreference
    "(?=a)a",  # lookahead
    "(?<=a)b",  # lookbehind
    "(?!a)b",  # negative lookahead
    r"a\Z",  # \Z is Python's and Postgres', not RE2's
    "a++",  # possessive
    r"(?P<n>a)(?P=n)",  # named backreference
    r"\C",  # any byte: RE2 in C++ has it, Go (Alertmanager) does not
    "(",
]

# Backtracking engines take exponential time on the first value (Python took seconds on 25
# characters); the second matches
CATASTROPHIC = [
    ("(a+)+$", "a" * 60 + "!", "a" * 60),
    ("(a|aa)+b", "a" * 60, "a" * 60 + "b"),
    ("(x+x+)+y", "x" * 60, "x" * 60 + "y"),
    ("(.*a){20}", "a" * 19 + "b" * 40, "a" * 20 + "b" * 40 + "a"),
]
