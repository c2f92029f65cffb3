"""docs/operations.md against the code: every setting with its default, every metric the
receiver exposes, only real commands, links that lead somewhere, and the deployment facts it
states (ports, the worker's metrics options, the metrics directory)."""

from __future__ import annotations

import json
import re
import types
import typing
from typing import Any

import click
import yaml
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel

from receiver.cli import main as cli_main
from receiver.metrics import Metrics, exposition
from receiver.settings import Settings
from receiver.store.gauges import StoreGauges
from tests.packaging.helpers import (
    MULTIPROC_ENV,
    OPERATIONS,
    RECEIVER_ALERTS,
    container_argv,
    container_of,
    manifest_env,
    workload,
)
from tests.support.servers import REPO_ROOT


def setting_paths(model: type[BaseModel], prefix: str = "") -> dict[str, Any]:
    """Every setting as a dotted path (``receivers.<name>.routing_key``, ``routes[].matchers``),
    with its pydantic field."""
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        key = field.alias or name
        path = f"{prefix}{key}"
        out[path] = field
        for sub, suffix in _nested_models(field.annotation):
            out.update(setting_paths(sub, f"{path}{suffix}"))
    return out


def _nested_models(annotation: Any) -> list[tuple[type[BaseModel], str]]:
    found: list[tuple[type[BaseModel], str]] = []
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(annotation, ".")]
    if origin is typing.Annotated:
        return _nested_models(args[0])
    if origin in (types.UnionType, typing.Union):
        return [m for a in args for m in _nested_models(a)]
    if origin is dict:
        return [(m, f".<{_kind(m)}>" + suffix) for m, suffix in _nested_models(args[1])]
    if origin is list:
        return [(m, "[]" + suffix) for m, suffix in _nested_models(args[0])]
    return found


REFERENCE = "## Configuration reference"


def _kind(model: type[BaseModel]) -> str:
    """A tagged-union member by its tag (``pagerduty``), anything else ``name``."""
    tag = model.model_fields.get("type")
    if tag is not None and typing.get_origin(tag.annotation) is typing.Literal:
        return str(typing.get_args(tag.annotation)[0])
    return "name"


def documented_rows() -> dict[str, str]:
    """``| `path` | default | meaning |`` rows of docs/operations.md: path -> default cell."""
    rows = {}
    reference = OPERATIONS.read_text().split(REFERENCE, 1)[1].split("\n## ", 1)[0]
    for line in reference.splitlines():
        match = re.match(r"\|\s*`([^`]+)`\s*\|([^|]*)\|", line)
        if match:
            rows[match.group(1)] = match.group(2).strip().strip("`")
    return rows


def expected_default(field: Any) -> str | None:
    """How a default is written in the reference; None when it is not a plain value."""
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value = field.default_factory()
        return {"[]": "[]", "{}": "{}"}.get(json.dumps(value)) if not value else None
    value = field.default
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int | str):
        return str(value)
    return None


def test_operations_guide_documents_every_setting_with_its_default() -> None:
    rows = documented_rows()
    paths = setting_paths(Settings)
    missing = sorted(p for p, f in paths.items() if p not in rows and not _is_section(f))
    assert not missing, f"settings missing from docs/operations.md: {missing}"
    unknown = sorted(r for r in rows if r not in paths)
    assert not unknown, f"documented but no such setting: {unknown}"
    for path, field in paths.items():
        expected = expected_default(field)
        if expected is not None and path in rows and not _is_section(field):
            assert rows[path] == expected, f"{path}: documented {rows[path]!r}, is {expected!r}"


def _is_section(field: Any) -> bool:
    return bool(_nested_models(field.annotation))


def exposed_metrics() -> list[str]:
    """Every metric family a web's /metrics exposes: the counters and histograms of ``Metrics``
    and the store gauges read at scrape time (here from made-up state)."""
    state = StoreGauges(
        outbox={("pagerduty", "pending"): 1},
        oldest_due_seconds=3.0,
        open_incidents={"critical": 1},
        flapping_open=1,
        stale_alerts=1,
        heartbeats={"Watchdog": 1.0, "receiver-worker": 2.0},
    )
    text = exposition(Metrics(), lambda: state).decode()
    return [
        f"{family.name}_total" if family.type == "counter" else family.name
        for family in text_string_to_metric_families(text)
    ]


def test_operations_guide_lists_every_metric() -> None:
    text = OPERATIONS.read_text()
    section = text.split("## Metrics and alerts", 1)[1]
    exposed = exposed_metrics()
    assert {"receiver_webhooks_total", "receiver_outbox_deliveries"} <= set(exposed)
    assert not [n for n in exposed if n.endswith("_created")], "no *_created series"
    for name in exposed:
        assert f"`{name}`" in section, f"{name} is not in 'Metrics and alerts'"
    for name in set(re.findall(r"`(receiver_[a-z_]+)`", section)):
        assert name in exposed or name.removesuffix("_bucket") in exposed, f"no metric {name}"


def test_operations_guide_names_only_real_commands() -> None:
    text = OPERATIONS.read_text()
    named = set(re.findall(r"`receiver ((?:[a-z-]+ ?)+)", text))
    assert named
    for words in named:
        args = words.split()
        command: click.Command = cli_main
        for word in args:
            if not isinstance(command, click.Group):
                break
            assert word in command.commands, f"docs/operations.md: no `receiver {words}`"
            command = command.commands[word]


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Any) -> set[str]:
    lines = path.read_text().splitlines()
    return {_slug(line.lstrip("#")) for line in lines if re.match(r"#{1,6} ", line)}


def test_operations_guide_links_lead_somewhere() -> None:
    text = OPERATIONS.read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links
    for link in links:
        if link.startswith(("http://", "https://")):
            continue
        target, _, anchor = link.partition("#")
        path = (OPERATIONS.parent / target).resolve() if target else OPERATIONS
        assert path.exists(), f"docs/operations.md links to {link}: no such file"
        assert path.is_relative_to(REPO_ROOT), link
        if anchor:
            assert path.suffix == ".md", link
            assert anchor in _anchors(path), f"docs/operations.md links to {link}: no heading"


def test_operations_guide_states_the_deployments_facts() -> None:
    """What the guide says the pods run is what the manifests run."""
    text = " ".join(OPERATIONS.read_text().split())  # table cells and wrapped lines alike
    worker = " ".join(container_argv(container_of("worker")))
    assert f"`{worker}`" in text, f"the guide names the worker's command: {worker}"
    directory = manifest_env(workload("web"))[MULTIPROC_ENV]
    assert f"`{directory}`" in text and f"`{MULTIPROC_ENV}`" in text
    for path in ("config/prometheus/receiver-alerts.yml", "config/grafana/receiver-dashboard.json"):
        assert f"(../{path})" in text, f"the guide points to {path}"


def test_operations_guide_names_every_shipped_receiver_alert() -> None:
    """The guide's summary of config/prometheus/receiver-alerts.yml names each alert, and only
    alerts that exist."""
    section = OPERATIONS.read_text().split("## Metrics and alerts", 1)[1]
    rules = yaml.safe_load(RECEIVER_ALERTS.read_text())
    shipped = {r["alert"] for group in rules["groups"] for r in group["rules"] if "alert" in r}
    named = set(re.findall(r"`(Receiver[A-Za-z]+)`", section))
    assert shipped and named == shipped, f"missing {shipped - named}, unknown {named - shipped}"
