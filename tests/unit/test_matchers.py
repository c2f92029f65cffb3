"""Label matchers as Alertmanager writes them: parsing, anchored RE2 regexes, round trips."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receiver.model.matchers import MAX_REGEX_LENGTH, Matcher, MatchOp, parse_matchers
from tests.support.regex_dialects import CASES, CATASTROPHIC, INVALID


def regex(pattern: str, op: str = "=~") -> Matcher:
    """The matcher ``x=~"pattern"``, quoted as Alertmanager would."""
    return Matcher.parse(f'x{op}"{pattern.replace(chr(92), chr(92) * 2)}"')


@pytest.mark.parametrize(
    ("text", "name", "op", "value"),
    [
        ('model="llama2_7b"', "model", MatchOp.EQ, "llama2_7b"),
        ("model=llama2_7b", "model", MatchOp.EQ, "llama2_7b"),
        ('model!="llama2_7b"', "model", MatchOp.NE, "llama2_7b"),
        ("model!=llama2_7b", "model", MatchOp.NE, "llama2_7b"),
        ('model=~"llama.*"', "model", MatchOp.RE, "llama.*"),
        ("model=~llama.*", "model", MatchOp.RE, "llama.*"),
        ('model!~"mistral.*"', "model", MatchOp.NRE, "mistral.*"),
        ("model!~mistral.*", "model", MatchOp.NRE, "mistral.*"),
        ('  model  =~  "llama.*"  ', "model", MatchOp.RE, "llama.*"),
        ("\tseverity != critical \n", "severity", MatchOp.NE, "critical"),
        ('summary="a \\"quoted\\" word"', "summary", MatchOp.EQ, 'a "quoted" word'),
        ('path="C:\\\\models"', "path", MatchOp.EQ, "C:\\models"),
        ('text="two\\nlines"', "text", MatchOp.EQ, "two\nlines"),
        ('summary="a, b = c"', "summary", MatchOp.EQ, "a, b = c"),
        ('model=""', "model", MatchOp.EQ, ""),
        ("model=", "model", MatchOp.EQ, ""),
        ("_private=x", "_private", MatchOp.EQ, "x"),
        ("a=b=c", "a", MatchOp.EQ, "b=c"),
        ("a==b", "a", MatchOp.EQ, "=b"),
        # not classic names: Alertmanager's fallback mode reads them with its UTF-8 parser
        ('1model="x"', "1model", MatchOp.EQ, "x"),
        ('model-name="x"', "model-name", MatchOp.EQ, "x"),
        ('"service.name"=~"api.*"', "service.name", MatchOp.RE, "api.*"),
        ("a=b,c", "a", MatchOp.EQ, "b,c"),  # one matcher: the classic reading, all the rest
    ],
)
def test_a_matcher_parses_name_operator_and_value(text, name, op, value):
    matcher = Matcher.parse(text)
    assert (matcher.name, matcher.op, matcher.value) == (name, op, value)


@pytest.mark.parametrize(
    ("text", "value", "matches"),
    [
        ('model=~"llama"', "llama2_7b", False),
        ('model=~"llama"', "llama", True),
        ('model=~"llama.*"', "llama2_7b", True),
        ('model=~"llama.*"', "codellama", False),
        ('model=~".*llama.*"', "codellama", True),
        ('model=~"7b"', "llama2_7b", False),
        ('model=~"llama2_7b|mistral_7b"', "mistral_7b", True),
        ('model=~"llama2_7b|mistral_7b"', "mistral_7b_v2", False),
        ('model!~"llama"', "llama2_7b", True),
        ('model!~"llama.*"', "llama2_7b", False),
        ('model="llama"', "llama2_7b", False),
        ('model="llama2_7b"', "llama2_7b", True),
        ('model!="llama2_7b"', "llama2_7b", False),
        ('model!="llama2_7b"', "mistral_7b", True),
    ],
)
def test_regexes_match_the_whole_value_like_alertmanager(text, value, matches):
    assert Matcher.parse(text).matches({"model": value, "alertname": "X"}) is matches


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ('model=""', True),
        ('model="llama"', False),
        ('model!=""', False),
        ('model!="llama"', True),
        ('model=~".*"', True),
        ('model=~".+"', False),
        ('model!~".+"', True),
        ('model!~""', False),
    ],
)
def test_a_missing_label_is_treated_as_the_empty_value(text, matches):
    assert Matcher.parse(text).matches({"alertname": "X"}) is matches


def test_the_anchored_pattern_is_the_one_alertmanager_compiles():
    assert Matcher.parse('model=~"llama|mistral"').anchored == "^(?:llama|mistral)$"


@pytest.mark.parametrize("case", CASES, ids=[f"{c.pattern}~{c.value!r}" for c in CASES])
def test_regexes_are_re2_where_python_and_postgres_answer_otherwise(case):
    assert regex(case.pattern).value == case.pattern
    assert regex(case.pattern).matches({"x": case.value}) is case.matches
    assert regex(case.pattern, "!~").matches({"x": case.value}) is not case.matches


def test_a_missing_label_is_the_empty_value_for_re2_too():
    # Python's re reads a{,3} as zero to three a's, which the empty value matches
    assert regex("a{,3}").matches({}) is False
    assert regex("a{,3}", "!~").matches({}) is True


@pytest.mark.parametrize(
    ("pattern", "slow", "fine"), CATASTROPHIC, ids=[c[0] for c in CATASTROPHIC]
)
def test_patterns_that_make_python_backtrack_are_answered_by_re2(pattern, slow, fine):
    assert regex(pattern).matches({"x": slow}) is False
    assert regex(pattern).matches({"x": fine}) is True


@pytest.mark.parametrize("pattern", INVALID, ids=repr)
def test_what_re2_does_not_take_raises_a_value_error_naming_the_matcher(pattern):
    with pytest.raises(ValueError, match="invalid regex") as caught:
        regex(pattern)
    assert "x=~" in str(caught.value)


def test_a_backreference_is_refused_with_the_reason():
    with pytest.raises(ValueError, match=re.escape("invalid escape sequence: \\1")) as caught:
        regex(r"(a)\1")
    assert "no backreferences or lookaround" in str(caught.value)


def test_an_any_byte_escape_inside_a_literal_quote_is_just_text():
    assert regex(r"\Q\C\E").matches({"x": "\\C"})
    assert regex(r"a\\C").matches({"x": "a\\C"})  # an escaped backslash, then C


def test_a_regex_of_the_maximum_length_is_accepted_and_one_longer_is_refused():
    longest = ("a|" * MAX_REGEX_LENGTH)[: MAX_REGEX_LENGTH - 1] + "b"
    assert len(longest) == MAX_REGEX_LENGTH
    assert regex(longest).matches({"x": "ab"}) and regex(longest).matches({"x": "a"})
    with pytest.raises(ValueError, match="regex too long") as caught:
        regex(longest + "b")
    assert f"{MAX_REGEX_LENGTH + 1} characters, at most {MAX_REGEX_LENGTH}" in str(caught.value)
    assert "label 'x'" in str(caught.value)
    assert longest not in str(caught.value)  # the message stays short


def test_a_short_pattern_whose_program_outgrows_re2s_memory_is_refused():
    with pytest.raises(ValueError, match="pattern too large"):
        regex(r"\pL{1000}")


def test_an_equality_matcher_of_any_length_is_a_plain_comparison():
    assert Matcher.parse("x=" + "(" * 5000).matches({"x": "(" * 5000})


def test_an_anchored_regex_does_not_match_a_value_with_a_trailing_newline():
    assert Matcher.parse('model=~"llama"').matches({"model": "llama\n"}) is False
    assert Matcher.parse('model!~"llama"').matches({"model": "llama\n"}) is True


def test_a_quoted_regex_with_backslash_escapes_is_accepted_like_alertmanager():
    matcher = Matcher.parse(r'instance=~"10\.0\.0\.\d+:9100"')
    assert matcher.value == r"10\.0\.0\.\d+:9100"
    assert matcher.matches({"instance": "10.0.0.12:9100"})
    assert not matcher.matches({"instance": "10x0.0.12:9100"})


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "model",
        "llama2_7b",
        '="x"',
        'model~="x"',
        "{a=b}",  # a list, not one matcher
        "a=b}",
        'model<>"x"',
    ],
    ids=repr,
)
def test_text_that_is_not_a_matcher_raises_a_helpful_value_error(text):
    with pytest.raises(ValueError, match="not a label matcher") as caught:
        Matcher.parse(text)
    assert repr(text) in str(caught.value)
    assert "=~" in str(caught.value)


@pytest.mark.parametrize("text", ['model="a"b"', 'model="unterminated\\"'], ids=repr)
def test_a_badly_quoted_value_raises_a_helpful_value_error(text):
    with pytest.raises(ValueError, match="badly quoted value") as caught:
        Matcher.parse(text)
    assert repr(text) in str(caught.value)


@pytest.mark.parametrize(
    "text", ['model=~"llama("', "model!~[a-", 'model=~"*llama"', 'model=~"(?P<x"'], ids=repr
)
def test_an_invalid_regex_raises_a_value_error_naming_the_matcher(text):
    with pytest.raises(ValueError, match="invalid regex") as caught:
        Matcher.parse(text)
    assert repr(text) in str(caught.value)


@pytest.mark.parametrize("value", ["llama(", "[a-", "llama.*"])
def test_regex_characters_in_an_equality_matcher_are_literal(value):
    equal = Matcher.parse(f'model="{value}"')
    different = Matcher.parse(f'model!="{value}"')
    assert equal.matches({"model": value}) and not different.matches({"model": value})
    assert not equal.matches({"model": "llama"}) and different.matches({"model": "llama"})


@pytest.mark.parametrize(
    "text",
    [
        'model="llama2_7b"',
        "model!=mistral_7b",
        'model=~"llama.*|mistral_7b"',
        'model!~"(a|b)+"',
        'summary="a \\"quoted\\" word, with = signs"',
        'path="C:\\\\models\\nsecond line"',
        'model=""',
        'label="ünïcødé"',
    ],
)
def test_str_round_trips_through_parse(text):
    matcher = Matcher.parse(text)
    again = Matcher.parse(str(matcher))
    assert again == matcher
    assert str(again) == str(matcher)
    for labels in ({"model": "llama2_7b"}, {"model": "x"}, {}):
        assert again.matches(labels) is matcher.matches(labels)


def test_str_writes_the_value_double_quoted():
    assert str(Matcher.parse("model=~llama.*")) == 'model=~"llama.*"'
    assert str(Matcher.parse('s="say \\"hi\\""')) == 's="say \\"hi\\""'


@pytest.mark.parametrize("text", ['model=!"x"', 'model="a"b"', 'model=a"b'])
def test_stray_double_quotes_are_rejected_like_alertmanager(text):
    with pytest.raises(ValueError, match="quote"):
        Matcher.parse(text)


@pytest.mark.parametrize(
    ("quoted", "value"),
    [
        (r'"\a\b\f\n\r\t\v\\\""', '\a\b\f\n\r\t\v\\"'),
        (r'"\x41\101\u00e9\U0001F642"', "AAé🙂"),
        (r'"\xc3\xa9"', "é"),  # bytes that make UTF-8
        ('"tab\there"', "tab\there"),  # a literal tab is fine, a literal line break is not
    ],
)
def test_quoted_strings_take_gos_escapes(quoted, value):
    assert Matcher.parse(f'"x"={quoted}').value == value


@pytest.mark.parametrize(
    "quoted",
    [
        *(r'"\'"', r'"\?"', r'"\q"', r'"\x4"', r'"\400"', r'"\12"', r'"\ud800"'),
        *(r'"\U00110000"', r'"\xff"', '"line\nbreak"'),
    ],
    ids=repr,
)
def test_what_go_does_not_unquote_is_refused(quoted):
    with pytest.raises(ValueError, match="not a label matcher"):
        Matcher.parse(f'"x"={quoted}')


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ('{"service.name"="api", "gpu model"=~"A100|H100"}', ["service.name", "gpu model"]),
        ("service.name=api, 模型=llama", ["service.name", "模型"]),
        ('model="a, b", severity!=info', ["model", "severity"]),
        ("{}", []),
        ("", []),
    ],
)
def test_parse_matchers_reads_a_list(text, names):
    assert [m.name for m in parse_matchers(text)] == names


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{"foo"=bar', "end of input at character 11: expected a close brace"),
        ('"foo"=bar}', "'}' at character 10 closes no open brace"),
        ('"föö"=~', "end of input at character 8: expected a label value"),
        ("a=b,,c=d", "unexpected ',' at character 5"),
        ('"x"="\\q"', "bad quoted string at character 5"),
    ],
)
def test_syntax_errors_name_the_problem_and_where(text, where):
    with pytest.raises(ValueError, match="not a label matcher") as caught:
        parse_matchers(text)
    assert where in str(caught.value)


@pytest.mark.parametrize(
    ("name", "written"),
    [
        ("model", 'model="v"'),
        ("a:b", 'a:b="v"'),
        ("service.name", '"service.name"="v"'),
        ("gpu model", '"gpu model"="v"'),
        ("模型", '"模型"="v"'),
        ('q"uote', '"q\\"uote"="v"'),
        ("", '""="v"'),
    ],
)
def test_str_quotes_a_name_that_is_not_classic(name, written):
    matcher = Matcher(name, MatchOp.EQ, "v")
    assert str(matcher) == written
    assert Matcher.parse(written) == matcher and parse_matchers(written) == [matcher]


@pytest.mark.parametrize("value", ["a\tb", 'say "hi"\n', "\\d+", "\x00\x7f\u00a0\u2028🙂"])
def test_str_of_a_utf8_name_round_trips_any_value(value):
    matcher = Matcher("gpu.model", MatchOp.NE, value)
    assert Matcher.parse(str(matcher)) == matcher


# any text but lone surrogates, which no UTF-8 text holds
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(name=TEXT, op=st.sampled_from([MatchOp.EQ, MatchOp.NE]), value=TEXT)
def test_str_reads_back_as_the_same_matcher_for_any_name_and_value(name, op, value):
    matcher = Matcher(name, op, value)
    assert Matcher.parse(str(matcher)) == matcher
    assert parse_matchers(str(matcher)) == [matcher]
    assert parse_matchers(f"{{{matcher}, {matcher}}}") == [matcher, matcher]
