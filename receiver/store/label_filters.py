"""Label matcher filters of the incident list, with RE2's answers on every database.

A regex matcher is never handed to the database (SQLite would run Python's ``re``, which
backtracks, Postgres its own dialect): the distinct values the label takes are read from the
(name, value) index, RE2 decides which of them match, and the query keeps the incidents with
one of those values: runs of neighbouring values in the index's order as ranges, the others
as one list parameter (or the same of the values it does not match, when shorter). The values
are read in the same snapshot as the page they filter, so no other value can be there; and
the ranges use the column's collation, as the reads' order does (any deterministic one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, String, and_, exists, false, literal, not_, or_, select, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

from receiver.model.errors import FilterTooCostly
from receiver.model.matchers import Matcher, MatchOp
from receiver.store.tables import Incident, IncidentLabel

MAX_REGEX_VALUES = 200_000
"""The most distinct values of one label a regex filter may test: reading them and RE2's test
of each take about a second at this bound (docs/benchmarks.md); a label with more values is
filtered with = or !=."""


MAX_RANGES = 16
"""Runs of neighbouring values sent as ranges, at most (the longest runs; the rest as a list)."""


@dataclass(frozen=True)
class ValueSet:
    """Which values of its label a regex matches, as the query needs them: runs of neighbours
    in the index's order as ranges (a prefix such as ``triton-llama2-.*`` is one), the other
    values as a list; or the same of the values it does not match, when that is shorter.
    Exact: the values were read in the page's snapshot, which holds no other value."""

    ranges: list[tuple[str, str]]
    singles: list[str]
    matching: bool

    @classmethod
    def of(cls, values: list[str], hits: list[bool]) -> ValueSet:
        """The shorter description of the hits among ``values`` (in the index's order)."""
        matching = cls._runs(values, hits, True)
        others = cls._runs(values, hits, False)
        return matching if matching._size() <= others._size() else others

    @classmethod
    def _runs(cls, values: list[str], hits: list[bool], wanted: bool) -> ValueSet:
        runs: list[tuple[int, int]] = []  # [start, end) of each run of wanted values
        for i, hit in enumerate(hits):
            if hit is not wanted:
                continue
            if runs and runs[-1][1] == i:
                runs[-1] = (runs[-1][0], i + 1)
            else:
                runs.append((i, i + 1))
        longest = sorted((r for r in runs if r[1] - r[0] > 1), key=lambda r: r[0] - r[1])
        as_ranges = sorted(longest[:MAX_RANGES])
        ranges = [(values[a], values[b - 1]) for a, b in as_ranges]
        kept = set(as_ranges)
        singles = [values[i] for r in runs if r not in kept for i in range(*r)]
        return cls(ranges, singles, wanted)

    def _size(self) -> int:
        return len(self.ranges) + len(self.singles)


class FilterValues:
    """Per regex matcher, which values of its label its regex matches (RE2)."""

    def __init__(self, matched: dict[Matcher, ValueSet] | None = None):
        self.matched = matched or {}

    @classmethod
    def read(cls, session: Session, matchers: list[Matcher]) -> FilterValues:
        """Read the values of each regex matcher's label and test them with RE2."""
        matched = {}
        for matcher in matchers:
            if matcher.is_regex and matcher not in matched:
                values = label_values(session, matcher.name, MAX_REGEX_VALUES)
                hits = [matcher.regex_matches(v) for v in values]
                matched[matcher] = ValueSet.of(values, hits)
        return cls(matched)


LOOSE_SCAN_VALUES = 1000
"""Values read by a loose scan, one index probe each (2 to 17 us), before the rest are read by
a plain scan of the label's index rows (0.1 us a row): a label with few values costs a few
probes however many incidents carry them, one with many values a pass over its rows, each
value found costing more than its rows (docs/benchmarks.md)."""


def label_values(session: Session, name: str, at_most: int) -> list[str]:
    """The distinct values of a label, from the (name, value) index, in its order: a loose
    scan (one probe per value), then, past LOOSE_SCAN_VALUES, a scan of the rest of the
    label's rows. FilterTooCostly if it has more than ``at_most``."""
    values = _loose_scan(session, name, min(at_most, LOOSE_SCAN_VALUES) + 1)
    if len(values) > LOOSE_SCAN_VALUES:
        label = IncidentLabel
        rest = (
            select(label.value)
            .where(label.name == name, label.value > values[-1])
            .distinct()
            .order_by(label.value)
            .limit(at_most + 1 - len(values))
        )
        values += session.scalars(rest)
    if len(values) > at_most:
        raise FilterTooCostly(
            "label",
            f"label {name!r} takes more than {at_most} distinct values, too many to test"
            " a regex against: filter it with = or != instead",
        )
    return values


def _loose_scan(session: Session, name: str, at_most: int) -> list[str]:
    """The first ``at_most`` values of a label by a recursive CTE: each step finds the next
    value with one index probe, however many incidents carry the one before."""
    label = IncidentLabel
    first = select(label.value).where(label.name == name).order_by(label.value).limit(1)
    seen = select(first.scalar_subquery().label("value")).cte("seen", recursive=True)
    following = (
        select(label.value)
        .where(label.name == name, label.value > seen.c.value)
        .order_by(label.value)
        .limit(1)
    )
    seen = seen.union_all(select(following.scalar_subquery()).where(seen.c.value.is_not(None)))
    stmt = select(seen.c.value).where(seen.c.value.is_not(None)).limit(at_most)
    return list(session.scalars(stmt))


class _ValueList(TypeDecorator[list[str]]):
    """A list of strings bound as one parameter: an array on Postgres, JSON text elsewhere."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import ARRAY

            return dialect.type_descriptor(ARRAY(String))
        return dialect.type_descriptor(String())

    def process_bind_param(self, value: list[str] | None, dialect: Any) -> Any:
        return value if dialect.name == "postgresql" else json.dumps(value)


class one_of(FunctionElement[Any]):
    """``column`` is one of a list of strings bound as one parameter (any length, one plan).

    Untyped, as ``rare`` in queries.py: as a Boolean, SQLite would get ``(...) = 1``."""

    name = "one_of"
    inherit_cache = True


@compiles(one_of, "postgresql")
def _one_of_postgresql(element: one_of, compiler: Any, **kw: Any) -> str:
    column, values = (compiler.process(c, **kw) for c in element.clauses)
    return f"({column} = ANY({values}))"


@compiles(one_of)
def _one_of_sqlite(element: one_of, compiler: Any, **kw: Any) -> str:
    column, values = (compiler.process(c, **kw) for c in element.clauses)
    return f"({column} IN (SELECT value FROM json_each({values})))"


class unindexed(FunctionElement[str]):
    """A string column, the same value, that no index serves: a condition on it is a test of
    each row read (SQLite ``+x``, Postgres ``x || ''``, same collation), never an entry point."""

    type = String()
    name = "unindexed"
    inherit_cache = True


@compiles(unindexed, "postgresql")
def _unindexed_postgresql(element: unindexed, compiler: Any, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)} || '')"


@compiles(unindexed)
def _unindexed_sqlite(element: unindexed, compiler: Any, **kw: Any) -> str:
    return f"+{compiler.process(element.clauses, **kw)}"


def label_condition(matcher: Matcher, counting: bool, values: FilterValues) -> Any:
    """An incident's values for a label are those of its alerts ("" when none carries it).

    A positive matcher (=, =~) holds when some value matches; a negative one (!=, !~) when no
    value matches its positive counterpart. So ``model!="x"`` finds incidents with no alert
    on model x, and ``model=""`` those whose alerts have no model label, as in Alertmanager.

    Two equivalent forms (Postgres plans both as the same semi-join; SQLite follows the text).
    """
    positive = matcher.op in (MatchOp.EQ, MatchOp.RE)
    if matcher.is_regex:
        value_matches = _regex_matches(values.matched[matcher], counting)
        empty_matches = matcher.regex_matches("")
    else:
        value_matches = IncidentLabel.value == matcher.value
        empty_matches = matcher.value == ""
    if counting:
        # ``id IN (incidents with the label)``: one pass over the (name, value, incident_id)
        # index, where a probe per incident would visit every incident
        named = select(IncidentLabel.incident_id).where(IncidentLabel.name == matcher.name)
        hit: ColumnElement[bool] = Incident.id.in_(named.where(value_matches))
        if empty_matches:
            hit = or_(hit, Incident.id.not_in(named))
    else:
        # a probe per incident while walking the newest first, until the page is full (the
        # IN form would fetch and sort every match of a common label first)
        same = and_(IncidentLabel.incident_id == Incident.id, IncidentLabel.name == matcher.name)
        hit = exists().where(same, value_matches)
        if matcher.is_regex:
            # OFFSET keeps it a probe on Postgres too (it flattens no subquery with one): as a
            # semi-join, misled by a range's estimate, it started from the label's rows and
            # sorted them all, 100 ms where probes take 15
            hit = exists(select(1).where(same, value_matches).offset(0))
        if empty_matches:
            hit = or_(hit, ~exists().where(same))
    return hit if positive else ~hit


def _regex_matches(described: ValueSet, counting: bool) -> Any:
    """An incident_labels row's value is one its regex matches."""
    # counting reads the label's rows from the index by value; the page probes each incident's
    # rows, where a range or a list of thousands as an index entry would be far more work
    value: Any = IncidentLabel.value if counting else unindexed(IncidentLabel.value)
    parts = [value.between(low, high) for low, high in described.ranges]
    if described.singles:
        parts.append(one_of(value, literal(described.singles, _ValueList())))
    if not parts:
        return false() if described.matching else true()
    found = or_(*parts)
    return found if described.matching else not_(found)
