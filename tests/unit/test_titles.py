"""Incident title templates (intake.title_template): placeholders, UTF-8 names, route labels,
missing values, literal braces, and the errors that name what is wrong."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from receiver.model.alerts import AlertEvent, AlertStatus, Notification
from receiver.model.titles import TitleTemplate
from receiver.settings import load_settings
from receiver.settings.load import ConfigError

T0 = datetime(2026, 12, 8, tzinfo=UTC)


def gpu_hot(**labels: str) -> AlertEvent:
    return AlertEvent(
        status=AlertStatus.FIRING,
        labels={"alertname": "GpuHot", "severity": "critical", "gpu.uuid": "GPU-7", **labels},
        annotations={"summary": "GPU 7 at 92 C", "runbook": "gpu-hot"},
        starts_at=T0,
        ends_at=None,
        generator_url="",
        fingerprint="0123456789abcdef",
    )


def notification(alert: AlertEvent, **route: str) -> Notification:
    return Notification(
        receiver="gpu",
        status=AlertStatus.FIRING,
        alerts=[alert],
        group_key='{}:{alertname="GpuHot"}',
        route_labels=route,
    )


def title(template: str, alert: AlertEvent, **route: str) -> str:
    return TitleTemplate.parse(template).render(notification(alert, **route), alert, "DEFAULT")


def test_each_placeholder_is_filled_from_the_first_alert() -> None:
    hot = gpu_hot(model="llama-70b")
    assert title("{severity}: {alertname} on {label:model}", hot) == "critical: GpuHot on llama-70b"
    assert title("{summary}", hot) == "DEFAULT"  # what the incident gets without a template
    assert title("{annotation:runbook}", hot) == "gpu-hot"


def test_label_names_may_hold_dots_spaces_and_any_utf8() -> None:
    hot = gpu_hot(**{"modèle served": "mistral"})
    assert title("{label:gpu.uuid} {label:modèle served}", hot) == "GPU-7 mistral"


def test_route_labels_fill_route_and_the_labels_the_alert_lacks() -> None:
    hot = gpu_hot(team="alert-team")
    assert title("[{route:team}] {summary}", hot, team="ml-serving") == "[ml-serving] DEFAULT"
    assert title("[{label:team}]", hot, team="ml-serving") == "[alert-team]"  # the alert's wins
    assert title("[{label:site}]", hot, site="eu-1") == "[eu-1]"


def test_a_missing_value_leaves_no_double_space_and_an_empty_title_is_the_default() -> None:
    hot = gpu_hot()
    assert title("{label:model}  {alertname}  {route:team}", hot) == "GpuHot"
    assert title("{label:model}{route:team}", hot) == "DEFAULT"


def test_doubled_braces_are_literal() -> None:
    assert title("{{{alertname}}} }}", gpu_hot()) == "{GpuHot} }"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{nope}", "unknown placeholder {nope}"),
        ("{label:}", "unknown placeholder {label:}"),
        ("{alertname", "unmatched '{' at character 1"),
        ("a } b", "unmatched '}' at character 3"),
    ],
)
def test_a_wrong_template_is_refused_naming_the_problem(template: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
        TitleTemplate.parse(template)


def test_the_setting_is_checked_when_the_configuration_loads() -> None:
    auth = {"auth.bearer_tokens": ["t" * 32]}
    with pytest.raises(ConfigError, match=r"intake\.title_template: .*unknown placeholder"):
        load_settings(environ={}, overrides={**auth, "intake.title_template": "{bogus}"})
    settings = load_settings(
        environ={}, overrides={**auth, "intake.title_template": "{route:team}"}
    )
    assert settings.intake.title == TitleTemplate.parse("{route:team}")
