"""Routing as Alertmanager reads routes, and the outbox's retry policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from receiver.bootstrap import Container
from receiver.model.delivery import RetryPolicy
from receiver.model.matchers import Matcher
from receiver.model.routing import Route, Router
from receiver.settings import ConfigError, load_settings


def route(*matchers: str, to: tuple[str, ...], cont: bool = False) -> Route:
    return Route(tuple(Matcher.parse(m) for m in matchers), to, cont)


EXAMPLE = Router(
    (
        route('severity="critical"', to=("pagerduty",), cont=True),
        route('severity=~"critical|warning"', to=("slack",)),
        route('team="ml"', to=("ml-slack",)),
    ),
    default=("fallback",),
)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"severity": "critical"}, ["pagerduty", "slack"]),  # continue goes on
        ({"severity": "warning"}, ["slack"]),
        ({"severity": "warning", "team": "ml"}, ["slack"]),  # a match without continue stops
        ({"severity": "info", "team": "ml"}, ["ml-slack"]),
        ({"severity": "info"}, ["fallback"]),  # nothing matched: the default
        ({}, ["fallback"]),
    ],
)
def test_routes_are_walked_in_order_with_continue_and_a_default(labels, expected):
    assert EXAMPLE.receivers_for(labels) == expected


def test_a_receiver_reached_twice_is_listed_once():
    router = Router((route(to=("a", "b"), cont=True), route(to=("b", "c"))))
    assert router.receivers_for({}) == ["a", "b", "c"]


def test_without_routes_or_default_nothing_is_reached():
    assert Router().receivers_for({"severity": "critical"}) == []


def test_a_regex_route_matches_the_whole_value_only():
    router = Router((route('model=~"llama"', to=("x",)),), default=("d",))
    assert router.receivers_for({"model": "llama2_7b"}) == ["d"]
    assert router.receivers_for({"model": "llama"}) == ["x"]


def test_routes_match_regexes_as_alertmanager_does_with_re2():
    router = Router(
        (
            route(r'model=~"(?i)LLAMA.*"', to=("llama",)),  # Python's re refuses (?i) here
            route(r'instance=~"\\d+"', to=("digits",)),  # ASCII digits only
            route('pod=~"a{,3}"', to=("literal",)),  # a literal {,3} in RE2
        ),
        default=("d",),
    )
    assert router.receivers_for({"model": "Llama3_8b"}) == ["llama"]
    assert router.receivers_for({"instance": "٣٤"}) == ["d"]  # Python's \d would take it
    assert router.receivers_for({"instance": "34"}) == ["digits"]
    assert router.receivers_for({"pod": "a{,3}"}) == ["literal"]
    assert router.receivers_for({"pod": "aa"}) == ["d"]
    assert router.receivers_for({"model": "llama\n"}) == ["d"]  # $: the end of the text


def test_a_route_with_a_backtracking_pattern_answers_at_once():
    router = Router((route('model=~"(a+)+$"', to=("x",)),), default=("d",))
    assert router.receivers_for({"model": "a" * 5000 + "!"}) == ["d"]
    assert router.receivers_for({"model": "a" * 5000}) == ["x"]


@pytest.mark.parametrize(
    ("matcher", "problem"),
    [
        (r'model=~"(a)\\1"', "invalid escape sequence"),
        ('model=~"(?=llama)l.*"', "invalid perl operator"),
        ('model=~"' + "a" * 1001 + '"', "regex too long"),
    ],
)
def test_config_refuses_a_route_whose_regex_is_not_re2_or_too_long(matcher, problem):
    with pytest.raises(ConfigError) as caught:
        load_settings(
            environ={},
            require_auth=False,
            overrides={"routes": [{"matchers": [matcher], "receivers": ["x"]}]},
        )
    assert caught.value.errors[0].startswith("routes.0.matchers")
    assert problem in caught.value.errors[0]


def test_config_refuses_a_route_with_a_bad_matcher():
    with pytest.raises(ConfigError) as caught:
        load_settings(
            environ={},
            require_auth=False,
            overrides={
                "routes": [
                    {"matchers": ['severity="critical"'], "receivers": ["nowhere"]},
                    {"matchers": ["sev=~'("], "receivers": ["x"]},
                ],
                "default_receivers": ["missing"],
            },
        )
    assert [e.split(":")[0] for e in caught.value.errors] == ["routes.1.matchers"]
    assert "invalid regex" in caught.value.errors[0]


def test_config_names_unknown_receivers_of_valid_routes():
    with pytest.raises(ConfigError) as caught:
        load_settings(
            environ={},
            require_auth=False,
            overrides={"routes": [{"matchers": [], "receivers": ["nowhere"]}]},
        )
    assert caught.value.errors == ["routes.0.receivers: unknown receiver 'nowhere'"]


def test_a_pagerduty_routing_key_must_have_32_characters_and_never_shows():
    with pytest.raises(ConfigError) as caught:
        load_settings(
            environ={},
            require_auth=False,
            overrides={"receivers": {"pd": {"type": "pagerduty", "routing_key": "short-secret"}}},
        )
    assert caught.value.errors == [
        "receivers.pd.routing_key: Value error, a PagerDuty routing key has 32 characters"
    ]
    assert "short-secret" not in str(caught.value)


def test_the_backoff_doubles_up_to_the_maximum_with_jitter_between_half_and_full():
    policy = RetryPolicy(initial=2, maximum=60)
    assert [policy.delay(n, None, rand=lambda: 1.0) for n in (1, 2, 3, 4, 5, 6, 7)] == [
        2,
        4,
        8,
        16,
        32,
        60,
        60,
    ]
    assert policy.delay(3, None, rand=lambda: 0.0) == 4  # half of 8


def test_a_longer_retry_after_wins_over_the_backoff_and_a_shorter_one_does_not():
    policy = RetryPolicy(initial=2, maximum=60)
    assert policy.delay(1, 30, rand=lambda: 1.0) == 30
    assert policy.delay(4, 1, rand=lambda: 1.0) == 16


def test_a_delivery_is_dead_once_older_than_the_maximum_age():
    policy = RetryPolicy(max_age=timedelta(hours=1))
    created = datetime(2026, 11, 28, tzinfo=UTC)
    assert not policy.is_dead(created, created + timedelta(minutes=59))
    assert policy.is_dead(created, created + timedelta(hours=1))


def test_a_send_in_doubt_is_never_too_old_while_its_incident_fires():
    policy = RetryPolicy(max_age=timedelta(hours=1))
    created = datetime(2026, 11, 28, tzinfo=UTC)
    late = created + timedelta(days=3)
    assert not policy.is_dead(created, late, in_doubt=True, firing=True)
    assert policy.is_dead(created, late, in_doubt=True, firing=False)  # resolved: age counts
    assert policy.is_dead(created, late, in_doubt=False, firing=True)


def test_a_route_matchers_entry_may_hold_a_list_as_in_alertmanager():
    settings = load_settings(
        environ={},
        require_auth=False,
        overrides={
            "routes": [
                {
                    "matchers": ['{severity="critical", "service.name"=~"api.*"}', "模型=llama"],
                    "receivers": ["x"],
                }
            ],
            "receivers": {"x": {"type": "slack", "token": "xoxb-test", "channel": "#c"}},
        },
    )
    router = Container(settings, engine=None).router  # type: ignore[arg-type]
    [only] = router.routes
    assert [str(m) for m in only.matchers] == [
        'severity="critical"',
        '"service.name"=~"api.*"',
        '"模型"="llama"',
    ]
    labels = {"severity": "critical", "service.name": "api-1", "模型": "llama"}
    assert router.receivers_for(labels) == ["x"]
    assert router.receivers_for({**labels, "模型": "mistral"}) == []


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("a=b,c", "character 6: expected an operator"),  # a list entry: "c" is no matcher
        ('{"service.name"=api', "expected a close brace"),
    ],
)
def test_config_names_the_bad_part_of_a_matchers_entry(entry, problem):
    with pytest.raises(ConfigError) as caught:
        load_settings(
            environ={},
            require_auth=False,
            overrides={"routes": [{"matchers": [entry], "receivers": ["x"]}]},
        )
    assert caught.value.errors[0].startswith("routes.0.matchers")
    assert problem in caught.value.errors[0]
