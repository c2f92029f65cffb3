"""Alertmanager's own matcher test tables, ported: every expected result is Alertmanager's.

Sources, in github.com/prometheus/alertmanager (inputs copied as the Go tests spell them):

- matcher/parse/parse_test.go at 5d6cd3ef6c1b6589d8b895113526eecb34c9d410: TestMatchers and
  TestMatcher, the UTF-8 parser (``utf8_matchers`` here);
- matcher/parse/lexer_test.go at 023885c52ceb8c73275e7146058e759bd1993899: TestLexer_Scan, the
  UTF-8 lexer's tokens and columns (``tokens``; byte offsets are not kept here);
- matcher/compliance/compliance_test.go at 004695db7187278be67cba957f59621be9f40639: the UTF-8
  parser on classic inputs; the cases Alertmanager itself skips are skipped here too;
- matcher/oldparse/parse_test.go at 042b4178cd53f9d78057292afc7107fbed06c4e4: TestMatchers, the
  classic parser (pkg/labels.ParseMatchers, ``classic_matchers``);
- matcher/compat/parse_test.go at 3510210374c1d4a4423bac34775b010bffcc98e8:
  TestFallbackMatcherParser and TestFallbackMatchersParser, the default fallback mode
  (``Matcher.parse`` and ``parse_matchers``).

Error cases check error-ness only: the messages are this project's own. No case depends on a
difference between Go's regexp and RE2 (the only regex error, ``[regexp``, is one in both).
"""

from __future__ import annotations

import pytest

from receiver.model.matcher_syntax import Token, classic_matchers, tokens, utf8_matchers
from receiver.model.matchers import Matcher, _build, parse_matchers

ERROR = None
Want = list[tuple[str, str, str]] | None  # (operator, name, value) each, or ERROR


def one(op: str, name: str, value: str) -> list[tuple[str, str, str]]:
    return [(op, name, value)]


def triples(matchers: list[Matcher]) -> list[tuple[str, str, str]]:
    return [(m.op.value, m.name, m.value) for m in matchers]


def utf8_matcher(text: str) -> Matcher:
    """parse.Matcher: parse.Matchers, then exactly one."""
    found = utf8_matchers(text, _build)
    if len(found) != 1:
        raise ValueError(f"expected 1 matcher, found {len(found)}")
    return found[0]


# parse_test.go, TestMatchers
PARSE_MATCHERS: list[tuple[str, Want]] = [
    ("", []),
    ("{}", []),
    ("{foo=bar}", one("=", "foo", "bar")),
    ("{foo=bar,}", one("=", "foo", "bar")),
    ("{foo!=bar}", one("!=", "foo", "bar")),
    ("{foo=~[a-z]+}", one("=~", "foo", "[a-z]+")),
    ("{foo!~[a-z]+}", one("!~", "foo", "[a-z]+")),
    ("{foo=🙂}", one("=", "foo", "🙂")),
    ("{foo=🙂bar}", one("=", "foo", "🙂bar")),
    ("foo=bar", one("=", "foo", "bar")),
    ("foo=bar,", one("=", "foo", "bar")),
    ("foo!=bar", one("!=", "foo", "bar")),
    ("foo=~[a-z]+", one("=~", "foo", "[a-z]+")),
    ("foo!~[a-z]+", one("!~", "foo", "[a-z]+")),
    ('{"foo"="bar"}', one("=", "foo", "bar")),
    ('{"foo"="bar",}', one("=", "foo", "bar")),
    ('{"foo"!="bar"}', one("!=", "foo", "bar")),
    ('{"foo"=~"[a-z]+"}', one("=~", "foo", "[a-z]+")),
    (r'{"foo"=~"\\d+"}', one("=~", "foo", r"\d+")),
    ('{"foo"!~"[a-z]+"}', one("!~", "foo", "[a-z]+")),
    ('{"foo"="🙂"}', one("=", "foo", "🙂")),
    (r'{"foo"="\xf0\x9f\x99\x82"}', one("=", "foo", "🙂")),
    (r'{"foo"="\U0001f642"}', one("=", "foo", "🙂")),
    ('{"foo"="🙂bar"}', one("=", "foo", "🙂bar")),
    (r'{"foo"="bar\n"}', one("=", "foo", "bar\n")),
    (r'{"foo"="bar\t"}', one("=", "foo", "bar\t")),
    (r'{"foo"="\"bar\""}', one("=", "foo", '"bar"')),
    (r'{"foo"="bar\\"}', one("=", "foo", "bar\\")),
    ('"foo"="bar"', one("=", "foo", "bar")),
    ('"foo"="bar",', one("=", "foo", "bar")),
    ("{foo=bar,bar!=baz}", [("=", "foo", "bar"), ("!=", "bar", "baz")]),
    ('{foo="bar",bar!="baz"}', [("=", "foo", "bar"), ("!=", "bar", "baz")]),
    ("foo=bar,bar!=baz", [("=", "foo", "bar"), ("!=", "bar", "baz")]),
    ('foo="bar",bar!="baz"', [("=", "foo", "bar"), ("!=", "bar", "baz")]),
    (",", ERROR),
    ("{,}", ERROR),
    ("{", ERROR),
    ("}", ERROR),
    ("foo=bar}", ERROR),
    ("{foo=bar", ERROR),
    ('{foo=:"bar"}', ERROR),
    (r'{foo="bar\w"}', ERROR),
    (r'{"foo"=~"\d+"}', ERROR),
    (r"{foo=bar\n}", ERROR),
    (r'{"foo"="\xf0\x9f"}', ERROR),
]

# parse_test.go, TestMatcher
PARSE_MATCHER: list[tuple[str, Want]] = [
    ("{foo=bar}", one("=", "foo", "bar")),
    ("{foo=bar,}", one("=", "foo", "bar")),
    ("{foo!=bar}", one("!=", "foo", "bar")),
    ("{foo=~[a-z]+}", one("=~", "foo", "[a-z]+")),
    ("{foo!~[a-z]+}", one("!~", "foo", "[a-z]+")),
    ("{foo=🙂}", one("=", "foo", "🙂")),
    (r'{"foo"="\xf0\x9f\x99\x82"}', one("=", "foo", "🙂")),
    (r'{"foo"="\U0001f642"}', one("=", "foo", "🙂")),
    ("{foo=🙂bar}", one("=", "foo", "🙂bar")),
    ("foo=bar", one("=", "foo", "bar")),
    ("foo=bar,", one("=", "foo", "bar")),
    ("foo!=bar", one("!=", "foo", "bar")),
    ("foo=~[a-z]+", one("=~", "foo", "[a-z]+")),
    ("foo!~[a-z]+", one("!~", "foo", "[a-z]+")),
    ('{"foo"="bar"}', one("=", "foo", "bar")),
    ('{"foo"="bar",}', one("=", "foo", "bar")),
    ('{"foo"!="bar"}', one("!=", "foo", "bar")),
    ('{"foo"=~"[a-z]+"}', one("=~", "foo", "[a-z]+")),
    ('{"foo"!~"[a-z]+"}', one("!~", "foo", "[a-z]+")),
    ('{"foo"="🙂"}', one("=", "foo", "🙂")),
    ('{"foo"="🙂bar"}', one("=", "foo", "🙂bar")),
    (r'{"foo"="bar\n"}', one("=", "foo", "bar\n")),
    (r'{"foo"="bar\t"}', one("=", "foo", "bar\t")),
    (r'{"foo"="\"bar\""}', one("=", "foo", '"bar"')),
    (r'{"foo"="bar\\"}', one("=", "foo", "bar\\")),
    ('"foo"="bar"', one("=", "foo", "bar")),
    ('"foo"="bar",', one("=", "foo", "bar")),
    ("", ERROR),
    ("{}", ERROR),
    ("foo=bar,bar=baz", ERROR),
    (r'foo="\xf0\x9f"', ERROR),
]

# compliance_test.go: the UTF-8 parser on inputs of the classic parser's table
COMPLIANCE: list[tuple[str, Want]] = [
    ("{foo=bar}", one("=", "foo", "bar")),
    ('{foo="bar"}', one("=", "foo", "bar")),
    ("{foo=~bar.*}", one("=~", "foo", "bar.*")),
    ('{foo=~"bar.*"}', one("=~", "foo", "bar.*")),
    ("{foo!=bar}", one("!=", "foo", "bar")),
    ('{foo!="bar"}', one("!=", "foo", "bar")),
    ("{foo!~bar.*}", one("!~", "foo", "bar.*")),
    ('{foo!~"bar.*"}', one("!~", "foo", "bar.*")),
    ('{foo="bar", baz!="quux"}', [("=", "foo", "bar"), ("!=", "baz", "quux")]),
    ('{foo="bar", baz!~"quux.*"}', [("=", "foo", "bar"), ("!~", "baz", "quux.*")]),
    (
        '{foo="bar",baz!~".*quux", derp="wat"}',
        [("=", "foo", "bar"), ("!~", "baz", ".*quux"), ("=", "derp", "wat")],
    ),
    (
        '{foo="bar", baz!="quux", derp="wat"}',
        [("=", "foo", "bar"), ("!=", "baz", "quux"), ("=", "derp", "wat")],
    ),
    (
        '{foo="bar", baz!~".*quux.*", derp="wat"}',
        [("=", "foo", "bar"), ("!~", "baz", ".*quux.*"), ("=", "derp", "wat")],
    ),
    (
        '{foo="bar", instance=~"some-api.*"}',
        [("=", "foo", "bar"), ("=~", "instance", "some-api.*")],
    ),
    ('{foo=""}', one("=", "foo", "")),
    ('{foo="bar,quux", job="job1"}', [("=", "foo", "bar,quux"), ("=", "job", "job1")]),
    ('{foo = "bar", dings != "bums", }', [("=", "foo", "bar"), ("!=", "dings", "bums")]),
    ("foo=bar,dings!=bums", [("=", "foo", "bar"), ("!=", "dings", "bums")]),
    (
        r"""{quote="She said: \"Hi, ladies! That's gender-neutral…\""}""",
        one("=", "quote", 'She said: "Hi, ladies! That\'s gender-neutral…"'),
    ),
    ('statuscode=~"5.."', one("=~", "statuscode", "5..")),
    (
        r'contains_quote != "\"" , contains_comma !~ "foo,bar" , ',
        [("!=", "contains_quote", '"'), ("!~", "contains_comma", "foo,bar")],
    ),
    ('{name-with-dashes = "bar"}', one("=", "name-with-dashes", "bar")),
    ("{,}", ERROR),
    ('job="value', ERROR),
    ('job=value"', ERROR),
    (r'trickier==\\=\=\""', ERROR),
    ('contains_unescaped_quote = foo"bar', ERROR),
    ('{foo=~"invalid[regexp"}', ERROR),
    (r'"{foo=\"bar"}', ERROR),
    (r'"foo=\"bar"', ERROR),
    (r'"foo=\"bar\""', ERROR),
    (r'"foo=\"bar\"', ERROR),
    (r'"{foo=\"bar\"}"', ERROR),
    ('"foo="bar""', ERROR),
    ("{{foo=", ERROR),
]
# skip: true in compliance_test.go: the UTF-8 parser does not read these as the classic one does
COMPLIANCE_SKIPPED = [
    "{}",
    "{foo='}",
    "{foo=`}",
    r"{foo=\n}",
    r"{foo=bar\n}",
    r"{foo=\t}",
    r"{foo=bar\t}",
    r"{foo=bar\}",
    r"{foo=bar\\}",
    r"{foo=\"}",
    r"{foo=bar\"}",
    "tricky=~~~",
    r"trickier==\\=\=\"",
    "{foo=bar}}",
    "{foo=bar}},}",
    "{foo=,bar=}}",
    "job=",
    "{foo=",
    "{foo=}b",
]

# oldparse/parse_test.go, TestMatchers: the classic parser
CLASSIC: list[tuple[str, Want]] = [
    ("{}", []),
    (",", ERROR),
    ("{,}", ERROR),
    ("{foo='}", one("=", "foo", "'")),
    ("{foo=`}", one("=", "foo", "`")),
    ('{foo=\\"}', one("=", "foo", '"')),
    ("{foo=bar}", one("=", "foo", "bar")),
    ('{foo="bar"}', one("=", "foo", "bar")),
    ("{foo=~bar.*}", one("=~", "foo", "bar.*")),
    ('{foo=~"bar.*"}', one("=~", "foo", "bar.*")),
    ("{foo!=bar}", one("!=", "foo", "bar")),
    ('{foo!="bar"}', one("!=", "foo", "bar")),
    ("{foo!~bar.*}", one("!~", "foo", "bar.*")),
    ('{foo!~"bar.*"}', one("!~", "foo", "bar.*")),
    *COMPLIANCE[8:19],  # the same inputs and results in both tables
    ('statuscode=~"5.."', one("=~", "statuscode", "5..")),
    ("tricky=~~~", one("=~", "tricky", "~~")),
    (r"trickier==\\=\=\"", one("=", "trickier", r'=\=\="')),
    (
        r'contains_quote != "\"" , contains_comma !~ "foo,bar" , ',
        [("!=", "contains_quote", '"'), ("!~", "contains_comma", "foo,bar")],
    ),
    ("{foo=bar}}", one("=", "foo", "bar}")),
    ("{foo=bar}},}", one("=", "foo", "bar}}")),
    ("{foo=,bar=}}", [("=", "foo", ""), ("=", "bar", "}")]),
    (r"{foo=bar\t}", one("=", "foo", r"bar\t")),
    (r"{foo=bar\n}", one("=", "foo", "bar\n")),
    (r"{foo=bar\}", one("=", "foo", "bar\\")),
    (r"{foo=bar\\}", one("=", "foo", "bar\\")),
    (r"{foo=bar\"}", one("=", "foo", 'bar"')),
    ("job=", one("=", "job", "")),
    ('job="value', ERROR),
    ('job=value"', ERROR),
    (r'trickier==\\=\=\""', ERROR),
    ('contains_unescaped_quote = foo"bar', ERROR),
    ('{invalid-name = "valid label"}', ERROR),
    ('{foo=~"invalid[regexp"}', ERROR),
    (r'"{foo=\"bar"}', ERROR),
    (r'"foo=\"bar"', ERROR),
    (r'"foo=\"bar\""', ERROR),
    (r'"foo=\"bar\"', ERROR),
    (r'"{foo=\"bar\"}"', ERROR),
    ('"foo="bar""', ERROR),
    ("{{foo=", ERROR),
    ("{foo=", one("=", "foo", "")),
    ("{foo=}b", one("=", "foo", "}b")),
]

# compat/parse_test.go: fallback mode, one matcher and a list
FALLBACK_MATCHER: list[tuple[str, Want]] = [
    ("foo=bar", one("=", "foo", "bar")),
    ("foo!bar", ERROR),
    ("foo🙂=bar", one("=", "foo🙂", "bar")),
    (r"foo=!bar\n", one("=", "foo", "!bar\n")),
    # both parsers accept it and disagree: the classic reading wins
    (r'foo="\xf0\x9f\x99\x82"', one("=", "foo", r"\xf0\x9f\x99\x82")),
]
FALLBACK_MATCHERS: list[tuple[str, Want]] = [
    ("{foo=bar,bar=baz}", [("=", "foo", "bar"), ("=", "bar", "baz")]),
    ("{foo!bar}", ERROR),
    ("{foo🙂=bar,bar=baz🙂}", [("=", "foo🙂", "bar"), ("=", "bar", "baz🙂")]),
    (r"{foo=!bar,bar=$baz\n}", [("=", "foo", "!bar"), ("=", "bar", "$baz\n")]),
    (r'{foo="\xf0\x9f\x99\x82"}', one("=", "foo", r"\xf0\x9f\x99\x82")),
]


def check(parse, text: str, want: Want) -> None:
    if want is ERROR:
        with pytest.raises(ValueError):
            parse(text)
    else:
        assert triples(parse(text)) == want


@pytest.mark.parametrize(("text", "want"), PARSE_MATCHERS, ids=repr)
def test_parse_matchers(text, want):
    check(lambda t: utf8_matchers(t, _build), text, want)


@pytest.mark.parametrize(("text", "want"), PARSE_MATCHER, ids=repr)
def test_parse_matcher(text, want):
    check(lambda t: [utf8_matcher(t)], text, want)


@pytest.mark.parametrize(("text", "want"), COMPLIANCE, ids=repr)
def test_compliance(text, want):
    check(lambda t: utf8_matchers(t, _build), text, want)


@pytest.mark.parametrize("text", COMPLIANCE_SKIPPED, ids=repr)
def test_compliance_cases_alertmanager_skips(text):
    pytest.skip("skipped in Alertmanager's compliance_test.go: the parsers differ on it")


@pytest.mark.parametrize(("text", "want"), CLASSIC, ids=repr)
def test_classic_parse_matchers(text, want):
    check(lambda t: classic_matchers(t, _build), text, want)


@pytest.mark.parametrize(("text", "want"), FALLBACK_MATCHER, ids=repr)
def test_fallback_matcher_parser(text, want):
    check(lambda t: [Matcher.parse(t)], text, want)


@pytest.mark.parametrize(("text", "want"), FALLBACK_MATCHERS, ids=repr)
def test_fallback_matchers_parser(text, want):
    check(parse_matchers, text, want)


def _fallback_cases() -> list[tuple[str, Want]]:
    """Fallback results Alertmanager's tables fix: the classic reading where the classic table
    accepts the input, an error where the classic and the UTF-8 tables both refuse it."""
    utf8 = dict(PARSE_MATCHERS + COMPLIANCE)
    out = [(text, want) for text, want in CLASSIC if want is not ERROR]
    out += [(t, ERROR) for t, want in CLASSIC if want is ERROR and t in utf8 and utf8[t] is ERROR]
    return out


@pytest.mark.parametrize(("text", "want"), _fallback_cases(), ids=repr)
def test_fallback_mode_follows_the_two_tables(text, want):
    check(parse_matchers, text, want)


# lexer_test.go, TestLexer_Scan: (kind, value, column start, column end); "error" ends a list
U, Q = "unquoted", "quoted"
LEXER: list[tuple[str, list[tuple[str, str, int, int]], bool]] = [
    ("", [], False),
    ("{", [("{", "{", 0, 1)], False),
    (" {", [("{", "{", 1, 2)], False),
    ("}", [("}", "}", 0, 1)], False),
    (" }", [("}", "}", 1, 2)], False),
    ("{}", [("{", "{", 0, 1), ("}", "}", 1, 2)], False),
    ("{ }", [("{", "{", 0, 1), ("}", "}", 2, 3)], False),
    ("hello", [(U, "hello", 0, 5)], False),
    ("hello_world", [(U, "hello_world", 0, 11)], False),
    ("hello:world", [(U, "hello:world", 0, 11)], False),
    ("hello0123456789", [(U, "hello0123456789", 0, 15)], False),
    ("_hello", [(U, "_hello", 0, 6)], False),
    ("hello world", [(U, "hello", 0, 5), (U, "world", 6, 11)], False),
    ("\nhello", [(U, "hello", 1, 6)], False),
    ("hello\n", [(U, "hello", 0, 5)], False),
    ("\rhello", [(U, "hello", 1, 6)], False),
    (" hello", [(U, "hello", 1, 6)], False),
    ("hello ", [(U, "hello", 0, 5)], False),
    ("hello\nworld", [(U, "hello", 0, 5), (U, "world", 6, 11)], False),
    ("$", [(U, "$", 0, 1)], False),
    ("🙂", [(U, "🙂", 0, 1)], False),
    ("Σ", [(U, "Σ", 0, 1)], False),
    ("hello🙂Σ world", [(U, "hello🙂Σ", 0, 7), (U, "world", 8, 13)], False),
    ("hello🙂Σ\u202fworld", [(U, "hello🙂Σ", 0, 7), (U, "world", 8, 13)], False),
    ('"hello"', [(Q, '"hello"', 0, 7)], False),
    ('"hello 🙂"', [(Q, '"hello 🙂"', 0, 9)], False),
    ('"hello world"', [(Q, '"hello world"', 0, 13)], False),
    ('"hello\u202fworld"', [(Q, '"hello\u202fworld"', 0, 13)], False),
    ('"hello\nworld"', [(Q, '"hello\nworld"', 0, 13)], False),
    ('"hello\tworld"', [(Q, '"hello\tworld"', 0, 13)], False),
    (r'"\d+"', [(Q, r'"\d+"', 0, 5)], False),
    (r'"\\d+"', [(Q, r'"\\d+"', 0, 6)], False),
    (r'"hello \"world\""', [(Q, r'"hello \"world\""', 0, 17)], False),
    (r'"hello world\\"', [(Q, r'"hello world\\"', 0, 15)], False),
    (r'"\n"', [(Q, r'"\n"', 0, 4)], False),
    ("=", [("=", "=", 0, 1)], False),
    ("!=", [("!=", "!=", 0, 2)], False),
    ("=~", [("=~", "=~", 0, 2)], False),
    ("!~", [("!~", "!~", 0, 2)], False),
    ("!", [], True),
    ("~", [], True),
    ("=!", [("=", "=", 0, 1)], True),
    ("!=!!", [("!=", "!=", 0, 2)], True),
    ("hello!", [(U, "hello", 0, 5)], True),
    (r"\n", [], True),
    (r"\nhello", [], True),
    (r"hello\n", [(U, "hello", 0, 5)], True),
    (r"hello\r", [(U, "hello", 0, 5)], True),
    ('"hello', [], True),
    ('"hello\\"', [], True),
]


@pytest.mark.parametrize(("text", "want", "error"), LEXER, ids=repr)
def test_lexer_scan(text, want, error):
    found = tokens(text)
    last = found.pop()
    assert [tuple(t) for t in found] == want
    if error:
        assert isinstance(last, ValueError)
    else:
        assert last == Token("", "", len(text), len(text))
