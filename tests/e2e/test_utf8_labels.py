"""An alert with UTF-8 label names (a dot, non-ASCII) through Prometheus 3.5 and Alertmanager
0.33: stored as sent, found by a quoted-name label filter, resolved."""

from __future__ import annotations

import pytest

from tests.e2e.stack import Stack
from tests.e2e.timeline import alert_states, api, delivered, eventually, gpu_memory, pd_actions
from tests.e2e.utf8_rules import ALERT, GPU_UUID, LABELS
from tests.support.versions import Versions

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def found_by(stack: Stack, name: str, value: str) -> list[int]:
    """Ids of the incidents the list API finds for ``"name"="value"`` (requests urlencodes it)."""
    found = api(stack, "/api/v1/incidents", alertname=ALERT, label=f'"{name}"="{value}"')
    return [i["id"] for i in found["incidents"]]


def test_an_alert_with_utf8_label_names_is_stored_found_and_resolved(
    versions: Versions, stack: Stack
) -> None:
    if int((versions.version("prometheus") or "0").split(".")[0]) < 3:
        pytest.skip("Prometheus 2.42 refuses UTF-8 label names in rules: nothing can send them")
    assert found_by(stack, "gpu.model", LABELS["gpu.model"]) == []
    gpu_memory(stack, GPU_UUID, 0.5)
    try:
        [opened] = eventually(
            stack, "an incident", lambda: found_by(stack, "gpu.model", LABELS["gpu.model"])
        )
        detail = delivered(stack, opened)
        [alert] = detail["alerts"]
        assert LABELS.items() <= alert["labels"].items(), alert["labels"]
        assert alert["labels"]["gpu_uuid"] == GPU_UUID
        assert found_by(stack, "modèle", LABELS["modèle"]) == [opened]
        assert found_by(stack, "gpu.model", "H100") == []
        assert pd_actions(stack, detail) == ["trigger"]
    finally:
        stack.pod_a.remove_gpu(GPU_UUID)
    eventually(stack, "the alert resolved in Prometheus", lambda: alert_states(stack, ALERT) == [])
    done = delivered(stack, opened, "resolved")
    assert pd_actions(stack, done) == ["trigger", "resolve"]
    assert found_by(stack, "gpu.model", LABELS["gpu.model"]) == [opened]
