"""Label matchers as Alertmanager writes them: parsing, anchored regexes, round trips."""

import pytest

from receiver.model.matchers import Matcher, MatchOp


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


def test_the_anchored_pattern_wraps_the_value_for_the_database():
    assert Matcher.parse('model=~"llama|mistral"').anchored == r"\A(?:llama|mistral)\Z"


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
        '1model="x"',
        'model-name="x"',
        'model~="x"',
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
