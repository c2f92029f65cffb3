"""Runbooks: annotation first, then the catalogue (first match wins); load reports all problems."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from receiver.enrich.runbooks import CatalogueError, RunbookCatalogue

SHIPPED = Path(__file__).parents[2] / "config" / "runbooks.yaml"

LATENCY = {
    "name": "high-latency",
    "alertname": "TritonHighLatency",
    "url": "https://runbooks.example.com/latency?model={model}&v={version}",
    "guidance": "Check the queue of {model} first.",
}


def load(tmp_path: Path, entries: Any) -> RunbookCatalogue:
    path = tmp_path / "runbooks.yaml"
    path.write_text(yaml.safe_dump({"runbooks": entries}), encoding="utf-8")
    return RunbookCatalogue.load(path)


def load_errors(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "runbooks.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogueError) as caught:
        RunbookCatalogue.load(path)
    return caught.value.errors


@pytest.fixture
def catalogue(tmp_path: Path) -> RunbookCatalogue:
    return load(tmp_path, [LATENCY])


def test_an_http_runbook_url_annotation_wins_and_keeps_the_catalogue_guidance(catalogue):
    runbook = catalogue.resolve(
        {"alertname": "TritonHighLatency", "model": "llama2_7b"},
        {"runbook_url": "  https://wiki.example.com/ours  "},
    )
    assert runbook.url == "https://wiki.example.com/ours"
    assert runbook.source == "annotation"
    assert runbook.guidance == "Check the queue of llama2_7b first."
    assert runbook.entry == "high-latency"
    assert not runbook.missing


def test_an_annotation_without_a_catalogue_match_still_counts(catalogue):
    runbook = catalogue.resolve({"alertname": "Other"}, {"runbook_url": "http://wiki/x"})
    assert (runbook.url, runbook.source, runbook.guidance, runbook.entry) == (
        "http://wiki/x",
        "annotation",
        None,
        None,
    )


@pytest.mark.parametrize(
    "annotation",
    ["javascript:alert(1)", "ftp://x", "file:///etc/passwd", "wiki/page", "", "https://a b"],
    ids=repr,
)
def test_a_non_http_annotation_is_ignored_for_the_catalogue_url(catalogue, annotation):
    runbook = catalogue.resolve(
        {"alertname": "TritonHighLatency", "model": "m", "version": "1"},
        {"runbook_url": annotation},
    )
    assert runbook.url == "https://runbooks.example.com/latency?model=m&v=1"
    assert runbook.source == "catalogue"


def test_catalogue_urls_quote_label_values_and_render_missing_labels_empty(catalogue):
    runbook = catalogue.resolve({"alertname": "TritonHighLatency", "model": "a b/c"}, {})
    assert runbook.url == "https://runbooks.example.com/latency?model=a%20b%2Fc&v="


def test_guidance_takes_label_values_as_they_are(catalogue):
    runbook = catalogue.resolve({"alertname": "TritonHighLatency", "model": "a b/c&<d>"}, {})
    assert runbook.guidance == "Check the queue of a b/c&<d> first."


def test_an_entry_matches_by_alertname_and_matchers_that_must_all_hold(tmp_path):
    catalogue = load(
        tmp_path,
        [
            {
                "name": "prod-llama",
                "alertname": "TritonHighLatency",
                "matchers": ["env=prod", 'model=~"llama.*"'],
                "url": "https://rb/prod-llama",
            },
            {"name": "any-prod", "matchers": ["env=prod"], "url": "https://rb/prod"},
        ],
    )

    def entry(**labels: str) -> str | None:
        return catalogue.resolve(labels, {}).entry

    assert entry(alertname="TritonHighLatency", env="prod", model="llama2") == "prod-llama"
    assert entry(alertname="TritonHighLatency", env="prod", model="mistral") == "any-prod"
    assert entry(alertname="TritonHighErrorRate", env="prod", model="llama2") == "any-prod"
    assert entry(alertname="TritonHighLatency", env="dev", model="llama2") is None


def test_the_first_matching_entry_wins_even_without_a_url(tmp_path):
    catalogue = load(
        tmp_path,
        [
            {"name": "first", "alertname": "A", "guidance": "First guidance."},
            {"name": "second", "alertname": "A", "url": "https://rb/second", "guidance": "No."},
        ],
    )
    runbook = catalogue.resolve({"alertname": "A"}, {})
    assert (runbook.entry, runbook.guidance, runbook.url) == ("first", "First guidance.", None)
    assert runbook.missing


def test_no_match_and_no_annotation_is_a_missing_runbook(catalogue):
    runbook = catalogue.resolve({"alertname": "Unknown"}, {"summary": "x"})
    assert runbook.missing is True
    assert (runbook.url, runbook.source, runbook.guidance, runbook.entry) == (
        None,
        None,
        None,
        None,
    )


def test_no_catalogue_file_means_an_empty_catalogue():
    catalogue = RunbookCatalogue.load(None)
    assert catalogue.entries == ()
    assert catalogue.resolve({"alertname": "TritonHighLatency"}, {}).missing


def test_every_bad_entry_is_reported_at_once(tmp_path):
    errors = load_errors(
        tmp_path,
        yaml.safe_dump(
            {
                "runbooks": [
                    {"name": "bad-url", "url": "ftp://runbooks/x"},
                    {"name": "good", "alertname": "A", "url": "https://rb/a"},
                    {"name": "bad-matcher", "matchers": ["model"]},
                    {"name": "bad-regex", "matchers": ['model=~"llama("']},
                    {"name": "unknown-key", "urls": "https://rb/b"},
                    {"name": "", "guidance": "x" * 2001},
                    "not a mapping",
                ]
            }
        ),
    )
    assert len(errors) == 7
    assert "runbooks[0].url" in errors[0]
    assert "runbooks[2].matchers" in errors[1] and "not a label matcher" in errors[1]
    assert "runbooks[3].matchers" in errors[2] and "invalid regex" in errors[2]
    assert "runbooks[4].urls" in errors[3]
    assert "runbooks[5].name" in errors[4]
    assert "runbooks[5].guidance" in errors[5]
    assert "runbooks[6]" in errors[6]
    assert all(error.startswith(str(tmp_path / "runbooks.yaml")) for error in errors)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "runbooks:\n",
        "runbooks: {name: x}\n",
        "- name: x\n",
        "catalogue:\n  - name: x\n",
        "just text\n",
    ],
    ids=repr,
)
def test_a_file_without_a_top_level_runbooks_list_is_rejected(tmp_path, text):
    assert load_errors(tmp_path, text) == [
        f"{tmp_path / 'runbooks.yaml'}: expected a top-level 'runbooks:' list"
    ]


def test_an_unreadable_file_is_a_catalogue_error(tmp_path):
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(CatalogueError) as caught:
        RunbookCatalogue.load(missing)
    assert caught.value.errors == [f"{missing}: cannot read: No such file or directory"]


def test_invalid_yaml_is_a_catalogue_error(tmp_path):
    (error,) = load_errors(tmp_path, "runbooks:\n  - name: [unclosed\n")
    assert "not valid YAML" in error


# --- the shipped catalogue ---------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> RunbookCatalogue:
    return RunbookCatalogue.load(SHIPPED)


@pytest.mark.parametrize(
    "alertname",
    [
        "TritonHighErrorRate",
        "TritonModelLoadFailure",
        "TritonGPUMemoryHigh",
        "TritonHighLatency",
        "TritonNoHealthyPods",
        "TritonFewHealthyPods",
    ],
)
def test_the_shipped_catalogue_gives_each_triton_alert_an_https_runbook(shipped, alertname):
    labels = {"alertname": alertname, "model": "llama2_7b", "instance": "10.0.0.5:8002"}
    runbook = shipped.resolve(labels, {})
    assert runbook.source == "catalogue"
    assert runbook.url is not None and runbook.url.startswith("https://")
    assert runbook.guidance


def test_the_shipped_error_rate_entry_points_to_incident_management(shipped):
    runbook = shipped.resolve({"alertname": "TritonHighErrorRate", "model": "llama 2"}, {})
    assert "incident-management" in runbook.url
    assert runbook.url.endswith("model=llama%202")
    assert "incident management runbook" in runbook.guidance
    assert "llama 2" in runbook.guidance


def test_the_shipped_model_load_entry_points_to_troubleshooting(shipped):
    runbook = shipped.resolve({"alertname": "TritonModelLoadFailure"}, {})
    assert "troubleshooting" in runbook.url
    assert "troubleshooting runbook" in runbook.guidance


def test_the_shipped_gpu_memory_entry_says_scale_down_batch_size_and_add_instances(shipped):
    guidance = shipped.resolve({"alertname": "TritonGPUMemoryHigh"}, {}).guidance.lower()
    assert "scale down batch size" in guidance
    assert "add instances" in guidance


def test_the_shipped_catalogue_leaves_unknown_alerts_missing(shipped):
    assert shipped.resolve({"alertname": "NodeDiskFull"}, {}).missing


def test_a_matchers_entry_may_be_a_list_with_utf8_names(tmp_path):
    path = tmp_path / "runbooks.yaml"
    entry = {"name": "gpu", "url": "https://rb/gpu", "matchers": ['{"gpu model"=~"H.*", 模型=x}']}
    path.write_text(yaml.safe_dump({"runbooks": [entry]}, allow_unicode=True), encoding="utf-8")
    [loaded] = RunbookCatalogue.load(path).entries
    assert [m.name for m in loaded.matchers] == ["gpu model", "模型"]
    assert loaded.matches({"gpu model": "H100", "模型": "x"})
    assert not loaded.matches({"gpu model": "A100", "模型": "x"})
