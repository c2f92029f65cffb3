"""The ``receiver`` parameter reconciliation sends: exactly the given names, under RE2 (the syntax
of Go's regexp, which Alertmanager compiles it with) anchored as Alertmanager anchors it. The
real Alertmanagers answer it in tests/integration/test_reconcile.py."""

from __future__ import annotations

import re2

from receiver.alertmanager import NO_RECEIVER, receiver_regex

NAMES = ["ops.a+b (prod)|équipe", "tab\there", "a-b_c/d", "x[y]{2}^$\\z", "#&~ ", "triton"]
DECOYS = ["opsXaab prod", "équipe", "triton-canary", "xtriton", "a-b_c/dd", "tab here", ""]


def matches(regex: str, name: str) -> bool:
    return re2.fullmatch(f"^(?:{regex})$", name) is not None  # Alertmanager's anchoring


def test_the_regex_matches_exactly_the_names_given() -> None:
    regex = receiver_regex(NAMES)
    assert all(matches(regex, name) for name in NAMES)
    assert not any(matches(regex, name) for name in DECOYS)
    assert receiver_regex(reversed(NAMES)) == regex  # sorted, so stable across passes


def test_no_names_match_no_receiver() -> None:
    assert receiver_regex([]) == NO_RECEIVER
    assert not any(matches(NO_RECEIVER, name) for name in [*NAMES, *DECOYS, "\U0010ffff"])
