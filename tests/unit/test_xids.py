"""The XID catalogue: typed entries by code, each problem named with its entry, the shipped file."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from receiver.enrich.xids import XID_CLASSES, XidCatalogue, XidCatalogueError, XidEntry
from receiver.settings import load_settings

SHIPPED = Path(__file__).parents[2] / "config" / "xids.yaml"
# the XIDs the catalogue must cover (the project's GPU notes, from NVIDIA's XID documentation)
REQUIRED = [13, 31, 43, 45, 48, 61, 62, 63, 64, 68, 69, 74, 79, 92, 94, 95, 109, 119, 120, 140]
REQUIRED += [*range(144, 151), 154]

DBE = {
    "xid": 48,
    "meaning": "Double-bit ECC error.",
    "class": "fault",
    "action": "Drain the GPU and reset it.",
    "source": "NVIDIA",
}


def write(tmp_path: Path, entries: Any) -> Path:
    path = tmp_path / "xids.yaml"
    path.write_text(yaml.safe_dump({"xids": entries}), encoding="utf-8")
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(XidCatalogueError) as caught:
        XidCatalogue.load(path)
    return caught.value.errors


def test_an_entry_is_read_as_a_typed_value_and_found_by_its_code(tmp_path):
    catalogue = XidCatalogue.load(write(tmp_path, [DBE]))
    assert catalogue.lookup(48) == XidEntry(
        48, "Double-bit ECC error.", "fault", "Drain the GPU and reset it.", "NVIDIA"
    )
    assert catalogue.lookup(13) is None


def test_no_path_is_an_empty_catalogue():
    assert XidCatalogue.load(None).entries == ()


def test_each_bad_entry_is_named_by_its_place_and_code(tmp_path):
    path = write(
        tmp_path,
        [
            {**DBE, "class": "hardware"},
            {**DBE, "xid": 13, "action": ""},
            {**DBE, "xid": "31"},
            {**DBE, "xid": 0},
            {**DBE, "xid": 43, "severity": "high"},
            {k: v for k, v in DBE.items() if k != "source"} | {"xid": 61},
            "not a mapping",
        ],
    )
    errors = errors_of(path)
    assert len(errors) == 7, errors
    assert errors[0].startswith(f"{path}: xids[0] (xid 48).class: Input should be 'fault'")
    assert errors[1].startswith(f"{path}: xids[1] (xid 13).action:")
    assert errors[2].startswith(f"{path}: xids[2].xid:")  # not an integer: no code to name
    assert errors[3].startswith(f"{path}: xids[3] (xid 0).xid: Input should be greater than 0")
    assert errors[4].startswith(f"{path}: xids[4] (xid 43).severity: Extra inputs")
    assert errors[5].startswith(f"{path}: xids[5] (xid 61).source: Field required")
    assert errors[6].startswith(f"{path}: xids[6].(entry):")


def test_a_code_listed_twice_is_an_error_naming_both_places(tmp_path):
    path = write(tmp_path, [DBE, {**DBE, "xid": 13}, {**DBE, "meaning": "Again."}])
    assert errors_of(path) == [f"{path}: xids[2] (xid 48): xid 48 is already xids[0]"]


@pytest.mark.parametrize(
    "text", ["", "xids:\n", "xids: {xid: 48}\n", "- xid: 48\n", "just text\n"], ids=repr
)
def test_a_file_without_a_top_level_xids_list_is_rejected(tmp_path, text):
    path = tmp_path / "xids.yaml"
    path.write_text(text, encoding="utf-8")
    assert errors_of(path) == [f"{path}: expected a top-level 'xids:' list"]


def test_an_unreadable_or_invalid_file_is_a_catalogue_error(tmp_path):
    missing = tmp_path / "nowhere.yaml"
    assert errors_of(missing) == [f"{missing}: cannot read: No such file or directory"]
    broken = tmp_path / "broken.yaml"
    broken.write_text("xids:\n  - xid: [unclosed\n", encoding="utf-8")
    (error,) = errors_of(broken)
    assert error.startswith(f"{broken}: not valid YAML")


# --- the shipped catalogue ---------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> XidCatalogue:
    return XidCatalogue.load(SHIPPED)


@pytest.mark.parametrize("code", REQUIRED)
def test_the_shipped_catalogue_explains_every_required_xid(shipped, code):
    entry = shipped.lookup(code)
    assert entry is not None, f"XID {code} missing from {SHIPPED}"
    assert entry.meaning and entry.action and entry.source
    assert entry.xid_class in XID_CLASSES


def test_the_shipped_catalogue_classes_hardware_and_application_xids_apart(shipped):
    classes = {code: shipped.lookup(code).xid_class for code in (13, 31, 43, 45, 48, 64, 74, 79)}
    assert classes == {
        13: "application",
        31: "application",
        43: "application",
        45: "follow-up",
        48: "fault",
        64: "fault",
        74: "interconnect",
        79: "fault",
    }


def test_xids_path_is_a_setting_relative_to_the_config_file(tmp_path):
    config = tmp_path / "receiver.yaml"
    config.write_text("xids_path: xids.yaml\n", encoding="utf-8")
    settings = load_settings(config, environ={}, require_auth=False)
    assert settings.xids_path == str(tmp_path / "xids.yaml")
